"""Training the sequential recommender on the pinned split (shared by the plugin and the benchmark).

1. The text/kNN mix behind reasons and "more like this" is chosen on validation (quick grid) and refitted on
   train + validation, as for the ``text_mix`` kind.
2. The network trains on the train histories with the validation split deciding the epoch count (early stop);
   its validation rankings fit the confidence calibration.
3. The network is refitted on train + validation for that many epochs and served.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from domainfm_recommendation.evaluation import accuracy_metrics
from domainfm_recommendation.model import Calibration
from domainfm_recommendation.pipeline import (
    WEIGHT_GRID_QUICK, IndexedSplit, evaluate_scorer, fit_model, select_weights,
)
from domainfm_recommendation.seqmodel import SequentialRecommender
from domainfm_recommendation.seqnet import SeqConfig
from domainfm_recommendation.seqtrain import FitLog, SeqScorer, fit_seqnet


@dataclass
class SeqReport:
    config: SeqConfig
    validation: dict[str, float]
    selection: FitLog
    final: FitLog
    mix_weights: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


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
    deadline: float | None = None, log_every: Any = None,
) -> tuple[SequentialRecommender, SeqReport]:
    """Choose the epoch count on validation, calibrate on validation, refit on train + validation."""
    started = time.perf_counter()
    mix = select_weights(ix, embeddings, WEIGHT_GRID_QUICK)
    text_model = fit_model(ix, embeddings, mix.weights, "test", base_model)
    net, warm, selection = select_epochs(ix, embeddings, cfg, deadline, log_every)
    val_result = evaluate_scorer(SeqScorer(net, embeddings, warm), ix, "validation")
    hist_len = np.asarray([len(h) for h in ix.hist("validation")], dtype=float)
    calibration = Calibration.fit(val_result.top_scores, hist_len, val_result.hit10)
    final_net, final_warm, final = fit_seqnet(embeddings, ix.full_hist, cfg, epochs=max(1, selection.best_epoch))
    model = SequentialRecommender.from_parts(text_model, final_net, final_warm)
    model.calibration = calibration
    weights = {k: (v if v != float("inf") else None) for k, v in mix.weights.__dict__.items()}
    report = SeqReport(cfg, accuracy_metrics(val_result), selection, final, weights, time.perf_counter() - started)
    return model, report
