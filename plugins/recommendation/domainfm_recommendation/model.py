"""The text-aware recommender: item text embeddings, recency-weighted user profiles, FAISS retrieval and
a re-ranker that mixes text similarity, collaborative (item-kNN) signal and popularity.

score(u, i) = w_text · cos(profile(u), e_i) + w_collab · knn(u, i) / max_i knn(u, i) + w_pop · pop(i)

- ``profile(u)`` is the recency-weighted mean of the embeddings of the user's history (weight halves every
  ``half_life`` positions back), L2-normalised; items without text have a zero embedding.
- ``knn(u, i)`` = Σ_j w_j · cos_items(j, i) over the history, with the item-item cosine of the
  interaction matrix (``neighbours`` kept per item).
- ``pop(i)`` = log(1 + users(i)) / log(1 + max users).

Cold start: a new item has an embedding only, so its text term makes it recommendable at once; a new user
is scored from whatever history is given; no history at all falls back to popularity (flagged).
Catalogues up to ``dense_limit`` items are scored exhaustively (exact full ranking); larger ones retrieve
candidates through FAISS (profile → nearest items) plus the history's kNN neighbours and top-popular items.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from domainfm.errors import DataError

from domainfm_recommendation.baselines import item_similarity, interaction_matrix, popularity_counts

MODEL_TYPE = "domainfm-text-recommender"
FORMAT_VERSION = 1


@dataclass
class MixWeights:
    """The re-ranker's mix, chosen on the validation split."""

    text: float = 0.5
    collab: float = 1.0
    popularity: float = 0.1
    half_life: float = 10.0  # history positions; inf = no recency weighting
    neighbours: int | None = 100


@dataclass
class Calibration:
    """Logistic map from list features to P(held-out item in top-10), fitted on validation users."""

    coef: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    intercept: float = 0.0

    def features(self, top_scores: np.ndarray, history_len: np.ndarray) -> np.ndarray:
        top1 = top_scores[:, 0]
        gap = top_scores[:, 0] - top_scores[:, min(9, top_scores.shape[1] - 1)]
        feats = np.stack([top1, gap, np.log1p(history_len)], axis=1)
        return np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0)

    def predict(self, top_scores: np.ndarray, history_len: np.ndarray) -> np.ndarray:
        z = self.features(top_scores, history_len) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    @classmethod
    def fit(cls, top_scores: np.ndarray, history_len: np.ndarray, hit: np.ndarray) -> Calibration:
        """Fit on validation outcomes; a single-class validation gives a constant (its base rate)."""
        from sklearn.linear_model import LogisticRegression

        hit = np.asarray(hit).astype(int)
        if hit.size == 0 or hit.min() == hit.max():
            rate = float(np.clip(hit.mean() if hit.size else 0.5, 1e-3, 1 - 1e-3))
            return cls([0.0, 0.0, 0.0], float(np.log(rate / (1 - rate))))
        probe = cls()
        lr = LogisticRegression(C=1.0, max_iter=1000).fit(probe.features(top_scores, history_len), hit)
        return cls([float(c) for c in lr.coef_[0]], float(lr.intercept_[0]))


def recency_weights(length: int, half_life: float) -> np.ndarray:
    """Weights for a history of ``length`` events, oldest first; the latest event has weight 1."""
    if length == 0:
        return np.zeros(0, dtype=np.float32)
    age = np.arange(length - 1, -1, -1, dtype=np.float64)
    if not np.isfinite(half_life):
        return np.ones(length, dtype=np.float32)
    return np.power(0.5, age / max(half_life, 1e-6)).astype(np.float32)


@dataclass
class Recommendation:
    item: str
    score: float
    reason: str


