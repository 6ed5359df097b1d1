"""Collaborative baselines for any ranking domain: most-popular, item-kNN and implicit ALS / BPR.

Each baseline has ``fit(user_ids, histories, n_items)`` and ``score(user_ids, histories) -> (B, n_items)``
(a :data:`domainfm.ranking.metrics.Scorer`); histories are arrays of item positions in time order.
:func:`baseline_grid` gives the candidate configurations of each family, to be chosen among on validation
(the same budget of choice the model gets); :func:`describe` the hyper-parameters of a fitted one.
ALS and BPR need the ``implicit`` package (``pip install domainfm[ranking]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse

__all__ = [
    "ImplicitMF", "ItemKNN", "MostPopular", "baseline_grid", "describe", "interaction_matrix", "item_similarity",
    "popularity_counts",
]


def interaction_matrix(histories: Sequence[np.ndarray], n_items: int, weights: Sequence[np.ndarray] | None = None) -> sparse.csr_matrix:
    """Users × items CSR matrix (binary, or ``weights`` per history entry)."""
    indptr = np.zeros(len(histories) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(h) for h in histories])
    indices = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if histories else np.zeros(0, np.int64)
    data = (
        np.concatenate([np.asarray(w, dtype=np.float32) for w in weights])
        if weights is not None and len(weights)
        else np.ones(indices.shape[0], dtype=np.float32)
    )
    mat = sparse.csr_matrix((data, indices, indptr), shape=(len(histories), n_items))
    mat.sum_duplicates()
    return mat


def popularity_counts(histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """Number of users who interacted with each item."""
    if not histories:
        return np.zeros(n_items)
    return np.bincount(np.concatenate([np.unique(h) for h in histories]).astype(np.int64), minlength=n_items).astype(float)


class MostPopular:
    """Rank items by how many training users interacted with them."""

    name = "most_popular"

    def __init__(self) -> None:
        self.popularity: np.ndarray | None = None

    def fit(self, user_ids: Sequence[str], histories: Sequence[np.ndarray], n_items: int) -> MostPopular:
        self.popularity = popularity_counts(histories, n_items)
        return self

    def score(self, user_ids: Sequence[str], histories: Sequence[np.ndarray]) -> np.ndarray:
        assert self.popularity is not None, "fit first"
        return np.tile(self.popularity, (len(user_ids), 1))


_COOC_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _cooccurrence(matrix: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Dense item co-occurrence counts and item norms of a binary matrix (one-slot cache: grids refit often)."""
    import hashlib

    x = sparse.csr_matrix(matrix, dtype=np.float32)
    x.data[:] = 1.0
    digest = hashlib.blake2b(digest_size=16)
    for arr in (np.asarray(x.shape), x.indptr, x.indices):
        digest.update(np.ascontiguousarray(arr).tobytes())
    key = digest.hexdigest()
    if key not in _COOC_CACHE:
        co = (x.T @ x).toarray().astype(np.float32)
        norms = np.sqrt(np.diag(co)).astype(np.float32)
        _COOC_CACHE.clear()
        _COOC_CACHE[key] = (co, norms)
    return _COOC_CACHE[key]


def item_similarity(matrix: sparse.csr_matrix, neighbours: int | None, shrink: float = 0.0,
                    chunk: int = 1024) -> sparse.csr_matrix:
    """Cosine item-item similarity from a users × items matrix, keeping ``neighbours`` per item (row)."""
    co, norms = _cooccurrence(matrix)
    n = co.shape[0]
    keep = n - 1 if neighbours is None else min(neighbours, n - 1)
    rows, cols, vals = [], [], []
    for start in range(0, n, chunk):  # row blocks: never materialise an n × n index array
        stop = min(n, start + chunk)
        denom = np.outer(norms[start:stop], norms) + shrink
        denom[denom == 0] = 1.0
        sim = co[start:stop] / denom
        sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
        if keep <= 0:
            continue
        top = np.argpartition(-sim, keep - 1, axis=1)[:, :keep] if keep < n else np.tile(np.arange(n), (stop - start, 1))
        val = np.take_along_axis(sim, top, axis=1)
        nz = val > 0
        rows.append(np.repeat(np.arange(start, stop), keep).reshape(stop - start, keep)[nz])
        cols.append(top[nz])
        vals.append(val[nz])
    if not rows:
        return sparse.csr_matrix((n, n), dtype=np.float32)
    out = sparse.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    out.eliminate_zeros()
    return out


