"""A FAISS vector index with ids: exact (flat) or approximate (IVF, HNSW), GPU when available.

Persisted as a directory (``index.faiss`` + ``index.json``) written atomically. Deletion works without a
rebuild: flat and IVF indexes remove ids natively; HNSW (which cannot) keeps tombstones that searches
filter out until the next :meth:`compact`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from domainfm.errors import DataError
from domainfm.io import atomic_directory

IndexKind = Literal["flat", "ivf", "hnsw"]


def faiss_gpu_available() -> bool:
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class VectorIndex:
    """Vectors with int64 ids. Use :meth:`create` or :meth:`load`, not the constructor."""

    def __init__(self, index: Any, dim: int, kind: IndexKind, metric: str, params: dict[str, Any]) -> None:
        self._cpu_index = index
        self._index = index
        self.dim = dim
        self.kind = kind
        self.metric = metric
        self.params = params
        self.deleted: set[int] = set()
        self.device = "cpu"
        self._maybe_to_gpu()

    # --------------------------------------------------------------------------- construction

    @classmethod
    def create(
        cls,
        dim: int,
        kind: IndexKind = "flat",
        metric: Literal["ip", "l2"] = "ip",
        nlist: int = 1024,
        nprobe: int = 16,
        hnsw_m: int = 32,
        ef_search: int = 64,
        ef_construction: int = 80,
    ) -> VectorIndex:
        import faiss

        if kind not in ("flat", "ivf", "hnsw"):
            raise ValueError(f"kind must be 'flat', 'ivf' or 'hnsw', got {kind!r}")
        faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
        params: dict[str, Any] = {}
        index: Any  # faiss index classes share no typed base
        base: Any
        if kind == "flat":
            base = faiss.IndexFlatIP(dim) if metric == "ip" else faiss.IndexFlatL2(dim)
            index = faiss.IndexIDMap2(base)
        elif kind == "ivf":
            quantizer = faiss.IndexFlatIP(dim) if metric == "ip" else faiss.IndexFlatL2(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss_metric)
            index.nprobe = nprobe
            params = {"nlist": nlist, "nprobe": nprobe}
        else:
            base = faiss.IndexHNSWFlat(dim, hnsw_m, faiss_metric)
            base.hnsw.efSearch = ef_search
            base.hnsw.efConstruction = ef_construction
            index = faiss.IndexIDMap2(base)
            params = {"m": hnsw_m, "ef_search": ef_search, "ef_construction": ef_construction}
        return cls(index, dim, kind, metric, params)

    def _maybe_to_gpu(self) -> None:
        if self.kind == "hnsw" or not faiss_gpu_available():
            return
        import faiss

        self._gpu_res = faiss.StandardGpuResources()
        self._index = faiss.index_cpu_to_gpu(self._gpu_res, 0, self._cpu_index)
        self.device = "cuda"

    def _sync_cpu(self) -> Any:
        if self.device == "cpu":
            return self._index
        import faiss

        return faiss.index_gpu_to_cpu(self._index)

    # --------------------------------------------------------------------------- mutation

    def __len__(self) -> int:
        return int(self._index.ntotal) - len(self.deleted)

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def train(self, vectors: np.ndarray) -> None:
        """Train an IVF quantiser (a no-op for flat and HNSW)."""
        vectors = self._check(vectors)
        if not self._index.is_trained:
            nlist = self.params.get("nlist", 1)
            if vectors.shape[0] < nlist:
                raise ValueError(f"IVF with nlist={nlist} needs at least {nlist} training vectors, got {vectors.shape[0]}")
            self._index.train(vectors)

    def add(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        vectors = self._check(vectors)
        ids_arr = np.asarray(ids, dtype=np.int64)
        if ids_arr.shape[0] != vectors.shape[0]:
            raise ValueError(f"{ids_arr.shape[0]} ids for {vectors.shape[0]} vectors")
        if len(set(ids_arr.tolist())) != ids_arr.shape[0]:
            raise DataError("duplicate ids in one add() call")
        if not self._index.is_trained:
            self.train(vectors)
        self.deleted.difference_update(ids_arr.tolist())
        self._index.add_with_ids(vectors, ids_arr)

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Remove ids; returns how many were present."""
        import faiss

        ids_arr = np.asarray(ids, dtype=np.int64)
        if self.kind == "hnsw":
            before = len(self.deleted)
            self.deleted.update(ids_arr.tolist())
            return len(self.deleted) - before
        cpu = self._sync_cpu()
        removed = int(cpu.remove_ids(faiss.IDSelectorBatch(ids_arr)))
        self._cpu_index = cpu
        self._index = cpu
        self.device = "cpu"
        self._maybe_to_gpu()
        return removed

    # --------------------------------------------------------------------------- search

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query; missing slots have id -1 and score -inf/+inf."""
        queries = self._check(queries)
        if k <= 0:
            raise ValueError("k must be positive")
        extra = min(len(self.deleted), 4 * k) if self.deleted else 0
        scores, ids = self._index.search(queries, k + extra)
        if self.deleted:
            scores, ids = self._filter_deleted(scores, ids, k)
        return scores[:, :k], ids[:, :k]

    def _filter_deleted(self, scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        fill = -np.inf if self.metric == "ip" else np.inf
        out_s = np.full((ids.shape[0], k), fill, dtype=np.float32)
        out_i = np.full((ids.shape[0], k), -1, dtype=np.int64)
        for row in range(ids.shape[0]):
            keep = [j for j in range(ids.shape[1]) if ids[row, j] >= 0 and int(ids[row, j]) not in self.deleted][:k]
            out_s[row, : len(keep)] = scores[row, keep]
            out_i[row, : len(keep)] = ids[row, keep]
        return out_s, out_i

    def compact(self) -> None:
        """Rebuild an HNSW index without its tombstoned ids."""
        if self.kind != "hnsw" or not self.deleted:
            return
        import faiss

        cpu = self._sync_cpu()
        all_ids = faiss.vector_to_array(cpu.id_map).astype(np.int64)
        keep = np.array([i for i in all_ids.tolist() if i not in self.deleted], dtype=np.int64)
        vectors = np.vstack([cpu.reconstruct(int(i)) for i in keep]) if keep.size else np.zeros((0, self.dim), np.float32)
        fresh = VectorIndex.create(self.dim, "hnsw", cast(Literal["ip", "l2"], self.metric), hnsw_m=self.params["m"], ef_search=self.params["ef_search"])
        if keep.size:
            fresh.add(keep, vectors)
        self.__dict__.update(fresh.__dict__)

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {arr.shape}")
        return arr

    # --------------------------------------------------------------------------- persistence

    def save(self, path: str | Path) -> Path:
        """Write ``index.faiss`` and ``index.json`` into ``path`` atomically (all or nothing)."""
        import faiss

        path = Path(path)
        with atomic_directory(path) as tmp:
            faiss.write_index(self._sync_cpu(), str(tmp / "index.faiss"))
            meta = {
                "dim": self.dim,
                "kind": self.kind,
                "metric": self.metric,
                "params": self.params,
                "deleted": sorted(self.deleted),
                "format": 1,
            }
            (tmp / "index.json").write_text(json.dumps(meta), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> VectorIndex:
        import faiss

        path = Path(path)
        meta_path, index_path = path / "index.json", path / "index.faiss"
        if not meta_path.is_file() or not index_path.is_file():
            raise DataError(f"{path}: not a vector index (needs index.json and index.faiss)")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            index = faiss.read_index(str(index_path))
        except Exception as exc:
            raise DataError(f"{path}: corrupted vector index: {type(exc).__name__}: {exc}") from exc
        if index.d != meta.get("dim"):
            raise DataError(f"{path}: corrupted vector index: dimension {index.d} != {meta.get('dim')}")
        obj = cls(index, int(meta["dim"]), meta["kind"], meta["metric"], meta.get("params", {}))
        obj.deleted = set(meta.get("deleted", []))
        return obj