class TextRecommender:
    """Item embeddings + item-kNN + popularity, with known users' histories (item ids only)."""

    def __init__(
        self,
        item_ids: list[str],
        titles: list[str],
        embeddings: np.ndarray,
        similarity: sparse.csr_matrix,
        popularity: np.ndarray,
        weights: MixWeights,
        histories: dict[str, np.ndarray] | None = None,
        calibration: Calibration | None = None,
        base_model: str = "sentence-transformers/all-MiniLM-L6-v2",
        creators: list[str] | None = None,
        dense_limit: int = 50_000,
        index: Any = None,
    ) -> None:
        self.item_ids = list(item_ids)
        self.item_pos = {it: i for i, it in enumerate(self.item_ids)}
        self.titles = list(titles)
        self.creators = list(creators) if creators is not None else [""] * len(self.item_ids)
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.similarity = sparse.csr_matrix(similarity, dtype=np.float32)
        self.popularity = np.asarray(popularity, dtype=np.float64)
        self.weights = weights
        self.histories = histories or {}
        self.calibration = calibration or Calibration()
        self.base_model = base_model
        self.dense_limit = dense_limit
        self.index = index
        self._check()

    def _check(self) -> None:
        n = len(self.item_ids)
        if self.embeddings.shape[0] != n or self.popularity.shape[0] != n:
            raise ValueError(f"{n} items but {self.embeddings.shape[0]} embeddings / {self.popularity.shape[0]} counts")
        if self.similarity.shape != (n, n):
            self.similarity = _grow(self.similarity, n)

    # ------------------------------------------------------------------------------ fitting

    @classmethod
    def fit(
        cls,
        item_ids: list[str],
        titles: list[str],
        embeddings: np.ndarray,
        user_ids: Sequence[str],
        histories: Sequence[np.ndarray],
        weights: MixWeights,
        **kwargs: Any,
    ) -> TextRecommender:
        """Build the collaborative parts from training histories (item positions, oldest first)."""
        n = len(item_ids)
        sim = item_similarity(interaction_matrix(histories, n), weights.neighbours)
        pop = popularity_counts(histories, n)
        hist = {u: np.asarray(h, dtype=np.int64) for u, h in zip(user_ids, histories, strict=True)}
        return cls(item_ids, titles, embeddings, sim, pop, weights, hist, **kwargs)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    # ------------------------------------------------------------------------------ scoring

    def _pop_score(self) -> np.ndarray:
        cache = getattr(self, "_pop_cache", None)
        if cache is not None and cache[1] == self.n_items:
            return cache[0]
        top = np.log1p(self.popularity.max()) if self.popularity.size and self.popularity.max() > 0 else 1.0
        score = np.log1p(self.popularity) / top
        self._pop_cache = (score, self.n_items)
        return score

    def profiles(self, histories: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """L2-normalised recency-weighted text profiles and the recency weights used."""
        weights = [recency_weights(len(h), self.weights.half_life) for h in histories]
        prof = np.zeros((len(histories), self.dim), dtype=np.float32)
        for r, (h, w) in enumerate(zip(histories, weights, strict=True)):
            if len(h):
                prof[r] = w @ self.embeddings[h]
        norms = np.linalg.norm(prof, axis=1, keepdims=True)
        return prof / np.where(norms > 0, norms, 1.0), weights

    def components(
        self, histories: Sequence[np.ndarray], candidates: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(text, collab, popularity) scores per user over ``candidates`` (all items when None)."""
        prof, weights = self.profiles(histories)
        emb = self.embeddings if candidates is None else self.embeddings[candidates]
        text = prof @ emb.T
        w_mat = interaction_matrix(histories, self.n_items, weights)
        collab = w_mat @ (self.similarity if candidates is None else self.similarity[:, candidates])
        collab = np.asarray(collab.todense(), dtype=np.float32)
        peak = collab.max(axis=1, keepdims=True)
        collab = collab / np.where(peak > 0, peak, 1.0)
        pop = self._pop_score() if candidates is None else self._pop_score()[candidates]
        return text, collab, pop

    def combine(self, text: np.ndarray, collab: np.ndarray, pop: np.ndarray) -> np.ndarray:
        w = self.weights
        return w.text * text + w.collab * collab + w.popularity * pop[None, :]

    def score(self, user_ids: Sequence[str], histories: Sequence[np.ndarray]) -> np.ndarray:
        """Exact scores over the whole catalogue (the evaluation path); popularity when no history."""
        return self.combine(*self.components(histories))

    # ------------------------------------------------------------------------------ serving

    def history_of(self, user: str | None, history: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
        """Item positions of a known user's history plus any ``history`` given; unknown ids are returned."""
        positions: list[int] = []
        if user is not None and user in self.histories:
            positions.extend(self.histories[user].tolist())
        unknown: list[str] = []
        for item in history or []:
            pos = self.item_pos.get(str(item))
            if pos is None:
                unknown.append(str(item))
            elif pos not in positions:
                positions.append(pos)
            else:  # re-interaction: move to the most recent position
                positions.remove(pos)
                positions.append(pos)
        return np.asarray(positions, dtype=np.int64), unknown

    def candidates(self, history: np.ndarray, k: int) -> np.ndarray | None:
        """None (= all items) for small catalogues; else FAISS neighbours ∪ kNN neighbours ∪ popular."""
        return self.candidates_many([history], k)[0]

    def candidates_many(self, histories: Sequence[np.ndarray], k: int) -> list[np.ndarray | None]:
        """Candidates for several histories with one batched FAISS search."""
        if self.n_items <= self.dense_limit or self.index is None:
            return [None] * len(histories)
        pool = max(200, 10 * k)
        if getattr(self, "_popular_cache", (None, 0))[1] != self.n_items:
            self._popular_cache = (np.argsort(-self.popularity, kind="stable"), self.n_items)
        popular = self._popular_cache[0][:pool]
        prof, _ = self.profiles(histories)
        has_profile = np.linalg.norm(prof, axis=1) > 0
        found = np.full((len(histories), pool), -1, dtype=np.int64)
        if has_profile.any():
            _, ids = self.index.search(prof[has_profile], pool)
            found[has_profile] = ids
        out: list[np.ndarray | None] = []
        for r, history in enumerate(histories):
            parts = [popular, found[r][found[r] >= 0]]
            if len(history):
                parts.append(self.similarity[history[-50:]].indices)
            out.append(np.unique(np.concatenate(parts)).astype(np.int64))
        return out

    def _similarity_columns(self, columns: np.ndarray) -> sparse.csr_matrix:
        """``similarity[:, columns]`` through a cached CSC copy (column slicing a CSR scans every row)."""
        cache = getattr(self, "_sim_csc", None)
        if cache is None or cache[1] != self.n_items:
            cache = (self.similarity.tocsc(), self.n_items)
            self._sim_csc = cache
        return cache[0][:, columns].tocsr()

    def recommend(self, history: np.ndarray, k: int = 10, exclude: np.ndarray | None = None,
                  candidates: np.ndarray | None = None) -> list[Recommendation]:
        """Top-``k`` items for a history (item positions, oldest first), with the reason for each."""
        if k <= 0:
            raise ValueError("k must be positive")
        if len(history) == 0:  # the mix's popularity weight may be 0: rank by popularity itself
            return self.popular(k, exclude)
        cand = self.candidates(history, k) if candidates is None else candidates
        if cand is None:
            text, collab, pop = self.components([history])
        else:
            prof, weights = self.profiles([history])
            text = prof @ self.embeddings[cand].T
            w_mat = interaction_matrix([history], self.n_items, weights)
            collab = np.asarray((w_mat @ self._similarity_columns(cand)).todense(), dtype=np.float32)
            peak = collab.max(axis=1, keepdims=True)
            collab = collab / np.where(peak > 0, peak, 1.0)
            pop = self._pop_score()[cand]
        scores = self.combine(text, collab, pop)[0].astype(np.float64)
        ids = np.arange(self.n_items) if cand is None else cand
        seen = history if exclude is None else exclude
        scores[np.isin(ids, seen)] = -np.inf
        order = np.lexsort((ids, -scores))
        top = [int(j) for j in order[:k] if np.isfinite(scores[j])]
        items = [int(ids[j]) for j in top]
        reasons = self.explain_many(history, items)
        return [Recommendation(self.item_ids[i], float(scores[j]), why) for i, j, why in zip(items, top, reasons, strict=True)]

    def popular(self, k: int = 10, exclude: np.ndarray | None = None) -> list[Recommendation]:
        """The ``k`` items most training users interacted with (users without history).

        Score = log(1 + users(i)) / log(1 + max users), independent of the mix weights; ties by catalogue order.
        """
        return popular_items(self.item_ids, self.popularity, k, exclude)

    def recommend_many(self, histories: Sequence[np.ndarray], k: int = 10) -> list[list[Recommendation]]:
        """Batch recommendations (one FAISS search for all histories), e.g. for every user."""
        cands = self.candidates_many(histories, k)
        return [self.recommend(h, k, candidates=c) if c is not None else self.recommend(h, k)
                for h, c in zip(histories, cands, strict=True)]

    def explain(self, history: np.ndarray, item: int) -> str:
        """The history item that contributes most to ``item``'s score, or why there is none."""
        return self.explain_many(history, [item])[0]

    def explain_many(self, history: np.ndarray, items: Sequence[int]) -> list[str]:
        """Reasons for several recommended items of one history (one pass over the history)."""
        if len(history) == 0:
            return ["popular with other users (no history)"] * len(items)
        if not items:
            return []
        w = recency_weights(len(history), self.weights.half_life)[:, None]
        cols = np.asarray(items, dtype=np.int64)
        text = self.embeddings[history] @ self.embeddings[cols].T
        collab = np.asarray(self.similarity[history].tocsc()[:, cols].todense())
        t_part, c_part = self.weights.text * text, self.weights.collab * collab
        contrib = w * (t_part + c_part)
        out = []
        for c in range(len(items)):
            best = int(np.argmax(contrib[:, c]))
            if contrib[best, c] <= 0:
                out.append("popular with other users")
                continue
            src = int(history[best])
            label = self.titles[src] or self.item_ids[src]
            kind = "liked together with" if c_part[best, c] >= t_part[best, c] else "similar text to"
            out.append(f"{kind} {label!r} (item {self.item_ids[src]})")
        return out

    def similar(self, item: str, k: int = 10) -> list[Recommendation]:
        """'More like this': text neighbours mixed with item-kNN neighbours of ``item``."""
        pos = self.item_pos.get(str(item))
        if pos is None:
            raise KeyError(f"unknown item {item!r}")
        history = np.asarray([pos], dtype=np.int64)
        return self.recommend(history, k)

    def confidence(self, top_scores: np.ndarray, history_len: np.ndarray) -> np.ndarray:
        return self.calibration.predict(top_scores, history_len)

    def add_items(self, item_ids: Sequence[str], titles: Sequence[str], embeddings: np.ndarray,
                  creators: Sequence[str] | None = None) -> int:
        """Add new items (cold start): recommendable at once through their text embedding."""
        new = [(i, str(it)) for i, it in enumerate(item_ids) if str(it) not in self.item_pos]
        if not new:
            return 0
        rows = [i for i, _ in new]
        start = self.n_items
        for j, (i, it) in enumerate(new):
            self.item_pos[it] = start + j
            self.item_ids.append(it)
            self.titles.append(str(titles[i]))
            self.creators.append(str(creators[i]) if creators is not None else "")
        self.embeddings = np.vstack([self.embeddings, np.asarray(embeddings, dtype=np.float32)[rows]])
        self.popularity = np.concatenate([self.popularity, np.zeros(len(new))])
        self.similarity = _grow(self.similarity, self.n_items)
        if self.index is not None:
            self.index.add(np.arange(start, self.n_items), self.embeddings[start:])
        return len(new)

    # ------------------------------------------------------------------------------ persistence

    def build_index(self, kind: str | None = None) -> Any:
        """A FAISS index over the item embeddings (flat up to 200k items, IVF beyond)."""
        from domainfm.engine.vector_index import VectorIndex

        kind = kind or ("flat" if self.n_items <= 200_000 else "ivf")
        nlist = int(min(4096, max(1, 4 * np.sqrt(self.n_items))))
        index = VectorIndex.create(self.dim, kind=kind, metric="ip", nlist=nlist)  # type: ignore[arg-type]
        index.add(np.arange(self.n_items), self.embeddings)
        self.index = index
        return index

    def save(self, path: str | Path, extra_config: dict[str, Any] | None = None) -> Path:
        """Write the model directory (config.json, safetensors, npz, parquet, index/); ids only, no PII."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from domainfm.io import atomic_write_bytes, atomic_write_json, save_arrays

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_arrays(path / "item_embeddings.safetensors",
                    {"embeddings": self.embeddings, "popularity": self.popularity.astype(np.float64)})
        buf = _npz_bytes(self.similarity)
        atomic_write_bytes(path / "similarity.npz", buf)
        pq.write_table(pa.table({"item": self.item_ids, "title": self.titles, "creator": self.creators}),
                       str(path / "items.parquet"))
        users = sorted(self.histories)
        pq.write_table(
            pa.table({"user": users, "items": [[self.item_ids[p] for p in self.histories[u]] for u in users]}),
            str(path / "histories.parquet"),
        )
        if self.index is None:
            self.build_index()
        self.index.save(path / "index")
        config = {
            "model_type": MODEL_TYPE,
            "format": FORMAT_VERSION,
            "base_model": self.base_model,
            "n_items": self.n_items,
            "dim": self.dim,
            "weights": {**asdict(self.weights), "half_life": _finite_or_none(self.weights.half_life)},
            "calibration": asdict(self.calibration),
            "dense_limit": self.dense_limit,
            **(extra_config or {}),
        }
        atomic_write_json(path / "config.json", config)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TextRecommender:
        import pyarrow.parquet as pq
        from safetensors.numpy import load_file

        from domainfm.engine.vector_index import VectorIndex

        path = Path(path)
        config = read_model_config(path)
        tensors = load_file(str(path / "item_embeddings.safetensors"))
        sim = sparse.load_npz(path / "similarity.npz")
        items = pq.read_table(str(path / "items.parquet")).to_pydict()
        hist_table = pq.read_table(str(path / "histories.parquet")).to_pydict()
        pos = {it: i for i, it in enumerate(items["item"])}
        histories = {
            u: np.asarray([pos[it] for it in its if it in pos], dtype=np.int64)
            for u, its in zip(hist_table["user"], hist_table["items"], strict=True)
        }
        w = config["weights"]
        half_life = float("inf") if w["half_life"] is None else float(w["half_life"])
        weights = MixWeights(w["text"], w["collab"], w["popularity"], half_life, w["neighbours"])
        index = VectorIndex.load(path / "index") if (path / "index").is_dir() else None
        return cls(
            items["item"], items["title"], tensors["embeddings"], sim, tensors["popularity"], weights, histories,
            Calibration(**config["calibration"]), config.get("base_model", ""), items.get("creator"),
            int(config.get("dense_limit", 50_000)), index,
        )


def read_model_config(path: Path) -> dict[str, Any]:
    """``config.json`` of a saved recommender; a DataError naming the file when it is not one."""
    config_path = path / "config.json"
    if not config_path.is_file():
        raise DataError(f"{path}: not a recommender model (missing config.json)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("model_type") != MODEL_TYPE:
        raise DataError(f"{config_path}: model_type is {config.get('model_type')!r}, expected {MODEL_TYPE!r}")
    return dict(config)


def popular_items(item_ids: Sequence[str], popularity: np.ndarray, k: int,
                  exclude: np.ndarray | None = None) -> list[Recommendation]:
    """Top-``k`` items by user count (normalised log score), ``exclude`` left out; ties by position."""
    counts = np.asarray(popularity, dtype=np.float64)
    top = np.log1p(counts.max()) if counts.size and counts.max() > 0 else 1.0
    scores = np.log1p(counts) / top
    if exclude is not None and len(exclude):
        scores[np.asarray(exclude, dtype=np.int64)] = -np.inf
    order = np.lexsort((np.arange(counts.shape[0]), -scores))[:k]
    return [
        Recommendation(item_ids[i], float(scores[i]), f"popular with other users ({int(counts[i])} users)"
                       if counts[i] > 0 else "no interactions yet")
        for i in order if np.isfinite(scores[i])
    ]


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _grow(mat: sparse.csr_matrix, n: int) -> sparse.csr_matrix:
    coo = sparse.coo_matrix(mat)
    return sparse.csr_matrix((coo.data, (coo.row, coo.col)), shape=(n, n), dtype=np.float32)


def _npz_bytes(mat: sparse.csr_matrix) -> bytes:
    import io

    buf = io.BytesIO()
    sparse.save_npz(buf, sparse.csr_matrix(mat), compressed=True)
    return buf.getvalue()
