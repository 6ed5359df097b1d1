"""Which of the parent's training rows a child replays: a seeded reservoir sample (Vitter's algorithm R).

A reservoir reads the rows once, in order, and keeps each with the right probability, so the same seed picks
the same rows from the same data whether it arrives as a list or a stream, and every row has the same chance.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def reservoir_sample(items: Iterable[T], k: int, seed: int) -> list[T]:
    """``k`` items drawn uniformly without replacement from ``items`` (all of them when there are fewer), in
    their original order; deterministic for a seed."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    rng = random.Random(seed)
    reservoir: list[tuple[int, T]] = []
    for i, item in enumerate(items):
        if i < k:
            reservoir.append((i, item))
            continue
        j = rng.randint(0, i)
        if j < k:
            reservoir[j] = (i, item)
    return [item for _, item in sorted(reservoir, key=lambda pair: pair[0])]


def replay_indices(n_parent: int, n_feedback: int, ratio: float, seed: int, at_least: int = 0) -> list[int]:
    """Row indices of the parent's training split to replay: ``ratio`` parent rows per feedback row but at least
    ``at_least`` rows (ratio 0 = none), at most every parent row."""
    if ratio < 0:
        raise ValueError(f"options.replay_ratio must be >= 0, got {ratio}")
    if at_least < 0:
        raise ValueError(f"options.replay_per_label must be >= 0, got {at_least}")
    k = 0 if ratio == 0 else min(n_parent, max(int(round(ratio * n_feedback)), at_least))
    return reservoir_sample(range(n_parent), k, seed)
