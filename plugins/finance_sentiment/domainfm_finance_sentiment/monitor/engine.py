"""The surge monitor: reads event lines, keeps rolling sentiment per key and raises alerts with evidence.

An event is one JSON object per line::

    {"timestamp": "2026-03-23T07:12:00Z", "text": "...", "label": "negative",
     "topic": "credit", "entity": "Norvale Bank", "source": "newswire", "id": "..."}

``label`` (or ``sentiment``) may be omitted when a classifier is given (``--artifact``); ``topic`` may be
omitted (or filled by a topic model); ``entity`` may be a string (``;``-separated) or a list. A line that
cannot be used (bad JSON or UTF-8, empty text, unknown label, unparsable or too-late timestamp) is skipped
with a warning naming ``file:line``; the monitor never stops on one bad event.

Semantics do not depend on how lines are batched: buckets close as soon as the newest timestamp seen
(minus ``lateness_seconds``) passes their end, event by event, and an event for an already-closed bucket is
skipped as out of order. State is committed to SQLite after every batch (see :mod:`.store`).

When the state holds a drift reference (``finance drift-reference``), every accepted event also enters the drift
window of :mod:`.drift`, and a ``retrain_suggested`` event joins the alerts when the stream drifts from it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from domainfm_finance_sentiment import LABELS
from domainfm_finance_sentiment.monitor.detector import DetectorConfig, KeyState, close_bucket
from domainfm_finance_sentiment.monitor.drift import Embedder, StreamDrift
from domainfm_finance_sentiment.monitor.sources import Line, Source
from domainfm_finance_sentiment.monitor.store import MonitorStore

log = logging.getLogger(__name__)

STATE_VERSION = 1
_LABEL_ALIASES = {
    "negative": "negative", "neg": "negative", "bearish": "negative", "-1": "negative",
    "neutral": "neutral", "neu": "neutral", "0": "neutral",
    "positive": "positive", "pos": "positive", "bullish": "positive", "1": "positive",
}
Classifier = Callable[[Sequence[str]], np.ndarray]  # texts -> probabilities in LABELS order
TopicFn = Callable[[Sequence[str]], list[str]]
AlertSink = Callable[[list[dict[str, Any]]], None]


class SkipEvent(ValueError):
    """A line the monitor skips; the message says why."""


@dataclass
class Event:
    ts: float
    text: str
    label: str | None
    neg_score: float
    topic: str | None
    entities: list[str]
    where: str


def _timestamp(value: Any) -> float:
    from domainfm.errors import DataError

    from domainfm_finance_sentiment.readers import parse_timestamp

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ts = float(value)
        if ts != ts or abs(ts) > 1e11:
            raise SkipEvent(f"field 'timestamp': {value!r} is out of range")
        return ts
    try:
        return parse_timestamp(value, "event").timestamp()
    except DataError as exc:
        raise SkipEvent(str(exc).removeprefix("event: ")) from None


def parse_event(line: Line) -> Event:
    """Parse one raw line into an :class:`Event`, or raise :class:`SkipEvent` saying why."""
    where = f"{line.origin}:{line.lineno}"
    try:
        text_line = line.raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SkipEvent(f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not text_line.strip():
        raise SkipEvent("empty line")
    try:
        obj = json.loads(text_line)
    except json.JSONDecodeError as exc:
        raise SkipEvent(f"invalid JSON: {exc.msg}") from None
    if not isinstance(obj, dict):
        raise SkipEvent(f"expected a JSON object, got {type(obj).__name__}")
    if "timestamp" not in obj:
        raise SkipEvent("field 'timestamp' is missing")
    ts = _timestamp(obj["timestamp"])
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise SkipEvent("field 'text' is missing or empty")
    raw_label = obj.get("label", obj.get("sentiment"))
    label = None
    if raw_label is not None:
        label = _LABEL_ALIASES.get(str(raw_label).strip().lower())
        if label is None:
            raise SkipEvent(f"field 'label': {raw_label!r} is not one of {list(LABELS)}")
    topic = obj.get("topic")
    topic = str(topic).strip() or None if topic is not None else None
    ent = obj.get("entity", obj.get("entities"))
    if ent is None:
        entities: list[str] = []
    elif isinstance(ent, list):
        entities = [str(e).strip() for e in ent if str(e).strip()]
    else:
        entities = [e.strip() for e in str(ent).split(";") if e.strip()]
    return Event(ts, " ".join(text.split()), label, 1.0 if label == "negative" else 0.0, topic, entities, where)


class Monitor:
    """Rolling sentiment per key and CUSUM surge alerts, persisted in a :class:`MonitorStore`."""

    def __init__(
        self,
        store: MonitorStore,
        config: DetectorConfig,
        *,
        classifier: Classifier | None = None,
        topic_fn: TopicFn | None = None,
        alert_sink: AlertSink | None = None,
        keys: Sequence[str] = ("all", "topic", "entity"),
        embedder: Embedder | None = None,
        device: str = "auto",
    ) -> None:
        self.store = store
        self.cfg = config
        self.classifier = classifier
        self.topic_fn = topic_fn
        self.alert_sink = alert_sink
        self.key_kinds = tuple(keys)
        store.check_settings({"detector": config.fingerprint(), "keys": list(self.key_kinds), "version": STATE_VERSION})
        blob = store.load_state()
        self._load(blob)
        self.drift = StreamDrift.open(store, (blob or {}).get("drift"), embedder, device)
        self.new_alerts: list[dict[str, Any]] = []
        self._emit_pending()

    # ------------------------------------------------------------------ state

    def _load(self, blob: dict[str, Any] | None) -> None:
        blob = blob or {}
        self.max_ts: float | None = blob.get("max_ts")
        self.last_closed: int | None = blob.get("last_closed")
        self.open: dict[int, dict[str, list[Any]]] = {int(b): v for b, v in blob.get("open", {}).items()}
        self.keys: dict[str, KeyState] = {k: KeyState(**v) for k, v in blob.get("keys", {}).items()}
        self.events: int = blob.get("events", 0)
        self.skipped: int = blob.get("skipped", 0)
        self.skip_reasons: dict[str, int] = blob.get("skip_reasons", {})
        self.alert_count: int = blob.get("alerts", 0)
        self._drift_blob: dict[str, Any] | None = blob.get("drift")

    def snapshot(self) -> dict[str, Any]:
        """The JSON-serialisable state committed after every batch."""
        return {
            "version": STATE_VERSION,
            "max_ts": self.max_ts,
            "last_closed": self.last_closed,
            "open": {str(b): v for b, v in self.open.items()},
            "keys": {k: dict(v.__dict__) for k, v in self.keys.items()},
            "events": self.events,
            "skipped": self.skipped,
            "skip_reasons": self.skip_reasons,
            "alerts": self.alert_count,
            "drift": self.drift.state() if self.drift is not None else self._drift_blob,
        }

    # ------------------------------------------------------------------ ingest

    def _skip(self, where: str, reason: str) -> None:
        self.skipped += 1
        kind = reason.split(":")[0][:40]
        self.skip_reasons[kind] = self.skip_reasons.get(kind, 0) + 1
        log.warning("%s: skipped: %s", where, reason)

    def process(self, lines: Sequence[Line]) -> None:
        """Parse, label and ingest ``lines`` (no commit)."""
        parsed: list[Event] = []
        for line in lines:
            try:
                parsed.append(parse_event(line))
            except SkipEvent as exc:
                self._skip(f"{line.origin}:{line.lineno}", str(exc))
        unlabelled = [e for e in parsed if e.label is None]
        if unlabelled:
            if self.classifier is None:
                for e in unlabelled:
                    self._skip(e.where, "field 'label' is missing and no classifier (--artifact) was given")
                parsed = [e for e in parsed if e.label is not None]
            else:
                probs = np.asarray(self.classifier([e.text for e in unlabelled]))
                for e, row in zip(unlabelled, probs, strict=True):
                    e.label = LABELS[int(row.argmax())]
                    e.neg_score = float(row[0])
        if self.topic_fn is not None:
            untopiced = [e for e in parsed if e.topic is None]
            if untopiced:
                for e, topic in zip(untopiced, self.topic_fn([e.text for e in untopiced]), strict=True):
                    e.topic = topic
        embeddings = self.drift.embed([e.text for e in parsed]) if self.drift is not None and parsed else None
        for i, event in enumerate(parsed):
            if self._accept(event) and embeddings is not None:
                assert self.drift is not None and event.label is not None
                found = self.drift.observe(event.label, embeddings[i], event.ts, event.text, event.where)
                if found is not None:
                    self.new_alerts.append(found)

    def _accept(self, ev: Event) -> bool:
        bs = self.cfg.bucket_seconds
        bucket = int(ev.ts // bs)
        if self.last_closed is not None and bucket <= self.last_closed:
            self._skip(ev.where, f"out of order: timestamp is in a bucket that already closed (before {self._closed_until()})")
            return False
        self.events += 1
        keys = []
        if "all" in self.key_kinds:
            keys.append("all:*")
        if "topic" in self.key_kinds and ev.topic:
            keys.append("topic:" + ev.topic)
        if "entity" in self.key_kinds:
            keys.extend("entity:" + e for e in ev.entities)
        slot = self.open.get(bucket)
        if slot is None:
            slot = self.open[bucket] = {}
        neg = ev.label == "negative"
        pos = ev.label == "positive"
        k = self.cfg.evidence
        for key in keys:
            agg = slot.get(key)
            if agg is None:
                agg = slot[key] = [0, 0, 0, []]
            agg[0] += 1
            if neg:
                agg[1] += 1
                ev_list = agg[3]
                item = [ev.neg_score, ev.ts, ev.text[:500], ev.where]
                if len(ev_list) < k:
                    ev_list.append(item)
                else:
                    low = min(range(k), key=lambda i: ev_list[i][0])
                    if ev.neg_score > ev_list[low][0]:
                        ev_list[low] = item
            elif pos:
                agg[2] += 1
        if self.max_ts is None or ev.ts > self.max_ts:
            self.max_ts = ev.ts
            ready = int((self.max_ts - self.cfg.lateness_seconds) // bs) - 1
            if self.last_closed is None or ready > self.last_closed:
                self._close_through(ready)
        return True

    def _closed_until(self) -> str:
        from domainfm_finance_sentiment.monitor.detector import iso

        return iso(((self.last_closed or 0) + 1) * self.cfg.bucket_seconds)

    def _close_through(self, last: int) -> None:
        for bucket in sorted(b for b in self.open if b <= last):
            for key, (n, neg, pos, evidence) in sorted(self.open.pop(bucket).items()):
                st = self.keys.get(key)
                if st is None:
                    st = self.keys[key] = KeyState()
                alert = close_bucket(self.cfg, key, st, bucket, n, neg, pos, evidence)
                if alert is not None:
                    self.new_alerts.append(alert)
        if self.last_closed is None or last > self.last_closed:
            self.last_closed = last

    def flush(self) -> None:
        """Close every open bucket (end of a finite stream)."""
        if self.open:
            self._close_through(max(self.open))

    # ------------------------------------------------------------------ commit and output

    def commit(self, source: Source | None) -> list[dict[str, Any]]:
        """Commit state, positions and new alerts in one transaction, then emit the alerts."""
        alerts, self.new_alerts = self.new_alerts, []
        self.alert_count += len(alerts)
        drift_rows = self.drift.take_rows() if self.drift is not None else None
        inserted = self.store.commit_batch(self.snapshot(), source.positions() if source else {}, alerts, drift_rows)
        self._emit(inserted)
        return inserted

    def _emit(self, alerts: list[dict[str, Any]]) -> None:
        if alerts and self.alert_sink is not None:
            self.alert_sink(alerts)
        self.store.mark_emitted([a["id"] for a in alerts])

    def _emit_pending(self) -> None:
        pending = self.store.pending_alerts()
        if pending:
            log.info("re-emitting %d alert(s) committed before a restart", len(pending))
            self._emit(pending)

    def run(
        self,
        source: Source,
        *,
        batch_size: int = 1000,
        follow: bool = False,
        poll_seconds: float = 1.0,
        flush: bool | None = None,
        throttle_seconds: float = 0.0,
        stop_after_idle: float | None = None,
    ) -> dict[str, Any]:
        """Read ``source`` to its end (or forever with ``follow``), committing after every batch."""
        started = time.perf_counter()
        idle_since: float | None = None
        while True:
            lines = source.read(batch_size, final=not follow)
            if lines:
                idle_since = None
                self.process(lines)
                self.commit(source)
                if throttle_seconds:
                    time.sleep(throttle_seconds)
                continue
            exhausted = getattr(source, "exhausted", True)
            if not follow and exhausted:
                break
            now = time.perf_counter()
            idle_since = idle_since or now
            if stop_after_idle is not None and now - idle_since >= stop_after_idle:
                break
            if follow:
                time.sleep(poll_seconds)
        if flush if flush is not None else not follow:
            self.flush()
            self.commit(source)
        return {"events": self.events, "skipped": self.skipped, "alerts": self.alert_count,
                "seconds": time.perf_counter() - started}

    # ------------------------------------------------------------------ reading

    def summary(self, top: int = 20) -> list[dict[str, Any]]:
        """Rolling sentiment per key, most negative recent share first."""
        rows = []
        for key, st in self.keys.items():
            rows.append({
                "key": key,
                "items": st.total,
                "negative_share": round(st.negative / st.total, 4) if st.total else None,
                "sentiment_ewma": None if st.sentiment_ewma is None else round(st.sentiment_ewma, 4),
                "baseline_negative_share": round(st.baseline_rate(self.cfg), 4),
                "cusum": round(st.s, 3),
                "in_alarm": st.in_alarm,
            })
        rows.sort(key=lambda r: (-(r["cusum"]), r["sentiment_ewma"] if r["sentiment_ewma"] is not None else 0))
        return rows[:top]
