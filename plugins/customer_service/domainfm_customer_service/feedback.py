"""Customer feedback (thumbs up/down, corrected intents) in SQLite, read back by the next training run.

Every write is one transaction: a crash leaves either the whole record or nothing. Queries are masked
before they are stored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from domainfm.errors import DataError

SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    query TEXT NOT NULL,
    predicted_intent TEXT,
    corrected_intent TEXT,
    thumbs INTEGER NOT NULL CHECK (thumbs IN (-1, 0, 1)),
    answer_doc_id TEXT,
    run_id TEXT
);
"""


SQLITE_HEADER = b"SQLite format 3\x00"


def is_feedback_store(source: str) -> bool:
    """True when ``source`` is an existing SQLite file (a feedback store, e.g. for ``domainfm improve --feedback``)."""
    try:
        with Path(source).open("rb") as fh:
            return fh.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    created_at: str
    query: str
    predicted_intent: str | None
    corrected_intent: str | None
    thumbs: int
    answer_doc_id: str | None
    run_id: str | None


class FeedbackStore:
    """A SQLite feedback log at ``path`` (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as con:
                con.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: not a usable feedback database: {exc}") from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=10.0)
        try:
            with con:  # commits on success, rolls back on any exception
                yield con
        finally:
            con.close()

    def add(
        self,
        query: str,
        *,
        thumbs: int = 0,
        predicted_intent: str | None = None,
        corrected_intent: str | None = None,
        answer_doc_id: str | None = None,
        run_id: str | None = None,
        label_names: Sequence[str] | None = None,
        masker: Any = None,
    ) -> int:
        """Store one feedback record; returns its id. ``query`` is masked with ``masker`` when given."""
        from domainfm_customer_service.query import validate_query

        text = validate_query(query, where="feedback query")
        if thumbs not in (-1, 0, 1):
            raise DataError(f"feedback: thumbs must be -1, 0 or 1, got {thumbs!r}")
        if corrected_intent is not None:
            corrected_intent = corrected_intent.strip()
            if label_names is not None and corrected_intent not in label_names:
                raise DataError(f"feedback: corrected intent {corrected_intent!r} is not one of the model's intents (a new intent: `cs feedback --new-intent`)")
        if masker is not None:
            text = masker.mask(text)
        with self._connect() as con:
            cur = con.execute(
                "INSERT INTO feedback (created_at, query, predicted_intent, corrected_intent, thumbs, answer_doc_id, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (datetime.now(timezone.utc).isoformat(), text, predicted_intent, corrected_intent, thumbs, answer_doc_id, run_id),
            )
            return int(cur.lastrowid or 0)

    def records(self) -> list[FeedbackRecord]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT id, created_at, query, predicted_intent, corrected_intent, thumbs, answer_doc_id, run_id"
                " FROM feedback ORDER BY id"
            ).fetchall()
        return [FeedbackRecord(*row) for row in rows]

    def training_rows(self, label_names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Labelled utterances learnt from feedback, for the next fine-tuning run.

        A corrected intent labels its query; a thumbs-up confirms the predicted intent. Thumbs-down without a
        correction says only what the intent is not, so it is not used as a label. The latest record for a
        query wins; labels outside ``label_names`` are skipped.
        """
        latest: dict[str, str] = {}
        for rec in self.records():
            label = rec.corrected_intent or (rec.predicted_intent if rec.thumbs == 1 else None)
            if label and (label_names is None or label in label_names):
                latest[rec.query] = label
        return [{"text": q, "intent": label, "channel": "feedback"} for q, label in latest.items()]

    def summary(self) -> dict[str, int]:
        recs = self.records()
        return {
            "records": len(recs),
            "thumbs_up": sum(r.thumbs == 1 for r in recs),
            "thumbs_down": sum(r.thumbs == -1 for r in recs),
            "corrections": sum(r.corrected_intent is not None for r in recs),
        }
