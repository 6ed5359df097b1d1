"""Training and evaluation on the pinned split: embed items, choose the mix on validation, refit, test.

Shared by the plugin hooks and the benchmark so both run exactly the same protocol.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from domainfm_recommendation.evaluation import RankingResult, accuracy_metrics, all_metrics, rank_of, rank_users
from domainfm_recommendation.model import Calibration, MixWeights, TextRecommender
from domainfm_recommendation.protocol import Split
from domainfm_recommendation.readers import Interaction, ItemRecord


@dataclass
class IndexedSplit:
    """The split in item positions: histories (oldest first) for validation and for test."""

    item_ids: list[str]
    titles: list[str]
    creators: list[str]
    texts: list[str]
    users: list[str]  # every user, in a fixed order
    train_hist: list[np.ndarray]  # history for the validation run (train only)
    full_hist: list[np.ndarray]  # history for the test run (train + validation)
    eval_users: list[str]
    eval_rows: np.ndarray  # rows of eval_users in ``users``
    val_targets: np.ndarray
    test_targets: np.ndarray

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def hist(self, which: str, rows: np.ndarray | None = None) -> list[np.ndarray]:
        source = self.train_hist if which == "validation" else self.full_hist
        rows = self.eval_rows if rows is None else rows
        return [source[r] for r in rows]

    def targets(self, which: str) -> np.ndarray:
        return self.val_targets if which == "validation" else self.test_targets


def index_split(split: Split) -> IndexedSplit:
    """Map ids to positions; the catalogue order is the item table order."""
    items: list[ItemRecord] = split.items
    pos = {it.item: i for i, it in enumerate(items)}
    per_user: dict[str, list[int]] = defaultdict(list)
    for ev in split.train:
        per_user[ev.user].append(pos[ev.item])
    val = {ev.user: ev for ev in split.validation}
    test = {ev.user: ev for ev in split.test}
    users = sorted(set(per_user) | set(val) | set(test))
    train_hist = [np.asarray(per_user.get(u, []), dtype=np.int64) for u in users]
    full_hist = [
        np.append(h, pos[val[u].item]).astype(np.int64) if u in val else h for u, h in zip(users, train_hist, strict=True)
    ]
    eval_users = [u for u in users if u in test]
    row = {u: i for i, u in enumerate(users)}
    return IndexedSplit(
        [it.item for it in items], [it.title for it in items], [it.creator for it in items], [it.text for it in items],
        users, train_hist, full_hist, eval_users, np.asarray([row[u] for u in eval_users], dtype=np.int64),
        np.asarray([pos[val[u].item] for u in eval_users], dtype=np.int64),
        np.asarray([pos[test[u].item] for u in eval_users], dtype=np.int64),
    )


def embed_items(texts: list[str], encoder: Any, batch_size: int = 64) -> np.ndarray:
    """Embed item texts with a ``TextEncoder``-like object; items without text get a zero vector."""
    has_text = [i for i, t in enumerate(texts) if t.strip()]
    vectors = encoder.encode([texts[i] for i in has_text], batch_size=batch_size)
    out = np.zeros((len(texts), int(vectors.shape[1]) if vectors.size else encoder.dim), dtype=np.float32)
    if has_text:
        out[has_text] = vectors
    return out


# The text weight is never 0: a new item has only its text, so a zero text weight would make cold items
# unrecommendable (the no-text ablation is measured separately in the benchmark).
WEIGHT_GRID_FULL: dict[str, tuple[Any, ...]] = {
    "half_life": (1.0, 2.0, 3.0, 5.0, 10.0, float("inf")),
    "neighbours": (50, 200),
    "text": (0.1, 0.25, 0.5, 1.0, 2.0),
    "collab": (0.0, 1.0),
    "popularity": (0.0, 0.05, 0.1, 0.25),
}
WEIGHT_GRID_QUICK: dict[str, tuple[Any, ...]] = {
    "half_life": (3.0, float("inf")),
    "neighbours": (100,),
    "text": (0.25, 1.0),
    "collab": (0.0, 1.0),
    "popularity": (0.0, 0.1),
}


@dataclass
class TrainReport:
    weights: MixWeights
    validation: dict[str, float]
    grid: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def select_weights(ix: IndexedSplit, embeddings: np.ndarray, grid: dict[str, tuple[Any, ...]]) -> TrainReport:
    """Pick the mix with the best validation NDCG@10 (model fitted on train only)."""
    started = time.perf_counter()
    hist = ix.hist("validation")
    targets = ix.targets("validation")
    rows: list[dict[str, Any]] = []
    best: tuple[float, MixWeights] | None = None
    fitted: dict[Any, TextRecommender] = {}
    for half_life, neighbours in itertools.product(grid["half_life"], grid["neighbours"]):
        if neighbours not in fitted:  # the item-item similarity depends on neighbours only
            fitted[neighbours] = TextRecommender.fit(ix.item_ids, ix.titles, embeddings, ix.users, ix.train_hist,
                                                     MixWeights(neighbours=neighbours))
        model = fitted[neighbours]
        model.weights = MixWeights(half_life=half_life, neighbours=neighbours)
        text, collab, pop = model.components(hist)
        for w_text, w_collab, w_pop in itertools.product(grid["text"], grid["collab"], grid["popularity"]):
            scores = (w_text * text + w_collab * collab + w_pop * pop[None, :]).astype(np.float64)
            for r, h in enumerate(hist):
                scores[r, h] = -np.inf
            ranks = rank_of(scores, targets)
            ndcg = float(np.mean(np.where(ranks <= 10, 1.0 / np.log2(ranks + 1.0), 0.0)))
            weights = MixWeights(w_text, w_collab, w_pop, half_life, neighbours)
            rows.append({"ndcg_at_10": ndcg, **weights.__dict__})
            if best is None or ndcg > best[0] + 1e-12:
                best = (ndcg, weights)
    assert best is not None
    return TrainReport(best[1], {"ndcg_at_10": best[0]}, rows, time.perf_counter() - started)


def fit_model(
    ix: IndexedSplit, embeddings: np.ndarray, weights: MixWeights, which: str, base_model: str
) -> TextRecommender:
    """Fit on the histories of ``which`` run: train only (validation) or train + validation (test)."""
    source = ix.train_hist if which == "validation" else ix.full_hist
    return TextRecommender.fit(ix.item_ids, ix.titles, embeddings, ix.users, source, weights,
                               base_model=base_model, creators=ix.creators)


def evaluate_scorer(scorer: Any, ix: IndexedSplit, which: str) -> RankingResult:
    return rank_users(scorer, ix.eval_users, ix.hist(which), ix.targets(which), ix.n_items)


def train_recommender(
    ix: IndexedSplit, embeddings: np.ndarray, base_model: str, quick: bool = False
) -> tuple[TextRecommender, TrainReport]:
    """Choose the mix on validation, calibrate confidence on validation, refit on train + validation."""
    report = select_weights(ix, embeddings, WEIGHT_GRID_QUICK if quick else WEIGHT_GRID_FULL)
    val_model = fit_model(ix, embeddings, report.weights, "validation", base_model)
    val_result = evaluate_scorer(val_model.score, ix, "validation")
    hist_len = np.asarray([len(h) for h in ix.hist("validation")], dtype=float)
    calibration = Calibration.fit(val_result.top_scores, hist_len, val_result.hit10)
    report.validation = accuracy_metrics(val_result)
    final = fit_model(ix, embeddings, report.weights, "test", base_model)
    final.calibration = calibration
    return final, report


def run_baselines(ix: IndexedSplit, quick: bool = False) -> dict[str, dict[str, Any]]:
    """Each baseline family: best configuration on validation, refit on train + validation, tested."""
    from domainfm_recommendation.baselines import baseline_grid, describe

    popularity = _popularity(ix)
    out: dict[str, dict[str, Any]] = {}
    for family, factories in baseline_grid(quick).items():
        best: tuple[float, Any] | None = None
        started = time.perf_counter()
        for make in factories:
            model = make().fit(ix.users, ix.train_hist, ix.n_items)
            ndcg = accuracy_metrics(evaluate_scorer(model.score, ix, "validation"))["ndcg_at_10"]
            if best is None or ndcg > best[0] + 1e-12:
                best = (ndcg, make)
        assert best is not None
        fit_started = time.perf_counter()
        final = best[1]().fit(ix.users, ix.full_hist, ix.n_items)
        fit_seconds = time.perf_counter() - fit_started
        result = evaluate_scorer(final.score, ix, "test")
        out[family] = {
            "metrics": all_metrics(result, popularity, len(ix.users)),
            "validation_ndcg_at_10": best[0],
            "params": describe(final),
            "fit_seconds": fit_seconds,
            "selection_seconds": time.perf_counter() - started,
            "result": result,
            "device": getattr(final, "device", "cpu"),
        }
    return out


def _popularity(ix: IndexedSplit) -> np.ndarray:
    from domainfm_recommendation.baselines import popularity_counts

    return popularity_counts(ix.full_hist, ix.n_items)


def test_popularity(ix: IndexedSplit) -> np.ndarray:
    """Item popularity in the test run's training data (train + validation): novelty and long tail."""
    return _popularity(ix)


def events_by_user(events: list[Interaction]) -> dict[str, list[Interaction]]:
    out: dict[str, list[Interaction]] = defaultdict(list)
    for ev in events:
        out[ev.user].append(ev)
    return out
