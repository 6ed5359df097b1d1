"""domainfm.ranking.metrics: full-ranking metrics against the core's reference implementations; beyond-accuracy measures."""

from __future__ import annotations

import numpy as np
import pytest

from domainfm.metrics import hit_at_k, ndcg_at_k, reciprocal_rank
from domainfm.ranking.metrics import (
    accuracy_metrics,
    beyond_accuracy,
    gini,
    long_tail_mask,
    rank_of,
    rank_users,
    top_k_with_ties,
)


def test_rank_users_matches_reference_metrics() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 60
    scores = rng.integers(0, 5, size=(n_users, n_items)).astype(float)  # many ties on purpose
    histories = [rng.choice(n_items, size=5, replace=False) for _ in range(n_users)]
    targets = np.array([rng.choice(np.setdiff1d(np.arange(n_items), h)) for h in histories])
    result = rank_users(lambda users, hist: scores[[int(u) for u in users]], [str(u) for u in range(n_users)],
                        histories, targets, n_items, batch_size=7)
    ndcg, hit, rr = [], [], []
    for u in range(n_users):
        masked = scores[u].copy()
        masked[histories[u]] = -np.inf
        ranking = np.lexsort((np.arange(n_items), -masked))
        ranking = [i for i in ranking if i not in set(histories[u].tolist())]
        ndcg.append(ndcg_at_k(ranking, {targets[u]}, 10))
        hit.append(hit_at_k(ranking, {targets[u]}, 10))
        rr.append(reciprocal_rank(ranking, {targets[u]}))
        assert result.top[u].tolist() == ranking[:20]
    metrics = accuracy_metrics(result)
    assert metrics["ndcg_at_10"] == pytest.approx(np.mean(ndcg))
    assert metrics["hr_at_10"] == pytest.approx(np.mean(hit))
    assert metrics["mrr"] == pytest.approx(np.mean(rr))


def test_seen_items_never_recommended() -> None:
    scores = np.tile(np.arange(30, dtype=float)[::-1], (2, 1))
    result = rank_users(lambda u, h: scores[: len(u)], ["a", "b"], [np.arange(5), np.arange(3)], np.array([5, 29]), 30)
    assert result.ranks.tolist() == [1, 27]
    assert not set(result.top[0].tolist()) & set(range(5))


def test_top_k_with_ties_is_position_ordered() -> None:
    s = np.array([[1.0, 3.0, 3.0, 0.0, 3.0]])
    assert top_k_with_ties(s, 2).tolist() == [[1, 2]]
    assert rank_of(s, np.array([4])).tolist() == [3]


def test_gini_and_coverage() -> None:
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 12])) == pytest.approx(0.75)
    pop = np.array([100.0, 50, 1, 1, 0, 0])
    top = np.array([[0, 1], [0, 2]])
    m = beyond_accuracy(top, pop, n_users=100, k=2)
    assert m["coverage"] == pytest.approx(3 / 6)
    assert m["long_tail_share"] == pytest.approx(1 / 4)
    assert long_tail_mask(pop).tolist() == [False, False, True, True, True, True]
