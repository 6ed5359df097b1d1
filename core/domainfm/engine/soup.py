"""Model soups (Wortsman et al., 2022): fine-tuned models from one initialisation averaged weight by weight.

The greedy soup ranks the candidates by their own validation score and adds each one only if the averaged
model's validation score does not drop, so the result is never worse on validation than the best candidate
alone, and costs one model at inference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Score = tuple[float, float]  # (accuracy, NLL): higher accuracy first, then lower NLL


def average_states(states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The element-wise mean of floating-point tensors; other tensors (e.g. position ids) from the first state."""
    return {key: (sum(s[key] for s in states) / len(states) if value.is_floating_point() else value)
            for key, value in states[0].items()}


def better(a: Score, b: Score) -> bool:
    """``a`` at least as good as ``b``: higher accuracy, or the same accuracy and no higher NLL."""
    return a[0] > b[0] or (a[0] == b[0] and a[1] <= b[1])


def greedy_soup(candidates: Sequence[Mapping[str, Any]], score: Callable[[dict[str, Any]], Score]
                ) -> tuple[dict[str, Any], list[int], Score]:
    """Greedy soup of ``candidates`` (each with ``state``, ``accuracy`` and ``nll`` on validation); ``score``
    evaluates a state on validation. Returns the soup's state, the indices kept and its score."""
    order = sorted(range(len(candidates)), key=lambda i: (-candidates[i]["accuracy"], candidates[i]["nll"]))
    kept = [order[0]]
    best: Score = (candidates[order[0]]["accuracy"], candidates[order[0]]["nll"])
    for i in order[1:]:
        trial = average_states([candidates[j]["state"] for j in [*kept, i]])
        result = score(trial)
        if better(result, best):
            kept.append(i)
            best = result
    return average_states([candidates[j]["state"] for j in kept]), kept, best
