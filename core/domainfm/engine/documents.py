"""Documents to retrieve from (FAQ answers, policy pages, resolved tickets) and the chunks they are indexed as.

:func:`chunk_text` cuts a document on sentence boundaries into overlapping pieces small enough to embed;
:class:`domainfm.engine.hybrid_index.HybridIndex` indexes the chunks and returns the best one per document.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Document:
    """One entry of a knowledge base: an FAQ answer, a policy page, a resolved ticket.

    ``intent``: the class of queries the document answers, when known (an intent, a topic); retrieval metrics
    count the documents of a query's class as its relevant ones (:meth:`HybridIndex.documents_with_intent`).
    """

    id: str
    title: str
    text: str
    intent: str | None = None
    url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough to embed; ``id`` is the int64 id used in the vector index."""

    id: int
    doc_id: str
    title: str
    text: str
    intent: str | None = None
    url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Chunk:
        return cls(
            id=int(row["id"]),
            doc_id=str(row["doc_id"]),
            title=str(row.get("title") or ""),
            text=str(row["text"]),
            intent=row.get("intent"),
            url=row.get("url"),
        )


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def chunk_text(text: str, max_words: int = 120, overlap_words: int = 30) -> list[str]:
    """Split ``text`` into chunks of at most ``max_words`` words on sentence boundaries.

    Consecutive chunks share up to ``overlap_words`` words so that an answer spanning a boundary is
    still found whole in one of them. A single sentence longer than ``max_words`` is cut by words.
    """
    if max_words < 8:
        raise ValueError("max_words must be at least 8")
    if not 0 <= overlap_words < max_words:
        raise ValueError("overlap_words must be in [0, max_words)")
    words_per_sentence = []
    for sentence in _SENTENCE_END.split(text.strip()):
        words = sentence.split()
        for start in range(0, len(words), max_words):
            words_per_sentence.append(words[start : start + max_words])
    chunks: list[str] = []
    current: list[str] = []
    for words in words_per_sentence:
        if current and len(current) + len(words) > max_words:
            chunks.append(" ".join(current))
            tail = current[-overlap_words:] if overlap_words else []
            current = tail if len(tail) + len(words) <= max_words else []
        current = current + words
    if current:
        chunks.append(" ".join(current))
    return [c for c in chunks if c]
