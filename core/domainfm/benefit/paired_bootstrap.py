"""Paired bootstrap of a metric difference between two evaluations of the same test items.

Both evaluations are restricted to the items they share (by outcome id, in one order); each resample draws item
indices with replacement and computes the metric of both runs on the same draw, so the difference keeps the
pairing. The 95 % interval is the percentile interval of the resampled differences; the two-sided p-value tests
"no difference" by the shift method (the resampled differences centred on zero; Efron & Tibshirani 1993, §16.4):
``p = (1 + #{|d* - d| >= |d|}) / (B + 1)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from domainfm.types import Evaluation

DEFAULT_RESAMPLES = 2000


@dataclass
class PairedDifference:
    """One metric of run A and run B on their shared items, B - A with its interval and p-value."""

    metric: str
    a: float
    b: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    n_items: int
    resamples: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def shared_items(a: Evaluation, b: Evaluation) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Ids both evaluations hold, and the index of each in ``a`` and in ``b`` (first occurrence)."""
    if a.outcomes is None or b.outcomes is None:
        return [], np.zeros(0, int), np.zeros(0, int)
    pos_b: dict[str, int] = {}
    for i, item in enumerate(b.outcomes.ids):
        pos_b.setdefault(item, i)
    ids, ia, ib, seen = [], [], [], set()
    for i, item in enumerate(a.outcomes.ids):
        if item in pos_b and item not in seen:
            seen.add(item)
            ids.append(item)
            ia.append(i)
            ib.append(pos_b[item])
    return ids, np.asarray(ia, dtype=int), np.asarray(ib, dtype=int)


def paired_bootstrap(
    a_values: np.ndarray, b_values: np.ndarray, statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *, metric: str, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
) -> PairedDifference:
    """``statistic(values, index_matrix)`` returns the metric per row of ``index_matrix`` (shape B x n)."""
    n = len(a_values)
    if n == 0:
        raise ValueError("no shared items to compare")
    full = np.arange(n)[None, :]
    a0, b0 = float(statistic(a_values, full)[0]), float(statistic(b_values, full)[0])
    delta = b0 - a0
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    chunk = max(1, 2_000_000 // n)  # resamples drawn at a time: memory stays ~16 MB whatever the split size
    for start in range(0, resamples, chunk):
        draws = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        diffs[start : start + len(draws)] = statistic(b_values, draws) - statistic(a_values, draws)
    low, high = np.percentile(diffs, [2.5, 97.5])
    extreme = np.abs(diffs - delta) >= abs(delta) - 1e-12
    p_value = float((1 + int(extreme.sum())) / (resamples + 1))
    return PairedDifference(metric, a0, b0, delta, float(low), float(high), min(p_value, 1.0), n, resamples)


def mean_statistic(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=float)[index].mean(axis=1)


def macro_f1_statistic(n_labels: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Macro-F1 per resample of ``values`` = ``gold * n_labels + predicted`` codes (labels absent from a resample's
    gold and predictions do not count, as scikit-learn's ``labels=None``)."""

    def statistic(values: np.ndarray, index: np.ndarray) -> np.ndarray:
        codes = np.asarray(values)[index]  # B x n
        rows = codes.shape[0]
        offsets = (np.arange(rows) * n_labels * n_labels)[:, None]
        confusion = np.bincount((codes + offsets).ravel(), minlength=rows * n_labels * n_labels)
        confusion = confusion.reshape(rows, n_labels, n_labels)  # [b, gold, predicted]
        tp = np.diagonal(confusion, axis1=1, axis2=2).astype(float)
        gold = confusion.sum(axis=2)
        predicted = confusion.sum(axis=1)
        denominator = gold + predicted
        f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
        present = denominator > 0
        return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)

    return statistic


def compare_evaluations(
    a: Evaluation, b: Evaluation, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> tuple[int, list[PairedDifference]]:
    """Mean per-item quality (accuracy for a classifier) and, where both record gold and predicted labels,
    macro-F1: B - A on the shared items. Returns the number of shared items and the differences."""
    ids, ia, ib = shared_items(a, b)
    if not ids:
        return 0, []
    assert a.outcomes is not None and b.outcomes is not None
    qa = np.asarray(a.outcomes.quality, dtype=float)[ia]
    qb = np.asarray(b.outcomes.quality, dtype=float)[ib]
    name = "accuracy" if _labelled(a) and _labelled(b) else "mean_quality"
    out = [paired_bootstrap(qa, qb, mean_statistic, metric=name, resamples=resamples, seed=seed)]
    if _labelled(a) and _labelled(b):
        gold_a, pred_a = _column(a, "label", ia), _column(a, "predicted", ia)
        gold_b, pred_b = _column(b, "label", ib), _column(b, "predicted", ib)
        labels = sorted(set(gold_a) | set(pred_a) | set(gold_b) | set(pred_b))
        code = {label: i for i, label in enumerate(labels)}
        k = len(labels)
        ca = np.asarray([code[g] * k + code[p] for g, p in zip(gold_a, pred_a, strict=True)])
        cb = np.asarray([code[g] * k + code[p] for g, p in zip(gold_b, pred_b, strict=True)])
        out.append(paired_bootstrap(ca, cb, macro_f1_statistic(k), metric="macro_f1", resamples=resamples, seed=seed))
    return len(ids), out


def _labelled(ev: Evaluation) -> bool:
    return ev.outcomes is not None and {"label", "predicted"} <= set(ev.outcomes.extra)


def _column(ev: Evaluation, name: str, index: np.ndarray) -> Sequence[str]:
    assert ev.outcomes is not None
    column = ev.outcomes.extra[name]
    return [str(column[i]) for i in index]
