"""Negative-surge detection: a Bernoulli CUSUM per key (all items, each topic, each entity) over time buckets.

The test
--------
Events are grouped into fixed time buckets (``bucket_seconds``, default one hour). For a key with baseline
negative share ``p0``, each closed bucket with ``n`` items of which ``k`` are negative adds the log-likelihood
ratio of "the negative share rose to ``p1``" against "it is still ``p0``"::

    llr = k * ln(p1 / p0) + (n - k) * ln((1 - p1) / (1 - p0)),   p1 = min(0.995, max(shift * p0, p0 + min_delta))
    S   = max(0, S + llr)                                          (Page's CUSUM)

and an alert is raised when ``S >= h`` with ``h = ln(1 / false_alarm_rate)``. For a CUSUM of log-likelihood
ratios the average run length between false alarms under the baseline is at least ``e^h`` (Lorden 1971), so
``false_alarm_rate`` is (an upper bound of) the expected number of false alarms per bucket per key on a
stable stream; raise it for earlier, noisier alerts, lower it for fewer. The alert's window starts at the
bucket where ``S`` last left zero (the CUSUM change-point estimate) and ends at the bucket that crossed ``h``.
A z-score of the bucket against the baseline is reported alongside, for reading, not for deciding.

The baseline
------------
``p0`` is an exponentially weighted share of negative items (half-life ``baseline_halflife_buckets``),
shrunk towards ``prior_rate`` with weight ``prior_weight`` items. It learns from every bucket except those
of an alarm episode, so a surge does not teach the baseline that surges are normal (learning only from
buckets that leave ``S`` at zero would bias ``p0`` low: those are the quiet buckets); a key needs
``min_baseline_events`` before it may alert. ``S`` restarts at zero after each crossing; one alert is raised
per episode: the key is "in alarm" until ``S`` stays at zero for ``cooldown_buckets`` buckets, or, after
``adapt_after_buckets`` buckets in alarm, the level is accepted as the new normal (the baseline absorbs it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of the surge test. ``fingerprint()`` guards a state database against changed settings."""

    bucket_seconds: int = 3600
    false_alarm_rate: float = 1e-3
    shift: float = 2.0
    min_delta: float = 0.05
    baseline_halflife_buckets: float = 72.0
    prior_rate: float = 0.2
    prior_weight: float = 10.0
    min_baseline_events: int = 20
    adapt_after_buckets: int = 72
    cooldown_buckets: int = 3
    evidence: int = 3
    lateness_seconds: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.false_alarm_rate < 1.0:
            raise ValueError(f"false_alarm_rate must be in (0, 1), got {self.false_alarm_rate}")
        if self.bucket_seconds < 1:
            raise ValueError(f"bucket_seconds must be >= 1, got {self.bucket_seconds}")
        if self.shift <= 1.0:
            raise ValueError(f"shift must be > 1 (a rise of the negative share), got {self.shift}")
        if self.lateness_seconds < 0:
            raise ValueError(f"lateness_seconds must be >= 0, got {self.lateness_seconds}")

    @property
    def threshold(self) -> float:
        """The CUSUM decision threshold h = ln(1 / false_alarm_rate)."""
        return math.log(1.0 / self.false_alarm_rate)

    def fingerprint(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class KeyState:
    """Detector and rolling-sentiment state of one key (``all:*``, ``topic:NAME``, ``entity:NAME``)."""

    neg_w: float = 0.0  # decayed count of negative items in the baseline
    n_w: float = 0.0  # decayed count of items in the baseline
    baseline_events: int = 0
    baseline_bucket: int | None = None
    s: float = 0.0
    run_start: int | None = None
    in_alarm: bool = False
    alarm_buckets: int = 0
    quiet_buckets: int = 0
    run_evidence: list[list[Any]] = field(default_factory=list)
    total: int = 0
    negative: int = 0
    positive: int = 0
    sentiment_ewma: float | None = None
    last_bucket: int | None = None
    last_share_negative: float | None = None

    def baseline_rate(self, cfg: DetectorConfig) -> float:
        return (self.neg_w + cfg.prior_rate * cfg.prior_weight) / (self.n_w + cfg.prior_weight)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def merge_evidence(into: list[list[Any]], more: list[list[Any]], k: int) -> list[list[Any]]:
    """Keep the ``k`` items with the highest negative score (ties: earliest first)."""
    merged = sorted(into + more, key=lambda e: (-e[0], e[1]))
    return merged[:k]


def close_bucket(
    cfg: DetectorConfig, key: str, st: KeyState, bucket: int, n: int, neg: int, pos: int, evidence: list[list[Any]]
) -> dict[str, Any] | None:
    """Fold one closed bucket of ``key`` into its state; return an alert dict when the CUSUM crosses h."""
    st.total += n
    st.negative += neg
    st.positive += pos
    st.last_bucket = bucket
    st.last_share_negative = neg / n if n else None
    mean = (pos - neg) / n if n else 0.0
    st.sentiment_ewma = mean if st.sentiment_ewma is None else 0.8 * st.sentiment_ewma + 0.2 * mean

    if st.baseline_events < cfg.min_baseline_events:  # warm-up: learn the baseline, never alert
        _learn(cfg, st, bucket, n, neg)
        return None

    p0 = min(max(st.baseline_rate(cfg), 0.005), 0.95)
    p1 = min(0.995, max(cfg.shift * p0, p0 + cfg.min_delta))
    llr = neg * math.log(p1 / p0) + (n - neg) * math.log((1.0 - p1) / (1.0 - p0))
    was_zero = st.s == 0.0
    st.s = max(0.0, st.s + llr)
    if st.s > 0.0 and was_zero:
        st.run_start = bucket
        st.run_evidence = []
    if st.s > 0.0:
        st.run_evidence = merge_evidence(st.run_evidence, evidence, cfg.evidence)

    alert = None
    if st.s >= cfg.threshold and not st.in_alarm:
        st.in_alarm = True
        z = (neg - n * p0) / math.sqrt(n * p0 * (1.0 - p0)) if n else 0.0
        start = st.run_start if st.run_start is not None else bucket
        kind, _, name = key.partition(":")
        alert = {
            "id": f"{key}@{iso(bucket * cfg.bucket_seconds)}",
            "key": key,
            "kind": kind,
            "name": name,
            "window_start": iso(start * cfg.bucket_seconds),
            "window_end": iso((bucket + 1) * cfg.bucket_seconds),
            "statistic": {
                "test": "bernoulli_cusum",
                "cusum": round(st.s, 4),
                "threshold": round(cfg.threshold, 4),
                "bucket_llr": round(llr, 4),
                "z_score": round(z, 3),
                "false_alarm_rate": cfg.false_alarm_rate,
            },
            "baseline_negative_share": round(p0, 4),
            "bucket_negative_share": round(neg / n, 4) if n else None,
            "bucket_items": n,
            "bucket_negative": neg,
            "evidence": [{"score": round(e[0], 4), "timestamp": iso(e[1]), "text": e[2], "where": e[3]}
                         for e in st.run_evidence],
        }
    if st.s >= cfg.threshold:
        # Restart the CUSUM after a crossing (alert or not): the episode stays open (no new alert) until S
        # returns to zero, which then happens soon after the surge ends.
        st.s = 0.0
    elif st.s == 0.0 and st.in_alarm and alert is None:
        st.quiet_buckets += 1
        if st.quiet_buckets >= cfg.cooldown_buckets:
            st.in_alarm, st.alarm_buckets, st.quiet_buckets = False, 0, 0
    else:
        st.quiet_buckets = 0
    if st.in_alarm:
        st.alarm_buckets += 1
    if st.s == 0.0 and not st.in_alarm:
        st.run_start, st.run_evidence = None, []
    if not st.in_alarm:
        _learn(cfg, st, bucket, n, neg)
    elif st.alarm_buckets > cfg.adapt_after_buckets:
        # A level that lasts this long is the new normal: absorb it and restart the test.
        _learn(cfg, st, bucket, n, neg)
        st.s, st.in_alarm, st.alarm_buckets, st.run_start, st.run_evidence = 0.0, False, 0, None, []
    return alert


def _learn(cfg: DetectorConfig, st: KeyState, bucket: int, n: int, neg: int) -> None:
    if st.baseline_bucket is not None and bucket > st.baseline_bucket:
        decay = 0.5 ** ((bucket - st.baseline_bucket) / cfg.baseline_halflife_buckets)
        st.neg_w *= decay
        st.n_w *= decay
    st.neg_w += neg
    st.n_w += n
    st.baseline_events += n
    st.baseline_bucket = bucket
