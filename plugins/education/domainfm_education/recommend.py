"""What to study next: skills ranked by expected learning gain, in prerequisite order.

``gain(s) = (1 - mastery_s) * learn_rate_s * readiness_s`` where

- ``mastery_s`` is the model's probability of a correct next answer on ``s``;
- ``learn_rate_s`` is how often a wrong answer on ``s`` is followed by a right one at the next attempt on
  ``s`` in the training data (a BKT-style learning rate, Beta(1, 1)-smoothed);
- ``readiness_s = prod_p min(1, mastery_p / tau)`` over the prerequisites ``p`` of ``s``: a skill whose
  prerequisites are not mastered (``tau`` = 0.6) is pushed down and the reason names them.

Prerequisites come from a catalogue the user supplies (CSV ``skill, name, prerequisites`` with ``;``
between prerequisites; unknown names and cycles are errors), or are inferred from the training sequences:
``a`` is a prerequisite of ``b`` when at least ``min_students`` students practised both and ``a`` came
first for at least ``min_share`` of them (at most 3 per skill, strongest first; the graph is acyclic by
construction because the share threshold is above one half).

Evaluation against held-out future answers (:func:`evaluate_recommendations`): each test student's
history is cut at 70%; the skills they practise in the remaining 30% are ranked by the recommender, and
the ranking is scored by NDCG@3 with the student's future error rate on each skill as relevance, against
a non-personal baseline that ranks by the global error rate of the skill in the training data, and
against the model's mastery alone (lowest first; it separates the quality of the mastery estimates from
the gain formula, which also weighs learnability and prerequisites).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.errors import DataError
from domainfm.graphs import check_acyclic

TAU = 0.6


@dataclass
class SkillGraph:
    """Skill names, prerequisites (skill index -> prerequisite indices), learning rates, global error rates."""

    names: list[str]
    prerequisites: dict[int, list[int]] = field(default_factory=dict)
    learn_rate: np.ndarray | None = None
    error_rate: np.ndarray | None = None
    source: str = "inferred"

    def as_json(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "prerequisites": {str(k): v for k, v in self.prerequisites.items()},
            "learn_rate": None if self.learn_rate is None else self.learn_rate.tolist(),
            "error_rate": None if self.error_rate is None else self.error_rate.tolist(),
            "source": self.source,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SkillGraph:
        return cls(
            names=list(obj["names"]),
            prerequisites={int(k): [int(x) for x in v] for k, v in obj.get("prerequisites", {}).items()},
            learn_rate=None if obj.get("learn_rate") is None else np.asarray(obj["learn_rate"], dtype=float),
            error_rate=None if obj.get("error_rate") is None else np.asarray(obj["error_rate"], dtype=float),
            source=obj.get("source", "inferred"),
        )

    @classmethod
    def from_sequences(
        cls, sequences: Sequence[tuple[Sequence[int], Sequence[int]]], n_skills: int, names: Sequence[str],
        min_students: int = 30, min_share: float = 0.8, max_prereqs: int = 3,
    ) -> SkillGraph:
        """Learning rates, error rates and inferred prerequisites from training sequences."""
        wrong_then = np.zeros(n_skills)
        wrong_then_right = np.zeros(n_skills)
        errors, attempts = np.zeros(n_skills), np.zeros(n_skills)
        before = np.zeros((n_skills, n_skills))
        both = np.zeros((n_skills, n_skills))
        for skills, correct in sequences:
            last: dict[int, int] = {}
            first_seen: dict[int, int] = {}
            for t, (s, c) in enumerate(zip(skills, correct, strict=True)):
                attempts[s] += 1
                errors[s] += 1 - c
                if last.get(s) == 0:
                    wrong_then[s] += 1
                    wrong_then_right[s] += c
                last[s] = c
                first_seen.setdefault(s, t)
            order = sorted(first_seen, key=first_seen.__getitem__)
            idx = np.asarray(order, dtype=int)
            if len(idx) > 1:
                both[np.ix_(idx, idx)] += 1
                for pos, a in enumerate(order):
                    before[a, idx[pos + 1 :]] += 1
        prereqs: dict[int, list[int]] = {}
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(both > 0, before / np.maximum(both, 1), 0.0)
        for b in range(n_skills):
            cands = [a for a in range(n_skills) if a != b and both[a, b] >= min_students and share[a, b] >= min_share]
            cands.sort(key=lambda a: (-share[a, b], -both[a, b]))
            if cands:
                prereqs[b] = cands[:max_prereqs]
        return cls(
            names=list(names),
            prerequisites=prereqs,
            learn_rate=(wrong_then_right + 1) / (wrong_then + 2),
            error_rate=(errors + 1) / (attempts + 2),
            source="inferred from training sequences",
        )

    def with_catalogue(self, path: str | Path) -> SkillGraph:
        """Replace the prerequisites by a user catalogue (CSV ``skill, name, prerequisites``)."""
        from domainfm.data import read_table

        rows = read_table(path, required=("skill", "prerequisites"))
        index = {name: i for i, name in enumerate(self.names)}
        prereqs: dict[int, list[int]] = {}
        for row in rows:
            where = f"{path}:{row['_line']}"
            skill = str(row["skill"]).strip()
            if skill not in index:
                raise DataError(f"{where}: field 'skill': {skill!r} is not a skill of the model")
            reqs = [p.strip() for p in str(row.get("prerequisites") or "").split(";") if p.strip()]
            for p in reqs:
                if p not in index:
                    raise DataError(f"{where}: field 'prerequisites': {p!r} is not a skill of the model")
            prereqs[index[skill]] = [index[p] for p in reqs]
        check_acyclic(prereqs, self.names, str(path))
        return SkillGraph(self.names, prereqs, self.learn_rate, self.error_rate, source=str(path))


def rank_skills(mastery: np.ndarray, graph: SkillGraph, candidates: Sequence[int] | None = None,
                top: int | None = None) -> list[tuple[int, float, str]]:
    """``(skill, expected gain, reason)`` best first, over ``candidates`` (default: every skill)."""
    n = len(mastery)
    learn = graph.learn_rate if graph.learn_rate is not None else np.full(n, 0.5)
    pool = list(range(n)) if candidates is None else list(candidates)
    out = []
    for s in pool:
        reqs = graph.prerequisites.get(s, [])
        readiness = float(np.prod([min(1.0, mastery[p] / TAU) for p in reqs])) if reqs else 1.0
        gain = float((1.0 - mastery[s]) * learn[s] * readiness)
        unmet = [graph.names[p] for p in reqs if mastery[p] < TAU]
        reason = f"mastery {mastery[s]:.2f}, learn rate {learn[s]:.2f}"
        reason += f"; study first: {', '.join(unmet)}" if unmet else ("; prerequisites met" if reqs else "")
        out.append((s, gain, reason))
    out.sort(key=lambda x: (-x[1], x[0]))
    return out[:top] if top else out


def evaluate_recommendations(model: Any, graph: SkillGraph, sequences: Sequence[tuple[Sequence[int], Sequence[int]]],
                             device: str, max_len: int = 200, cut: float = 0.7, k: int = 3,
                             min_length: int = 20, max_students: int | None = 300, seed: int = 0) -> dict[str, float]:
    """NDCG@k of the recommender vs a global-difficulty baseline on held-out future answers.

    At most ``max_students`` students (a seeded sample) are checked: each costs one model pass per
    candidate skill."""
    from domainfm.metrics import ndcg_at_k
    from domainfm_education.kt_predictor import mastery_vector

    ours, base, weakest, checked = [], [], [], 0
    future_auc_p, future_auc_y = [], []
    error_rate = graph.error_rate if graph.error_rate is not None else np.zeros(len(graph.names))
    eligible = [i for i, (sk, _) in enumerate(sequences) if len(sk) >= min_length]
    if max_students is not None and len(eligible) > max_students:
        eligible = sorted(np.random.default_rng(seed).choice(eligible, max_students, replace=False).tolist())
    for i in eligible:
        skills, correct = sequences[i]
        split = int(len(skills) * cut)
        hist_s, hist_c = list(skills[:split]), list(correct[:split])
        fut: dict[int, list[int]] = {}
        for s, c in zip(skills[split:], correct[split:], strict=True):
            fut.setdefault(int(s), []).append(int(c))
        if len(fut) < 2:
            continue
        relevance = {s: 1.0 - float(np.mean(cs)) for s, cs in fut.items()}
        if not any(relevance.values()):
            continue
        needed = set(fut) | {p for s in fut for p in graph.prerequisites.get(s, [])}
        mastery = mastery_vector(model, hist_s[-max_len:], hist_c[-max_len:], device, candidates=sorted(needed))
        ranked = [s for s, _, _ in rank_skills(mastery, graph, candidates=list(fut))]
        baseline = sorted(fut, key=lambda s: (-error_rate[s], s))
        ours.append(ndcg_at_k(ranked, relevance, k))
        weakest.append(ndcg_at_k(sorted(fut, key=lambda s: (mastery[s], s)), relevance, k))
        base.append(ndcg_at_k(baseline, relevance, k))
        for s, cs in fut.items():
            future_auc_p.append(float(mastery[s]))
            future_auc_y.append(int(cs[0]))
        checked += 1
    from domainfm.engine.label_evaluation import binary_auc as auc

    return {
        f"ndcg_at_{k}": float(np.mean(ours)) if ours else float("nan"),
        f"baseline_global_difficulty_ndcg_at_{k}": float(np.mean(base)) if base else float("nan"),
        f"lowest_mastery_first_ndcg_at_{k}": float(np.mean(weakest)) if weakest else float("nan"),
        "future_first_attempt_auc": auc(np.asarray(future_auc_y), np.asarray(future_auc_p)) if future_auc_y else float("nan"),
        "students_checked": float(checked),
    }
