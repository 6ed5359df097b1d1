"""Calibration and selective prediction: temperature scaling, ECE, precision-targeted thresholds.

Thresholds are always chosen on validation data and then applied unchanged to test data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: Sequence[int], bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature minimising validation negative log-likelihood (Guo et al., 2017)."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    if logits.shape[0] == 0:
        return 1.0

    def nll(log_t: float) -> float:
        p = softmax(logits, float(np.exp(log_t)))
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))

    res = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded")
    return float(np.exp(res.x))


def expected_calibration_error(probs: np.ndarray, labels: Sequence[int], n_bins: int = 15) -> float:
    """ECE with equal-width confidence bins over the top-1 prediction."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    if probs.shape[0] == 0:
        return 0.0
    return ece_from_confidence(probs.max(axis=1), (probs.argmax(axis=1) == y).astype(float), n_bins)


def ece_from_confidence(confidence: Sequence[float], correct: Sequence[float], n_bins: int = 15) -> float:
    """ECE from top-1 confidences and 0/1 correctness: equal-width bins, the first one closed on the left."""
    conf = np.asarray(confidence, dtype=np.float64)
    corr = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(corr[mask].mean() - conf[mask].mean())
    return float(ece)


def risk_coverage_curve(confidence: Sequence[float], correct: Sequence[float]) -> dict[str, list[float]]:
    """Accuracy of the answered items at every coverage level (answer the most confident first)."""
    conf = np.asarray(confidence, dtype=float)
    corr = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return {"coverage": [], "accuracy": [], "threshold": []}
    order = np.argsort(-conf, kind="stable")
    cum = np.cumsum(corr[order])
    n = np.arange(1, conf.size + 1)
    return {
        "coverage": (n / conf.size).tolist(),
        "accuracy": (cum / n).tolist(),
        "threshold": conf[order].tolist(),
    }


def threshold_for_precision(
    confidence: Sequence[float], correct: Sequence[float], target: float, min_coverage: float = 0.0
) -> float:
    """The lowest confidence threshold whose answered items reach ``target`` precision.

    Answer when confidence >= threshold. Returns +inf when no threshold reaches the target (answer
    nothing). Choose on validation data only.
    """
    conf = np.asarray(confidence, dtype=float)
    corr = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return float("inf")
    order = np.argsort(-conf, kind="stable")
    sorted_conf = conf[order]
    precision = np.cumsum(corr[order]) / np.arange(1, conf.size + 1)
    best = float("inf")
    for i in range(conf.size):
        # Only cut between distinct confidence values: ties are answered together.
        if i + 1 < conf.size and sorted_conf[i + 1] == sorted_conf[i]:
            continue
        if precision[i] >= target and (i + 1) / conf.size >= min_coverage:
            best = float(sorted_conf[i])
    return best


def precision_at_coverage(confidence: Sequence[float], correct: Sequence[float], coverage: float) -> float:
    """Accuracy of the ``coverage`` share of most confident items."""
    curve = risk_coverage_curve(confidence, correct)
    if not curve["coverage"]:
        return 0.0
    idx = int(np.searchsorted(np.asarray(curve["coverage"]), coverage - 1e-12))
    idx = min(idx, len(curve["accuracy"]) - 1)
    return float(curve["accuracy"][idx])
