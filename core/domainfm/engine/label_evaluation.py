"""An :class:`~domainfm.types.Evaluation` from calibrated class probabilities, for any model that outputs them.

:func:`domainfm.engine.classifier_evaluation.evaluate_text_classifier` evaluates the core's own text classifier;
a plugin with a model of its own (a cross-encoder over answer pairs, a model over features) computes its
probabilities and hands them here, and gets the same metrics, per-item outcomes and risk-coverage curve::

    probs = model.predict_proba(...)                          # (n, K), calibrated
    y = [labels.index(v) for v in table["label"]]
    evaluation = probability_evaluation("grading", "test", labels, y, probs, ids=ids, groups={"corpus": corpora},
                                        ordinal=True, device=device, seconds=seconds)

Metrics: accuracy, macro/weighted F1, macro precision/recall with 95 % bootstrap intervals
(:func:`domainfm.metrics.classification_metrics`), ECE, and quadratic weighted kappa when the classes are ordered
levels (``ordinal``). Outcomes carry the top probability as confidence and, unless given, correctness as quality.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from domainfm.types import Curve, Evaluation, Outcomes

CLASSIFICATION_KEYS = ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall")


def risk_coverage(confidence: Sequence[float], quality: Sequence[float], *, max_points: int | None = None,
                  x_label: str = "coverage", y_label: str = "accuracy") -> Curve:
    """The risk-coverage curve (mean quality of the items answered, most confident first) as a report
    :class:`~domainfm.types.Curve`; ``max_points`` thins it to at most that many evenly spaced points."""
    from domainfm.engine.calibration import risk_coverage_curve

    rc = risk_coverage_curve(confidence, quality)
    n = len(rc["coverage"])
    if max_points is None or n <= max_points:
        return Curve(x=rc["coverage"], y=rc["accuracy"], thresholds=rc["threshold"], x_label=x_label, y_label=y_label)
    idx = np.unique(np.linspace(0, n - 1, max_points).astype(int))
    return Curve(x=[rc["coverage"][i] for i in idx], y=[rc["accuracy"][i] for i in idx],
                 thresholds=[rc["threshold"][i] for i in idx], x_label=x_label, y_label=y_label)


def quadratic_weighted_kappa(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Cohen's kappa with quadratic weights (sklearn) for ordered levels; 0.0 where it is undefined (one class)."""
    from sklearn.metrics import cohen_kappa_score

    if len(set(y_true) | set(y_pred)) < 2:
        return 0.0
    value = cohen_kappa_score(y_true, y_pred, weights="quadratic")
    return float(value) if np.isfinite(value) else 0.0


def binary_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """ROC AUC of 0/1 ``labels`` against scores (sklearn); NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, probs))


def label_metrics(labels: Sequence[str], y: np.ndarray, probs: np.ndarray, *, ordinal: bool = False) -> dict[str, Any]:
    """``{"metrics", "per_class", "confusion"}`` of the argmax predictions; ``ordinal``: the classes are ordered
    levels (``labels[i]`` is level ``int(labels[i])``) and the quadratic weighted kappa ``qwk`` is added."""
    from domainfm.metrics import INTERVAL_KEYS, classification_metrics

    y_hat = probs.argmax(1)
    report = classification_metrics([labels[i] for i in y], [labels[i] for i in y_hat], list(labels))
    metrics = {k: float(report[k]) for k in (*CLASSIFICATION_KEYS, *INTERVAL_KEYS)}
    if ordinal:
        levels = [int(n) for n in labels]
        metrics["qwk"] = quadratic_weighted_kappa([levels[i] for i in y], [levels[i] for i in y_hat])
    return {"metrics": metrics, "per_class": report["per_class"], "confusion": report["confusion"]}


def probability_evaluation(
    domain: str,
    split: str,
    labels: Sequence[str],
    y: Sequence[int],
    probs: np.ndarray,
    *,
    ids: Sequence[str],
    groups: Mapping[str, Sequence[str]] | None = None,
    quality: np.ndarray | None = None,
    key_metric: str = "macro_f1",
    ordinal: bool = False,
    device: str = "cpu",
    seconds: float = 0.0,
    extra: Mapping[str, Any] | None = None,
) -> Evaluation:
    """The evaluation of ``probs`` (n, K) against the true class ids ``y`` on one split.

    ``quality`` (per item, in [0, 1]; default: 1 for a right argmax) is what the benefit engine values, e.g. a
    partial credit for an adjacent level; the risk-coverage curve is always over correctness. ``extra`` joins
    ``Evaluation.extra`` after ``items_per_second``.
    """
    from domainfm.engine.calibration import expected_calibration_error

    y_arr = np.asarray(y, dtype=int)
    labels = list(labels)
    report = label_metrics(labels, y_arr, probs, ordinal=ordinal)
    metrics = report["metrics"]
    metrics["ece"] = expected_calibration_error(probs, y_arr.tolist())
    confidence = probs.max(1)
    y_hat = probs.argmax(1)
    correct = (y_hat == y_arr).astype(float)
    quality = correct if quality is None else np.asarray(quality, dtype=float)
    n = len(y_arr)
    return Evaluation(
        domain=domain,
        split=split,
        metrics=metrics,
        key_metric=key_metric,
        n_items=n,
        outcomes=Outcomes(
            ids=[str(i) for i in ids],
            confidence=np.clip(confidence, 0.0, 1.0).tolist(),
            quality=np.clip(quality, 0.0, 1.0).tolist(),
            groups={k: [str(v) for v in vs] for k, vs in (groups or {}).items()},
            extra={"label": [labels[i] for i in y_arr], "predicted": [labels[i] for i in y_hat]},
        ),
        per_class=report["per_class"],
        confusion=report["confusion"],
        labels=labels,
        curves={"risk_coverage": risk_coverage(confidence, correct)},
        device=device,
        seconds=seconds,
        extra={"items_per_second": n / seconds if seconds > 0 else None, **(extra or {})},
    )
