"""Every outbound HTTP request the server makes for data or a visitor goes through `fetch` (or `check_url`).

A payload `image_url` or a typed Server URL is attacker-controlled: without these rules the server would fetch
cloud metadata (169.254.169.254), admin ports on localhost, or anything on the private network for the visitor.
Rules, for every hop of a redirect chain:
- the URL is http(s) and its host is listed in ATLAS_ALLOWED_HOSTS (host or host:port), or the URL lies under one
  of the caller's base URLs (where a collection was ingested) or trusted URLs (configured by the operator);
- every address the host resolves to is public, unless ATLAS_ALLOW_PRIVATE_HOSTS=on or the host is listed or
  trusted; the connection then goes to the address that was checked (no second DNS look-up to rebind);
- one deadline for the whole fetch (all hops, headers and body), and a size cap.
Errors from the network all read "Cannot connect to <url>." so that a visitor cannot map open and closed ports.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Iterable
from urllib.parse import urljoin, urlsplit

from . import settings

DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_BYTES = 20_000_000
MAX_REDIRECTS = 3
_REDIRECTS = (301, 302, 303, 307, 308)
_dns = ThreadPoolExecutor(max_workers=4, thread_name_prefix="netguard-dns")  # getaddrinfo has no timeout


class NotAllowed(ValueError):
    """The URL is refused by the rules above; nothing was sent."""


class FetchError(OSError):
    """The fetch failed on the network (refused, closed, timed out, too large, not 2xx). One message for all."""


def public_url(url: str) -> str:
    """The URL without user:password@, for messages and the page."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def allowed_hosts() -> set[str]:
    """ATLAS_ALLOWED_HOSTS as lower-case 'host' and 'host:port' entries."""
    return {h.strip().lower().strip("/") for h in str(settings.get("ATLAS_ALLOWED_HOSTS")).split(",") if h.strip()}


def _endpoint(url: str) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:  # a bad port number or bracket
        raise NotAllowed(f"{public_url(url)!r} is not a valid http(s) URL.") from None
    if scheme not in ("http", "https") or not host:
        raise NotAllowed(f"{public_url(url)!r} is not an http(s) URL with a host name.")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _under(url: str, base: str) -> bool:
    """True when url is base itself or below it: same scheme, host and port, and the base's path as a prefix."""
    try:
        if _endpoint(url) != _endpoint(base):
            return False
    except NotAllowed:
        return False
    path, prefix = urlsplit(url).path or "/", urlsplit(base).path or "/"
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return ip.is_global and not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified)


def _resolve(host: str, port: int, deadline: float) -> list[str]:
    try:
        infos = _dns.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM).result(
            timeout=max(0.01, deadline - time.monotonic()))
    except (OSError, FutureTimeout, UnicodeError):
        raise FetchError() from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def host_permitted(url: str, *, base_urls: Iterable[str] = (), trusted: Iterable[str] = ()) -> bool:
    """The host rule alone (no DNS look-up): listed, trusted, or under a base URL."""
    try:
        _, host, port = _endpoint(url)
    except NotAllowed:
        return False
    listed = allowed_hosts()
    return (host in listed or f"{host}:{port}" in listed or any(_under(url, t) for t in trusted if t)
            or any(_under(url, b) for b in base_urls if b))


