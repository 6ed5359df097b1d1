"""Group gaps of a domain's key metric among automated items, measured with fairlearn's MetricFrame."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_MIN_GROUP_SIZE = 10

# Key metrics computable from per-item labels (``outcomes.extra['label']`` / ``['predicted']``).
_LABEL_METRICS: dict[str, tuple[str, dict[str, Any]]] = {
    "accuracy": ("accuracy_score", {}),
    "macro_f1": ("f1_score", {"average": "macro", "zero_division": 0}),
    "weighted_f1": ("f1_score", {"average": "weighted", "zero_division": 0}),
    "micro_f1": ("f1_score", {"average": "micro", "zero_division": 0}),
    "macro_precision": ("precision_score", {"average": "macro", "zero_division": 0}),
    "macro_recall": ("recall_score", {"average": "macro", "zero_division": 0}),
    "balanced_accuracy": ("balanced_accuracy_score", {}),
}


@dataclass
class GroupGap:
    """The result of one gap measurement; ``gap`` is None when it cannot be measured (see ``reason``)."""

    gap: float | None
    metric: str
    by_group: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)  # groups below the minimum size
    reason: str | None = None


def metric_function(
    key_metric: str | None, extra: Mapping[str, np.ndarray]
) -> tuple[Callable[[np.ndarray, np.ndarray], float], str, bool]:
    """The per-group metric: the key metric itself when labels are available, else mean item quality.

    :return: ``(fn(y_true, y_pred), description, uses_labels)``.
    """
    if key_metric in _LABEL_METRICS and "label" in extra and "predicted" in extra:
        import sklearn.metrics

        name, kwargs = _LABEL_METRICS[key_metric]
        fn = getattr(sklearn.metrics, name)
        return (lambda yt, yp: float(fn(yt, yp, **kwargs))), key_metric, True
    desc = f"mean item quality (proxy for {key_metric})" if key_metric else "mean item quality"
    return (lambda yt, _yp: float(np.mean(yt))), desc, False


def group_gap(
    quality: np.ndarray,
    automated: np.ndarray,
    groups: np.ndarray,
    *,
    key_metric: str | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
) -> GroupGap:
    """Largest difference of the key metric between groups, over the automated items only.

    Groups with fewer than ``min_group_size`` automated items are left out (their estimate is noise) and
    listed in ``excluded``; fewer than two groups left means "not measurable".
    """
    from fairlearn.metrics import MetricFrame

    extra = extra or {}
    fn, desc, uses_labels = metric_function(key_metric, extra)
    mask = np.asarray(automated, dtype=bool)
    groups = np.asarray(groups).astype(str)
    if not mask.any():
        return GroupGap(None, desc, reason="no automated items at this operating point")
    names, counts = np.unique(groups[mask], return_counts=True)
    sizes = {str(n): int(c) for n, c in zip(names, counts, strict=True)}
    eligible = {n for n, c in sizes.items() if c >= min_group_size}
    excluded = {n: c for n, c in sizes.items() if n not in eligible}
    if len(eligible) < 2:
        return GroupGap(
            None, desc, sizes=sizes, excluded=excluded,
            reason=f"fewer than 2 groups with >= {min_group_size} automated items",
        )
    keep = mask & np.isin(groups, sorted(eligible))
    if uses_labels:
        y_true = np.asarray(extra["label"]).astype(str)[keep]
        y_pred = np.asarray(extra["predicted"]).astype(str)[keep]
    else:
        y_true = np.asarray(quality, dtype=float)[keep]
        y_pred = y_true
    frame = MetricFrame(metrics=fn, y_true=y_true, y_pred=y_pred, sensitive_features=groups[keep])
    by_group = {str(k): float(v) for k, v in frame.by_group.items()}
    return GroupGap(
        float(frame.difference(method="between_groups")), desc, by_group=by_group,
        sizes={n: sizes[n] for n in sorted(eligible)}, excluded=excluded,
    )


def group_table(
    quality: np.ndarray,
    automated: np.ndarray,
    groups: np.ndarray,
    *,
    key_metric: str | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per group: size, automated count, coverage, mean quality and key metric among automated items."""
    extra = extra or {}
    fn, _desc, uses_labels = metric_function(key_metric, extra)
    quality = np.asarray(quality, dtype=float)
    mask = np.asarray(automated, dtype=bool)
    groups = np.asarray(groups).astype(str)
    out: dict[str, dict[str, Any]] = {}
    for g in sorted(set(groups.tolist())):
        members = groups == g
        auto = members & mask
        n_auto = int(auto.sum())
        key: float | None = None
        if n_auto:
            if uses_labels:
                key = fn(np.asarray(extra["label"]).astype(str)[auto], np.asarray(extra["predicted"]).astype(str)[auto])
            else:
                key = float(quality[auto].mean())
        out[g] = {
            "n": int(members.sum()),
            "n_automated": n_auto,
            "coverage": n_auto / int(members.sum()),
            "quality": float(quality[auto].mean()) if n_auto else None,
            "key_metric": key,
        }
    return out
