"""A run's evaluation records: the one written at training time never changes; later ones are versioned.

    runs/<domain>/<run id>/
      evaluations/<variant>.json              the training run's evaluation on its configured split (immutable)
      metrics.json                            key figures of those evaluations (immutable)
      evaluations/history/<time>-<variant>-<split>.json   each later ``domainfm evaluate``
      evaluations/history/<time>-score.json               each later ``domainfm score``
      evaluations/history/benefit-at-training.json        the run's own benefit report, kept on the first rescore

Every history record says what it is (``kind``), when (``recorded_at``), on which split, and what changed against
the training-time record (``changes``). The only time ``domainfm evaluate`` writes ``evaluations/<variant>.json`` is
when a run has no record for that variant yet (``domainfm train`` then ``evaluate``) and the split is the one the
run was configured to be judged on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from domainfm.errors import DataError
from domainfm.io import atomic_write_bytes, atomic_write_json
from domainfm.run_layout import check_name
from domainfm.types import Evaluation

EVALUATIONS_DIR = "evaluations"
HISTORY_DIR = "history"
METRICS_JSON = "metrics.json"
TRAINING_BENEFIT = "benefit-at-training.json"


def history_dir(run_dir: Path) -> Path:
    return run_dir / EVALUATIONS_DIR / HISTORY_DIR


def record_path(run_dir: Path, variant: str) -> Path:
    """The training-time evaluation record of ``variant``."""
    return run_dir / EVALUATIONS_DIR / f"{check_name(variant, 'variant')}.json"


def training_config(run: Mapping[str, Any]) -> dict[str, Any]:
    return dict(run.get("config") or {})


def evaluation_changes(run: Mapping[str, Any], split: str, data: str | None, device: str) -> list[str]:
    """What a later evaluation does differently from the training run's own: split, data source, device."""
    config = training_config(run)
    pairs = [("split", config.get("eval_split"), split), ("data", config.get("data"), data),
             ("device", run.get("device"), device)]
    return [f"{name}: {before} -> {after}" for name, before, after in pairs if after is not None and before != after]


def save_evaluation(
    run_dir: Path, variant: str, evaluation: Evaluation, run: Mapping[str, Any], *, data: str | None, artifact: Path
) -> tuple[Path, bool]:
    """Record a later evaluation of ``variant``; returns the file written and whether it became the run's record.

    It becomes the run's record only when the run has none for ``variant`` and the split is the configured one.
    """
    split = check_name(evaluation.split, "split")
    now = datetime.now(timezone.utc)
    payload = json.loads(evaluation.model_dump_json())
    configured = training_config(run).get("eval_split", "test")
    if not record_path(run_dir, variant).is_file() and split == configured:
        payload.setdefault("extra", {})["artifact_path"] = str(artifact)
        atomic_write_json(record_path(run_dir, variant), payload)
        metrics_path = run_dir / METRICS_JSON
        metrics = _read_object(metrics_path)
        metrics[variant] = {"split": evaluation.split, "device": evaluation.device, **evaluation.metrics}
        atomic_write_json(metrics_path, metrics)
        return record_path(run_dir, variant), True
    record = {
        "kind": "evaluate",
        "recorded_at": now.isoformat(),
        "run_id": run.get("run_id"),
        "variant": variant,
        "split": split,
        "data": data,
        "device": evaluation.device,
        "artifact": str(artifact),
        "changes": evaluation_changes(run, split, data, evaluation.device),
        "metrics": evaluation.metrics,
        "evaluation": payload,
    }
    return _write_history(run_dir, f"{_stamp(now)}-{variant}-{split}", record), False


def check_training_splits(run_dir: Path, evaluations: Mapping[str, Evaluation], run: Mapping[str, Any]) -> None:
    """Refuse to score evaluations on another split than the run's configured one (a run directory written by a
    domainfm before records were kept, where ``domainfm evaluate`` had overwritten them)."""
    configured = training_config(run).get("eval_split", "test")
    for variant, ev in evaluations.items():
        if ev.split != configured:
            raise DataError(
                f"{run_dir / EVALUATIONS_DIR / (variant + '.json')}: holds the {ev.split!r} split, but the run is judged "
                f"on {configured!r}; re-run `domainfm evaluate {run_dir} --split {configured}` after removing it"
            )


def score_changes(run: Mapping[str, Any], lambda_: float | None, overrides: tuple[str, ...] | list[str]) -> list[str]:
    """What a rescore changes against the run's configuration: lambda and each ``--set`` override."""
    changes = []
    before = (training_config(run).get("benefit") or {}).get("lambda")
    if lambda_ is not None and before != lambda_:
        changes.append(f"lambda: {before} -> {lambda_}")
    changes += [f"--set {assignment}" for assignment in overrides]
    return changes


def keep_training_report(run_dir: Path, benefit_json: Path) -> None:
    """Before the first rescore replaces ``benefit.json``, keep the run's own report beside the history."""
    kept = history_dir(run_dir) / TRAINING_BENEFIT
    if benefit_json.is_file() and not kept.exists():
        report = _read_object(benefit_json)
        if (report.get("source") or {}).get("scored_by", "run") == "run":
            atomic_write_bytes(kept, benefit_json.read_bytes())


def save_score(run_dir: Path, run: Mapping[str, Any], splits: Mapping[str, str], changes: list[str],
               summary: Mapping[str, Any]) -> Path:
    """Record one ``domainfm score``: when, on which evaluation records, what changed, what it decided."""
    now = datetime.now(timezone.utc)
    record = {"kind": "score", "recorded_at": now.isoformat(), "run_id": run.get("run_id"), "splits": dict(splits),
              "changes": changes, **summary}
    return _write_history(run_dir, f"{_stamp(now)}-score", record)


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%S.%fZ")


def _write_history(run_dir: Path, stem: str, record: Mapping[str, Any]) -> Path:
    folder = history_dir(run_dir)
    path = folder / f"{stem}.json"
    n = 1
    while path.exists():  # two records in the same microsecond
        n += 1
        path = folder / f"{stem}-{n}.json"
    return atomic_write_json(path, dict(record))


def _read_object(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    return data if isinstance(data, dict) else {}
