"""What every benchmark records about the machine it ran on."""
from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any


def machine_info(packages: tuple[str, ...], load_at_start: list[float], **extra: Any) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo")
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if cpuinfo.exists() else ""
    versions = {}
    for pkg in packages:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    # load from other work on a shared machine skews timings, so it is part of every result
    return {"cpu_count": os.cpu_count(), "cpu": cpu, "platform": platform.platform(),
            "python": platform.python_version(), "packages": versions, "loadavg_at_start": load_at_start, **extra}
