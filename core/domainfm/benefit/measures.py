"""Measures plugins build their constraints from (``Constraint.measure`` callables over an :class:`ItemBatch`)."""

from __future__ import annotations

import numpy as np

from domainfm.types import ItemBatch


def group_quality_gap(batch: ItemBatch, group: str, min_items: int, *, automated_only: bool = True) -> float | None:
    """Largest minus smallest mean item quality over the values of ``batch.groups[group]``.

    Only groups with at least ``min_items`` items count (automated items only, unless ``automated_only`` is
    False); None when the batch has no such group column or fewer than two groups are large enough. A gap in
    accuracy and a gap in error rate are the same number.
    """
    labels = batch.groups.get(group)
    if labels is None or len(labels) == 0:
        return None
    labels = np.asarray(labels)
    mask = batch.automated.astype(bool) if automated_only else np.ones(len(labels), dtype=bool)
    means = []
    for value in np.unique(labels[mask]):
        selected = mask & (labels == value)
        if selected.sum() >= min_items:
            means.append(float(batch.quality[selected].mean()))
    return max(means) - min(means) if len(means) >= 2 else None
