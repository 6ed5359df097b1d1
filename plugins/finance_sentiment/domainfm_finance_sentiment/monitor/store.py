"""The monitor's SQLite state: detector state, read positions and alerts, committed together per batch.

One transaction per batch holds the new detector state, the input positions after the batch and the
alerts the batch raised, so after a ``kill -9`` the database is either before or after the batch, never in
between: no event is lost or counted twice, and an alert id (``key@bucket``) is a primary key, so no alert
is stored twice. Alerts are written to the output after the commit and then marked ``emitted``; a restart
first re-emits the alerts that were committed but not marked (checking the alerts file for their ids).

With a drift reference (:mod:`.drift`, stored once by ``drift-reference``), the rows entering the drift window are
part of the same transaction, and the rows that left it are deleted there.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), blob TEXT NOT NULL, batches INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS positions (origin TEXT PRIMARY KEY, offset INTEGER NOT NULL, lineno INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, payload TEXT NOT NULL, emitted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS drift_reference (id INTEGER PRIMARY KEY CHECK (id = 1), params TEXT NOT NULL, arrays BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS drift_window (seq INTEGER PRIMARY KEY, label INTEGER NOT NULL, emb BLOB, meta TEXT NOT NULL);
"""


class StateMismatchError(RuntimeError):
    """The database was created with different detector settings."""


class MonitorStore:
    """A small wrapper over one SQLite file (WAL mode: a crashed process never corrupts it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Record ``settings`` on first use; refuse a database created with other settings."""
        row = self.db.execute("SELECT value FROM meta WHERE name='settings'").fetchone()
        wanted = json.dumps(settings, sort_keys=True)
        if row is None:
            self.db.execute("INSERT INTO meta(name, value) VALUES ('settings', ?)", (wanted,))
        elif row[0] != wanted:
            raise StateMismatchError(
                f"{self.path}: state was created with settings {row[0]}, now {wanted}; "
                "use another --state file or --reset"
            )

    def load_state(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT blob FROM state WHERE id=1").fetchone()
        return json.loads(row[0]) if row else None

    def load_positions(self) -> dict[str, tuple[int, int]]:
        return {o: (off, ln) for o, off, ln in self.db.execute("SELECT origin, offset, lineno FROM positions")}

    def commit_batch(
        self, state: dict[str, Any], positions: dict[str, tuple[int, int]], alerts: list[dict[str, Any]],
        drift_rows: tuple[list[tuple[int, int, bytes | None, str]], int] | None = None,
    ) -> list[dict[str, Any]]:
        """Atomically store state, positions, new alerts and the drift window's changes (new rows, and the
        oldest sequence number kept); return the alerts actually inserted."""
        inserted = []
        blob = json.dumps(state, separators=(",", ":"))
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                "INSERT INTO state(id, blob, batches) VALUES (1, ?, 1) "
                "ON CONFLICT(id) DO UPDATE SET blob=excluded.blob, batches=state.batches+1",
                (blob,),
            )
            self.db.executemany(
                "INSERT INTO positions(origin, offset, lineno) VALUES (?, ?, ?) "
                "ON CONFLICT(origin) DO UPDATE SET offset=excluded.offset, lineno=excluded.lineno",
                [(o, off, ln) for o, (off, ln) in positions.items()],
            )
            if drift_rows is not None:
                rows, keep_from = drift_rows
                self.db.executemany("INSERT OR REPLACE INTO drift_window(seq, label, emb, meta) VALUES (?, ?, ?, ?)", rows)
                self.db.execute("DELETE FROM drift_window WHERE seq < ?", (keep_from,))
            seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM alerts").fetchone()[0]
            for alert in alerts:
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO alerts(id, seq, payload, emitted) VALUES (?, ?, ?, 0)",
                    (alert["id"], seq + 1, json.dumps(alert, ensure_ascii=False)),
                )
                if cur.rowcount:
                    seq += 1
                    inserted.append(alert)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return inserted

    def pending_alerts(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT payload FROM alerts WHERE emitted=0 ORDER BY seq").fetchall()
        return [json.loads(r[0]) for r in rows]

    def mark_emitted(self, ids: list[str]) -> None:
        if ids:
            self.db.executemany("UPDATE alerts SET emitted=1 WHERE id=?", [(i,) for i in ids])

    def alerts(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self.db.execute("SELECT payload FROM alerts ORDER BY seq")]

    def batches(self) -> int:
        row = self.db.execute("SELECT batches FROM state WHERE id=1").fetchone()
        return int(row[0]) if row else 0

    def save_drift_reference(self, params: dict[str, Any], arrays: dict[str, Any]) -> str:
        """Store (or replace) the drift reference and clear the drift window; return the reference id."""
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **{k: np.asarray(v) for k, v in arrays.items()})
        blob = buf.getvalue()
        ref_id = hashlib.sha256(json.dumps(params, sort_keys=True).encode() + blob).hexdigest()[:16]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("INSERT OR REPLACE INTO drift_reference(id, params, arrays) VALUES (1, ?, ?)",
                            (json.dumps({**params, "id": ref_id}), blob))
            self.db.execute("DELETE FROM drift_window")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return ref_id

    def load_drift_reference(self) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        row = self.db.execute("SELECT params, arrays FROM drift_reference WHERE id=1").fetchone()
        if row is None:
            return None
        with np.load(io.BytesIO(row[1]), allow_pickle=False) as npz:
            return json.loads(row[0]), {k: npz[k] for k in npz.files}

    def load_drift_window(self) -> list[tuple[int, int, np.ndarray | None, Any]]:
        rows = self.db.execute("SELECT seq, label, emb, meta FROM drift_window ORDER BY seq").fetchall()
        return [(seq, label, None if emb is None else np.frombuffer(emb, dtype=np.float32).copy(), json.loads(meta))
                for seq, label, emb, meta in rows]

    def close(self) -> None:
        self.db.close()
