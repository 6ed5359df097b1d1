"""What every ``benchmarks/<domain>/bench.py`` records next to its figures: command, date, machine, versions."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from domainfm.io import atomic_write_json

DEFAULT_PACKAGES = (
    "domainfm", "torch", "transformers", "sentence-transformers", "peft", "datasets", "faiss-cpu", "faiss-gpu-cu12",
    "scikit-learn", "numpy",
)


def machine_info() -> dict[str, Any]:
    """CPU model, core count, memory, Python and platform; the GPU when torch sees one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gb"] = round(pages * page_size / 2**30, 1)
    except (ValueError, OSError):
        pass
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def package_versions(names: Iterable[str] = DEFAULT_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (missing packages are left out)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def write_results(
    path: str | Path,
    figures: Mapping[str, Any],
    *,
    command: str | None = None,
    settings: Mapping[str, Any] | None = None,
    extra_packages: Iterable[str] = (),
    **sections: Any,
) -> Path:
    """Write ``results.json`` atomically: command, date, machine, versions, settings and figures."""
    payload = {
        "command": command or " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": package_versions([*DEFAULT_PACKAGES, *extra_packages]),
        "settings": dict(settings or {}),
        "figures": dict(figures),
        **sections,
    }
    return atomic_write_json(path, payload)