def check_url(url: str, *, base_urls: Iterable[str] = (), trusted: Iterable[str] = (),
              deadline: float | None = None) -> str:
    """The checked IP address to connect to, or NotAllowed saying which rule refused the URL.

    base_urls: prefixes that allow their host (addresses must still be public unless private hosts are allowed);
    trusted: operator-configured URLs (QDRANT_URL, ATLAS_IMAGE_BASE_URL) that may be private."""
    scheme, host, port = _endpoint(url)
    listed_hosts = allowed_hosts()
    listed = host in listed_hosts or f"{host}:{port}" in listed_hosts
    is_trusted = any(_under(url, t) for t in trusted if t)
    if not (listed or is_trusted or any(_under(url, b) for b in base_urls if b)):
        raise NotAllowed(f"Image Atlas may not connect to {public_url(url)}: the host {host}:{port} is not in "
                         "ATLAS_ALLOWED_HOSTS. An operator can add it there.")
    deadline = deadline if deadline is not None else time.monotonic() + DEFAULT_TIMEOUT
    addresses = _resolve(host, port, deadline)
    if not (listed or is_trusted or settings.is_on("ATLAS_ALLOW_PRIVATE_HOSTS")):
        for address in addresses:
            if not _is_public(ipaddress.ip_address(address.split("%")[0])):
                raise NotAllowed(f"Image Atlas may not connect to {public_url(url)}: {host} is a loopback, "
                                 "private or link-local address. An operator can list the host in "
                                 "ATLAS_ALLOWED_HOSTS or set ATLAS_ALLOW_PRIVATE_HOSTS=on.")
    return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the checked address; the Host header still names the host."""

    def __init__(self, host: str, port: int, ip: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._ip = ip
        self.raw_sock: socket.socket | None = None  # kept: http.client drops self.sock once a response will close

    def connect(self) -> None:
        self.sock = self.raw_sock = socket.create_connection((self._ip, self.port), self.timeout)


class _PinnedHTTPS(_PinnedHTTP):
    def __init__(self, host: str, port: int, ip: str, timeout: float):
        super().__init__(host, port, ip, timeout)
        self.default_port = 443

    def connect(self) -> None:
        super().connect()
        # certificate checked against the host name, so a pinned address cannot impersonate another site
        self.sock = ssl.create_default_context().wrap_socket(self.sock, server_hostname=self.host)


def _one_hop(url: str, ip: str, deadline: float, max_bytes: int) -> tuple[int, str | None, bytes]:
    scheme, host, port = _endpoint(url)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError()
    conn = (_PinnedHTTPS if scheme == "https" else _PinnedHTTP)(host, port, ip, remaining)
    # the socket timeout is per read; this timer ends a trickling server at the deadline
    timer = threading.Timer(remaining, _abort, args=(conn,))
    timer.daemon = True
    timer.start()
    try:
        conn.request("GET", target, headers={"User-Agent": "image-atlas", "Accept-Encoding": "identity"})
        resp = conn.getresponse()
        if resp.status in _REDIRECTS:
            return resp.status, resp.getheader("Location"), b""
        if not 200 <= resp.status < 300:
            return resp.status, None, b""
        length = resp.getheader("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise FetchError()
        chunks, total = [], 0
        while True:
            chunk = resp.read1(65536)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise FetchError()
            chunks.append(chunk)
        if time.monotonic() > deadline:
            raise FetchError()
        return resp.status, None, b"".join(chunks)
    except (OSError, http.client.HTTPException, ValueError):
        raise FetchError() from None
    finally:
        timer.cancel()
        conn.close()


def _abort(conn: _PinnedHTTP) -> None:
    sock = conn.raw_sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def fetch(url: str, *, base_urls: Iterable[str] = (), trusted: Iterable[str] = (),
          timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The body of a 2xx answer to GET url, following up to 3 redirects, each checked like the first URL.
    No credentials are ever sent (so none can follow a redirect).

    Raises NotAllowed (a rule refused a hop; nothing was sent there) or FetchError (the network failed,
    the answer was not 2xx, or it exceeded max_bytes or the deadline)."""
    base_urls, trusted = list(base_urls), list(trusted)
    deadline = time.monotonic() + timeout
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        try:
            ip = check_url(current, base_urls=base_urls, trusted=trusted, deadline=deadline)
            status, location, body = _one_hop(current, ip, deadline, max_bytes)
        except FetchError:
            raise FetchError(f"Cannot connect to {public_url(url)}.") from None
        if location is None:
            if 200 <= status < 300:
                return body
            raise FetchError(f"Cannot connect to {public_url(url)}.")
        current = urljoin(current, location)
    raise FetchError(f"Cannot connect to {public_url(url)}.")
