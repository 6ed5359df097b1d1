"""Full-ranking evaluation for any ranking domain: HR@10, NDCG@10, Recall@20, MRR and beyond-accuracy measures.

Every scorer (a model or a baseline) is a callable ``scorer(user_ids, histories) -> scores`` with one row per
user over the whole catalogue (histories: arrays of item positions, oldest first). Items in the user's history
are excluded (score −inf), the held-out item is ranked against all other items, and ties are broken by item
position so that the rank and the top-k list always agree. With one held-out item per user, Recall@20 equals
HR@20::

    result = rank_users(model.score, users, histories, held_out_positions, n_items)
    metrics = all_metrics(result, popularity_counts(histories, n_items), n_users)
    # {"hr_at_10", "ndcg_at_10", "recall_at_20", "mrr", "coverage", "gini", "novelty", "long_tail_share"}

The recommendation plugin's benchmark and its RecBole comparison score every model through these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "LIST_K", "TOP_K", "RankingResult", "Scorer", "accuracy_metrics", "all_metrics", "beyond_accuracy", "gini",
    "long_tail_mask", "rank_of", "rank_users", "top_k_with_ties",
]

Scorer = Callable[[Sequence[str], Sequence[np.ndarray]], np.ndarray]
TOP_K = 10
LIST_K = 20


@dataclass
class RankingResult:
    """Per-user outcome of one full-ranking run."""

    users: list[str]
    ranks: np.ndarray  # 1-based rank of the held-out item
    top: np.ndarray  # (users, LIST_K) item positions, best first
    top_scores: np.ndarray  # (users, LIST_K)

    @property
    def ndcg10(self) -> np.ndarray:
        return np.where(self.ranks <= TOP_K, 1.0 / np.log2(self.ranks + 1.0), 0.0)

    @property
    def hit10(self) -> np.ndarray:
        return (self.ranks <= TOP_K).astype(float)


def top_k_with_ties(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best entries per row, ordered by (−score, position): exact under ties."""
    n = scores.shape[1]
    k = min(k, n)
    out = np.empty((scores.shape[0], k), dtype=np.int64)
    for r in range(scores.shape[0]):
        row = scores[r]
        kth = np.partition(row, n - k)[n - k]
        cand = np.flatnonzero(row >= kth)
        order = np.lexsort((cand, -row[cand]))
        out[r] = cand[order[:k]]
    return out


def rank_of(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of ``targets[r]`` in row ``r`` with ties broken by position (lower first)."""
    rows = np.arange(scores.shape[0])
    t = scores[rows, targets][:, None]
    positions = np.arange(scores.shape[1])[None, :]
    better = (scores > t) | ((scores == t) & (positions < targets[:, None]))
    return better.sum(axis=1) + 1


def rank_users(
    scorer: Scorer,
    user_ids: Sequence[str],
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    n_items: int,
    batch_size: int = 256,
) -> RankingResult:
    """Score every item for every user, exclude the history, rank the held-out targets."""
    ranks, tops, top_scores = [], [], []
    for start in range(0, len(user_ids), batch_size):
        users = list(user_ids[start : start + batch_size])
        hist = list(histories[start : start + batch_size])
        scores = np.asarray(scorer(users, hist), dtype=np.float64)
        if scores.shape != (len(users), n_items):
            raise ValueError(f"scorer returned shape {scores.shape}, expected {(len(users), n_items)}")
        scores = np.nan_to_num(scores, nan=-1e9, posinf=1e9, neginf=-1e9)
        for r, h in enumerate(hist):
            scores[r, h] = -np.inf
        tgt = targets[start : start + batch_size]
        ranks.append(rank_of(scores, tgt))
        top = top_k_with_ties(scores, LIST_K)
        tops.append(top)
        top_scores.append(np.take_along_axis(scores, top, axis=1))
    return RankingResult(
        list(user_ids),
        np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64),
        np.vstack(tops) if tops else np.zeros((0, LIST_K), dtype=np.int64),
        np.vstack(top_scores) if top_scores else np.zeros((0, LIST_K)),
    )


def accuracy_metrics(result: RankingResult) -> dict[str, float]:
    """HR@10, NDCG@10, Recall@20 and MRR (full ranking) averaged over users."""
    ranks = result.ranks.astype(float)
    if ranks.size == 0:
        return {"hr_at_10": 0.0, "ndcg_at_10": 0.0, "recall_at_20": 0.0, "mrr": 0.0}
    return {
        "hr_at_10": float(np.mean(ranks <= TOP_K)),
        "ndcg_at_10": float(np.mean(result.ndcg10)),
        "recall_at_20": float(np.mean(ranks <= LIST_K)),
        "mrr": float(np.mean(1.0 / ranks)),
    }


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of exposure (0 = every item shown equally, →1 = one item takes everything)."""
    from domainfm.metrics import gini as core_gini

    return core_gini(np.asarray(counts, dtype=float).tolist())


def long_tail_mask(popularity: np.ndarray, head_share: float = 0.8) -> np.ndarray:
    """True for long-tail items: outside the most popular items that make up ``head_share`` of events."""
    order = np.argsort(-popularity, kind="stable")
    total = popularity.sum()
    tail = np.ones(popularity.shape[0], dtype=bool)
    if total <= 0:
        return tail
    cum = np.cumsum(popularity[order]) / total
    head_count = int(np.searchsorted(cum, head_share) + 1)
    tail[order[:head_count]] = False
    return tail


def beyond_accuracy(top: np.ndarray, popularity: np.ndarray, n_users: int, k: int = TOP_K) -> dict[str, float]:
    """Coverage, Gini of exposure, novelty (mean self-information, bits) and long-tail share of top-k lists."""
    n_items = popularity.shape[0]
    lists = top[:, :k]
    if lists.size == 0:
        return {"coverage": 0.0, "gini": 0.0, "novelty": 0.0, "long_tail_share": 0.0}
    exposure = np.bincount(lists.ravel(), minlength=n_items)
    p = np.clip(popularity[lists] / max(n_users, 1), 1.0 / max(n_users, 1), 1.0)
    tail = long_tail_mask(popularity)
    return {
        "coverage": float(np.count_nonzero(exposure) / n_items),
        "gini": gini(exposure),
        "novelty": float(np.mean(-np.log2(p))),
        "long_tail_share": float(np.mean(tail[lists])),
    }


def all_metrics(result: RankingResult, popularity: np.ndarray, n_users: int) -> dict[str, float]:
    """Accuracy and beyond-accuracy metrics of one run."""
    return {**accuracy_metrics(result), **beyond_accuracy(result.top, popularity, n_users)}
