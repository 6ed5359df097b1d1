"""What a child run records of its parent (``run.json`` ``lineage``) and its promotion (``run.json`` ``promotion``).

The model resolver (:mod:`domainfm.run_layout`) serves a domain's newest run that is not an unpromoted child: a
child whose promotion was refused, or not decided yet, never becomes the default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from domainfm.io import atomic_write_json
from domainfm.run_layout import RUN_JSON, RunLayout


def lineage_record(parent: RunLayout, feedback: str, *, replay_ratio: float, regulariser: dict[str, float],
                   seed: int) -> dict[str, Any]:
    """The ``lineage`` block of a child's ``run.json``."""
    run = parent.run_json()
    before = run.get("lineage") or {}
    config = run.get("config") or {}
    root_base = before.get("base_model") or (config.get("model") or {}).get("base")
    return {
        "parent_run_id": run.get("run_id"),
        "parent_run_dir": str(parent.run_dir),
        "parent_artifact": str(parent.artifact_dir),
        "parent_variant": parent.variant,
        "generation": int(before.get("generation", 0)) + 1,
        "root_run_id": before.get("root_run_id") or run.get("run_id"),
        "base_model": root_base,
        "feedback": feedback,
        "replay_ratio": replay_ratio,
        "regulariser": regulariser,
        "seed": seed,
    }


def read_lineage(run_dir: Path) -> dict[str, Any] | None:
    """A run's ``lineage`` (None for a run that is nobody's child)."""
    try:
        run = json.loads((Path(run_dir) / RUN_JSON).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    lineage = run.get("lineage") if isinstance(run, dict) else None
    return lineage if isinstance(lineage, dict) else None


def update_run_json(run_dir: Path, **fields: Any) -> None:
    """Set top-level fields of ``run.json`` (atomically; the rest is kept)."""
    path = Path(run_dir) / RUN_JSON
    run = json.loads(path.read_text(encoding="utf-8"))
    run.update(fields)
    atomic_write_json(path, run)
