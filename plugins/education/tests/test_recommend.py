"""Study-next recommendations: prerequisites (inferred or from a catalogue), gains, reasons."""

from __future__ import annotations

import numpy as np
import pytest

from domainfm.errors import DataError
from domainfm_education.recommend import SkillGraph, rank_skills


def _graph() -> SkillGraph:
    # every student does skill 0 before skill 1; skill 2 in random order
    rng = np.random.default_rng(0)
    seqs = []
    for _ in range(50):
        skills = [0, 0, 1, 1] if rng.random() < 0.5 else [2, 0, 0, 1, 1]
        seqs.append((skills, [0, 1, 0, 1][: len(skills)] + [1] * (len(skills) - 4)))
    return SkillGraph.from_sequences(seqs, 3, ["a", "b", "c"], min_students=10)


def test_prerequisites_are_inferred_from_order() -> None:
    graph = _graph()
    assert 0 in graph.prerequisites.get(1, [])
    assert 1 not in graph.prerequisites.get(0, [])
    assert graph.learn_rate is not None and np.all((graph.learn_rate > 0) & (graph.learn_rate < 1))


def test_unmet_prerequisites_push_a_skill_down_and_are_named() -> None:
    graph = SkillGraph(["a", "b"], {1: [0]}, learn_rate=np.array([0.5, 0.5]))
    ranked = rank_skills(np.array([0.2, 0.1]), graph)
    assert [s for s, _, _ in ranked] == [0, 1]
    assert "study first: a" in ranked[1][2]
    ready = rank_skills(np.array([0.9, 0.1]), graph)
    assert ready[0][0] == 1 and "prerequisites met" in ready[0][2]


def test_catalogue_errors(write) -> None:  # type: ignore[no-untyped-def]
    graph = SkillGraph(["a", "b", "c"])
    ok = graph.with_catalogue(write("c.csv", "skill,name,prerequisites\nb,B,a\nc,C,a;b\n"))
    assert ok.prerequisites == {1: [0], 2: [0, 1]}
    with pytest.raises(DataError, match="cycle"):
        graph.with_catalogue(write("d.csv", "skill,name,prerequisites\na,A,b\nb,B,a\n"))
    with pytest.raises(DataError, match=r"e\.csv:2: field 'prerequisites': 'z'"):
        graph.with_catalogue(write("e.csv", "skill,name,prerequisites\na,A,z\n"))


def test_graph_round_trips_through_json() -> None:
    graph = _graph()
    again = SkillGraph.from_json(graph.as_json())
    assert again.prerequisites == graph.prerequisites and np.allclose(again.learn_rate, graph.learn_rate)
