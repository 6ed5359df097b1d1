"""Embedding on Ray Data and index building shard by shard: the vectors are the in-process encoder's, the flat
index answers as exact search, IVF-PQ trained on a sample finds most exact neighbours, and the built index is the
retrieval API's own ``VectorIndex``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from domainfm.engine.vector_index import VectorIndex
from domainfm.scale.ray_index import build_index, embed_corpus, ivfpq_params, load_keys, read_shard, vector_id
from domainfm.testing import TINY_CORPUS


def write_shards(folder: Path, vectors: np.ndarray, shards: int) -> None:
    folder.mkdir(parents=True)
    for i, part in enumerate(np.array_split(np.arange(len(vectors)), shards)):
        pq.write_table(pa.table({"vid": pa.array(part, pa.int64()), "key": [f"doc-{j}" for j in part],
                                 "embedding": pa.FixedSizeListArray.from_arrays(
                                     pa.array(vectors[part].reshape(-1)), vectors.shape[1])}), folder / f"{i}.parquet")


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(32, dim))  # clustered, like text embeddings, so that IVF has structure to find
    x = centres[rng.integers(0, 32, n)] + 0.5 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_vector_ids_are_stable_int64() -> None:
    assert vector_id("42") == 42 and vector_id("doc-1") == vector_id("doc-1") != vector_id("doc-2")
    assert 0 <= vector_id("doc-1") < 2**63
    assert ivfpq_params(1_000_000, 384) == {"nlist": 2048, "pq_m": 48, "pq_bits": 8, "nprobe": 128}


def test_a_small_corpus_gets_an_exact_index(tmp_path: Path) -> None:
    vectors = unit_vectors(500, 32, 0)
    write_shards(tmp_path / "emb", vectors, 3)
    build = build_index(tmp_path / "emb", tmp_path / "idx", ivfpq_threshold=1_000)
    assert (build.kind, build.vectors, build.dim) == ("flat", 500, 32)
    index = VectorIndex.load(tmp_path / "idx" / "index")
    _, ids = index.search(vectors[:20], 5)
    exact = np.argsort(-(vectors[:20] @ vectors.T), axis=1)[:, :5]
    assert (ids == exact).all()
    assert load_keys(tmp_path / "idx")[int(ids[0, 0])] == "doc-0"


def test_above_the_threshold_ivfpq_is_trained_on_a_sample_and_filled_shard_by_shard(tmp_path: Path) -> None:
    vectors = unit_vectors(6_000, 32, 1)
    write_shards(tmp_path / "emb", vectors, 4)
    build = build_index(tmp_path / "emb", tmp_path / "idx", ivfpq_threshold=5_000, train_size=2_000, nlist=32, pq_m=16,
                        nprobe=8)
    assert build.kind == "ivfpq" and build.train_sample == 2_000 and build.vectors == 6_000
    index = VectorIndex.load(tmp_path / "idx" / "index")
    assert len(index) == 6_000 and index.kind == "ivf" and index.params["pq_m"] == 16
    queries = unit_vectors(200, 32, 2)
    _, got = index.search(queries, 10)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    recall = np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got.tolist(), exact.tolist(), strict=True)])
    assert 0.6 < recall < 1.0  # 16-byte PQ codes: approximate, far above chance (10 / 6,000)


def test_ray_embeddings_equal_the_in_process_encoder(tmp_path: Path, tiny_model_dir: Path, ray_local: object) -> None:
    from domainfm.engine.encoder import TextEncoder

    texts = [f"{t} {i}" for i, t in enumerate(TINY_CORPUS * 5)]
    pq.write_table(pa.table({"id": [f"kb-{i}" for i in range(len(texts))], "text": texts}), tmp_path / "kb.parquet")
    rows = embed_corpus(str(tmp_path / "kb.parquet"), tmp_path / "emb", model=str(tiny_model_dir), batch_size=16,
                        concurrency=2, progress=False)
    assert rows == len(texts)
    expected = TextEncoder(str(tiny_model_dir), device="cpu").encode(texts)
    got: dict[str, np.ndarray] = {}
    for shard in sorted((tmp_path / "emb").glob("*.parquet")):
        ids, vecs, keys = read_shard(shard)
        assert keys is not None and [vector_id(k) for k in keys] == ids.tolist()
        got.update(zip(keys, vecs, strict=True))
    assert np.allclose(np.stack([got[f"kb-{i}"] for i in range(len(texts))]), expected, atol=1e-5)
    build = build_index(tmp_path / "emb", tmp_path / "idx")
    _, ids = VectorIndex.load(tmp_path / "idx" / "index").search(expected[:3], 1)
    keys_of = load_keys(tmp_path / "idx")
    assert build.kind == "flat" and [keys_of[int(i)] for i in ids[:, 0]] == ["kb-0", "kb-1", "kb-2"]
