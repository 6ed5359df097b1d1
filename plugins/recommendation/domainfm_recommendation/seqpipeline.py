"""Training the sequential recommender on the pinned split (shared by the plugin and the benchmark).

1. The text/kNN mix behind reasons, "more like this" and the fused ranking is chosen on validation (the full
   grid, the quick one with ``quick``) and refitted on train + validation, as for the ``text_mix`` kind.
2. The network trains on the train histories with the validation split deciding the epoch count (early stop).
3. The weight of the mix in the ranking score (:func:`~domainfm_recommendation.seqmodel.fuse`) is chosen on
   validation from :data:`MIX_WEIGHTS` (the network trained on train, the mix fitted on train); the fused
   validation rankings fit the confidence calibration.
4. The network is refitted on train + validation for the chosen epoch count and served with that weight.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from domainfm_recommendation.evaluation import RankingResult, accuracy_metrics
from domainfm_recommendation.model import Calibration, TextRecommender
from domainfm_recommendation.pipeline import (
    WEIGHT_GRID_FULL, WEIGHT_GRID_QUICK, IndexedSplit, evaluate_scorer, fit_model, select_weights,
)
from domainfm_recommendation.seqmodel import SequentialRecommender, fuse
from domainfm_recommendation.seqnet import SeqConfig
from domainfm_recommendation.seqtrain import FitLog, SeqScorer, fit_seqnet

MIX_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass
class SeqReport:
    config: SeqConfig
    validation: dict[str, float]
    selection: FitLog
    final: FitLog
    mix_weights: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    mix_weight: float = 0.0
    validation_by_mix_weight: dict[str, float] = field(default_factory=dict)


def fused_scorer(net_scorer: Any, mix_model: TextRecommender, mix_weight: float) -> Any:
    """``scorer(users, histories)`` ranking by :func:`~domainfm_recommendation.seqmodel.fuse`."""
    if mix_weight == 0.0:
        return net_scorer

    def score(users: Any, histories: Any) -> np.ndarray:
        return fuse(np.asarray(net_scorer(users, histories), dtype=np.float64), mix_model.score(users, histories),
                    mix_weight)

    return score


def select_mix_weight(ix: IndexedSplit, net_scorer: Any, mix_model: TextRecommender,
                      weights: tuple[float, ...] = MIX_WEIGHTS) -> tuple[float, dict[str, float], RankingResult]:
    """The weight with the best validation NDCG@10 (ties: the smaller weight), every weight's NDCG@10, and the
    chosen weight's validation rankings. ``net_scorer`` and ``mix_model`` must be fitted on train only."""
    users, histories = ix.eval_users, ix.hist("validation")
    row = {user: r for r, user in enumerate(users)}
    net = np.asarray(net_scorer(users, histories), dtype=np.float64)  # both score matrices once, every weight reuses
    mix = mix_model.score(users, histories)
    by_weight: dict[str, float] = {}
    best: tuple[float, float, RankingResult] | None = None
    for weight in weights:
        scores = net if weight == 0.0 else fuse(net, mix, weight)
        result = evaluate_scorer(lambda us, _hs, scores=scores: scores[[row[u] for u in us]], ix, "validation")
        ndcg = accuracy_metrics(result)["ndcg_at_10"]
        by_weight[str(weight)] = ndcg
        if best is None or ndcg > best[0] + 1e-12:
            best = (ndcg, weight, result)
    assert best is not None
    return best[1], by_weight, best[2]


def validation_ndcg(ix: IndexedSplit, embeddings: np.ndarray) -> Any:
    """``evaluate(net, warm)`` for :func:`fit_seqnet`: validation NDCG@10 with the plugin's ranking code."""

    def evaluate(net: Any, warm: np.ndarray) -> float:
        return accuracy_metrics(evaluate_scorer(SeqScorer(net, embeddings, warm), ix, "validation"))["ndcg_at_10"]

    return evaluate


def select_epochs(ix: IndexedSplit, embeddings: np.ndarray, cfg: SeqConfig,
                  deadline: float | None = None, log_every: Any = None) -> tuple[Any, np.ndarray, FitLog]:
    """Train on the train histories, keep the best validation epoch."""
    return fit_seqnet(embeddings, ix.train_hist, cfg, evaluate=validation_ndcg(ix, embeddings),
                      deadline=deadline, log_every=log_every)


def train_sequential(
    ix: IndexedSplit, embeddings: np.ndarray, base_model: str, cfg: SeqConfig,
    deadline: float | None = None, log_every: Any = None, quick: bool = False,
) -> tuple[SequentialRecommender, SeqReport]:
    """Choose the epoch count and the mix weight on validation, calibrate on validation, refit on train +
    validation."""
    started = time.perf_counter()
    mix = select_weights(ix, embeddings, WEIGHT_GRID_QUICK if quick else WEIGHT_GRID_FULL)
    net, warm, selection = select_epochs(ix, embeddings, cfg, deadline, log_every)
    val_mix = fit_model(ix, embeddings, mix.weights, "validation", base_model)
    mix_weight, by_weight, val_result = select_mix_weight(ix, SeqScorer(net, embeddings, warm), val_mix)
    hist_len = np.asarray([len(h) for h in ix.hist("validation")], dtype=float)
    calibration = Calibration.fit(val_result.top_scores, hist_len, val_result.hit10)
    text_model = fit_model(ix, embeddings, mix.weights, "test", base_model)
    final_net, final_warm, final = fit_seqnet(embeddings, ix.full_hist, cfg, epochs=max(1, selection.best_epoch))
    model = SequentialRecommender.from_parts(text_model, final_net, final_warm, mix_weight)
    model.calibration = calibration
    weights = {k: (v if v != float("inf") else None) for k, v in mix.weights.__dict__.items()}
    report = SeqReport(cfg, accuracy_metrics(val_result), selection, final, weights, time.perf_counter() - started,
                       mix_weight, by_weight)
    return model, report
