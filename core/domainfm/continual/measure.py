"""Gain on the new data, forgetting on the old: accuracy of a model on the parent's test split and on the
held-out feedback, through the domain's own ``domainfm_predict`` (so a label the model does not know counts as an
error, as it would in service)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Predict = Callable[[Sequence[Mapping[str, Any]]], list[Any]]


def accuracy(predict: Predict, rows: Sequence[Mapping[str, Any]], label: str, batch_size: int = 256) -> float | None:
    """Share of ``rows`` whose predicted label equals ``row[label]`` (None for no rows)."""
    if not rows:
        return None
    correct = 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        records = [{k: v for k, v in r.items() if k != label} for r in batch]
        for row, pred in zip(batch, predict(records), strict=True):
            correct += int(pred.label is not None and str(pred.label) == str(row[label]))
    return correct / len(rows)


def old_new_overall(predict: Predict, old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]],
                    label: str) -> dict[str, float | None]:
    """Accuracy on the old items, the new items and both together (item-weighted)."""
    acc_old, acc_new = accuracy(predict, old, label), accuracy(predict, new, label)
    n_old, n_new = len(old), len(new)
    parts = [(a, n) for a, n in ((acc_old, n_old), (acc_new, n_new)) if a is not None]
    overall = sum(a * n for a, n in parts) / sum(n for _, n in parts) if parts else None
    return {"old": acc_old, "new": acc_new, "overall": overall}


def gain_and_forgetting(parent: Mapping[str, float | None], model: Mapping[str, float | None]) -> dict[str, float | None]:
    """``gain_on_new`` = model − parent on the new items; ``forgetting_on_old`` = parent − model on the old ones
    (positive = the model forgot)."""
    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    return {"gain_on_new": diff(model.get("new"), parent.get("new")),
            "forgetting_on_old": diff(parent.get("old"), model.get("old"))}