class ItemKNN:
    """Item-based collaborative filtering: score(u, i) = Σ_{j ∈ history(u)} cos(j, i)."""

    name = "item_knn"

    def __init__(self, neighbours: int | None = 100, shrink: float = 0.0) -> None:
        self.neighbours = neighbours
        self.shrink = shrink
        self.sim: sparse.csr_matrix | None = None

    def fit(self, user_ids: Sequence[str], histories: Sequence[np.ndarray], n_items: int) -> ItemKNN:
        self.sim = item_similarity(interaction_matrix(histories, n_items), self.neighbours, self.shrink)
        return self

    def score(self, user_ids: Sequence[str], histories: Sequence[np.ndarray]) -> np.ndarray:
        assert self.sim is not None, "fit first"
        return np.asarray((interaction_matrix(histories, self.sim.shape[0]) @ self.sim).todense())


class ImplicitMF:
    """Matrix factorisation from the ``implicit`` library (ALS or BPR) on binary interactions."""

    def __init__(self, algorithm: str = "als", factors: int = 64, regularization: float = 0.05,
                 iterations: int = 15, learning_rate: float = 0.01, alpha: float = 1.0, seed: int = 0) -> None:
        if algorithm not in ("als", "bpr"):
            raise ValueError(f"algorithm must be 'als' or 'bpr', got {algorithm!r}")
        self.algorithm = algorithm
        self.name = f"implicit_{algorithm}"
        self.params: dict[str, Any] = {"factors": factors, "regularization": regularization, "iterations": iterations,
                                       "learning_rate": learning_rate, "alpha": alpha, "seed": seed}
        self.user_factors: np.ndarray | None = None
        self.item_factors: np.ndarray | None = None
        self.user_row: dict[str, int] = {}
        self.device = "cpu"

    def fit(self, user_ids: Sequence[str], histories: Sequence[np.ndarray], n_items: int) -> ImplicitMF:
        import implicit
        from threadpoolctl import threadpool_limits

        p = self.params
        use_gpu = bool(getattr(implicit.gpu, "HAS_CUDA", False))
        # implicit runs its own threads; BLAS threads would oversubscribe (it warns at construction)
        with threadpool_limits(1, "blas"):
            model = self._build(implicit, p, use_gpu)
            model.fit(interaction_matrix(histories, n_items), show_progress=False)
        self.device = "cuda" if use_gpu else "cpu"
        if hasattr(model, "to_cpu") and use_gpu:
            model = model.to_cpu()
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        self.user_row = {u: i for i, u in enumerate(user_ids)}
        return self

    def _build(self, implicit: Any, p: dict[str, Any], use_gpu: bool) -> Any:
        if self.algorithm == "als":
            return implicit.als.AlternatingLeastSquares(
                factors=p["factors"], regularization=p["regularization"], iterations=p["iterations"],
                alpha=p["alpha"], random_state=p["seed"], use_gpu=use_gpu,
            )
        return implicit.bpr.BayesianPersonalizedRanking(
            factors=p["factors"], learning_rate=p["learning_rate"], regularization=p["regularization"],
            iterations=p["iterations"], random_state=p["seed"], use_gpu=use_gpu,
        )

    def score(self, user_ids: Sequence[str], histories: Sequence[np.ndarray]) -> np.ndarray:
        assert self.user_factors is not None and self.item_factors is not None, "fit first"
        rows = np.array([self.user_row.get(u, -1) for u in user_ids])
        users = np.where(rows[:, None] >= 0, self.user_factors[np.maximum(rows, 0)], 0.0)
        return users @ self.item_factors.T


def baseline_grid(quick: bool = False) -> dict[str, list[Any]]:
    """Candidate configurations per baseline family, chosen among on validation."""
    if quick:
        return {
            "most_popular": [MostPopular],
            "item_knn": [lambda: ItemKNN(50), lambda: ItemKNN(200)],
            "implicit_als": [lambda: ImplicitMF("als", 64, 0.05)],
            "implicit_bpr": [lambda: ImplicitMF("bpr", 64, 0.01, iterations=100)],
        }
    return {
        "most_popular": [MostPopular],
        "item_knn": [lambda k=k, s=s: ItemKNN(k, s) for k in (20, 50, 100, 200, 500) for s in (0.0, 10.0)],
        "implicit_als": [
            lambda f=f, r=r, a=a: ImplicitMF("als", f, r, iterations=15, alpha=a)
            for f in (32, 64, 128) for r in (0.01, 0.1, 1.0) for a in (1.0, 10.0)
        ],
        "implicit_bpr": [
            lambda f=f, lr=lr: ImplicitMF("bpr", f, 0.01, iterations=100, learning_rate=lr)
            for f in (32, 64, 128) for lr in (0.01, 0.05)
        ],
    }


def describe(model: Any) -> dict[str, Any]:
    """The hyper-parameters of a fitted baseline, for the report."""
    if isinstance(model, ItemKNN):
        return {"neighbours": model.neighbours, "shrink": model.shrink}
    if isinstance(model, ImplicitMF):
        return dict(model.params)
    return {}
