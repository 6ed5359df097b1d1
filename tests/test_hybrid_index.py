"""domainfm.engine.hybrid_index / documents: chunking, hybrid search, in-place updates, atomic persistence.

A bag-of-words hashing encoder stands in for the sentence encoder (no torch): the index only needs
``encode(texts) -> L2-normalised float32``."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainfm.engine.documents import Chunk, Document, chunk_text
from domainfm.engine.hybrid_index import HybridIndex, choose_index_kind
from domainfm.errors import DataError
from domainfm.testing import HashingEncoder


DOCS = [
    Document(id="returns", title="Returns", text="You can return any item within 30 days for a full refund.", intent="refund"),
    Document(id="shipping", title="Shipping", text="Parcels ship within two days. Tracking numbers arrive by email.",
             intent="delivery"),
    Document(id="warranty", title="Warranty", text="Every kettle carries a two year warranty against defects."),
]


def _index(kind: str = "auto") -> HybridIndex:
    index = HybridIndex(HashingEncoder(), kind=kind, max_words=20, overlap_words=5)
    index.add_documents(DOCS)
    return index


@pytest.mark.parametrize("fusion", ["rrf", "dense", "bm25"])
def test_each_fusion_finds_the_document_and_returns_one_chunk_per_document(fusion: str) -> None:
    hits = _index().search("how do I return an item for a refund", k=3, fusion=fusion)  # type: ignore[arg-type]
    assert hits[0].chunk.doc_id == "returns"
    assert len({h.chunk.doc_id for h in hits}) == len(hits)


def test_updates_in_place_and_labels_of_documents() -> None:
    index = _index()
    vectors = index.vectors
    index.add_documents([Document(id="pets", title="Pets", text="Dogs and cats travel in a crate.")])
    assert index.vectors is vectors and index.search("do dogs and cats travel in a crate", k=1)[0].chunk.doc_id == "pets"
    with pytest.raises(DataError, match="already indexed"):
        index.add_documents([DOCS[0]])
    assert index.delete_documents(["pets"]) >= 1 and "pets" not in index.doc_chunks
    assert index.documents_with_intent() == {"refund": {"returns"}, "delivery": {"shipping"}}


def test_save_and_load_round_trip_and_corruption(tmp_path: Path) -> None:
    index = _index("flat")
    index.save(tmp_path / "idx")
    loaded = HybridIndex.load(tmp_path / "idx", HashingEncoder())
    q = "tracking number for my parcel"
    assert [h.chunk.doc_id for h in loaded.search(q, k=2)] == [h.chunk.doc_id for h in index.search(q, k=2)]
    chunks = tmp_path / "idx" / "chunks.jsonl"
    chunks.write_text(chunks.read_text(encoding="utf-8").replace("kettle", "k3ttle"), encoding="utf-8")
    with pytest.raises(DataError, match="checksum"):
        HybridIndex.load(tmp_path / "idx", HashingEncoder())
    with pytest.raises(DataError, match="not a knowledge index"):
        HybridIndex.load(tmp_path / "nothing", HashingEncoder())


def test_chunks_overlap_and_round_trip() -> None:
    text = " ".join(f"Sentence number {i} has five words." for i in range(20))
    chunks = chunk_text(text, max_words=12, overlap_words=4)
    assert all(len(c.split()) <= 12 for c in chunks) and len(chunks) > 5
    assert chunks[1].split()[:2] == chunks[0].split()[-5:-3] or set(chunks[0].split()) & set(chunks[1].split())
    chunk = Chunk(3, "d", "t", "x", None, None)
    assert Chunk.from_dict(chunk.as_dict()) == chunk
    assert choose_index_kind(10) == "flat" and choose_index_kind(10**6) == "ivf"
