"""A trained model's training curves: the Trainer's log history saved in its artifact as ``training_log.json``.

The HTML report plots them (loss and the validation metric per evaluation step) for every fine-tuned model of a
run, teacher and student alike, and the tracking plugin sends them to MLflow/TensorBoard.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from domainfm.io import atomic_write_json

TRAINING_LOG = "training_log.json"
_SKIP_DIRS = {"checkpoints", "onnx", "tensorboard", "export", "evaluations"}


def save_training_log(artifact_dir: Path, trainer: Any, model: str) -> Path:
    """Write the Trainer's ``log_history`` with what it optimised into ``artifact_dir``."""
    state = trainer.state
    return atomic_write_json(artifact_dir / TRAINING_LOG, {
        "model": model,
        "metric_for_best_model": getattr(trainer.args, "metric_for_best_model", None),
        "best_metric": state.best_metric,
        "global_step": state.global_step,
        "epochs": state.epoch,
        "log_history": list(state.log_history),
    })


def find_training_logs(run_dir: Path) -> dict[str, Path]:
    """Every ``training_log.json`` of a run (its artifact, each variant's, a distillation teacher's, ensemble
    members'), by the model's name: the variant folder, ``member-N``, else ``model``."""
    out: dict[str, Path] = {}
    for path in sorted(Path(run_dir).rglob(TRAINING_LOG)):
        parts = path.relative_to(run_dir).parts[:-1]
        if _SKIP_DIRS.intersection(parts):
            continue
        names = [parts[i + 1] for i, p in enumerate(parts[:-1]) if p == "variants"]
        names += [f"member-{parts[i + 1]}" for i, p in enumerate(parts[:-1]) if p == "members"]
        name = "/".join(names) or "model"
        out[name] = path
    return out


def read_training_log(path: Path) -> dict[str, Any]:
    """A saved log; an unreadable one is empty (a report never fails on a curve)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_log_history(artifact_dir: Path, model: str, log_history: list[dict[str, Any]], *,
                     metric_for_best_model: str | None, best_metric: float | None) -> Path:
    """The same file for a training loop of a plugin's own: entries with ``step``, ``loss`` and ``eval_*`` figures
    (and ``seed`` when several seeds trained: one curve each)."""
    return atomic_write_json(Path(artifact_dir) / TRAINING_LOG, {
        "model": model, "metric_for_best_model": metric_for_best_model, "best_metric": best_metric,
        "log_history": list(log_history),
    })


def series_name(name: str) -> str:
    """``eval_macro_f1 [seed 7]`` -> ``eval_macro_f1``."""
    return name.split(" [", 1)[0]


def curves(log: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """Series of (step, value): ``loss`` (training), ``eval_loss`` and every other ``eval_*`` metric; entries that
    carry a ``seed`` give one series per seed (``loss [seed 7]``)."""
    out: dict[str, list[tuple[float, float]]] = {}
    for entry in log.get("log_history") or []:
        step = entry.get("step")
        if not isinstance(step, (int, float)):
            continue
        suffix = f" [seed {entry['seed']}]" if entry.get("seed") is not None else ""
        for key, value in entry.items():
            wanted = key == "loss" or (key.startswith("eval_") and key not in ("eval_runtime", "eval_samples_per_second",
                                                                                "eval_steps_per_second", "eval_epoch"))
            if wanted and isinstance(value, (int, float)) and not isinstance(value, bool):
                out.setdefault(key + suffix, []).append((float(step), float(value)))
    return out
