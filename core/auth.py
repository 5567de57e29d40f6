"""Who may do what: password hashes, roles and the access mode. Pure logic over plain dicts (no Streamlit), so it
is unit-testable; ui/auth.py applies it to a browser session.

Roles, each including the one before: viewer (explore, search, read the audit), editor (relabel, accept, confirm,
undo), admin (ingest, delete points, the connection)."""
from __future__ import annotations

from typing import Any, Mapping

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES = ("viewer", "editor", "admin")
# The least role an action needs.
ACTIONS = {"view": "viewer", "edit": "editor", "admin": "admin"}

# Access modes: nobody logs in and everyone is admin (one person on their own machine), nobody logs in and everyone
# is a viewer (a public demo), or everyone logs in and gets their role.
LOCAL, READ_ONLY, LOGIN = "local", "read_only", "login"

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the user name is unknown, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("no such user")


class AuthConfigError(ValueError):
    """The auth configuration (settings or secrets.toml) is wrong; the message says where and how to fix it."""


def hash_password(password: str) -> str:
    """A salted argon2id hash for `[atlas_users.<name>] password_hash` in secrets.toml."""
    if not password:
        raise ValueError("The password is empty.")
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    """Whether `password` matches `password_hash`; False for a malformed hash too (never raises on input)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _role(value: Any, where: str) -> str:
    role = str(value).strip().lower()
    if role not in ROLES:
        raise AuthConfigError(f"{where} is {value!r}; it must be one of {', '.join(ROLES)}.")
    return role


def check_login(users: Mapping[str, Mapping[str, Any]], name: str, password: str) -> str | None:
    """The role of user `name` when `password` is right, else None (unknown user, wrong password, no hash).

    `users` is secrets.toml's `[atlas_users]`: {name: {"password_hash": ..., "role": ...}}."""
    entry = users.get(name) if name else None
    if not isinstance(entry, Mapping) or not entry.get("password_hash"):
        verify_password(password, _DUMMY_HASH)
        return None
    if not verify_password(password, str(entry["password_hash"])):
        return None
    return _role(entry.get("role", "viewer"), f"atlas_users.{name}.role")


def user_role(users: Mapping[str, Mapping[str, Any]], name: str) -> str | None:
    """The configured role of a built-in user, or None when the user is no longer configured."""
    entry = users.get(name)
    if not isinstance(entry, Mapping) or not entry.get("password_hash"):
        return None
    return _role(entry.get("role", "viewer"), f"atlas_users.{name}.role")


def role_for(identity: str | None, roles: Mapping[str, Any]) -> str:
    """The role of a user who logged in with an identity provider, from secrets.toml's `[atlas_roles]`:
    `admins = [...]`, `editors = [...]` (emails or names, case-insensitive); everyone else is a viewer."""
    if not identity:
        return "viewer"
    who = identity.strip().lower()
    for role, key in (("admin", "admins"), ("editor", "editors")):
        listed = roles.get(key) or []
        if isinstance(listed, str):  # admins = "a@x.org" instead of a list
            listed = [listed]
        if who in {str(x).strip().lower() for x in listed}:
            return role
    return "viewer"


def allows(role: str, action: str) -> bool:
    """Whether `role` may do `action` ("view", "edit" or "admin")."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown action {action!r}; one of {', '.join(ACTIONS)}.")
    return role in ROLES and ROLES.index(role) >= ROLES.index(ACTIONS[action])


def _on(value: str, name: str) -> bool:
    v = str(value).strip().lower()
    if v in ("on", "true", "yes", "1"):
        return True
    if v in ("off", "false", "no", "0", ""):
        return False
    raise AuthConfigError(f"{name} is {value!r}; it must be on or off.")


def access_mode(auth: str, read_only: str, users_configured: bool, oidc_configured: bool) -> str:
    """LOCAL, READ_ONLY or LOGIN from the settings ATLAS_AUTH (auto|off) and ATLAS_READ_ONLY (on|off), and whether
    secrets.toml has built-in users or an `[auth]` section.

    Read-only wins over everything (a public demo never writes); auto asks for a log-in as soon as anyone is
    configured; with nobody configured the app is one person's local tool, as it always was."""
    if _on(read_only, "ATLAS_READ_ONLY"):
        return READ_ONLY
    mode = str(auth).strip().lower()
    if mode == "off":
        return LOCAL
    if mode != "auto":
        raise AuthConfigError(f"ATLAS_AUTH is {auth!r}; it must be auto (log-in when users or [auth] are "
                              "configured) or off.")
    return LOGIN if users_configured or oidc_configured else LOCAL
