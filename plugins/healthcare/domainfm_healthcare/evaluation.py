"""Evaluation: the engine's classification metrics plus selective prediction, de-identification and privacy.

Metrics: accuracy, macro-F1, top-3 accuracy, ECE (after temperature scaling), coverage and selective
accuracy at the validation-chosen threshold, precision at 80 % coverage, the risk-coverage curve,
de-identification recall/precision on the probe set, and identifiers left in what the run stores.
"""

from __future__ import annotations

from typing import Any

from domainfm.types import DataBundle, Evaluation, RunContext
from domainfm_healthcare import NOTICE
from domainfm_healthcare.deid_eval import evaluate_deidentifier


def residual_identifiers(deid: Any, texts: list[str], limit: int = 300) -> int:
    """Identifiers the de-identifier still finds in (already stored) texts: must be 0."""
    return deid.count_identifiers(texts[:limit])


def evaluate_healthcare(ctx: RunContext | None, predictor: Any, data: DataBundle, split: str) -> Evaluation:
    """Evaluate a :class:`~domainfm_healthcare.predictor.HealthcarePredictor` on ``split`` of ``data``."""
    from domainfm.engine.calibration import precision_at_coverage
    from domainfm.engine.text_classifier import evaluate_text_classifier

    evaluation = evaluate_text_classifier(predictor.inner, data, split, key_metric="macro_f1")
    confidence, quality = evaluation.outcomes.arrays() if evaluation.outcomes else ([], [])
    evaluation.metrics["precision_at_80_coverage"] = precision_at_coverage(confidence, quality, 0.8)
    deid = evaluate_deidentifier(predictor.deid)
    evaluation.metrics["deid_recall"] = deid["deid_recall"]
    evaluation.metrics["deid_precision"] = deid["deid_precision"]
    table = data.split(split)
    stored = list(data.split("train")["text"]) if "train" in data.tables else []
    outputs = list((ctx.state.get("privacy_texts") or {}).get("outputs", [])) if ctx is not None else []
    if "non_english" in table.column_names:
        evaluation.metrics["non_english_share"] = float(sum(bool(v) for v in table["non_english"]) / max(len(table), 1))
    evaluation.extra.update(
        {
            "notice": NOTICE,
            "deid": deid,
            "identifiers_in_artifacts": residual_identifiers(predictor.deid, stored + outputs),
            "data_split": data.meta.get("split"),
            "identifiers_removed_from_data": data.meta.get("identifiers_removed", {}),
            "identifier_columns_dropped": data.meta.get("identifier_columns", {}),
            "abstain_threshold": predictor.threshold,
            "target_precision": predictor.inner.artifact.metadata.get("target_precision"),
            "dp": predictor.inner.artifact.metadata.get("dp"),
        }
    )
    if ctx is not None:
        evaluation.domain = ctx.domain
    return evaluation
