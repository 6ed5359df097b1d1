"""Metric helpers built on scikit-learn (classification) and numpy (ranking)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_metrics(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any]
) -> dict[str, Any]:
    """Accuracy, macro-/weighted-F1 and P/R, per-class P/R/F1/support and the confusion matrix."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        precision_score,
        recall_score,
    )

    labels = list(labels)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        str(lab): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": float(s[i])}
        for i, lab in enumerate(labels)
    }
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "macro_precision": float(precision_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "macro_recall": float(recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": per_class,
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def top_k_accuracy(probs: np.ndarray, y_true: Sequence[int], k: int = 3) -> float:
    """Share of rows whose true class is among the ``k`` highest probabilities."""
    probs = np.asarray(probs)
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1)[:, :k]
    return float(np.mean([y in row for y, row in zip(y_true, top, strict=True)]))


def dcg_at_k(relevances: Sequence[float], k: int) -> float:
    rel = np.asarray(relevances, dtype=float)[:k]
    return float(np.sum(rel / np.log2(np.arange(2, rel.size + 2))))


def ndcg_at_k(ranked_ids: Sequence[Any], relevant: set[Any] | dict[Any, float], k: int) -> float:
    """NDCG@k of one ranked list against a set (binary) or dict (graded) of relevant ids."""
    gains = relevant if isinstance(relevant, dict) else {r: 1.0 for r in relevant}
    if not gains:
        return 0.0
    dcg = dcg_at_k([gains.get(i, 0.0) for i in list(ranked_ids)[:k]], k)
    ideal = dcg_at_k(sorted(gains.values(), reverse=True), k)
    return dcg / ideal if ideal > 0 else 0.0


def hit_at_k(ranked_ids: Sequence[Any], relevant: set[Any], k: int) -> float:
    return float(any(i in relevant for i in list(ranked_ids)[:k]))


def recall_at_k(ranked_ids: Sequence[Any], relevant: set[Any], k: int) -> float:
    if not relevant:
        return 0.0
    return len(set(list(ranked_ids)[:k]) & relevant) / len(relevant)


def reciprocal_rank(ranked_ids: Sequence[Any], relevant: set[Any]) -> float:
    for pos, item in enumerate(ranked_ids, start=1):
        if item in relevant:
            return 1.0 / pos
    return 0.0


def gini(counts: Sequence[float]) -> float:
    """Gini coefficient of an exposure distribution (0 = equal, 1 = one item takes everything)."""
    x = np.sort(np.asarray(counts, dtype=float))
    if x.size == 0 or x.sum() == 0:
        return 0.0
    n = x.size
    cum = np.cumsum(x)
    return float((n + 1 - 2 * np.sum(cum) / cum[-1]) / n)
