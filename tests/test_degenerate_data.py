"""Degenerate data is refused before training with one line naming file, line and cause (issue 22 item 2)."""

from __future__ import annotations

import csv
import io
import json
import logging
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domainfm.builtin import text_classification as tc
from domainfm.config import RunConfig, build_config
from domainfm.data import clean_text, read_table, require_labels
from domainfm.errors import DataError
from domainfm.io import DEFAULT_MAX_TEXT_CHARS, max_line_chars, read_records
from domainfm.types import RunContext

ROWS = [("the card was charged twice", "billing"), ("my parcel never came", "delivery")] * 5


def _ctx(tmp_path: Path, *overrides: str) -> RunContext:
    return RunContext(
        run_id="t", domain=tc.DOMAIN, config=build_config(None, list(overrides)), run_dir=tmp_path, device="cpu"
    )


def _load(tmp_path: Path, path: Path, *overrides: str) -> Any:
    return tc.domainfm_load_data(_ctx(tmp_path, *overrides), tc.DOMAIN, str(path))


def _jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def _good(n: int = 10) -> list[dict[str, Any]]:
    return [{"text": t, "label": lab} for t, lab in ROWS[:n]]


def test_a_single_label_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("text,label\n" + "".join(f"text number {i},billing\n" for i in range(12)), encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{path}: only the label 'billing' in 12 row\(s\); .*at least 2 labels$"):
        _load(tmp_path, path)


def test_a_duplicated_label_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("text,label,label\n" + "".join(f"{t},{lab},other\n" for t, lab in ROWS), encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{path}:1: column 'label' appears twice in the header \(columns 2 and 3\)"):
        _load(tmp_path, path)
    parquet = tmp_path / "dup.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table([["a"], ["x"], ["y"]], names=["text", "label", "label"]), parquet)
    with pytest.raises(DataError, match="column 'label' appears twice"):
        read_records(parquet)


def test_a_key_named_twice_in_a_jsonl_record_is_refused(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [*_good(2), '{"text": "a", "label": "billing", "label": "delivery"}'])
    with pytest.raises(DataError, match=rf"^{path}:3: key 'label' appears twice"):
        read_records(path)


def test_a_null_label_is_blamed_on_the_label(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [*_good(), {"text": "where is my refund", "label": None}])
    with pytest.raises(DataError, match=rf"^{path}:11: field 'label' is missing \(null\)$"):
        _load(tmp_path, path)


def test_a_row_without_label_names_file_and_line(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [*_good(), {"text": "where is my refund"}, *_good(2)])
    with pytest.raises(DataError, match=rf"^{path}:11: field 'label' is missing$"):
        _load(tmp_path, path)


@pytest.mark.parametrize(("text", "kind"), [({"body": "hi"}, "object"), (["hi", "there"], "array")])
def test_text_that_is_a_json_object_or_array_is_refused(tmp_path: Path, text: Any, kind: str) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [*_good(), {"text": text, "label": "billing"}])
    with pytest.raises(DataError, match=rf"^{path}:11: field 'text' is a JSON {kind}, not a string$"):
        _load(tmp_path, path)


def test_labels_too_rare_for_the_split_are_reported_with_where_they_went(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [*_good(), {"text": "is my account frozen", "label": "security"}])
    with caplog.at_level(logging.WARNING, logger="domainfm.data"):
        bundle = _load(tmp_path, path)
    assert bundle.sizes() == {"train": 6, "validation": 2, "test": 3}
    (message,) = [r.getMessage() for r in caplog.records]
    assert message == (
        f"{path}: label 'security' has 1 example(s), too few to split: train 0, validation 0, test 1; "
        "train and validation have none of it"
    )


def test_a_train_split_left_with_one_label_is_refused(tmp_path: Path) -> None:
    rows = [{"text": f"charge {i}", "label": "billing"} for i in range(9)] + [{"text": "a parcel", "label": "delivery"}]
    with pytest.raises(DataError, match=r"\(the train split\): only the label 'billing'"):
        _load(tmp_path, _jsonl(tmp_path / "d.jsonl", rows))


def test_utf8_with_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    body = "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in ROWS)
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    bundle = _load(tmp_path, path)
    assert sum(bundle.sizes().values()) == len(ROWS) and bundle.label_names == ["billing", "delivery"]
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + json.dumps({"text": "a", "label": "b"}).encode() + b"\n")
    assert read_records(jsonl)[0]["text"] == "a"


