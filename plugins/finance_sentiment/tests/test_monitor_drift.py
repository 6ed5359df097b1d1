"""The monitor's drift part: retrain_suggested on a shifted stream, silence on an unshifted one, thresholds from the
reference alone, and a restart that resumes the drift window exactly. Synthetic embeddings, seeded."""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from domainfm.engine.drift import DriftConfig

from domainfm_finance_sentiment.monitor.detector import DetectorConfig
from domainfm_finance_sentiment.monitor.drift import fit_reference
from domainfm_finance_sentiment.monitor.drift_cli import drift_reference_cmd
from domainfm_finance_sentiment.monitor.engine import Monitor
from domainfm_finance_sentiment.monitor.store import MonitorStore, StateMismatchError
from domainfm_finance_sentiment.monitor.surge_eval import ListSource

DIM = 16
MIX = {"negative": 0.15, "neutral": 0.6, "positive": 0.25}


def embed(texts: Sequence[str]) -> np.ndarray:
    """A fixed random vector per text; texts starting with 'tweet' lean along one direction (the shift)."""
    out = []
    for text in texts:
        v = np.random.default_rng(zlib.crc32(text.encode())).normal(size=DIM)
        if text.startswith("tweet"):
            v[0] += 1.5
        out.append(v / np.linalg.norm(v))
    return np.asarray(out, dtype=np.float32)


def rows(prefix: str, n: int, seed: int, mix: dict[str, float] = MIX) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    labels = rng.choice(list(mix), size=n, p=list(mix.values()))
    return [{"text": f"{prefix} {seed} {i}", "label": str(label)} for i, label in enumerate(labels)]


def events(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "timestamp": 1_767_600_000 + 60 * i} for i, r in enumerate(items)]


CONFIG = DriftConfig(window=100, step=25, false_alarm_rate=0.002, n_windows=1000)


