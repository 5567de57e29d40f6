"""What every benchmark records about the machine it ran on."""
from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any


# CPU features that change torch and numba speed several-fold between machines of the same kind
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_flags() -> list[str]:
    """Which of SPEED_FLAGS this CPU has (from /proc/cpuinfo; empty elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return []
    line = next((ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return [f for f in SPEED_FLAGS if f in have]


def describe(info: dict[str, Any]) -> str:
    """One line naming the machine, for tables and notes."""
    return f"{info['cpu']} x{info['cpu_count']}, flags {' '.join(info.get('cpu_flags') or []) or '(none of note)'}"


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    return next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")), platform.processor()) if cpuinfo.exists() else platform.processor()


def machine_info(packages: tuple[str, ...], load_at_start: list[float], **extra: Any) -> dict[str, Any]:
    cpu = cpu_model()
    versions = {}
    for pkg in packages:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    # load from other work on a shared machine skews timings, so it is part of every result
    return {"cpu_count": os.cpu_count(), "cpu": cpu, "cpu_flags": cpu_flags(), "platform": platform.platform(),
            "python": platform.python_version(), "packages": versions, "loadavg_at_start": load_at_start, **extra}
