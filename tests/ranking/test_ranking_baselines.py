"""domainfm.ranking.baselines on a hand-made log: what each baseline ranks first, and the scorer contract."""

from __future__ import annotations

import numpy as np
import pytest

from domainfm.ranking.baselines import (
    ImplicitMF,
    ItemKNN,
    MostPopular,
    baseline_grid,
    describe,
    interaction_matrix,
    popularity_counts,
)
from domainfm.ranking.metrics import rank_users

# items 0 and 1 always go together; item 2 is the most popular; item 3 is seen once
HISTORIES = [np.array(h) for h in ([0, 1, 2], [0, 1], [2, 3], [2], [0, 1, 2], [2, 0])]
USERS = [f"u{i}" for i in range(len(HISTORIES))]


def test_interaction_matrix_and_popularity_count_users_not_events() -> None:
    matrix = interaction_matrix([np.array([0, 0, 2])], 4)
    assert matrix.toarray().tolist() == [[2.0, 0.0, 1.0, 0.0]]
    assert popularity_counts([np.array([0, 0, 2]), np.array([2])], 4).tolist() == [1.0, 0.0, 2.0, 0.0]


def test_most_popular_ranks_by_users() -> None:
    scores = MostPopular().fit(USERS, HISTORIES, 4).score(["new"], [np.array([], dtype=np.int64)])
    assert np.argsort(-scores[0], kind="stable").tolist() == [2, 0, 1, 3]


def test_item_knn_follows_co_occurrence() -> None:
    knn = ItemKNN(neighbours=2).fit(USERS, HISTORIES, 4)
    scores = knn.score(["new"], [np.array([0])])
    assert int(np.argmax(scores[0])) == 1  # 1 always co-occurs with 0
    assert describe(knn) == {"neighbours": 2, "shrink": 0.0}
    result = rank_users(knn.score, ["a"], [np.array([0])], np.array([1]), 4)  # seen item 0 excluded, 1 ranks first
    assert result.ranks.tolist() == [1] and result.top[0, 0] == 1


def test_implicit_als_scores_every_item() -> None:
    pytest.importorskip("implicit")
    model = ImplicitMF("als", factors=4, iterations=3).fit(USERS, HISTORIES, 4)
    scores = model.score(USERS[:2] + ["unknown"], HISTORIES[:2] + [np.array([0])])
    assert scores.shape == (3, 4) and np.all(scores[2] == 0)  # a user unseen in training gets no factors
    assert describe(model)["factors"] == 4
    with pytest.raises(ValueError, match="'als' or 'bpr'"):
        ImplicitMF("svd")


def test_the_quick_grid_has_one_entry_per_family_member() -> None:
    grid = baseline_grid(quick=True)
    assert set(grid) == {"most_popular", "item_knn", "implicit_als", "implicit_bpr"}
    assert [describe(make())["neighbours"] for make in grid["item_knn"]] == [50, 200]
    assert len(baseline_grid()["item_knn"]) == 10
