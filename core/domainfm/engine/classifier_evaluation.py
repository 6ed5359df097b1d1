"""Evaluating a loaded text classifier on a split: metrics, per-item outcomes, the risk-coverage curve, and the
abstention threshold for a target precision (chosen on validation, never on test)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.data import encode_labels
from domainfm.engine.calibration import expected_calibration_error, risk_coverage_curve, threshold_for_precision
from domainfm.engine.classifier_predictor import TextClassifierPredictor
from domainfm.errors import DataError
from domainfm.io import atomic_write_json
from domainfm.metrics import INTERVAL_KEYS, classification_metrics, top_k_accuracy
from domainfm.types import Curve, DataBundle, Evaluation, Outcomes


def table_texts(table: Any, column: str, where: str) -> list[str]:
    """The non-empty strings of ``column``; a missing column or an empty row is a DataError naming ``where``."""
    if column not in table.column_names:
        raise DataError(f"{where}: missing column {column!r}; has {table.column_names}")
    out = []
    for i, value in enumerate(table[column]):
        if value is None or not str(value).strip():
            raise DataError(f"{where}: row {i}: empty {column!r}")
        out.append(str(value))
    return out


def choose_abstain_threshold(
    predictor: TextClassifierPredictor,
    valid: Any,
    *,
    target_precision: float,
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | None = None,
) -> float:
    """The confidence threshold reaching ``target_precision`` on the validation table (never the test)."""
    _, y, probs = _labels_and_probabilities(predictor, valid, "validation", text_column, label_column, text_pair_column)
    correct = (probs.argmax(1) == np.asarray(y)).astype(float)
    return threshold_for_precision(probs.max(1), correct, target_precision)


def _labels_and_probabilities(
    predictor: TextClassifierPredictor, table: Any, where: str, text_column: str, label_column: str,
    text_pair_column: str | None,
) -> tuple[list[str], list[int], np.ndarray]:
    """A table's texts, label ids and calibrated probabilities."""
    texts = table_texts(table, text_column, where)
    pairs = table_texts(table, text_pair_column, where) if text_pair_column else None
    return texts, label_ids(table[label_column], predictor.labels), predictor.predict_proba(texts, pairs)


def label_ids(raw: Sequence[Any], labels: list[str]) -> list[int]:
    """Integer label ids as given, or label strings mapped to their index in ``labels``."""
    if raw and isinstance(raw[0], (int, np.integer)):
        return [int(v) for v in raw]
    return encode_labels(raw, labels)


def evaluate_text_classifier(
    predictor: TextClassifierPredictor,
    data: DataBundle,
    split: str,
    *,
    key_metric: str = "macro_f1",
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | None = None,
    id_column: str | None = "id",
) -> Evaluation:
    """Metrics, per-item outcomes (confidence, correctness, groups) and curves on one split."""
    table = data.split(split)
    started = time.perf_counter()
    texts, y, probs = _labels_and_probabilities(predictor, table, f"{data.source}[{split}]", text_column, label_column, text_pair_column)
    seconds = time.perf_counter() - started
    y_hat = probs.argmax(1)
    labels = predictor.labels
    report = classification_metrics([labels[i] for i in y], [labels[i] for i in y_hat], labels)
    confidence = probs.max(1)
    correct = (y_hat == np.asarray(y)).astype(float)
    metrics = {k: report[k] for k in ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall",
                                      *INTERVAL_KEYS)}
    metrics["ece"] = expected_calibration_error(probs, y)
    metrics["top3_accuracy"] = top_k_accuracy(probs, y, 3)
    threshold = predictor.threshold
    if threshold is not None:
        answered = confidence >= float(threshold)
        metrics["coverage"] = float(answered.mean())
        metrics["selective_accuracy"] = float(correct[answered].mean()) if answered.any() else 0.0
    curve = risk_coverage_curve(confidence, correct)
    ids = (
        [str(v) for v in table[id_column]]
        if id_column and id_column in table.column_names
        else [str(i) for i in range(len(table))]
    )
    groups = {
        col: [str(v) for v in table[col]] for col in data.group_columns if col in table.column_names
    }
    outcomes = Outcomes(
        ids=ids,
        confidence=np.clip(confidence, 0.0, 1.0).tolist(),
        quality=correct.tolist(),
        groups=groups,
        extra={"label": [labels[i] for i in y], "predicted": [labels[i] for i in y_hat]},
    )
    return Evaluation(
        domain=predictor.domain,
        split=split,
        metrics=metrics,
        key_metric=key_metric,
        n_items=len(texts),
        outcomes=outcomes,
        per_class=report["per_class"],
        confusion=report["confusion"],
        labels=labels,
        curves={
            "risk_coverage": Curve(
                x=curve["coverage"], y=curve["accuracy"], thresholds=curve["threshold"],
                x_label="coverage", y_label="accuracy",
            )
        },
        device=predictor.device,
        seconds=seconds,
        extra={"items_per_second": len(texts) / seconds if seconds > 0 else None, "temperature": predictor.temperature,
               "calibrator": predictor.calibrator.kind},
    )


def save_evaluation(evaluation: Evaluation, path: Path) -> Path:
    """Write ``evaluation`` as JSON, atomically."""
    return atomic_write_json(path, json.loads(evaluation.model_dump_json()))
