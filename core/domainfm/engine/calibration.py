"""Calibration and selective prediction: temperature, vector and top-label isotonic scaling, ECE,
precision-targeted thresholds.

Calibrators and thresholds are always fitted on held-out (validation or calibration) data and then applied
unchanged to test data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

import numpy as np

CALIBRATOR_KINDS = ("none", "temperature", "vector", "top_isotonic")
VECTOR_L2 = 1e-2


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


TEMPERATURE_BOUNDS = (0.05, 20.0)
BOUND_TOLERANCE = 1e-3  # relative distance in log T within which a fitted temperature counts as at its bound


def fit_temperature(
    logits: np.ndarray, labels: Sequence[int] | np.ndarray, bounds: tuple[float, float] = TEMPERATURE_BOUNDS
) -> float:
    """The temperature minimising validation negative log-likelihood (Guo et al., 2017), within ``bounds``.

    The value can sit at a bound (see :func:`temperature_at_bound`); :func:`fit_temperature_calibrator` falls
    back to another calibrator then."""
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


def fit_vector_scaling(logits: np.ndarray, labels: Sequence[int] | np.ndarray, l2: float = VECTOR_L2) -> tuple[np.ndarray, np.ndarray]:
    """Per-class scale ``a`` and bias ``b`` (probabilities ``softmax(a * logits + b)``) minimising NLL plus
    ``l2`` times the squared distance from identity (Guo et al., 2017: 2K parameters for K classes)."""
    from scipy.optimize import minimize

    z0 = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    k = z0.shape[1]
    if z0.shape[0] == 0:
        return np.ones(k), np.zeros(k)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = z0 * w[:k] + w[k:]
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        n = len(y)
        value = -logp[np.arange(n), y].mean() + l2 * (((w[:k] - 1) ** 2).sum() + (w[k:] ** 2).sum())
        grad_z = np.exp(logp)
        grad_z[np.arange(n), y] -= 1.0
        grad_z /= n
        grad = np.r_[(grad_z * z0).sum(0) + 2 * l2 * (w[:k] - 1), grad_z.sum(0) + 2 * l2 * w[k:]]
        return float(value), grad

    w = minimize(loss, np.r_[np.ones(k), np.zeros(k)], jac=True, method="L-BFGS-B").x
    return w[:k], w[k:]


TOP_ISOTONIC_PRIOR = 2.0


def fit_top_isotonic(
    logits: np.ndarray, labels: Sequence[int] | np.ndarray, prior: float = TOP_ISOTONIC_PRIOR
) -> tuple[np.ndarray, np.ndarray]:
    """Knots ``(x, y)`` of an isotonic map from the top-1 softmax confidence to the probability that the top-1
    label is right (top-label calibration, Gupta & Ramdas 2022), bounded below by 1/K. Applied by linear
    interpolation between the knots, as ``sklearn.isotonic.IsotonicRegression.predict`` does.

    Each flat block of the fit is an m-estimate (Zadrozny & Elkan 2001): ``(right + prior * c) / (n + prior)``
    with ``c`` the block's mean uncalibrated confidence, then made non-decreasing again. Plain isotonic regression
    puts a block of two right answers at 1.0: a certainty the few items behind it cannot show, which would also
    leave every other label at probability 0.
    """
    from sklearn.isotonic import IsotonicRegression

    probs = softmax(logits)
    k = probs.shape[1]
    if probs.shape[0] == 0:
        return np.array([0.0, 1.0]), np.array([1.0 / k, 1.0 - 1.0 / k])
    confidence = probs.max(1)
    correct = (probs.argmax(1) == np.asarray(labels, dtype=int)).astype(float)
    iso = IsotonicRegression(y_min=1.0 / k, y_max=1.0, out_of_bounds="clip").fit(confidence, correct)
    knots_x = np.asarray(iso.X_thresholds_, dtype=float)
    knots_y = np.asarray(iso.y_thresholds_, dtype=float).copy()
    fitted = iso.predict(confidence)
    for value in np.unique(knots_y):
        members = np.isclose(fitted, value, rtol=0.0, atol=1e-12)
        n = int(members.sum())
        if n:
            smoothed = (correct[members].sum() + prior * confidence[members].mean()) / (n + prior)
            knots_y[np.isclose(knots_y, value, rtol=0.0, atol=1e-12)] = max(smoothed, 1.0 / k)
    return knots_x, np.maximum.accumulate(knots_y)


def with_top_confidence(probs: np.ndarray, top: np.ndarray) -> np.ndarray:
    """``probs`` with each row's top-1 probability replaced by ``top`` and the other labels rescaled to share
    the rest in their old proportions. ``top`` is first raised where needed so that the runner-up, rescaled,
    stays below it (``top >= q2 / (1 - q1 + q2)``): the predicted label never changes."""
    n = probs.shape[0]
    rows = np.arange(n)
    ordered = np.sort(probs, axis=1)
    q1, q2 = ordered[:, -1], ordered[:, -2]
    top = np.maximum(top, q2 / np.clip(1.0 - q1 + q2, 1e-12, None) + 1e-9)
    top = np.minimum(top, 1.0)
    winner = probs.argmax(1)
    out = probs.copy()
    out[rows, winner] = 0.0
    rest = out.sum(1, keepdims=True)
    # the others' old proportions; equal shares where the softmax left them (numerically) nothing
    shares = np.where(rest > 1e-12, out / np.clip(rest, 1e-12, None), 1.0 / max(probs.shape[1] - 1, 1))
    out = shares * (1.0 - top)[:, None]
    out[rows, winner] = top
    return out


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from logits to calibrated probabilities.

    ``none``: plain softmax; ``temperature``: ``softmax(logits / T)``; ``vector``: ``softmax(scale * logits +
    bias)`` with one scale and bias per class; ``top_isotonic``: the softmax with its top-1 probability mapped
    through an isotonic curve (``knots_x`` -> ``knots_y``), the predicted label unchanged. Stored in artifact
    metadata under ``calibrator`` (artifacts without it are temperature-scaled by their ``temperature``).
    """

    kind: str = "temperature"
    temperature: float = 1.0
    scale: tuple[float, ...] | None = None
    bias: tuple[float, ...] | None = None
    knots_x: tuple[float, ...] | None = None
    knots_y: tuple[float, ...] | None = None
    note: str | None = None  # why this kind was used, when it is a fallback
    rejected_temperature: float | None = None  # the fitted temperature a fallback replaced

    def __post_init__(self) -> None:
        if self.kind not in CALIBRATOR_KINDS:
            raise ValueError(f"calibrator kind {self.kind!r} is not one of {', '.join(CALIBRATOR_KINDS)}")
        if self.kind == "vector" and (self.scale is None or self.bias is None or len(self.scale) != len(self.bias)):
            raise ValueError("a vector calibrator needs a scale and a bias of the same length")
        if self.kind == "top_isotonic":
            x, y = self.knots_x, self.knots_y
            if not x or y is None or len(x) != len(y) or any(b < a for a, b in pairwise(x)):
                raise ValueError(
                    "a top_isotonic calibrator needs knots_x (non-decreasing) and knots_y of the same length"
                )

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for ``logits`` (n, K)."""
        if self.kind == "none":
            return softmax(logits)
        if self.kind == "temperature":
            return softmax(logits, self.temperature)
        if self.kind == "top_isotonic":
            probs = softmax(logits)
            confidence = probs.max(1)
            top = np.interp(confidence, self.knots_x, self.knots_y)  # type: ignore[arg-type]
            # Flat stretches of the curve would tie many items; a nudge far below any reported digit keeps the
            # uncalibrated confidence order, which abstention thresholds and risk-coverage curves rank by.
            top = np.maximum(top, 1.0 / probs.shape[1]) + 1e-7 * confidence
            return with_top_confidence(probs, top)  # caps the top at 1.0
        assert self.scale is not None and self.bias is not None
        z = np.asarray(logits, dtype=np.float64)
        if z.shape[1] != len(self.scale):
            raise ValueError(f"the vector calibrator has {len(self.scale)} classes, the logits {z.shape[1]}")
        return softmax(z * np.asarray(self.scale) + np.asarray(self.bias))

    def to_metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "temperature": self.temperature}
        if self.kind == "vector":
            out.update(scale=list(self.scale or ()), bias=list(self.bias or ()))
        if self.kind == "top_isotonic":
            out.update(knots_x=list(self.knots_x or ()), knots_y=list(self.knots_y or ()))
        if self.note is not None:
            out["note"] = self.note
        if self.rejected_temperature is not None:
            out["rejected_temperature"] = self.rejected_temperature
        return out

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Calibrator:
        """The calibrator an artifact's metadata describes (``calibrator``, else its ``temperature``)."""
        spec = metadata.get("calibrator")
        if not spec:
            return cls("temperature", float(metadata.get("temperature", 1.0)))

        def floats(key: str) -> tuple[float, ...] | None:
            values = spec.get(key)
            return tuple(float(v) for v in values) if values is not None else None

        return cls(
            str(spec.get("kind", "temperature")),
            float(spec.get("temperature", 1.0)),
            floats("scale"),
            floats("bias"),
            floats("knots_x"),
            floats("knots_y"),
            str(spec["note"]) if spec.get("note") is not None else None,
            float(spec["rejected_temperature"]) if spec.get("rejected_temperature") is not None else None,
        )


