"""Turn a test ranking run into the platform's :class:`~domainfm.types.Evaluation`.

Per evaluated user: ``quality`` = NDCG@10 of the held-out item, ``confidence`` = the calibrated
probability (fitted on validation users) that the list holds the held-out item. Groups: the user's
activity tercile and whether the held-out item is a long-tail item. ``extra`` carries what the benefit
terms need: hit@10 of the model and of most-popular, long-tail share, intra-list diversity and the
similarity of the list to the user's own profile (filter-bubble risk).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from domainfm.types import Curve, Evaluation, Outcomes

from domainfm_recommendation.evaluation import RankingResult, all_metrics, long_tail_mask
from domainfm_recommendation.model import TextRecommender
from domainfm_recommendation.pipeline import IndexedSplit, evaluate_scorer, run_baselines, test_popularity


def activity_groups(lengths: np.ndarray) -> list[str]:
    """Terciles of history length among evaluated users (light / medium / heavy)."""
    if lengths.size == 0:
        return []
    lo, hi = np.quantile(lengths, [1 / 3, 2 / 3])
    return ["light" if n <= lo else "medium" if n <= hi else "heavy" for n in lengths]


def list_diversity(model: TextRecommender, top: np.ndarray) -> np.ndarray:
    """1 − mean pairwise cosine of the item embeddings in each list (items without text skipped)."""
    out = np.zeros(top.shape[0])
    for r, row in enumerate(top):
        emb = model.embeddings[row]
        emb = emb[np.linalg.norm(emb, axis=1) > 0]
        if emb.shape[0] < 2:
            continue
        sims = emb @ emb.T
        n = emb.shape[0]
        out[r] = 1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1))
    return np.clip(out, 0.0, 1.0)


def profile_similarity(model: TextRecommender, histories: list[np.ndarray], top: np.ndarray) -> np.ndarray:
    """Mean cosine between each user's text profile and the recommended items (high = filter bubble)."""
    prof, _ = model.profiles(histories)
    sims = np.einsum("ud,ukd->uk", prof, model.embeddings[top])
    return np.clip(sims.mean(axis=1), 0.0, 1.0)


def build_evaluation(
    model: TextRecommender,
    ix: IndexedSplit,
    *,
    baselines: str = "quick",
    device: str = "cpu",
    seconds_started: float | None = None,
) -> tuple[Evaluation, RankingResult, dict[str, Any]]:
    """Evaluate ``model`` (fitted on train + validation) on the test split, with baselines."""
    import time

    started = time.perf_counter() if seconds_started is None else seconds_started
    popularity = test_popularity(ix)
    result = evaluate_scorer(model.score, ix, "test")
    metrics = all_metrics(result, popularity, len(ix.users))
    hist = ix.hist("test")
    lengths = np.asarray([len(h) for h in hist], dtype=float)
    confidence = model.confidence(result.top_scores[:, :10], lengths)
    tail = long_tail_mask(popularity)
    base = run_baselines(ix, quick=baselines != "full") if baselines != "none" else {}
    pop_hit = base["most_popular"]["result"].hit10 if "most_popular" in base else np.zeros(len(ix.eval_users))
    top10 = result.top[:, :10]
    outcomes = Outcomes(
        ids=list(ix.eval_users),
        confidence=[float(c) for c in np.clip(confidence, 0.0, 1.0)],
        quality=[float(q) for q in result.ndcg10],
        groups={
            "user_activity": activity_groups(lengths),
            "target_popularity": ["long_tail" if tail[t] else "head" for t in ix.test_targets],
        },
        extra={
            "hit_at_10": result.hit10.tolist(),
            "popular_hit_at_10": [float(x) for x in pop_hit],
            "long_tail_share": tail[top10].mean(axis=1).tolist(),
            "diversity": list_diversity(model, top10).tolist(),
            "profile_similarity": profile_similarity(model, hist, top10).tolist(),
            "top10": [" ".join(ix.item_ids[i] for i in row) for row in top10],
        },
    )
    from domainfm.engine.calibration import expected_calibration_error, risk_coverage_curve

    conf = np.clip(confidence, 0.0, 1.0)
    metrics["confidence_ece"] = expected_calibration_error(np.stack([1 - conf, conf], axis=1), result.hit10.astype(int))
    rc = risk_coverage_curve(conf, result.ndcg10)
    curves = {"coverage_ndcg": Curve(x=rc["coverage"], y=rc["accuracy"], x_label="share of users served (most confident first)",
                                     y_label="mean NDCG@10", thresholds=rc["threshold"])}
    table = {name: {k: v for k, v in b["metrics"].items()} for name, b in base.items()}
    best = max(table.items(), key=lambda kv: kv[1]["ndcg_at_10"]) if table else None
    if best is not None:
        metrics["best_baseline_ndcg_at_10"] = best[1]["ndcg_at_10"]
        metrics["relative_gain_over_best_baseline"] = (
            metrics["ndcg_at_10"] / best[1]["ndcg_at_10"] - 1.0 if best[1]["ndcg_at_10"] > 0 else 0.0
        )
    evaluation = Evaluation(
        domain="recommendation",
        split="test",
        metrics=metrics,
        key_metric="ndcg_at_10",
        n_items=len(ix.eval_users),
        outcomes=outcomes,
        baselines=table,
        curves=curves,
        device=device,
        seconds=time.perf_counter() - started,
        extra={
            "protocol": "temporal leave-one-out per user, full ranking over all items, seen items excluded",
            "best_baseline": best[0] if best else None,
            "baseline_params": {name: b["params"] for name, b in base.items()},
            "n_catalogue_items": ix.n_items,
            "n_users": len(ix.users),
        },
    )
    return evaluation, result, base
