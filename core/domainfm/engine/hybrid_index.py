"""Hybrid retrieval over a knowledge base: FAISS dense search + BM25, fused by reciprocal rank.

Documents (:class:`domainfm.engine.documents.Document`) are chunked, masked for personal data (any object with
``mask``/``mask_many``, e.g. :class:`domainfm.privacy.masker.Masker`), embedded by any encoder with
``encode(texts) -> (n, dim) float32`` (L2-normalised: scores are inner products) and added to a
:class:`domainfm.engine.vector_index.VectorIndex` (exact for small bases, IVF or HNSW for large ones).
Adding or deleting documents updates the FAISS index in place; the BM25 side is re-fitted on the chunk
texts, which is cheap next to embedding. The whole index is saved as one directory, atomically::

    index = HybridIndex(QueryEncoder(model_dir), masker=Masker())
    index.add_documents(documents)
    hits = index.search("my card was stolen", k=3)       # best chunk per document, fused and component scores
    index.save(path); HybridIndex.load(path, encoder)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from domainfm.errors import DataError

from domainfm.engine.documents import Chunk, Document, chunk_text

FORMAT = 1
RRF_K = 60
FLAT_MAX = 50_000
Fusion = Literal["rrf", "dense", "bm25"]


@dataclass(frozen=True)
class Hit:
    """One retrieved passage (the best chunk of a document) with its fused and component scores."""

    chunk: Chunk
    score: float
    dense_score: float | None
    bm25_score: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.chunk.doc_id,
            "title": self.chunk.title,
            "text": self.chunk.text,
            "intent": self.chunk.intent,
            "url": self.chunk.url,
            "score": round(self.score, 6),
            "dense_score": None if self.dense_score is None else round(self.dense_score, 6),
            "bm25_score": None if self.bm25_score is None else round(self.bm25_score, 6),
        }


def choose_index_kind(n_vectors: int) -> str:
    """Exact search while it is fast enough, IVF beyond."""
    return "flat" if n_vectors <= FLAT_MAX else "ivf"


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


class HybridIndex:
    """Chunks of knowledge-base documents, searchable densely (FAISS) and lexically (BM25)."""

    def __init__(
        self,
        encoder: Any,
        *,
        masker: Any = None,
        kind: str = "auto",
        max_words: int = 120,
        overlap_words: int = 30,
    ) -> None:
        self.encoder = encoder
        self.masker = masker
        self.kind = kind
        self.max_words = max_words
        self.overlap_words = overlap_words
        self.chunks: dict[int, Chunk] = {}
        self.doc_chunks: dict[str, list[int]] = {}
        self.next_id = 0
        self.vectors: Any = None  # VectorIndex, created on first add
        self._bm25: Any = None
        self._bm25_ids: list[int] = []

    # ----------------------------------------------------------------------------------- building

    def __len__(self) -> int:
        return len(self.doc_chunks)

    @property
    def device(self) -> str:
        return getattr(self.vectors, "device", "cpu")

    def add_documents(self, documents: Iterable[Document], *, replace: bool = False) -> int:
        """Chunk, mask, embed and index ``documents``; returns the number of chunks added.

        A document id already in the index is an error unless ``replace`` is True (then the old version is
        deleted first). Duplicate ids within ``documents`` are always an error. Nothing changes on error.
        """
        docs = list(documents)
        seen: set[str] = set()
        for doc in docs:
            if doc.id in seen:
                raise DataError(f"duplicate document id {doc.id!r} in the documents to add")
            seen.add(doc.id)
            if doc.id in self.doc_chunks and not replace:
                raise DataError(f"document id {doc.id!r} is already indexed (delete it first or use replace)")
        new_chunks: list[Chunk] = []
        next_id = self.next_id
        for doc in docs:
            pieces = chunk_text(doc.text, self.max_words, self.overlap_words)
            if not pieces:
                raise DataError(f"document {doc.id!r}: no text to index")
            title = doc.title
            if self.masker is not None:
                pieces = self.masker.mask_many(pieces)
                title = self.masker.mask(title) if title else title
            for piece in pieces:
                new_chunks.append(Chunk(next_id, doc.id, title, piece, doc.intent, doc.url))
                next_id += 1
        if not new_chunks:
            return 0
        vectors = self.encoder.encode([self._embed_text(c) for c in new_chunks])
        if replace:
            self.delete_documents([d.id for d in docs if d.id in self.doc_chunks])
        if self.vectors is None:
            self.vectors = self._create_index(vectors)
        self.vectors.add([c.id for c in new_chunks], vectors)
        for chunk in new_chunks:
            self.chunks[chunk.id] = chunk
            self.doc_chunks.setdefault(chunk.doc_id, []).append(chunk.id)
        self.next_id = next_id
        self._bm25 = None
        return len(new_chunks)

    def delete_documents(self, doc_ids: Iterable[str]) -> int:
        """Remove documents (all their chunks) without rebuilding the vector index; returns chunks removed."""
        ids = list(doc_ids)
        unknown = [d for d in ids if d not in self.doc_chunks]
        if unknown:
            raise DataError(f"unknown document id(s) {unknown[:5]}")
        chunk_ids = [cid for d in ids for cid in self.doc_chunks[d]]
        if chunk_ids:
            self.vectors.remove(chunk_ids)
        for d in ids:
            for cid in self.doc_chunks.pop(d):
                self.chunks.pop(cid, None)
        self._bm25 = None
        return len(chunk_ids)

    @staticmethod
    def _embed_text(chunk: Chunk) -> str:
        return f"{chunk.title}. {chunk.text}" if chunk.title else chunk.text

    def _create_index(self, first_vectors: np.ndarray) -> Any:
        from domainfm.engine.vector_index import VectorIndex

        kind = choose_index_kind(len(first_vectors)) if self.kind == "auto" else self.kind
        dim = int(first_vectors.shape[1])
        if kind == "ivf":
            nlist = int(min(max(16, 4 * np.sqrt(len(first_vectors))), len(first_vectors) // 39 or 1))
            return VectorIndex.create(dim, "ivf", nlist=nlist, nprobe=min(32, nlist))
        return VectorIndex.create(dim, kind)  # type: ignore[arg-type]

    def _lexical(self) -> Any:
        if self._bm25 is None:
            import bm25s

            self._bm25_ids = sorted(self.chunks)
            retriever = bm25s.BM25()
            texts = [self._embed_text(self.chunks[i]) for i in self._bm25_ids]
            retriever.index(_tokenize(texts), show_progress=False)
            self._bm25 = retriever
        return self._bm25

    # ----------------------------------------------------------------------------------- search

    def search(self, query: str, k: int = 5, fusion: Fusion = "rrf") -> list[Hit]:
        """The ``k`` best documents for one query (each represented by its best chunk)."""
        return self.search_many([query], k=k, fusion=fusion)[0]

    def search_many(
        self, queries: Sequence[str], k: int = 5, fusion: Fusion = "rrf", query_vectors: np.ndarray | None = None
    ) -> list[list[Hit]]:
        """Search several queries at once (one batched encode and one FAISS call)."""
        if k <= 0:
            raise ValueError("k must be positive")
        if not self.chunks:
            return [[] for _ in queries]
        depth = min(len(self.chunks), max(4 * k, 50))
        dense: list[dict[int, float]] = [{} for _ in queries]
        lexical: list[dict[int, float]] = [{} for _ in queries]
        if fusion in ("rrf", "dense"):
            qv = self.encoder.encode(list(queries)) if query_vectors is None else query_vectors
            scores, ids = self.vectors.search(qv, depth)
            for row in range(len(queries)):
                dense[row] = {int(i): float(s) for s, i in zip(scores[row], ids[row], strict=True) if i >= 0}
        if fusion in ("rrf", "bm25"):
            retriever = self._lexical()
            docs, scores = retriever.retrieve(_tokenize(queries), k=depth, show_progress=False, n_threads=1)
            for row in range(len(queries)):
                lexical[row] = {
                    self._bm25_ids[int(j)]: float(s) for j, s in zip(docs[row], scores[row], strict=True) if s > 0
                }
        return [self._fuse(d, lx, k, fusion) for d, lx in zip(dense, lexical, strict=True)]

    def _fuse(self, dense: dict[int, float], lexical: dict[int, float], k: int, fusion: Fusion) -> list[Hit]:
        fused: dict[int, float] = {}
        if fusion == "dense":
            fused = dict(dense)
        elif fusion == "bm25":
            fused = dict(lexical)
        else:
            for ranking in (dense, lexical):
                for rank, cid in enumerate(sorted(ranking, key=ranking.__getitem__, reverse=True)):
                    fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank + 1)
        hits: list[Hit] = []
        seen_docs: set[str] = set()
        for cid in sorted(fused, key=lambda c: (-fused[c], c)):
            chunk = self.chunks.get(cid)
            if chunk is None or chunk.doc_id in seen_docs:
                continue
            seen_docs.add(chunk.doc_id)
            hits.append(Hit(chunk, fused[cid], dense.get(cid), lexical.get(cid)))
            if len(hits) == k:
                break
        return hits

    # ----------------------------------------------------------------------------------- persistence

    def save(self, path: str | Path) -> Path:
        """Write the index directory atomically: the old one stays intact until the new one is complete."""
        from domainfm.io import atomic_directory

        if self.vectors is None:
            raise DataError("cannot save an empty knowledge index")
        path = Path(path)
        chunks_blob = "".join(
            json.dumps(self.chunks[i].as_dict(), ensure_ascii=False) + "\n" for i in sorted(self.chunks)
        ).encode("utf-8")
        with atomic_directory(path) as tmp:
            self.vectors.save(tmp / "vectors")
            (tmp / "chunks.jsonl").write_bytes(chunks_blob)
            manifest = {
                "format": FORMAT,
                "n_documents": len(self.doc_chunks),
                "n_chunks": len(self.chunks),
                "next_id": self.next_id,
                "kind": self.vectors.kind,
                "dim": self.vectors.dim,
                "max_words": self.max_words,
                "overlap_words": self.overlap_words,
                "encoder": getattr(self.encoder, "name", None),
                "chunks_sha256": hashlib.sha256(chunks_blob).hexdigest(),
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path, encoder: Any, masker: Any = None) -> HybridIndex:
        """Load a saved index; a damaged or inconsistent directory raises :class:`DataError`."""
        from domainfm.engine.vector_index import VectorIndex

        path = Path(path)
        manifest_path, chunks_path = path / "manifest.json", path / "chunks.jsonl"
        if not manifest_path.is_file() or not chunks_path.is_file():
            raise DataError(f"{path}: not a knowledge index (needs manifest.json, chunks.jsonl and vectors/)")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            blob = chunks_path.read_bytes()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: corrupted knowledge index manifest: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise DataError(f"{path}: unsupported or corrupted knowledge index manifest")
        if hashlib.sha256(blob).hexdigest() != manifest.get("chunks_sha256"):
            raise DataError(f"{path}/chunks.jsonl: corrupted (checksum does not match the manifest)")
        vectors = VectorIndex.load(path / "vectors")
        obj = cls(encoder, masker=masker, kind=str(manifest["kind"]), max_words=int(manifest["max_words"]),
                  overlap_words=int(manifest["overlap_words"]))
        for line in blob.decode("utf-8").splitlines():
            chunk = Chunk.from_dict(json.loads(line))
            obj.chunks[chunk.id] = chunk
            obj.doc_chunks.setdefault(chunk.doc_id, []).append(chunk.id)
        if len(vectors) != len(obj.chunks) or vectors.dim != int(manifest["dim"]):
            raise DataError(
                f"{path}: corrupted knowledge index: {len(vectors)} vectors for {len(obj.chunks)} chunks"
            )
        obj.vectors = vectors
        obj.next_id = int(manifest["next_id"])
        return obj

    def documents_with_intent(self) -> dict[str, set[str]]:
        """intent -> ids of the documents labelled with it (what retrieval metrics count as relevant)."""
        out: dict[str, set[str]] = {}
        for chunk in self.chunks.values():
            if chunk.intent:
                out.setdefault(chunk.intent, set()).add(chunk.doc_id)
        return out
