"""Evaluate the monitor on a real labelled stream with injected, labelled negative surges.

Protocol (pinned here, seeded): the real sentences are split into a background pool and a disjoint pool of
negative sentences used only for injection. Background items get uniform random timestamps over ``days``.
``n_surges`` non-overlapping windows of ``surge_hours`` (none in the first ``warmup_days``) each receive
extra negative items so that the negative share inside the window is about ``multiplier`` times the
background share. An alert on ``key`` is a true positive when it is raised (its ``window_end``) inside a
surge window or up to ``grace_hours`` after it; precision = true-positive alerts / alerts, recall = surges
with at least one true-positive alert / surges, detection delay = first true-positive alert time minus the
surge start, in hours.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from domainfm_finance_sentiment.monitor.sources import Line

EPOCH0 = datetime(2026, 1, 5, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Surge:
    start: float
    end: float
    injected: int


class ListSource:
    """An in-memory source of JSON events (for benchmarks and tests); positions are line counts."""

    def __init__(self, events: Sequence[dict[str, Any]] | Sequence[bytes], origin: str = "<memory>") -> None:
        self.lines = [e if isinstance(e, bytes) else json.dumps(e).encode() for e in events]
        self.origin = origin
        self.pos = 0

    def read(self, max_lines: int, final: bool) -> list[Line]:
        chunk = self.lines[self.pos : self.pos + max_lines]
        out = [Line(self.origin, self.pos + i + 1, raw) for i, raw in enumerate(chunk)]
        self.pos += len(chunk)
        return out

    def positions(self) -> dict[str, tuple[int, int]]:
        return {self.origin: (self.pos, self.pos)}

    def close(self) -> None:
        pass


def build_stream(
    rows: Sequence[dict[str, Any]],
    *,
    seed: int = 7,
    days: float = 30.0,
    n_surges: int = 5,
    surge_hours: float = 6.0,
    multiplier: float = 3.0,
    warmup_days: float = 3.0,
    label_field: str = "label",
) -> tuple[list[dict[str, Any]], list[Surge]]:
    """A time-ordered event stream from labelled ``rows`` with injected surges (see the module docstring)."""
    rng = random.Random(seed)
    rows = list(rows)
    rng.shuffle(rows)
    negatives = [r for r in rows if r[label_field] == "negative"]
    inject_pool = negatives[: len(negatives) // 3]
    pool_ids = {id(r) for r in inject_pool}
    background = [r for r in rows if id(r) not in pool_ids]
    t0 = EPOCH0.timestamp()
    span = days * 86400.0
    events = []
    for r in background:
        events.append({**_event(r, label_field), "timestamp": t0 + rng.uniform(0, span)})
    per_hour = len(background) / (days * 24.0)
    share = sum(r[label_field] == "negative" for r in background) / max(len(background), 1)
    # extra negatives x in a window of n items: (share*n + x) / (n + x) = min(0.95, multiplier*share)
    target = min(0.95, multiplier * share)
    n_window = per_hour * surge_hours
    extra = max(1, round((target - share) * n_window / (1.0 - target)))
    slots = max(0, int((span - warmup_days * 86400.0) // (surge_hours * 3600.0 * 3)))
    chosen = sorted(rng.sample(range(slots), min(n_surges, slots)))
    surges = []
    pool = iter(inject_pool * (1 + (extra * n_surges) // max(len(inject_pool), 1)))
    for slot in chosen:
        start = t0 + warmup_days * 86400.0 + slot * surge_hours * 3600.0 * 3
        end = start + surge_hours * 3600.0
        for _ in range(extra):
            r = next(pool)
            events.append({**_event(r, label_field), "timestamp": rng.uniform(start, end), "injected": True})
        surges.append(Surge(start, end, extra))
    events.sort(key=lambda e: e["timestamp"])
    for e in events:
        e["timestamp"] = datetime.fromtimestamp(e["timestamp"], tz=timezone.utc).isoformat().replace("+00:00", "Z")
    return events, surges


def _event(row: dict[str, Any], label_field: str) -> dict[str, Any]:
    out = {"text": row["text"], "label": row[label_field]}
    for col in ("topic", "entity", "source", "id"):
        if row.get(col):
            out[col] = row[col]
    return out


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def alert_metrics(
    alerts: Sequence[dict[str, Any]], surges: Sequence[Surge], key: str = "all:*", grace_hours: float = 6.0
) -> dict[str, Any]:
    """Alert precision, recall and detection delay (hours) of ``alerts`` on ``key`` against ``surges``."""
    mine = [a for a in alerts if a["key"] == key]
    grace = grace_hours * 3600.0
    tp_alerts = 0
    first_hit: dict[int, float] = {}
    for a in mine:
        t = _epoch(a["window_end"])
        hit = [i for i, s in enumerate(surges) if s.start <= t <= s.end + grace]
        if hit:
            tp_alerts += 1
            for i in hit:
                first_hit[i] = min(first_hit.get(i, t), t)
    delays = sorted((first_hit[i] - surges[i].start) / 3600.0 for i in first_hit)
    return {
        "alerts": len(mine),
        "true_positive_alerts": tp_alerts,
        "alert_precision": tp_alerts / len(mine) if mine else None,
        "alert_recall": len(first_hit) / len(surges) if surges else None,
        "detection_delay_hours_mean": sum(delays) / len(delays) if delays else None,
        "detection_delay_hours_median": delays[len(delays) // 2] if delays else None,
        "surges": len(surges),
    }


def write_stream(events: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write events as JSONL (atomically)."""
    from domainfm.io import atomic_write_text

    return atomic_write_text(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events))


def surges_to_json(surges: Sequence[Surge]) -> list[dict[str, Any]]:
    iso = lambda t: datetime.fromtimestamp(t, tz=timezone.utc).isoformat().replace("+00:00", "Z")  # noqa: E731
    return [{"start": iso(s.start), "end": iso(s.end), "injected": s.injected} for s in surges]


def surges_from_json(items: Sequence[dict[str, Any]]) -> list[Surge]:
    return [Surge(_epoch(i["start"]), _epoch(i["end"]), int(i.get("injected", 0))) for i in items]


__all__ = ["ListSource", "Surge", "alert_metrics", "build_stream", "surges_from_json", "surges_to_json",
           "write_stream"]
