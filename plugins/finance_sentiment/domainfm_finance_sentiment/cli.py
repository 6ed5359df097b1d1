"""``domainfm finance ...``: the surge monitor and its evaluation tools. Heavy imports happen inside commands.

Also runnable without the core CLI: ``python -m domainfm_finance_sentiment.cli monitor ...``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import click

from domainfm_finance_sentiment.monitor.drift_cli import drift_reference_cmd

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(value: str) -> int:
    """``90``, ``30m``, ``1h``, ``1d`` → seconds."""
    match = _DURATION.match(str(value))
    if not match:
        raise click.BadParameter(f"{value!r}: expected a duration like 3600, 30m, 1h or 1d")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return int(number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


class FileAlertSink:
    """Append alerts as JSON lines (fsync'd); an id already in the file is never written twice."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: set[str] = set()
        if path.is_file():
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        self.seen.add(json.loads(line)["id"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn last line from a crash: the alert is re-written below

    def __call__(self, alerts: list[dict[str, Any]]) -> None:
        fresh = [a for a in alerts if a["id"] not in self.seen]
        if not fresh:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            for alert in fresh:
                fh.write(json.dumps(alert, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.seen.update(a["id"] for a in fresh)


def _stdout_sink(alerts: list[dict[str, Any]]) -> None:
    for alert in alerts:
        click.echo(json.dumps(alert, ensure_ascii=False))
    sys.stdout.flush()


@click.group(name="finance")
def finance() -> None:
    """Financial sentiment: the negative-surge monitor and its evaluation."""


@finance.command("monitor")
@click.argument("source")
@click.option("--state", "state_path", default=".domainfm/finance-monitor.sqlite", show_default=True,
              help="SQLite file holding the monitor state (resumed on restart).")
@click.option("--alerts", "alerts_path", default="-", show_default=True, help="JSONL file for alerts, or - for stdout.")
@click.option("--artifact", type=click.Path(exists=True, file_okay=False), default=None,
              help="A trained finance_sentiment artifact to label events that carry no label.")
@click.option("--bucket", default="1h", show_default=True, help="Time bucket of the test (e.g. 30m, 1h, 1d).")
@click.option("--false-alarm-rate", type=float, default=1e-3, show_default=True,
              help="Expected false alarms per bucket per key on a stable stream (CUSUM h = ln(1/rate)).")
@click.option("--shift", type=float, default=2.0, show_default=True, help="Rise of the negative share to detect (x baseline).")
@click.option("--min-baseline", type=int, default=20, show_default=True, help="Items a key needs before it may alert.")
@click.option("--lateness", default="0", show_default=True, help="How late an event may arrive (e.g. 10m).")
@click.option("--evidence", type=int, default=3, show_default=True, help="Evidence texts per alert.")
@click.option("--keys", default="all,topic,entity", show_default=True, help="Which keys to track.")
@click.option("--batch-size", type=int, default=1000, show_default=True, help="Lines per committed batch.")
@click.option("--follow", is_flag=True, help="Keep reading as the file or directory grows.")
@click.option("--poll", type=float, default=1.0, show_default=True, help="Seconds between polls with --follow.")
@click.option("--pattern", default="*.jsonl", show_default=True, help="File pattern when SOURCE is a directory.")
@click.option("--flush/--no-flush", default=None, help="Close the last open bucket at the end (default: unless --follow).")
@click.option("--reset", is_flag=True, help="Delete the state file first.")
@click.option("--device", default="auto", show_default=True, help="Device for --artifact (auto, cpu, cuda).")
@click.option("--throttle", type=float, default=0.0, hidden=True, help="Sleep after each batch (tests).")
def monitor_cmd(source: str, state_path: str, alerts_path: str, artifact: str | None, bucket: str,
                false_alarm_rate: float, shift: float, min_baseline: int, lateness: str, evidence: int, keys: str,
                batch_size: int, follow: bool, poll: float, pattern: str, flush: bool | None, reset: bool,
                device: str, throttle: float) -> None:
    """Watch SOURCE (a JSONL file, a directory of JSONL files, - for stdin, or demo) for negative surges.

    Each line: {"timestamp", "text", "label"?, "topic"?, "entity"?, "source"?}. Alerts go to --alerts
    as JSON lines; a summary goes to stderr. Bad lines are skipped with a warning naming file:line.
    """
    from domainfm_finance_sentiment.monitor.detector import DetectorConfig
    from domainfm_finance_sentiment.monitor.engine import Monitor
    from domainfm_finance_sentiment.monitor.sources import open_source
    from domainfm_finance_sentiment.monitor.store import MonitorStore, StateMismatchError
    from domainfm_finance_sentiment.readers import demo_path

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)
    if source == "demo":
        source = str(demo_path())
    try:
        config = DetectorConfig(
            bucket_seconds=parse_duration(bucket), false_alarm_rate=false_alarm_rate, shift=shift,
            min_baseline_events=min_baseline, lateness_seconds=parse_duration(lateness), evidence=evidence,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if reset:
        for suffix in ("", "-wal", "-shm"):
            Path(state_path + suffix).unlink(missing_ok=True)
    classifier = topic_fn = None
    if artifact:
        from domainfm.device import resolve_device
        from domainfm.types import Artifact

        from domainfm_finance_sentiment.model import FinancePredictor

        predictor = FinancePredictor.load(Artifact.load(artifact), resolve_device(device))
        classifier = predictor.predict_proba
        topic_fn = predictor.assign_topics if predictor.topics is not None else None
    sink = _stdout_sink if alerts_path == "-" else FileAlertSink(Path(alerts_path))
    store = MonitorStore(state_path)
    try:
        mon = Monitor(store, config, classifier=classifier, topic_fn=topic_fn, alert_sink=sink,
                      keys=[k.strip() for k in keys.split(",") if k.strip()])
        src = open_source(source, store.load_positions(), pattern)
    except (StateMismatchError, FileNotFoundError, TypeError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        result = mon.run(src, batch_size=batch_size, follow=follow, poll_seconds=poll, flush=flush,
                         throttle_seconds=throttle)
    except KeyboardInterrupt:
        result = {"events": mon.events, "skipped": mon.skipped, "alerts": mon.alert_count, "interrupted": True}
    finally:
        src.close()
        store.close()
    click.echo(json.dumps(result), err=True)


@finance.command("status")
@click.option("--state", "state_path", default=".domainfm/finance-monitor.sqlite", show_default=True)
@click.option("--top", type=int, default=20, show_default=True)
def status_cmd(state_path: str, top: int) -> None:
    """Rolling sentiment per key and the alerts raised so far (JSON)."""
    from domainfm_finance_sentiment.monitor.detector import DetectorConfig
    from domainfm_finance_sentiment.monitor.engine import Monitor
    from domainfm_finance_sentiment.monitor.store import MonitorStore

    if not Path(state_path).is_file():
        raise click.ClickException(f"{state_path}: no monitor state")
    store = MonitorStore(state_path)
    row = store.db.execute("SELECT value FROM meta WHERE name='settings'").fetchone()
    settings = json.loads(row[0]) if row else {"detector": {}, "keys": ["all", "topic", "entity"]}
    mon = Monitor(store, DetectorConfig(**settings["detector"]), keys=settings["keys"])
    click.echo(json.dumps({"events": mon.events, "skipped": mon.skipped, "skip_reasons": mon.skip_reasons,
                           "keys": mon.summary(top), "alerts": [
                               {k: a[k] for k in ("id", "window_start", "window_end", "statistic")}
                               for a in store.alerts()]}, indent=2))
    store.close()


@finance.command("make-stream")
@click.option("--data", "data_source", default="tfns", show_default=True, help="Labelled source (see readers).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Stream JSONL to write.")
@click.option("--truth", "truth_path", required=True, type=click.Path(dir_okay=False), help="Surge windows JSON.")
@click.option("--surges", type=int, default=5, show_default=True)
@click.option("--multiplier", type=float, default=3.0, show_default=True)
@click.option("--surge-hours", type=float, default=6.0, show_default=True)
@click.option("--days", type=float, default=30.0, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
def make_stream_cmd(data_source: str, out_path: str, truth_path: str, surges: int, multiplier: float,
                    surge_hours: float, days: float, seed: int) -> None:
    """Build a timestamped stream from a real labelled dataset with injected negative surges."""
    from domainfm.io import atomic_write_json

    from domainfm_finance_sentiment.monitor.surge_eval import build_stream, surges_to_json, write_stream
    from domainfm_finance_sentiment.readers import read_source

    rows, _ = read_source(data_source)
    events, windows = build_stream(rows, seed=seed, days=days, n_surges=surges, surge_hours=surge_hours,
                                   multiplier=multiplier)
    write_stream(events, out_path)
    atomic_write_json(truth_path, {"key": "all:*", "surges": surges_to_json(windows)})
    click.echo(f"wrote {len(events)} events and {len(windows)} surges")


@finance.command("surge-eval")
@click.option("--state", "state_path", required=True, help="Monitor state after running over the stream.")
@click.option("--truth", "truth_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--grace", type=float, default=6.0, show_default=True, help="Hours after a surge an alert still counts.")
def surge_eval_cmd(state_path: str, truth_path: str, grace: float) -> None:
    """Alert precision, recall and detection delay against the injected surges (JSON)."""
    from domainfm_finance_sentiment.monitor.store import MonitorStore
    from domainfm_finance_sentiment.monitor.surge_eval import alert_metrics, surges_from_json

    truth = json.loads(Path(truth_path).read_text(encoding="utf-8"))
    store = MonitorStore(state_path)
    metrics = alert_metrics(store.alerts(), surges_from_json(truth["surges"]), truth.get("key", "all:*"), grace)
    store.close()
    click.echo(json.dumps(metrics, indent=2))


finance.add_command(drift_reference_cmd)


def main() -> None:
    finance(prog_name="finance")


if __name__ == "__main__":
    main()