def test_a_huge_line_fails_fast_without_loading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps({"text": "ok", "label": "billing"}) + "\n")
        fh.write('{"text": "' + "x" * 20_000_000 + '", "label": "billing"}\n')
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DataError, match=rf"^{path}:2: line is longer than 225,536 characters; a text may have at most 10,000"):
            read_table(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2.0
    assert peak < 5_000_000  # the 20 MB line was never held in memory
    csv_path = tmp_path / "huge.csv"
    csv_path.write_text("text,label\n" + "y" * 300_000 + ",billing\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{csv_path}:2: line is longer than"):
        read_table(csv_path)


def test_text_length_is_capped_and_the_cap_is_configurable(tmp_path: Path) -> None:
    long = "word " * 2_400  # 12,000 characters: under the line cap, over the text cap
    path = _jsonl(tmp_path / "d.jsonl", [*_good(), {"text": long, "label": "billing"}])
    with pytest.raises(DataError, match=rf"^{path}:11: field 'text' has 11,999 characters; the limit is 10,000"):
        _load(tmp_path, path)
    assert sum(_load(tmp_path, path, "max_text_chars=20000").sizes().values()) == 11
    assert RunConfig().max_text_chars == DEFAULT_MAX_TEXT_CHARS == 10_000
    assert max_line_chars(20_000) > max_line_chars(10_000)


# ------------------------------------------------------------------------------------------ properties


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


@given(value=json_values)
def test_clean_text_returns_text_or_one_line_naming_the_field(value: Any) -> None:
    try:
        text = clean_text(value, "f.jsonl:7", "label", max_chars=20)
    except DataError as exc:
        message = str(exc)
        assert message.startswith("f.jsonl:7: field 'label' ") and "\n" not in message
        return
    assert isinstance(value, (str, int, float)) and not isinstance(value, bool)
    assert text == str(value).strip() and 0 < len(text) <= 20


cells = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=25)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(cells, cells), min_size=1, max_size=8), bom=st.booleans(), tsv=st.booleans())
def test_csv_rows_read_back_as_written_with_or_without_a_bom(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str]], bom: bool, tsv: bool
) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter="\t" if tsv else ",")
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    path = tmp_path_factory.mktemp("csv") / ("d.tsv" if tsv else "d.csv")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8"))
    got = read_records(path, required=("text", "label"))
    # the csv module reads "\r" inside an unquoted cell as a line break: compare what csv itself reads back
    expected = list(csv.DictReader(io.StringIO(buffer.getvalue(), newline=""), delimiter="\t" if tsv else ","))
    assert [{k: v for k, v in r.items() if k != "_line"} for r in got] == expected


@given(labels=st.lists(st.sampled_from(["a", "b", "c"]), max_size=12))
def test_require_labels_refuses_exactly_fewer_than_two_distinct(labels: list[str]) -> None:
    if len(set(labels)) >= 2:
        require_labels(labels, "d.csv")
    else:
        with pytest.raises(DataError, match=r"^d.csv: .*classification needs at least 2 labels$"):
            require_labels(labels, "d.csv")


# ------------------------------------------------------------------------------------------ prediction input


def test_stdin_lines_and_records_are_capped(tmp_path: Path) -> None:
    from domainfm.io import read_input_records

    ok = read_input_records("-", stdin=io.BytesIO(b"\xef\xbb\xbfhello\n\n" + json.dumps({"text": "hi"}).encode() + b"\n"))
    assert ok == [{"text": "hello"}, {"text": "hi"}]
    with pytest.raises(DataError, match=r"^<stdin>:2: field 'text' has 10,001 characters; the limit is 10,000"):
        read_input_records("-", stdin=io.BytesIO(b"fine\n" + b"x" * 10_001 + b"\n"))
    assert read_input_records("-", 20_000, stdin=io.BytesIO(b"x" * 10_001 + b"\n"))[0]["text"] == "x" * 10_001
    nested = json.dumps({"text": "short", "context": {"notes": ["y" * 10_001]}}).encode()
    with pytest.raises(DataError, match=r"^<stdin>:1: field 'context.notes\[0\]' has 10,001 characters"):
        read_input_records("-", stdin=io.BytesIO(nested + b"\n"))
    with pytest.raises(DataError, match=r"^<stdin>:1: field 'text' is a JSON object, not a string$"):
        read_input_records("-", stdin=io.BytesIO(b'{"text": {"a": 1}}\n'))
    with pytest.raises(DataError, match=r"^<stdin>:1: not UTF-8 text"):
        read_input_records("-", stdin=io.BytesIO(b"\xff\xfe\x00binary\n"))


def test_a_huge_stdin_line_fails_fast(tmp_path: Path) -> None:
    from domainfm.io import read_input_records

    class Stream(io.RawIOBase):
        """20 MB of one line, handed out in the sizes readline asks for: counts what was read."""

        def __init__(self) -> None:
            self.left, self.read_bytes = 20_000_000, 0

        def readinto(self, buffer: Any) -> int:
            n = min(len(buffer), self.left)
            buffer[:n] = b"z" * n
            self.left -= n
            self.read_bytes += n
            return n

        def readable(self) -> bool:
            return True

    stream = Stream()
    with pytest.raises(DataError, match=r"^<stdin>:1: line is longer than 902,144 bytes"):
        read_input_records("-", stdin=io.BufferedReader(stream))
    assert stream.read_bytes < 1_000_000