def fit_calibrator(kind: str, logits: np.ndarray, labels: Sequence[int] | np.ndarray) -> Calibrator:
    """Fit one calibrator of ``kind``: ``none``; ``temperature`` or ``vector`` by NLL; ``top_isotonic`` by
    isotonic regression of top-1 correctness on top-1 confidence."""
    if kind == "none":
        return Calibrator("none")
    if kind == "temperature":
        return fit_temperature_calibrator(logits, labels)
    if kind == "vector":
        scale, bias = fit_vector_scaling(logits, labels)
        return Calibrator("vector", scale=tuple(float(v) for v in scale), bias=tuple(float(v) for v in bias))
    if kind == "top_isotonic":
        knots_x, knots_y = fit_top_isotonic(logits, labels)
        return Calibrator("top_isotonic", knots_x=tuple(knots_x.tolist()), knots_y=tuple(knots_y.tolist()))
    raise ValueError(f"calibrator kind {kind!r} is not one of {', '.join(CALIBRATOR_KINDS)}")


def temperature_at_bound(
    temperature: float, bounds: tuple[float, float] = TEMPERATURE_BOUNDS, tolerance: float = BOUND_TOLERANCE
) -> str | None:
    """``"lower"`` or ``"upper"`` when a fitted ``temperature`` sits at that bound of its search interval, else None.

    A bound is not an optimum: NLL was still falling there. At the lower bound the validation items are (nearly)
    all separated, so dividing the logits by ever smaller T keeps paying and the fit claims certainty (a
    confidence of 1.000 for everything it answers); at the upper bound the logits carry almost no information.
    """
    span = np.log(bounds[1]) - np.log(bounds[0])
    position = (np.log(temperature) - np.log(bounds[0])) / span
    if position <= tolerance:
        return "lower"
    if position >= 1.0 - tolerance:
        return "upper"
    return None


