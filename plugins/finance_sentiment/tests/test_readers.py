"""Readers: PhraseBank release format, generic tables, TFNS, demo set, and their error messages."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainfm.errors import DataError
from domainfm_finance_sentiment import LABELS
from domainfm_finance_sentiment.readers import (
    demo_path,
    normalise_label,
    parse_timestamp,
    read_labelled_table,
    read_phrasebank,
    read_source,
    read_tfns,
)
from domainfm.shared_data import shared_data_dir


def test_phrasebank_latin1_last_at_and_stray_line(tmp_path: Path) -> None:
    path = tmp_path / "Sentences_50Agree.txt"
    path.write_bytes(
        "Sepp\xe4l\xe4 sold shares @ EUR 3 each .@positive\n1\nProfit fell .@negative\r\n".encode("latin-1")
    )
    rows = read_phrasebank(path)
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert rows[0]["text"] == "Sepp\xe4l\xe4 sold shares @ EUR 3 each ."  # split on the last '@'
    assert rows[1]["id"] == "pb-3"


def test_phrasebank_bad_label_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("Fine .@neutral\nOdd .@great\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"x\.txt:2: field 'label': 'great'"):
        read_phrasebank(path)


def test_phrasebank_empty_sentence(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("  @neutral\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"x\.txt:1: field 'text' is empty"):
        read_phrasebank(path)


def test_generic_csv_errors_name_file_line_field(tmp_path: Path) -> None:
    good = tmp_path / "ok.csv"
    good.write_text("text,label,timestamp,topic\nShares rose,bullish,2026-01-02T03:04:05Z,markets\n", encoding="utf-8")
    rows = read_labelled_table(good)
    assert rows[0]["label"] == "positive" and rows[0]["timestamp"] == "2026-01-02T03:04:05+00:00"
    cases = {
        "text,label\n   ,neutral\n": r"e\.csv:2: field 'text' is empty",
        "text,label\nok,maybe\n": r"e\.csv:2: field 'label': 'maybe'",
        "text,label,timestamp\nok,neutral,yesterday\n": r"e\.csv:2: field 'timestamp': 'yesterday'",
        "text,sentiment\nok,neutral\n": r"missing column\(s\) \['label'\]",
    }
    for content, pattern in cases.items():
        bad = tmp_path / "e.csv"
        bad.write_text(content, encoding="utf-8")
        with pytest.raises(DataError, match=pattern):
            read_labelled_table(bad)


def test_undecodable_bytes_are_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "b.csv"
    bad.write_bytes(b"text,label\n\xff\xfe broken,neutral\n")
    with pytest.raises(DataError, match=r"b\.csv: not valid UTF-8"):
        read_labelled_table(bad)


def test_jsonl_and_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"text": "Loss widened", "label": "negative", "entity": "ACME"}, {"text": "Flat", "label": "neutral"}]
    jl = tmp_path / "d.jsonl"
    jl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    for path in (jl, tmp_path / "d.parquet"):
        got = read_labelled_table(path)
        assert [r["label"] for r in got] == ["negative", "neutral"]
        assert got[0]["entity"] == "ACME"


def test_tfns_label_mapping(tmp_path: Path) -> None:
    path = tmp_path / "sent_train.csv"
    path.write_text("text,label\nbear,0\nbull,1\nmeh,2\n", encoding="utf-8")
    assert [r["label"] for r in read_tfns(path)] == ["negative", "positive", "neutral"]
    path.write_text("text,label\nodd,3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"sent_train\.csv:2: field 'label': '3'"):
        read_tfns(path)


def test_demo_set_is_original_and_complete() -> None:
    rows, meta = read_source("demo")
    assert 800 <= len(rows) <= 1100 and meta["duplicates_dropped"] == 0
    assert set(Counter(r["label"] for r in rows)) == set(LABELS)
    assert all({"timestamp", "topic", "source", "entity"} <= set(r) for r in rows)
    truth = json.loads((demo_path().parent / "surge_truth.json").read_text())
    surge = [r for r in rows if r["entity"] == truth["entity"] and r["topic"] == truth["topic"]
             and truth["start"].replace("Z", "+00:00") <= r["timestamp"] <= truth["end"].replace("Z", "+00:00")]
    assert len(surge) >= truth["planted_items"] and all(r["label"] == "negative" for r in surge)


def test_unknown_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_source(str(tmp_path / "missing.csv"))


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)))
def test_parse_timestamp_roundtrips_iso_and_epoch(dt) -> None:  # type: ignore[no-untyped-def]
    assert parse_timestamp(dt.isoformat(), "t") == dt
    assert parse_timestamp(dt.isoformat().replace("+00:00", "Z"), "t") == dt
    assert abs(parse_timestamp(dt.timestamp(), "t").timestamp() - dt.timestamp()) < 1e-3


@given(st.text(max_size=20))
def test_normalise_label_accepts_only_known_labels(raw: str) -> None:
    try:
        assert normalise_label(raw, "here") in LABELS
    except DataError as exc:
        assert str(exc).startswith("here: field 'label'")


@pytest.mark.shared_data
def test_real_phrasebank_counts() -> None:
    base = shared_data_dir()
    if base is None or not (base / "financial").is_dir():
        pytest.skip("shared data (../shared/data/financial) not found; set DOMAINFM_SHARED_DATA")
    rows, meta = read_source("phrasebank:50agree")
    assert meta["rows"] + meta["duplicates_dropped"] == 4846
    rows, meta = read_source("phrasebank:allagree")
    assert meta["rows"] + meta["duplicates_dropped"] == 2263  # the stray line "1" is skipped
    tfns, _ = read_source("tfns")
    assert Counter(r["label"] for r in tfns)["negative"] > 1000
