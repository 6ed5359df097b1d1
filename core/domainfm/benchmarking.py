"""What every ``benchmarks/<domain>/bench.py`` records next to its figures: command, date, machine, versions."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from domainfm.io import atomic_write_json

DEFAULT_PACKAGES = (
    "domainfm", "torch", "transformers", "sentence-transformers", "peft", "datasets", "faiss-cpu", "faiss-gpu-cu12",
    "scikit-learn", "numpy",
)


def alternating_seconds(runs: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Wall seconds of every run in each of ``rounds`` rounds, the runs taking turns within every round, so a
    neighbour's load that comes and goes falls on all of them alike (timed one after another, a busy spell once
    made bfloat16 look 2.4x slower than float32 on a CPU where it is 2.2x faster). Warming up is the caller's;
    callers usually keep each run's best round."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return seconds


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
