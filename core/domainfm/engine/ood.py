"""Out-of-scope (out-of-distribution) scores for classifiers: how unlike the known labels an input is.

Every scorer returns one number per input, higher meaning more likely out of scope:

- ``msp``: 1 - the maximum (calibrated) softmax probability (Hendrycks & Gimpel, 2017);
- ``energy``: the free energy ``-logsumexp(logits)`` (Liu et al., 2020);
- ``knn``: 1 - the cosine similarity to the k-th nearest training embedding (Sun et al., 2022);
- ``mahalanobis``: the smallest Mahalanobis distance to a class mean, with one covariance shared by the classes
  and shrunk by Ledoit-Wolf (Lee et al., 2018);
- ``oos_class``: the probability of an explicit out-of-scope class in a logistic regression on the embeddings,
  trained with a pool of unlabelled texts from elsewhere (a negative pool) as that class;
- combinations such as ``msp+knn`` (:func:`combine`): the larger of the components' scores, each standardised
  by its mean and standard deviation on held-out in-scope inputs, so that an input far from every known label
  (what embedding distances see) and one the classifier hesitates on (what the softmax sees) are both flagged.

Thresholds are chosen on held-out data for a stated rate of in-scope inputs flagged
(:func:`threshold_for_rate`), and the method is chosen by the share of held-out out-of-scope inputs flagged
at that rate (:func:`compare_methods`). Fitted scorers save to one safetensors file plus a small spec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("msp", "energy", "knn", "mahalanobis", "oos_class")
LOGIT_METHODS = ("msp", "energy")
FEATURE_METHODS = ("knn", "mahalanobis", "oos_class")
COMBINE_SEP = "+"
DEFAULT_K = 10
DEFAULT_OOS_C = 8.0


@dataclass
class OodScorer:
    """A fitted out-of-scope scorer. ``params`` are plain JSON values, ``arrays`` the fitted numbers."""

    method: str
    params: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parts = self.method.split(COMBINE_SEP)
        if any(p not in METHODS for p in parts) or len(set(parts)) != len(parts):
            raise ValueError(f"out-of-scope method {self.method!r} is not one of {', '.join(METHODS)} "
                             f"or a combination of them joined by {COMBINE_SEP!r}")

    @property
    def needs_features(self) -> bool:
        return any(p in FEATURE_METHODS for p in self.method.split(COMBINE_SEP))

    def score(self, *, probs: np.ndarray | None = None, logits: np.ndarray | None = None,
              features: np.ndarray | None = None) -> np.ndarray:
        """Scores for a batch: ``probs`` (msp), ``logits`` (energy) or L2-normalised ``features`` (the others),
        each over the in-scope labels only."""
        if COMBINE_SEP in self.method:
            parts = [c.score(probs=probs, logits=logits, features=features) for c in self.components()]
            return standardised_max(parts, self.params["mean"], self.params["std"])
        if self.method == "msp":
            return 1.0 - _need(probs, "probs", self.method).max(axis=1)
        if self.method == "energy":
            return energy(_need(logits, "logits", self.method))
        x = np.asarray(_need(features, "features", self.method), dtype=np.float32)
        if self.method == "knn":
            return knn_distance(x, self.arrays["bank"], int(self.params["k"]))
        if self.method == "mahalanobis":
            return mahalanobis_distance(x, self.arrays["means"], self.arrays["precision"])
        z = x @ self.arrays["weight"].T + self.arrays["bias"]
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p[:, int(self.params["oos_index"])] / p.sum(axis=1)

    def components(self) -> list[OodScorer]:
        """A combination's component scorers (their arrays are stored under ``"<i>.<name>"``)."""
        out = []
        for i, spec in enumerate(self.params["components"]):
            prefix = f"{i}."
            arrays = {k[len(prefix):]: v for k, v in self.arrays.items() if k.startswith(prefix)}
            out.append(OodScorer(str(spec["method"]), dict(spec.get("params") or {}), arrays))
        return out

    def spec(self) -> dict[str, Any]:
        return {"method": self.method, "params": dict(self.params)}

    def save(self, path: str | Path) -> None:
        """Write the fitted arrays to ``path`` (safetensors); keep :meth:`spec` in the artifact metadata."""
        from domainfm.io import save_arrays

        if self.arrays:
            save_arrays(Path(path), {k: np.ascontiguousarray(v) for k, v in self.arrays.items()})

    @classmethod
    def load(cls, spec: Mapping[str, Any], path: str | Path | None) -> OodScorer:
        """The scorer ``spec`` describes, its arrays read from ``path`` when its method has any."""
        method = str(spec.get("method"))
        arrays: dict[str, np.ndarray] = {}
        if any(p in FEATURE_METHODS for p in method.split(COMBINE_SEP)):
            if path is None or not Path(path).is_file():
                raise FileNotFoundError(f"{path}: the fitted arrays of the {method!r} out-of-scope scorer are missing")
            from safetensors.numpy import load_file

            arrays = dict(load_file(str(path)))
        return cls(method, dict(spec.get("params") or {}), arrays)


