"""The monitor's SQLite state: detector state, read positions and alerts, committed together per batch.

One transaction per batch holds the new detector state, the input positions after the batch and the
alerts the batch raised, so after a ``kill -9`` the database is either before or after the batch, never in
between: no event is lost or counted twice, and an alert id (``key@bucket``) is a primary key, so no alert
is stored twice. Alerts are written to the output after the commit and then marked ``emitted``; a restart
first re-emits the alerts that were committed but not marked (checking the alerts file for their ids).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), blob TEXT NOT NULL, batches INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS positions (origin TEXT PRIMARY KEY, offset INTEGER NOT NULL, lineno INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, payload TEXT NOT NULL, emitted INTEGER NOT NULL DEFAULT 0
);
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
        self, state: dict[str, Any], positions: dict[str, tuple[int, int]], alerts: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Atomically store state, positions and new alerts; return the alerts actually inserted."""
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

    def close(self) -> None:
        self.db.close()
