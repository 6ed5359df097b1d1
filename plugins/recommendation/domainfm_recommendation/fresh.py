"""New-arrival slots: places in every ranked list kept for items nobody has interacted with yet.

A ranking trained on interactions buries items without any: in the MovieLens benchmark no such item reached a
top 20 by score alone, although the network scores them through their text. ``slots`` places starting at rank
``position`` (1-based) go to the best-scoring of those items (by the model's own score, so the text decides
which new item a user sees); a new item that already ranks above ``position`` keeps its place and the slots go
to the next ones. The items ranked before ``position`` never move, so precision at the top (NDCG@10 with
``position`` > 10) is exactly the model's; what the slots cost is measured beside what they buy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Scorer = Callable[[Sequence[str], Sequence[np.ndarray]], np.ndarray]


def fresh_order(scores: np.ndarray, fresh: np.ndarray, slots: int, position: int) -> np.ndarray:
    """Item positions of one row in ranked order with the new-arrival slots filled. ``fresh`` marks the items
    without interactions; items with a non-finite score (the history) are never placed in a slot."""
    n = len(scores)
    order = np.lexsort((np.arange(n), -scores))  # by score, ties by position
    if slots <= 0 or position < 1:
        return order
    head, tail = order[: position - 1], order[position - 1 :]
    candidates = tail[fresh[tail] & np.isfinite(scores[tail])][:slots]
    if not len(candidates):
        return order
    rest = tail[~np.isin(tail, candidates)]
    return np.concatenate([head, candidates, rest])


def rank_scores(order: np.ndarray) -> np.ndarray:
    """Scores that reproduce ``order`` (the first item highest): ``n - rank``."""
    out = np.empty(len(order), dtype=np.float64)
    out[order] = np.arange(len(order), 0, -1, dtype=np.float64)
    return out


def with_fresh_slots(scorer: Scorer, fresh: np.ndarray, slots: int, position: int) -> Scorer:
    """A scorer whose rows rank like :func:`fresh_order` (rank-valued scores, the history left at ``-inf``),
    for ranking evaluation of the list a user is shown."""

    def score(users: Sequence[str], histories: Sequence[np.ndarray]) -> np.ndarray:
        raw = np.asarray(scorer(users, histories), dtype=np.float64)
        out = np.empty_like(raw)
        for r, history in enumerate(histories):
            row = raw[r].copy()
            row[np.asarray(history, dtype=np.int64)] = -np.inf
            out[r] = rank_scores(fresh_order(row, fresh, slots, position))
            out[r, np.asarray(history, dtype=np.int64)] = -np.inf
        return out

    return score