FALLBACK_KINDS = ("none", "top_isotonic")


def fit_temperature_calibrator(
    logits: np.ndarray, labels: Sequence[int] | np.ndarray, bounds: tuple[float, float] = TEMPERATURE_BOUNDS, *, folds: int = 5
) -> Calibrator:
    """Temperature scaling fitted on held-out data, unless the fitted temperature sits at a bound.

    Then the calibrator falls back to the kind of :data:`FALLBACK_KINDS` (no scaling, top-label isotonic) with
    the lowest cross-validated ECE on the same items (no scaling when there are too few to cross-validate), and
    :attr:`Calibrator.note` says why; the note is stored in the artifact's metadata with the calibrator.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    temperature = fit_temperature(z, y, bounds)
    side = temperature_at_bound(temperature, bounds)
    if side is None:
        return Calibrator("temperature", temperature)
    bound = bounds[0] if side == "lower" else bounds[1]
    why = (
        "nearly every held-out item is separated, so NLL keeps falling as T shrinks and the fit would report "
        "certainty" if side == "lower" else "the logits carry almost no information about the labels"
    )
    if len(y) >= 2 * folds:
        chosen, report = choose_calibrator(z, y, FALLBACK_KINDS, folds=folds)
        how = f"{chosen.kind}, the lower cross-validated ECE of {' and '.join(FALLBACK_KINDS)} on the same {len(y)} items"
        scores = ", ".join(f"{k} {v:.4f}" for k, v in report["cv_ece"].items())
        how += f" ({scores})"
    else:
        chosen, how = Calibrator("none"), f"no scaling ({len(y)} items: too few to cross-validate a choice)"
    note = (
        f"fitted temperature {temperature:.8g} is at its {side} bound {bound:g} ({why}); fell back to {how}"
    )
    return replace(chosen, note=note, rejected_temperature=temperature)


def choose_calibrator(
    logits: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    kinds: Sequence[str] = CALIBRATOR_KINDS,
    *,
    folds: int = 5,
    seed: int = 0,
    n_bins: int = 15,
    repeats: int = 1,
) -> tuple[Calibrator, dict[str, Any]]:
    """The calibrator kind with the lowest cross-validated ECE on held-out ``logits``, refitted on all of them.

    Each kind is fitted on K-1 folds and applied to the remaining one; the out-of-fold probabilities of all
    folds are pooled into one ECE (and NLL) per kind, so the comparison uses every item once and never the
    data a calibrator was fitted on. With ``repeats`` > 1 the fold assignment is redrawn (seeds ``seed``,
    ``seed + 1``, ...) and the figures averaged: on a few hundred items one draw's ECE moves by about 0.01
    from the next, as much as the kinds differ. NLL-fitted calibrators can disagree with ECE (a temperature
    that lowers NLL may raise ECE), which is why the choice is made on ECE, the figure users read. Returns the
    calibrator and a report of every kind's cross-validated ECE and NLL.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    if len(y) < 2 * folds:
        calibrator = fit_calibrator("temperature", z, y)
        return calibrator, {"chosen": calibrator.kind, "reason": f"{len(y)} items: too few to cross-validate"}
    report: dict[str, Any] = {"folds": folds, "repeats": repeats, "items": int(len(y)), "cv_ece": {}, "cv_nll": {}}
    for kind in kinds:
        eces, nlls = [], []
        for r in range(repeats):
            fold_of = np.random.default_rng(seed + r).permutation(len(y)) % folds
            probs = np.zeros(z.shape)
            for f in range(folds):
                train, held = fold_of != f, fold_of == f
                probs[held] = fit_calibrator(kind, z[train], y[train]).apply(z[held])
            eces.append(expected_calibration_error(probs, y, n_bins))
            nlls.append(float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)))))
        report["cv_ece"][kind] = float(np.mean(eces))
        report["cv_nll"][kind] = float(np.mean(nlls))
    best = min(kinds, key=lambda k: (report["cv_ece"][k], report["cv_nll"][k]))
    calibrator = fit_calibrator(best, z, y)
    report["chosen"] = calibrator.kind
    if calibrator.kind != best:  # a temperature at its bound on all the items: the fallback is served
        report["fallback"] = {"from": best, "note": calibrator.note}
    return calibrator, report