@functools.lru_cache(maxsize=None)
def reference_state(seed: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    ref_rows = rows("news", 2000, seed)
    reference = fit_reference([r["text"] for r in ref_rows], [r["label"] for r in ref_rows], embed, CONFIG,
                              origin="synthetic")
    return reference.to_state()


def store_with_reference(path: Path, seed: int = 1) -> MonitorStore:
    store = MonitorStore(path)
    store.save_drift_reference(*reference_state(seed))
    return store


def run(store: MonitorStore, items: list[dict[str, Any]], batch: int = 100) -> Monitor:
    mon = Monitor(store, DetectorConfig(), embedder=embed)
    mon.run(ListSource(events(items)), batch_size=batch)
    return mon


def drift_events(store: MonitorStore) -> list[dict[str, Any]]:
    return [a for a in store.alerts() if a.get("event") == "retrain_suggested"]


def test_unshifted_stream_stays_quiet(tmp_path: Path) -> None:
    store = store_with_reference(tmp_path / "s.sqlite")
    mon = run(store, rows("news", 1500, seed=2))
    assert mon.drift is not None and mon.drift.tracker.tests == (1500 - 100) // 25 + 1
    assert drift_events(store) == []


def test_embedding_shift_fires_after_the_switch_with_evidence(tmp_path: Path) -> None:
    store = store_with_reference(tmp_path / "s.sqlite")
    run(store, rows("news", 600, seed=3) + rows("tweet", 600, seed=4))
    fired = drift_events(store)
    assert len(fired) == 1  # one episode, one suggestion
    event = fired[0]
    assert 600 < event["window"]["last_item"] <= 700
    emb = event["statistic"]["embedding"]
    assert "embedding" in event["statistic"]["exceeded"] and emb["statistic"] > emb["threshold"]
    assert event["reference"]["origin"] == "synthetic" and event["reference"]["calibration_windows"] == 1000
    assert event["window_start"] < event["window_end"] and event["window"]["items"] == 100
    assert len(event["evidence"]) == 3 and all(e["text"].startswith("tweet") for e in event["evidence"])


def test_label_mix_shift_alone_fires_on_the_label_test(tmp_path: Path) -> None:
    store = store_with_reference(tmp_path / "s.sqlite")
    bearish = {"negative": 0.45, "neutral": 0.4, "positive": 0.15}
    run(store, rows("news", 400, seed=5) + rows("news", 400, seed=6, mix=bearish))
    fired = drift_events(store)
    assert fired and fired[0]["statistic"]["exceeded"] == ["label_mix"]
    assert fired[0]["window"]["last_item"] > 400


def test_thresholds_come_from_the_reference_alone(tmp_path: Path) -> None:
    store = store_with_reference(tmp_path / "a.sqlite")
    before = store.load_drift_reference()
    run(store, rows("news", 300, seed=7) + rows("tweet", 300, seed=8))
    after = store.load_drift_reference()
    assert before is not None and after is not None and before[0] == after[0]  # the stream never refits it
    assert np.array_equal(before[1]["bank"], after[1]["bank"])
    ref_rows = rows("news", 2000, 1)
    again = fit_reference([r["text"] for r in ref_rows], [r["label"] for r in ref_rows], embed, CONFIG)
    assert again.thresholds == before[0]["thresholds"]  # seeded: reproducible
    other = store_with_reference(tmp_path / "c.sqlite", seed=9).load_drift_reference()
    assert other is not None and other[0]["thresholds"] != before[0]["thresholds"]  # it depends on the reference


def test_drift_state_survives_a_restart(tmp_path: Path) -> None:
    stream = events(rows("news", 500, seed=10) + rows("tweet", 400, seed=11))
    whole = store_with_reference(tmp_path / "whole.sqlite")
    ref_mon = Monitor(whole, DetectorConfig(), embedder=embed)
    ref_mon.run(ListSource(stream), batch_size=1000)

    parts = store_with_reference(tmp_path / "parts.sqlite")
    first = Monitor(parts, DetectorConfig(), embedder=embed)
    source = ListSource(stream)
    for _ in range(5):  # 5 batches of 97, committed, then the process "dies"
        first.process(source.read(97, final=False))
        first.commit(source)
    parts.close()
    reopened = MonitorStore(tmp_path / "parts.sqlite")
    assert len(reopened.load_drift_window()) == 100  # exactly the window, nothing older
    second = Monitor(reopened, DetectorConfig(), embedder=embed)
    assert second.drift is not None and second.drift.tracker.seen == 5 * 97
    rest = ListSource(stream)
    rest.pos = 5 * 97
    second.run(rest, batch_size=13)
    assert [a["id"] for a in drift_events(reopened)] == [a["id"] for a in drift_events(whole)]
    assert len(drift_events(whole)) == 1
    assert ref_mon.drift is not None and second.drift.state() == ref_mon.drift.state()


def test_a_custom_embedder_reference_needs_the_embedder(tmp_path: Path) -> None:
    store = store_with_reference(tmp_path / "s.sqlite")
    with pytest.raises(StateMismatchError, match="embedder"):
        Monitor(store, DetectorConfig())


def test_small_reference_and_bad_settings_are_one_line_errors(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows("news", 60, seed=12)), encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(drift_reference_cmd, ["--state", str(tmp_path / "s.sqlite"), "--data", str(data),
                                                 "--split", "all", "--window", "50", "--encoder", "unused"])
    assert result.exit_code == 1 and "needs at least 200" in result.output and "Traceback" not in result.output
    result = runner.invoke(drift_reference_cmd, ["--state", str(tmp_path / "s.sqlite"), "--window", "5"])
    assert result.exit_code == 2 and "window must be >= 10" in result.output
    result = runner.invoke(drift_reference_cmd, ["--state", str(tmp_path / "s.sqlite")])
    assert result.exit_code == 2 and "--data is required" in result.output


@pytest.mark.slow
def test_cli_reference_with_minilm_then_monitor_and_status(tmp_path: Path) -> None:
    """The packaged MiniLM end to end: reference on the demo set, the demo stream, then a shifted stream."""
    from domainfm_finance_sentiment.cli import finance
    from domainfm_finance_sentiment.readers import demo_path

    state = tmp_path / "m.sqlite"
    runner = CliRunner()
    result = runner.invoke(finance, ["drift-reference", "--state", str(state), "--data", "demo", "--split", "all",
                                     "--window", "100"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["label_source"] == "given"
    again = runner.invoke(finance, ["drift-reference", "--state", str(state), "--data", "demo", "--split", "all"])
    assert again.exit_code == 1 and "--replace" in again.output
    shifted = tmp_path / "shifted.jsonl"
    last = max(json.loads(line)["timestamp"] for line in demo_path().read_text(encoding="utf-8").splitlines())
    shifted.write_text("".join(json.dumps({"timestamp": last, "label": "neutral", "text": f"lol {i} 🚀 to the moon #memes"})
                               + "\n" for i in range(150)), encoding="utf-8")
    for source in (str(demo_path()), str(shifted)):
        run = runner.invoke(finance, ["monitor", source, "--state", str(state), "--alerts", str(tmp_path / "a.jsonl"),
                                      "--no-flush"])
        assert run.exit_code == 0, run.output
    store = MonitorStore(state)
    fired = drift_events(store)
    assert fired and fired[-1]["window"]["last_item"] > store.load_state()["events"] - 150  # type: ignore[index]
    assert any("moon" in e["text"] for e in fired[-1]["evidence"])
    status = runner.invoke(finance, ["status", "--state", str(state)])
    assert status.exit_code == 0 and "retrain_suggested@" in status.output


def test_training_texts_are_the_runs_pinned_split_and_its_held_out_rest(tmp_path: Path) -> None:
    from domainfm.kit import run_training_data as run_data
    from domainfm.kit import split_texts

    def training_texts(source: str, split: str, options: dict[str, object]) -> tuple[list[str], list[str], list[str], str]:
        return split_texts("finance_sentiment", source, split, options)

    texts, labels, heldout, origin = training_texts("demo", "train", {})
    everything, _, none, _ = training_texts("demo", "all", {})
    assert len(texts) == len(labels) and not set(texts) & set(heldout) and none == []
    assert sorted(texts + heldout) == sorted(everything) and 0.75 < len(texts) / len(everything) < 0.85
    other_seed, _, _, _ = training_texts("demo", "train", {"split_seed": 7})
    assert other_seed != texts and origin.endswith("(train)")
    run = tmp_path / "run"
    (run / "artifact").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"config": {"data": "demo", "options": {"split_seed": 7}}}))
    assert run_data(str(run / "artifact")) == ("demo", {"split_seed": 7})
    assert run_data(str(tmp_path)) == (None, {})