def test_prediction_files_are_checked_too(tmp_path: Path) -> None:
    from domainfm.io import read_input_records

    path = _jsonl(tmp_path / "in.jsonl", [{"text": "fine"}, {"text": ["a", "list"]}])
    with pytest.raises(DataError, match=rf"^{path}:2: field 'text' is a JSON array, not a string$"):
        read_input_records(str(path))


# ------------------------------------------------------------------------------------------ plugin readers


def _plugin_readers() -> dict[str, Any]:
    from domainfm_customer_service.readers import load_source as cs_load, read_intents
    from domainfm_education.grading_data import read_grading_file
    from domainfm_finance_sentiment.readers import read_labelled_table
    from domainfm_healthcare.readers import load_user_data
    from domainfm_recommendation.readers import read_items

    return {
        "finance": (read_labelled_table, {"text": {"a": 1}, "label": "positive"}, "text"),
        "customer_service": (read_intents, {"text": {"a": 1}, "intent": "card_arrival"}, "text"),
        "healthcare": (lambda p: load_user_data(p), {"text": ["a"], "label": "flu"}, "text"),
        "recommendation": (read_items, {"item": "w1", "title": "Pottery", "description": {"a": 1}}, "description"),
        "education": (
            read_grading_file,
            {"question": "q", "reference_answers": "r", "student_answer": ["a"], "label": "correct"},
            "student_answer",
        ),
        "_single": (cs_load, load_user_data),
    }


@pytest.mark.parametrize("domain", ["finance", "customer_service", "healthcare", "recommendation", "education"])
def test_plugin_readers_refuse_a_json_object_or_array_as_text(tmp_path: Path, domain: str) -> None:
    pytest.importorskip(f"domainfm_{'finance_sentiment' if domain == 'finance' else domain}")
    read, bad, field = _plugin_readers()[domain]
    path = _jsonl(tmp_path / "d.jsonl", [bad])
    with pytest.raises(DataError, match=rf"^{path}:1: field '{field}' is a JSON (object|array), not a string$"):
        read(path)


def test_plugin_readers_refuse_a_single_label(tmp_path: Path) -> None:
    pytest.importorskip("domainfm_customer_service")
    pytest.importorskip("domainfm_healthcare")
    cs_load, health_load = _plugin_readers()["_single"]
    path = tmp_path / "one.csv"
    path.write_text("text,label\n" + "".join(f"symptom number {i},flu\n" for i in range(9)), encoding="utf-8")
    for load in (cs_load, health_load):
        with pytest.raises(DataError, match=rf"^{path}: only the label 'flu' in 9 row\(s\)"):
            load(str(path))


def test_predict_reads_stdin_through_the_capped_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from domainfm.cli.main import _read_input

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"ok\n" + b"x" * 10_001 + b"\n")))
    with pytest.raises(DataError, match=r"^<stdin>:2: field 'text' has 10,001 characters; the limit is 10,000"):
        _read_input("-")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x" * 10_001 + b"\n")))
    assert _read_input("-", 20_000) == [{"text": "x" * 10_001}]  # predict --max-text-chars 20000


@given(
    lines=st.lists(st.text(st.characters(exclude_characters="\r\n", exclude_categories=("Cs",)), max_size=40), max_size=8),
    limit=st.integers(1, 30),
    ending=st.sampled_from(["\n", "\r\n"]),
)
def test_bounded_lines_yield_every_short_line_and_stop_at_the_first_long_one(lines: list[str], limit: int, ending: str) -> None:
    from domainfm.io import bounded_lines

    stream = io.StringIO("".join(line + ending for line in lines), newline="")
    too_long = next((i for i, line in enumerate(lines, start=1) if len(line) > limit), None)
    got: list[str] = []
    if too_long is None:
        got = list(bounded_lines(stream, "f", limit))
        assert got == [line + ending for line in lines]
    else:
        with pytest.raises(DataError, match=rf"^f:{too_long}: line is longer than {limit:,} characters"):
            got.extend(bounded_lines(stream, "f", limit))
        assert got == [line + ending for line in lines[: too_long - 1]]


def test_the_cli_refuses_degenerate_data_in_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    path = tmp_path / "one.csv"
    path.write_text("text,label\n" + "".join(f"text number {i},billing\n" for i in range(12)), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "domainfm.cli.main", "run", "text_classification", "--data", str(path),
         "--output-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "DOMAINFM_NO_PROGRESS": "1", "COLUMNS": "200"},
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {path}: only the label 'billing' in 12 row(s); classification needs at least 2 labels"]
    assert not list((tmp_path / "runs").glob("*/*/artifact"))
