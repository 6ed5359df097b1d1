from __future__ import annotations

from pathlib import Path

import pytest

from domainfm.errors import DataError
from domainfm.engine.documents import Document
from domainfm_customer_service.readers import load_source
from domainfm.engine.hybrid_index import HybridIndex


def demo_docs() -> list[Document]:
    return load_source("demo").documents


def build(encoder, masker=None, kind: str = "auto") -> HybridIndex:  # noqa: ANN001
    index = HybridIndex(encoder, masker=masker, kind=kind, max_words=40, overlap_words=10)
    index.add_documents(demo_docs())
    return index


@pytest.mark.parametrize("fusion", ["rrf", "dense", "bm25"])
def test_search_finds_the_right_document(hashing_encoder, fusion: str) -> None:  # noqa: ANN001
    index = build(hashing_encoder)
    hits = index.search("my PIN is blocked after wrong attempts", k=3, fusion=fusion)
    assert hits[0].chunk.doc_id == "kb-pin"
    assert len({h.chunk.doc_id for h in hits}) == len(hits)  # one passage per document


def test_hybrid_carries_both_scores(hashing_encoder) -> None:  # noqa: ANN001
    hit = build(hashing_encoder).search("foreign transaction fee exchange rate", k=1)[0]
    assert hit.chunk.doc_id == "kb-fx-fees"
    assert hit.dense_score is not None and hit.bm25_score is not None and hit.bm25_score > 0


def test_add_and_delete_without_rebuild(hashing_encoder) -> None:  # noqa: ANN001
    index = build(hashing_encoder)
    vectors_before = index.vectors
    new = Document(id="kb-pets", title="Pet insurance", text="Harbourlight pet insurance covers vet bills for dogs and cats.")
    index.add_documents([new])
    assert index.vectors is vectors_before
    assert index.search("insurance for my dog at the vet", k=1)[0].chunk.doc_id == "kb-pets"
    with pytest.raises(DataError, match="already indexed"):
        index.add_documents([new])
    removed = index.delete_documents(["kb-pets"])
    assert removed >= 1
    assert all(h.chunk.doc_id != "kb-pets" for h in index.search("insurance for my dog at the vet", k=14))
    with pytest.raises(DataError, match="unknown document id"):
        index.delete_documents(["kb-pets"])


def test_duplicate_ids_in_one_batch_change_nothing(hashing_encoder) -> None:  # noqa: ANN001
    index = build(hashing_encoder)
    n = len(index.chunks)
    doc = Document(id="x", title="t", text="some text here")
    with pytest.raises(DataError, match="duplicate document id 'x'"):
        index.add_documents([doc, doc])
    assert len(index.chunks) == n and "x" not in index.doc_chunks


def test_personal_data_is_masked_before_indexing(hashing_encoder, regex_masker) -> None:  # noqa: ANN001
    index = HybridIndex(hashing_encoder, masker=regex_masker)
    index.add_documents([Document(id="t1", title="Ticket", text="Customer ann.smith@example.org paid with 4111 1111 1111 1111 and called +44 20 7946 0958.")])
    text = next(iter(index.chunks.values())).text
    assert "example.org" not in text and "4111" not in text and "7946" not in text
    assert "<EMAIL>" in text and "<CARD>" in text
    assert regex_masker.count([c.text for c in index.chunks.values()]) == 0


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_save_load_roundtrip(tmp_path: Path, hashing_encoder, kind: str) -> None:  # noqa: ANN001
    index = build(hashing_encoder, kind=kind)
    index.delete_documents(["kb-contact"])
    index.save(tmp_path / "idx")
    loaded = HybridIndex.load(tmp_path / "idx", hashing_encoder)
    assert len(loaded) == len(index) and "kb-contact" not in loaded.doc_chunks
    q = "cash machine gave me the wrong amount"
    assert [h.chunk.doc_id for h in loaded.search(q, k=3)] == [h.chunk.doc_id for h in index.search(q, k=3)]
    loaded.add_documents([Document(id="new", title="New", text="brand new document text")])
    assert max(loaded.chunks) >= index.next_id  # ids keep growing after a reload


def test_corrupted_index_files_are_reported(tmp_path: Path, hashing_encoder) -> None:  # noqa: ANN001
    build(hashing_encoder).save(tmp_path / "idx")
    faiss_file = tmp_path / "idx" / "vectors" / "index.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    with pytest.raises(DataError, match="corrupted vector index"):
        HybridIndex.load(tmp_path / "idx", hashing_encoder)

    build(hashing_encoder).save(tmp_path / "idx2")
    chunks = tmp_path / "idx2" / "chunks.jsonl"
    chunks.write_text(chunks.read_text(encoding="utf-8").replace("Freeze", "Fr3eze"), encoding="utf-8")
    with pytest.raises(DataError, match="checksum"):
        HybridIndex.load(tmp_path / "idx2", hashing_encoder)

    (tmp_path / "idx3").mkdir()
    (tmp_path / "idx3" / "manifest.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "idx3" / "chunks.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="corrupted knowledge index manifest"):
        HybridIndex.load(tmp_path / "idx3", hashing_encoder)


def test_failed_save_leaves_the_old_index_intact(tmp_path: Path, hashing_encoder, monkeypatch) -> None:  # noqa: ANN001
    index = build(hashing_encoder)
    index.save(tmp_path / "idx")
    before = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "idx").rglob("*") if p.is_file()}
    index.add_documents([Document(id="late", title="Late", text="added after the first save")])

    def boom(path):  # noqa: ANN001, ANN202
        raise OSError("disk full")

    monkeypatch.setattr(index.vectors, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        index.save(tmp_path / "idx")
    after = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "idx").rglob("*") if p.is_file()}
    assert after == before
    assert "late" not in HybridIndex.load(tmp_path / "idx", hashing_encoder).doc_chunks
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".idx")]


def test_cpu_threads_restores_the_setting() -> None:
    import torch

    from domainfm.engine.query_encoder import cpu_threads

    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), cpu_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
