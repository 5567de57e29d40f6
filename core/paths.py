"""Server folders a visitor may name: only under the roots in ATLAS_ALLOWED_ROOTS (empty = anywhere).

Paths are resolved (symlinks, `..`, `~`) before the check, so a link or a `..` inside a root cannot lead out of it.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import settings


class PathNotAllowed(ValueError):
    """A folder or file outside the allowed roots (or not a usable path at all)."""


def allowed_roots() -> list[Path]:
    """The resolved roots from ATLAS_ALLOWED_ROOTS (comma-separated); an empty list means no restriction."""
    raw = str(settings.get("ATLAS_ALLOWED_ROOTS"))
    return [Path(part.strip()).expanduser().resolve() for part in raw.split(",") if part.strip()]


def check_path(path: str | os.PathLike, purpose: str) -> Path:
    """The resolved path, or PathNotAllowed naming the purpose and the allowed roots when it lies outside them."""
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a NUL byte, a symlink loop, a name too long
        raise PathNotAllowed(f"The {purpose} {str(path)!r} is not a usable path ({exc}).") from None
    roots = allowed_roots()
    if roots and not any(resolved.is_relative_to(root) for root in roots):
        listed = ", ".join(str(r) for r in roots)
        raise PathNotAllowed(f"The {purpose} {str(path)!r} is outside the allowed folders ({listed}); "
                             f"choose a folder under one of them (setting ATLAS_ALLOWED_ROOTS).")
    return resolved