def expected_calibration_error(probs: np.ndarray, labels: Sequence[int] | np.ndarray, n_bins: int = 15) -> float:
    """ECE with equal-width confidence bins over the top-1 prediction."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    if probs.shape[0] == 0:
        return 0.0
    return ece_from_confidence(probs.max(axis=1), (probs.argmax(axis=1) == y).astype(float), n_bins)


def ece_from_confidence(
    confidence: Sequence[float] | np.ndarray, correct: Sequence[float] | np.ndarray, n_bins: int = 15
) -> float:
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


def ece_noise_floor(
    confidence: Sequence[float], n_bins: int = 15, draws: int = 500, seed: int = 0
) -> dict[str, float]:
    """The ECE a *perfectly calibrated* model with these top-1 confidences would show on this many items:
    correctness drawn as Bernoulli(confidence), ``draws`` times. Returns ``mean``, ``p90`` and ``n``.

    ECE is biased upwards on small samples; when ``p90`` exceeds an ECE limit, that limit cannot be checked
    on this many items (a perfectly calibrated model would fail it more than one time in ten).
    """
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.size == 0:
        return {"mean": float("nan"), "p90": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    floor = [ece_from_confidence(conf, (rng.random(conf.size) < conf).astype(float), n_bins) for _ in range(draws)]
    return {"mean": float(np.mean(floor)), "p90": float(np.percentile(floor, 90)), "n": int(conf.size)}


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