def _need(value: np.ndarray | None, name: str, method: str) -> np.ndarray:
    if value is None:
        raise ValueError(f"the {method!r} out-of-scope score needs {name}")
    return np.asarray(value)


# ----------------------------------------------------------------------------------------------- scores


def energy(logits: np.ndarray) -> np.ndarray:
    """``-logsumexp(logits)`` per row: low for inputs the classifier has a strong logit for."""
    z = np.asarray(logits, dtype=np.float64)
    top = z.max(axis=1)
    return -(top + np.log(np.exp(z - top[:, None]).sum(axis=1)))


def knn_distance(features: np.ndarray, bank: np.ndarray, k: int, batch: int = 2048) -> np.ndarray:
    """1 - cosine similarity to the ``k``-th nearest row of ``bank`` (rows L2-normalised)."""
    k = max(1, min(int(k), len(bank)))
    out = np.empty(len(features), dtype=np.float64)
    for start in range(0, len(features), batch):
        sims = features[start : start + batch] @ bank.T
        kth = np.partition(-sims, k - 1, axis=1)[:, k - 1]
        out[start : start + batch] = 1.0 + kth  # kth = -similarity
    return out


def mahalanobis_distance(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """The smallest squared Mahalanobis distance from each row to a class mean."""
    x = np.asarray(features, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    p = np.asarray(precision, dtype=np.float64)
    xp = x @ p
    d = (xp * x).sum(1)[:, None] - 2.0 * xp @ mu.T + ((mu @ p) * mu).sum(1)[None, :]
    return d.min(axis=1)


def standardised_max(parts: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Per row, the largest of the component scores after ``(score - mean) / std``."""
    z = [(np.asarray(p, dtype=np.float64) - m) / s for p, m, s in zip(parts, mean, std, strict=True)]
    return np.max(np.stack(z), axis=0)


def standardisation(in_scope_scores: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (floored, so a constant score cannot divide by zero) of in-scope scores."""
    x = np.asarray(in_scope_scores, dtype=np.float64)
    return (float(x.mean()), float(max(x.std(), 1e-9))) if x.size else (0.0, 1.0)


def combine(scorers: Sequence[OodScorer], in_scope_scores: Sequence[np.ndarray]) -> OodScorer:
    """The combination of fitted ``scorers``: each standardised by its ``in_scope_scores`` (held-out in-scope
    inputs, never out-of-scope ones), then the largest taken."""
    stats = [standardisation(s) for s in in_scope_scores]
    arrays = {f"{i}.{k}": v for i, scorer in enumerate(scorers) for k, v in scorer.arrays.items()}
    params = {"components": [s.spec() for s in scorers], "mean": [m for m, _ in stats], "std": [d for _, d in stats]}
    return OodScorer(COMBINE_SEP.join(s.method for s in scorers), params, arrays)


def combine_held(parts: Sequence[HeldOut]) -> HeldOut:
    """What :func:`combine` does, on held-out scores: standardised by the in-scope side of the same data."""
    stats = [standardisation(h.in_scores) for h in parts]
    mean, std = [m for m, _ in stats], [d for _, d in stats]
    return HeldOut(standardised_max([h.in_scores for h in parts], mean, std),
                   standardised_max([h.out_scores for h in parts], mean, std) if len(parts[0].out_scores) else np.zeros(0),
                   parts[0].in_already, parts[0].out_already)


def pairs(methods: Sequence[str]) -> list[str]:
    """The combinations tried by default: one logit-based score with one embedding-based score."""
    return [f"{a}{COMBINE_SEP}{b}" for a in LOGIT_METHODS if a in methods for b in FEATURE_METHODS if b in methods]


# ----------------------------------------------------------------------------------------------- fitting


def fit_scorer(
    method: str,
    *,
    train_features: np.ndarray | None = None,
    train_labels: Sequence[int] | np.ndarray | None = None,
    negative_features: np.ndarray | None = None,
    k: int = DEFAULT_K,
    c: float = DEFAULT_OOS_C,
    seed: int = 0,
) -> OodScorer:
    """Fit one scorer on in-scope training data (``train_features`` L2-normalised, ``train_labels`` class ids)
    and, for ``oos_class``, the ``negative_features`` of the negative pool."""
    if method in ("msp", "energy"):
        return OodScorer(method)
    x = np.asarray(_need(train_features, "train_features", method), dtype=np.float32)
    if method == "knn":
        return OodScorer("knn", {"k": int(min(k, len(x)))}, {"bank": x})
    y = np.asarray(_need(np.asarray(train_labels) if train_labels is not None else None, "train_labels", method), dtype=int)
    if method == "mahalanobis":
        from sklearn.covariance import LedoitWolf

        classes = np.unique(y)
        means = np.stack([x[y == c_].mean(0) for c_ in classes]).astype(np.float32)
        centred = x - means[np.searchsorted(classes, y)]
        precision = LedoitWolf(assume_centered=True).fit(centred).precision_.astype(np.float32)
        return OodScorer("mahalanobis", {"classes": int(len(classes))}, {"means": means, "precision": precision})
    neg = np.asarray(_need(negative_features, "negative_features", method), dtype=np.float32)
    if len(neg) == 0:
        raise ValueError("the 'oos_class' out-of-scope scorer needs a non-empty negative pool")
    from sklearn.linear_model import LogisticRegression

    oos_index = int(y.max()) + 1
    clf = LogisticRegression(C=c, max_iter=1000, random_state=seed, class_weight="balanced")
    clf.fit(np.vstack([x, neg]), np.r_[y, np.full(len(neg), oos_index)])
    weight, bias = clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32)
    if weight.shape[0] == 1:  # sklearn's binary form: a single row scoring the second class
        weight, bias = np.vstack([-weight / 2, weight / 2]), np.r_[-bias / 2, bias / 2].astype(np.float32)
    index = int(np.flatnonzero(clf.classes_ == oos_index)[0])
    return OodScorer("oos_class", {"oos_index": index, "C": float(c), "negatives": int(len(neg))},
                     {"weight": weight, "bias": bias})


# ----------------------------------------------------------------------------------------------- thresholds


def threshold_for_rate(scores: np.ndarray, rate: float, already: np.ndarray | None = None) -> float:
    """The lowest threshold ``t`` (flag when score > t) flagging at most ``rate`` of these in-scope ``scores``,
    counting the items ``already`` flagged by another rule against the same budget. +inf when that rule alone
    uses the budget up (the score then flags nothing)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return float("inf")
    done = np.zeros(s.size, dtype=bool) if already is None else np.asarray(already, dtype=bool)
    budget = int(np.floor(rate * s.size + 1e-9)) - int(done.sum())
    rest = np.sort(s[~done])
    if budget < 0 or rest.size == 0:
        return float("inf")
    if budget >= rest.size:
        return float(-np.inf)
    return float(rest[rest.size - 1 - budget])


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float | None:
    """Area under the ROC curve of separating out-of-scope from in-scope by the score (None if a side is empty)."""
    if len(in_scores) == 0 or len(out_scores) == 0:
        return None
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    return float(roc_auc_score(y, np.r_[in_scores, out_scores]))


@dataclass(frozen=True)
class HeldOut:
    """One method's scores on held-out data: in-scope and out-of-scope inputs, and which of each another rule
    (a confidence threshold) already flags."""

    in_scores: np.ndarray
    out_scores: np.ndarray
    in_already: np.ndarray | None = None
    out_already: np.ndarray | None = None


def operating_point(held: HeldOut, rate: float) -> dict[str, Any]:
    """The threshold for ``rate`` and what it does on ``held``: in-scope flag rate, out-of-scope recall, AUROC."""
    t = threshold_for_rate(held.in_scores, rate, held.in_already)
    in_flag = held.in_scores > t
    out_flag = held.out_scores > t
    if held.in_already is not None:
        in_flag |= np.asarray(held.in_already, dtype=bool)
    if held.out_already is not None:
        out_flag |= np.asarray(held.out_already, dtype=bool)
    return {
        "threshold": t,
        "in_scope_flag_rate": float(in_flag.mean()) if in_flag.size else 0.0,
        "out_of_scope_recall": float(out_flag.mean()) if out_flag.size else None,
        "auroc": auroc(held.in_scores, held.out_scores),
        "in_scope_items": int(held.in_scores.size),
        "out_of_scope_items": int(held.out_scores.size),
    }


def compare_methods(
    held: Mapping[str, Mapping[str, HeldOut]], rate: float, fallback: str
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Choose a method on held-out data from one or more sources (``held[source][method]``: e.g. out-of-scope
    texts from elsewhere, or known labels left out of fitting). Each method's score is its out-of-scope recall
    at ``rate``, averaged over the sources that have out-of-scope inputs (so that a large far-away source cannot
    drown a small near one); ties go to the higher mean AUROC, then to the order of the methods. Without any
    out-of-scope inputs ``fallback`` is kept. Returns the method and ``report[method][source]`` operating
    points plus ``report[method]["mean_recall"]`` / ``["mean_auroc"]``."""
    methods = list(dict.fromkeys(m for per_source in held.values() for m in per_source))
    report: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for source, per_source in held.items():
        for method, h in per_source.items():
            report[method][source] = operating_point(h, rate)
    for method in methods:
        points = [p for p in report[method].values() if p["out_of_scope_recall"] is not None]
        report[method]["mean_recall"] = float(np.mean([p["out_of_scope_recall"] for p in points])) if points else None
        aurocs = [p["auroc"] for p in points if p["auroc"] is not None]
        report[method]["mean_auroc"] = float(np.mean(aurocs)) if aurocs else None
    scored = [m for m in methods if report[m]["mean_recall"] is not None]
    if not scored:
        if fallback not in report:
            raise ValueError(f"fallback method {fallback!r} was not scored")
        return fallback, report
    best = max(scored, key=lambda m: (round(report[m]["mean_recall"], 9), report[m]["mean_auroc"] or 0.0, -methods.index(m)))
    return best, report
