"""Evaluate a knowledge-tracing predictor: next-answer AUC/accuracy and recommendations vs future answers.

Per-item outcomes are the scored answers (position >= 1 of each window): ``confidence`` = max(p, 1 - p),
``quality`` = 1 when the predicted side of 0.5 was right; groups: ``history`` (short < 50 answers,
medium < 200, long) so that new and established students can be compared; ``extra.predicted_correct``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from domainfm.errors import DataError
from domainfm.types import DataBundle, Evaluation, Outcomes


def _bucket(n: int) -> str:
    return "short" if n < 50 else ("medium" if n < 200 else "long")


def evaluate_kt(predictor: Any, data: DataBundle, split: str) -> Evaluation:
    from domainfm.engine.label_evaluation import binary_auc as auc
    from domainfm.engine.label_evaluation import risk_coverage
    from domainfm_education.kt_fit import make_windows, predict_windows
    from domainfm.pseudonyms import count_identifiers_in_files
    from domainfm_education.kt_train import _sequences
    from domainfm_education.recommend import evaluate_recommendations

    table = data.split(split)
    sequences = _sequences(table)
    windows = make_windows(sequences, predictor.max_len)
    if not windows:
        raise DataError(f"{data.source}[{split}]: no student has 2 or more answers; nothing to evaluate")
    started = time.perf_counter()
    probs, labels, owners = predict_windows(predictor.model, windows, predictor.device)
    seconds = time.perf_counter() - started
    predicted = (probs >= 0.5).astype(int)
    quality = (predicted == labels).astype(float)
    confidence = np.maximum(probs, 1 - probs)
    students = list(table["student"])
    owner_seq = [windows[i].owner for i in owners]
    metrics: dict[str, float] = {
        "auc": auc(labels, probs),
        "accuracy": float(quality.mean()),
        "rmse": float(np.sqrt(np.mean((probs - labels) ** 2))),
    }
    rec = evaluate_recommendations(predictor.model, predictor.graph, sequences, predictor.device,
                                   max_len=predictor.max_len, min_length=10)
    metrics["recommendation_ndcg_at_3"] = rec["ndcg_at_3"]
    metrics["recommendation_baseline_ndcg_at_3"] = rec["baseline_global_difficulty_ndcg_at_3"]
    metrics["mastery_future_auc"] = rec["future_first_attempt_auc"]
    metrics = {k: (v if v == v else 0.0) for k, v in metrics.items()}  # NaN (one class only) -> 0.0, noted below
    raw = data.meta.get("raw_id_sample") or []
    extra: dict[str, Any] = {
        "items_per_second": len(labels) / seconds if seconds > 0 else None,
        "recommendation_students_checked": rec["students_checked"],
        "raw_student_ids_in_artifact": count_identifiers_in_files(predictor.artifact.path, raw) if raw else None,
    }
    return Evaluation(
        domain=predictor.domain,
        split=split,
        metrics=metrics,
        key_metric="auc",
        n_items=len(labels),
        outcomes=Outcomes(
            ids=[f"{students[o]}:{k}" for k, o in enumerate(owner_seq)],
            confidence=np.clip(confidence, 0, 1).tolist(),
            quality=quality.tolist(),
            groups={"history": [_bucket(len(sequences[o][0])) for o in owner_seq]},
            extra={"predicted_correct": predicted.tolist()},
        ),
        curves={"risk_coverage": risk_coverage(confidence, quality)},
        device=predictor.device,
        seconds=seconds,
        extra=extra,
    )
