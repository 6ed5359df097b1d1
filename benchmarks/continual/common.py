"""Shared pieces of the continual-learning benchmarks: pinned data bundles, a runner that trains on a given bundle,
the training settings, accuracy by label group, and the results files.

Every model here goes through the product's own code: a fresh model is a normal ``text_classification`` run
(:class:`BundleRunner`: the Runner lifecycle with the data stage returning a pinned bundle), a child is
``domainfm.continual.improve.improve`` with ``parent_data`` / ``feedback_data`` pinned.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DOMAINFM_NO_PROGRESS", "1")

from domainfm.config import RunConfig, build_config  # noqa: E402
from domainfm.runner import Runner, RunResult  # noqa: E402
from domainfm.types import DataBundle, RunContext  # noqa: E402

HERE = Path(__file__).resolve().parent
DOMAIN = "text_classification"
HEADLINE = {  # results.json figure -> (results file, key in its figures)
    "replay_overall_accuracy": ("results-class-incremental.json", "replay_overall_accuracy"),
    "full_retrain_overall_accuracy": ("results-class-incremental.json", "full_retrain_overall_accuracy"),
    "naive_overall_accuracy": ("results-class-incremental.json", "naive_overall_accuracy"),
    "replay_time_fraction": ("results-class-incremental.json", "replay_time_fraction"),
    "tfns_heldout_gain": ("results-domain-shift.json", "tfns_heldout_gain"),
    "phrasebank_forgetting": ("results-domain-shift.json", "phrasebank_forgetting"),
    "drift_detection_delay": ("results-drift.json", "drift_detection_delay"),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def make_bundle(parts: dict[str, Sequence[dict[str, Any]]], labels: Sequence[str], source: str) -> DataBundle:
    """A ``text,label`` bundle with the given splits (rows are dicts with ``text`` and ``label``)."""
    from domainfm.data import records_to_dataset

    tables = {name: records_to_dataset([{"text": r["text"], "label": r["label"]} for r in rows], columns=["text", "label"])
              for name, rows in parts.items()}
    return DataBundle(tables=tables, source=source, label_names=list(labels))


class BundleRunner(Runner):
    """A normal run whose data stage returns a pinned bundle instead of reading a source."""

    def __init__(self, pm: Any, config: RunConfig, bundle: DataBundle) -> None:
        super().__init__(pm, config)
        self.bundle = bundle

    def load_data(self, ctx: RunContext, source: str | None = None) -> DataBundle:
        from domainfm.fingerprints import data_fingerprints

        data = self.stage(ctx, "data", lambda: self.bundle)
        ctx.state["data_fingerprints"] = data_fingerprints(data)
        return data


def config(output_dir: Path, *, base: str, epochs: float, max_length: int, batch_size: int, learning_rate: float,
           head_learning_rate: float, seed: int, max_steps: int | None = None) -> RunConfig:
    """The settings of every model a benchmark trains (full fine-tuning; energy tracking off: it is not measured)."""
    sets = [f"model.base={base}", "model.mode=full", f"model.max_length={max_length}", f"train.epochs={epochs}",
            f"train.batch_size={batch_size}", f"train.learning_rate={learning_rate}",
            f"train.head_learning_rate={head_learning_rate}", f"train.seed={seed}", f"output_dir={output_dir}",
            "train.early_stopping_patience=1", "benefit.energy_tracking=false", "eval_split=test"]
    if max_steps:
        sets.append(f"train.max_steps={max_steps}")
    return build_config(None, sets)


def train_fresh(pm: Any, cfg: RunConfig, bundle: DataBundle) -> RunResult:
    return BundleRunner(pm, cfg, bundle).run(DOMAIN)


def predict_labels(artifact_dir: Path, texts: Sequence[str]) -> list[str]:
    from domainfm.engine.classifier_predictor import TextClassifierPredictor

    predictor = TextClassifierPredictor.load(artifact_dir, "cpu")
    probs = predictor.predict_proba(list(texts))
    return [predictor.labels[i] for i in probs.argmax(1)]


def accuracy(predicted: Sequence[str], gold: Sequence[str], keep: Iterable[bool] | None = None) -> float | None:
    pairs = [(p, g) for p, g, k in zip(predicted, gold, keep if keep is not None else [True] * len(gold), strict=True) if k]
    return None if not pairs else sum(p == g for p, g in pairs) / len(pairs)


def merge_headline(out: Path = HERE / "results.json") -> None:
    """``results.json``: the issue's headline figures from each benchmark's own results file (the ones present)."""
    from domainfm.benchmarking import write_results

    figures: dict[str, Any] = {}
    sources: dict[str, Any] = {}
    for key, (name, field) in HEADLINE.items():
        path = HERE / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if field in (data.get("figures") or {}):
            figures[key] = data["figures"][field]
            sources[key] = {"file": name, "command": data.get("command"), "date": data.get("date"),
                            "smoke": bool((data.get("settings") or {}).get("smoke"))}
    write_results(out, figures, command="python benchmarks/continual/common.py (merges the results-*.json files)",
                  sources=sources)


if __name__ == "__main__":
    merge_headline()
