"""Embeddings and FAISS indexes for corpora larger than one process embeds comfortably.

:func:`embed_corpus`: Ray Data reads the corpus (Parquet, JSONL or CSV), an actor pool encodes it with
:class:`~domainfm.engine.encoder.TextEncoder` (each actor loads the encoder once) and the vectors are written as
Parquet shards (``vid`` int64, ``key`` the corpus id as text, ``embedding`` float32 list).

:func:`build_index`: a :class:`~domainfm.engine.vector_index.VectorIndex` from those shards, read one shard at a
time: exact (flat) below ``ivfpq_threshold`` vectors, else IVF-PQ trained on a sample drawn evenly from every
shard, then filled shard by shard. The index is the retrieval API's own: ``VectorIndex.load(DIR / "index")``
searches it; ``DIR / "keys.parquet"`` maps its ids back to corpus ids (:func:`load_keys`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.errors import DataError


def vector_id(key: str) -> int:
    """The int64 index id of a corpus id: the integer itself when it is one, else 63 bits of its BLAKE2b hash."""
    text = str(key)
    if text.lstrip("-").isdigit() and abs(int(text)) < 2**63:
        return int(text)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big") >> 1


class EmbedActor:
    """Loads the encoder once; ``__call__`` turns a batch of rows into (vid, key, embedding) rows."""

    def __init__(self, model: str, device: str, threads: int, text_column: str, id_column: str,
                 max_length: int | None) -> None:
        if device != "cuda":
            import torch

            torch.set_num_threads(max(1, threads))
        from domainfm.engine.encoder import TextEncoder

        self.encoder = TextEncoder(model, device=device, max_length=max_length)
        self.text_column, self.id_column = text_column, id_column

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        import pyarrow as pa

        for column in (self.text_column, self.id_column):
            if column not in batch:
                raise DataError(f"the corpus has no {column!r} column; it has {', '.join(sorted(batch))}")
        keys = [str(k) for k in batch[self.id_column]]
        vectors = self.encoder.encode([str(t) for t in batch[self.text_column]], batch_size=len(keys))
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        return pa.table({"vid": pa.array([vector_id(k) for k in keys], pa.int64()), "key": pa.array(keys, pa.string()),
                         "embedding": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})


def embed_corpus(input_pattern: str, output: str | Path, *, model: str, text_column: str = "text",
                 id_column: str = "id", batch_size: int = 256, concurrency: int = 1, cpus_per_actor: float = 1.0,
                 device: str = "auto", max_length: int | None = None, progress: bool = True) -> int:
    """Embed every row of ``input_pattern`` into Parquet shards under ``output``; returns the row count."""
    from functools import partial

    from domainfm.io import atomic_directory
    from domainfm.scale.cluster import cluster_gpus, ensure_ray
    from domainfm.scale.ray_predict import input_files

    files, fmt = input_files(input_pattern)
    ray = ensure_ray()
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = progress
    context.use_datasource_v2 = False  # see ray_predict: the V1 reader honours num_cpus=0
    gpus = 1.0 if device != "cpu" and cluster_gpus() >= 1 else 0.0
    reader = {"parquet": ray.data.read_parquet, "json": partial(ray.data.read_json, lines=True),
              "csv": ray.data.read_csv}[fmt]
    dataset = reader(files, num_cpus=0).map_batches(
        EmbedActor,
        fn_constructor_kwargs={"model": model, "device": "cuda" if gpus else device, "threads": int(cpus_per_actor),
                               "text_column": text_column, "id_column": id_column, "max_length": max_length},
        batch_size=batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=cpus_per_actor, num_gpus=gpus,
    )
    with atomic_directory(output) as tmp:
        try:
            dataset.write_parquet(str(tmp), ray_remote_args={"num_cpus": 0})
        except Exception as exc:
            from domainfm.scale.ray_predict import _unwrap

            raise _unwrap(exc) from None
        return sum(_rows(s) for s in tmp.glob("*.parquet"))


def embedding_shards(folder: str | Path) -> list[Path]:
    shards = sorted(Path(folder).glob("*.parquet"))
    if not shards:
        raise DataError(f"{folder}: no Parquet embedding shards")
    return shards


def read_shard(path: Path) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """(ids, float32 vectors, keys or None) of one shard written by :func:`embed_corpus` (or by hand: ``vid`` and
    ``embedding`` columns, ``key`` optional)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for column in ("vid", "embedding"):
        if column not in table.column_names:
            raise DataError(f"{path}: no {column!r} column (an embedding shard has vid, embedding[, key])")
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size if hasattr(column.type, "list_size") else len(column[0])
    vectors = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
    keys = table.column("key").to_pylist() if "key" in table.column_names else None
    return table.column("vid").to_numpy().astype(np.int64), vectors, keys


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


