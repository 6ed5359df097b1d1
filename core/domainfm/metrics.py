"""Metric helpers built on scikit-learn (classification) and numpy (ranking, bootstrap intervals)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

INTERVAL_LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
# the flat keys classification_metrics adds (Evaluation.metrics holds floats only): <metric><suffix>
INTERVAL_SUFFIXES = ("_ci95_low", "_ci95_high")
INTERVAL_KEYS = tuple(f"{name}{suffix}" for name in ("accuracy", "macro_f1") for suffix in INTERVAL_SUFFIXES)


def classification_metrics(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any]
) -> dict[str, Any]:
    """Accuracy, macro-/weighted-F1 and P/R, per-class P/R/F1/support, the confusion matrix, and 95 % bootstrap
    intervals of accuracy and macro-F1 (:data:`INTERVAL_KEYS`, from :func:`confusion_bootstrap`)."""
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
    confusion = confusion_matrix(y_true, y_pred, labels=labels)
    intervals = confusion_bootstrap(confusion)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "macro_precision": float(precision_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "macro_recall": float(recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        **{f"{name}{suffix}": bound for name, bounds in intervals.items()
           for suffix, bound in zip(INTERVAL_SUFFIXES, bounds, strict=True)},
    }


def metric_interval(metrics: Mapping[str, Any], name: str, digits: int | None = None) -> tuple[float, float] | None:
    """The interval stored beside metric ``name`` (``<name>_ci95_low`` / ``_high``), or None when there is none."""
    low, high = (metrics.get(f"{name}{suffix}") for suffix in INTERVAL_SUFFIXES)
    if low is None or high is None:
        return None
    return (round(low, digits), round(high, digits)) if digits is not None else (float(low), float(high))


def confusion_bootstrap(
    confusion: Any, *, n_resamples: int = BOOTSTRAP_RESAMPLES, level: float = INTERVAL_LEVEL, seed: int = BOOTSTRAP_SEED
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap intervals of accuracy and macro-F1 over the test items, from their confusion matrix.

    Resampling n items with replacement yields a confusion matrix drawn from the multinomial over its cells at
    the observed cell frequencies, so resamples are drawn from that directly (over the non-empty cells): the
    cost grows with the number of non-empty cells, not with the number of items. A label with no true and no
    predicted item in a resample scores F1 0, as in :func:`classification_metrics` (``zero_division=0``).
    Seeded: the same matrix always gives the same intervals. Empty matrix: ``{}``.
    """
    counts = np.asarray(confusion, dtype=np.int64)
    n = int(counts.sum())
    if n == 0:
        return {}
    k = counts.shape[0]
    cells = np.flatnonzero(counts)  # empty cells stay empty in every resample
    rows, cols = np.divmod(cells, k)
    diagonal = rows == cols
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // cells.size)  # resamples per draw: at most ~16 MB of cell counts at a time
    accuracy: list[np.ndarray] = []
    macro_f1: list[np.ndarray] = []
    for start in range(0, n_resamples, chunk):
        draws = rng.multinomial(n, counts.ravel()[cells] / n, size=min(chunk, n_resamples - start)).astype(float)
        tp = np.zeros((draws.shape[0], k))
        tp[:, rows[diagonal]] = draws[:, diagonal]
        denominator = _sum_by_label(draws, rows, k) + _sum_by_label(draws, cols, k)  # 2 tp + fp + fn
        f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
        accuracy.append(tp.sum(axis=1) / n)
        macro_f1.append(f1.mean(axis=1))
    tail = (1.0 - level) / 2 * 100
    return {
        name: (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))
        for name, values in (("accuracy", np.concatenate(accuracy)), ("macro_f1", np.concatenate(macro_f1)))
    }


def _sum_by_label(draws: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per resample, the counts of the cells summed by their label (``labels[j]`` is cell j's row or column)."""
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    out = np.zeros((draws.shape[0], k))
    out[:, ordered[starts]] = np.add.reduceat(draws[:, order], starts, axis=1)
    return out


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
