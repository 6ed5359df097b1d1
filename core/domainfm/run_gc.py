"""Disk a run no longer needs: checkpoints of finished runs and stale temporary files (``domainfm runs gc``).

Training checkpoints exist so that a killed run can resume; once a run has saved its model (status ``finished``
or ``trained``) they are dead weight (hundreds of MB each). A run that failed or is still ``running`` (which is
also what a kill -9 leaves) keeps them. Temporary files (``.<name>.<random>.tmp`` from the atomic writers, the
Trainer's ``tmp-checkpoint-N``) are stale in any run that is not running, and in a running one once they are
older than ``tmp_age_s`` (a live writer renames its temporary file within seconds).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

RUN_JSON = "run.json"
DONE = ("finished", "trained")
KEPT_SUFFIX = ".json"  # small summaries (trainer_state_summary.json) stay beside the removed checkpoints


@dataclass(frozen=True)
class Reclaimable:
    """One file or folder ``runs gc`` removes, its size, and why."""

    path: Path
    bytes: int
    why: str


def size_of(path: Path) -> int:
    """Bytes in a file or a folder tree (apparent sizes; links are not followed)."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except FileNotFoundError:
                pass
    return total


def checkpoint_entries(checkpoint_dir: Path) -> list[Path]:
    """What removing a run's checkpoints deletes: everything in the folder but its top-level JSON summaries."""
    if not checkpoint_dir.is_dir():
        return []
    return sorted(p for p in checkpoint_dir.iterdir() if not (p.is_file() and p.suffix == KEPT_SUFFIX))


def remove_checkpoints(checkpoint_dir: Path) -> int:
    """Delete a finished run's checkpoints; returns the bytes freed."""
    freed = 0
    for entry in checkpoint_entries(checkpoint_dir):
        freed += size_of(entry)
        _remove(entry)
    return freed


def run_checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Every ``checkpoints`` folder of a run: the run's, each variant's, a teacher's or an ensemble member's
    (model folders named ``artifact`` are not searched)."""
    found = []
    for root, dirs, _files in os.walk(run_dir):
        if "checkpoints" in dirs:
            found.append(Path(root) / "checkpoints")
        dirs[:] = [d for d in dirs if d not in ("checkpoints", "artifact")]
    return sorted(found)


def remove_run_checkpoints(run_dir: Path) -> int:
    """Delete every checkpoint of a run that finished; returns the bytes freed."""
    return sum(remove_checkpoints(folder) for folder in run_checkpoint_dirs(run_dir))


def plan(output_dir: str | Path, tmp_age_s: float = 3600.0, now: float | None = None) -> list[Reclaimable]:
    """Everything ``runs gc`` would remove under ``output_dir`` (``<domain>/<run id>/`` folders)."""
    now = time.time() if now is None else now
    items: list[Reclaimable] = []
    for run_dir in sorted(p.parent for p in Path(output_dir).glob(f"*/*/{RUN_JSON}")):
        status = _status(run_dir)
        if status in DONE:
            for folder in run_checkpoint_dirs(run_dir):
                items += [Reclaimable(e, size_of(e), f"checkpoint of a {status} run") for e in checkpoint_entries(folder)]
        claimed = {i.path for i in items}
        for tmp in _temporaries(run_dir):
            if any(parent in claimed for parent in tmp.parents):
                continue
            age = now - _newest_mtime(tmp)
            if status != "running" or age > tmp_age_s:
                items.append(Reclaimable(tmp, size_of(tmp), f"temporary file of a {status} run, {age / 3600:.1f} h old"))
    return items


def collect(output_dir: str | Path, dry_run: bool = False, tmp_age_s: float = 3600.0) -> list[Reclaimable]:
    """Remove (unless ``dry_run``) what :func:`plan` finds; returns it."""
    items = plan(output_dir, tmp_age_s)
    if not dry_run:
        for item in items:
            _remove(item.path)
    return items


def _temporaries(run_dir: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(run_dir):
        for name in [*dirs, *files]:
            if (name.startswith(".") and name.endswith(".tmp")) or name.startswith("tmp-checkpoint-"):
                yield Path(root) / name
        dirs[:] = [d for d in dirs if not (d.startswith(".") and d.endswith(".tmp")) and not d.startswith("tmp-checkpoint-")]


def _newest_mtime(path: Path) -> float:
    """The last write to a file, or to any file in a folder (a live writer touches files; a folder's own time
    only says when an entry was added)."""
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_mtime
    times = []
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                times.append((Path(root) / name).lstat().st_mtime)
            except FileNotFoundError:
                pass
    return max(times) if times else path.lstat().st_mtime


def _status(run_dir: Path) -> str:
    try:
        data = json.loads((run_dir / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "unreadable"
    return str(data.get("status", "unknown")) if isinstance(data, dict) else "unreadable"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