@dataclass
class IndexBuild:
    path: Path
    kind: str
    vectors: int
    dim: int
    params: dict[str, Any]
    train_sample: int
    seconds: float


def ivfpq_params(n: int, dim: int) -> dict[str, int]:
    """nlist ~ 4·sqrt(n) (a power of two, at least 16); about 8 dimensions per PQ sub-quantiser (at most 64 of
    them, a divisor of ``dim``); 8-bit codes."""
    nlist = max(16, 1 << int(np.log2(4 * np.sqrt(n))))
    target = min(64, max(1, dim // 8))
    pq_m = max(m for m in range(1, target + 1) if dim % m == 0)
    return {"nlist": nlist, "pq_m": pq_m, "pq_bits": 8, "nprobe": max(8, nlist // 16)}


def build_index(embeddings: str | Path, output: str | Path, *, ivfpq_threshold: int = 100_000,
                train_size: int | None = None, nlist: int | None = None, pq_m: int | None = None,
                nprobe: int | None = None, seed: int = 0) -> IndexBuild:
    """Build the index of the shards in ``embeddings`` into ``output`` (``index/`` and ``keys.parquet``)."""
    import time

    import faiss
    import pyarrow as pa
    import pyarrow.parquet as pq

    from domainfm.engine.vector_index import VectorIndex
    from domainfm.io import atomic_directory

    start = time.perf_counter()
    shards = embedding_shards(embeddings)
    counts = [_rows(s) for s in shards]
    total = sum(counts)
    _, first, _ = read_shard(shards[0])
    dim = int(first.shape[1])
    del first
    sample = 0
    if total < ivfpq_threshold:
        index = VectorIndex.create(dim, "flat", "ip")
        params: dict[str, Any] = {}
    else:
        params = ivfpq_params(total, dim)
        params.update({k: v for k, v in {"nlist": nlist, "pq_m": pq_m, "nprobe": nprobe}.items() if v})
        if dim % params["pq_m"]:
            raise DataError(f"pq_m={params['pq_m']} does not divide the embedding dimension {dim}")
        sample = min(total, train_size or max(39 * params["nlist"], 256 * params["pq_m"], 50_000))
        quantizer = faiss.IndexFlatIP(dim)
        ivfpq = faiss.IndexIVFPQ(quantizer, dim, params["nlist"], params["pq_m"], params["pq_bits"],
                                 faiss.METRIC_INNER_PRODUCT)
        ivfpq.nprobe = params["nprobe"]
        index = VectorIndex(ivfpq, dim, "ivf", "ip", params)
        index.train(_training_sample(shards, counts, sample, seed))
    keys: list[pa.Table] = []
    for shard in shards:  # filled one shard at a time: memory holds one shard's vectors plus the index
        ids, vectors, shard_keys = read_shard(shard)
        index.add(ids, vectors)
        keys.append(pa.table({"vid": ids, "key": shard_keys if shard_keys is not None else [str(i) for i in ids]}))
    output = Path(output)
    with atomic_directory(output) as tmp:
        index.save(tmp / "index")
        pq.write_table(pa.concat_tables(keys), tmp / "keys.parquet")
    return IndexBuild(output, "flat" if not params else "ivfpq", total, dim, params, sample,
                      time.perf_counter() - start)


def _training_sample(shards: list[Path], counts: list[int], size: int, seed: int) -> np.ndarray:
    """``size`` vectors drawn without replacement, each shard contributing its share."""
    rng = np.random.default_rng(seed)
    total = sum(counts)
    parts: list[np.ndarray] = []
    for shard, count in zip(shards, counts, strict=True):
        take = min(count, int(round(size * count / total)))
        if take:
            _, vectors, _ = read_shard(shard)
            parts.append(vectors[rng.choice(count, size=take, replace=False)])
    return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)


def load_keys(index_dir: str | Path) -> dict[int, str]:
    """Index id -> corpus id of a built index."""
    import pyarrow.parquet as pq

    table = pq.read_table(Path(index_dir) / "keys.parquet")
    return dict(zip(table.column("vid").to_pylist(), table.column("key").to_pylist(), strict=True))


def iter_vectors(folder: str | Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, vectors) shard by shard."""
    for shard in embedding_shards(folder):
        ids, vectors, _ = read_shard(shard)
        yield ids, vectors
