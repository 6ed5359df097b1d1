"""New-arrival slots: the head of a list never moves, the slots go to the best-scoring items without
interactions, items of the history are never placed."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from domainfm_recommendation.evaluation import rank_users
from domainfm_recommendation.fresh import fresh_order, rank_scores, with_fresh_slots

SCORES = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
FRESH = np.array([False, False, False, False, False, False, False, True, True, True])


def test_slots_take_the_best_fresh_items_from_the_position_on() -> None:
    order = fresh_order(SCORES, FRESH, slots=2, position=3)
    assert order.tolist() == [0, 1, 7, 8, 2, 3, 4, 5, 6, 9]


def test_a_fresh_item_already_above_the_position_keeps_its_place() -> None:
    fresh = FRESH.copy()
    fresh[1] = True
    assert fresh_order(SCORES, fresh, slots=2, position=3).tolist() == [0, 1, 7, 8, 2, 3, 4, 5, 6, 9]


def test_history_items_are_never_placed() -> None:
    scores = SCORES.copy()
    scores[7] = -np.inf
    assert fresh_order(scores, FRESH, slots=2, position=3).tolist()[:4] == [0, 1, 8, 9]


def test_no_slots_is_the_plain_ranking_with_ties_by_position() -> None:
    scores = np.array([1.0, 2.0, 2.0, 0.0])
    assert fresh_order(scores, np.ones(4, bool), slots=0, position=1).tolist() == [1, 2, 0, 3]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=3, max_size=30), st.integers(0, 4), st.integers(1, 10), st.data())
def test_fresh_order_is_a_permutation_with_an_unmoved_head(scores: list[float], slots: int, position: int,
                                                           data: st.DataObject) -> None:
    values = np.asarray(scores)
    fresh = np.asarray(data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values))))
    order = fresh_order(values, fresh, slots, position)
    plain = fresh_order(values, fresh, 0, position)
    assert sorted(order.tolist()) == list(range(len(values)))
    assert order[: position - 1].tolist() == plain[: position - 1].tolist()
    placed = order[position - 1 : position - 1 + slots]
    expected = [i for i in plain[position - 1 :] if fresh[i]][:slots]
    assert placed[: len(expected)].tolist() == expected


def test_the_slot_scorer_ranks_like_the_list_shown() -> None:
    fresh = FRESH
    scorer = with_fresh_slots(lambda users, hists: np.tile(SCORES, (len(hists), 1)), fresh, slots=2, position=3)
    hist = [np.array([0]), np.array([5])]
    ranks = rank_users(scorer, ["a", "b"], hist, np.array([7, 8]), len(SCORES)).ranks
    assert ranks.tolist() == [3, 4]  # a: 0 is history, 1 and 2 the head, then 7; b: 0 and 1 the head, 7, 8
    assert rank_scores(np.array([2, 0, 1])).tolist() == [2.0, 1.0, 3.0]
