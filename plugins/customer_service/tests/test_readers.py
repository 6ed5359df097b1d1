from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domainfm.errors import DataError
from domainfm_customer_service import OUT_OF_SCOPE
from domainfm.engine.documents import chunk_text
from domainfm_customer_service.query import QueryError, validate_query
from domainfm_customer_service.readers import (
    load_source,
    read_intents,
    read_knowledge_base,
    read_qa_pairs,
)


def test_demo_is_complete_and_consistent() -> None:
    data = load_source("demo")
    intents = {r["intent"] for r in data.utterances}
    assert OUT_OF_SCOPE in intents
    assert sum(r["intent"] == OUT_OF_SCOPE for r in data.utterances) >= 10
    in_scope = intents - {OUT_OF_SCOPE}
    assert in_scope == {d.intent for d in data.documents if d.intent}
    assert in_scope == set(data.templates)
    assert {q["intent"] for q in data.qa_pairs} <= in_scope
    assert len({d.id for d in data.documents}) == len(data.documents)


def test_intent_column_may_be_called_category(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("text,category\nwhere is my card,card_arrival\n", encoding="utf-8")
    assert read_intents(path) == [{"text": "where is my card", "intent": "card_arrival"}]


def test_missing_intent_column_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("text,other\nhello,x\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"u\.csv: missing an intent column"):
        read_intents(path)


def test_empty_text_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    path.write_text('{"text": "ok", "intent": "a"}\n{"text": "  ", "intent": "a"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"u\.jsonl:2: field 'text' is empty"):
        read_intents(path)


def test_parquet_utterances(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "u.parquet"
    pq.write_table(pa.table({"text": ["a b", "c d"], "intent": ["x", "y"]}), path)
    assert [r["intent"] for r in read_intents(path)] == ["x", "y"]


def test_duplicate_document_ids_name_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "kb.csv"
    path.write_text("id,title,text\nd1,A,first text\nd2,B,second\nd1,C,again\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"kb\.csv:4: duplicate document id 'd1' \(first seen at .*kb\.csv:2\)"):
        read_knowledge_base(path)


def test_unknown_document_format(tmp_path: Path) -> None:
    path = tmp_path / "kb.docx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match="unknown knowledge base format '.docx'"):
        read_knowledge_base(path)
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "a.md").write_text("# Title A\nBody of A.", encoding="utf-8")
    (folder / "b.pdf").write_bytes(b"%PDF-1.4")
    with pytest.raises(DataError, match=r"b\.pdf: unknown knowledge-base document format"):
        read_knowledge_base(folder)


def test_markdown_folder_and_binary_file(tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    (folder / "cards").mkdir(parents=True)
    (folder / "cards" / "lost.md").write_text("# Lost card\n\nFreeze it in the app.\n", encoding="utf-8")
    (folder / "fees.txt").write_text("No monthly fee.", encoding="utf-8")
    docs = read_knowledge_base(folder)
    assert [(d.id, d.title, d.text) for d in docs] == [
        ("cards/lost", "Lost card", "Freeze it in the app."),
        ("fees", "fees", "No monthly fee."),
    ]
    (folder / "bad.txt").write_bytes(b"\x00\x01binary")
    with pytest.raises(DataError, match=r"bad\.txt: binary content"):
        read_knowledge_base(folder)


def test_qa_pairs_require_answer(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"question": "q?", "answer": ""}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"qa\.jsonl:1: field 'answer' is empty"):
        read_qa_pairs(path)


def test_unknown_source() -> None:
    with pytest.raises(DataError, match="not 'demo', 'banking77', a folder or a file"):
        load_source("/nonexistent/place")


@pytest.mark.shared_data
def test_banking77_reader(shared_data_dir: Path) -> None:
    folder = shared_data_dir / "customer_service"
    if not (folder / "banking77_train.csv").is_file():
        pytest.skip(f"BANKING77 not found under {folder} (set DOMAINFM_SHARED_DATA)")
    data = load_source("banking77")
    assert len(data.utterances) == 10003
    assert data.test_utterances is not None and len(data.test_utterances) == 3080
    assert len({r["intent"] for r in data.utterances}) == 77


# ---------------------------------------------------------------------------------- queries and chunks


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty text"),
        ("   \n\t ", "empty text"),
        (None, "no text given"),
        ("x" * 1_000_000, "too long"),
        (b"\xff\xfe\x00\x01", "binary data"),
        ("hello\x00world", "control character"),
        (12, "expected text"),
    ],
)
def test_bad_queries_get_clear_errors(value: object, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        validate_query(value)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_validate_query_accepts_or_raises_query_error(value: object) -> None:
    try:
        text = validate_query(value)
    except QueryError:
        return
    assert text and text == text.strip()
    assert "\x00" not in text and "  " not in text


@settings(max_examples=100, deadline=None)
@given(st.lists(st.from_regex(r"[a-z]{1,8}[.!?]?", fullmatch=True), min_size=1, max_size=400),
       st.integers(8, 60), st.integers(0, 7))
def test_chunks_cover_every_word_and_respect_the_size(words: list[str], max_words: int, overlap: int) -> None:
    text = " ".join(words)
    chunks = chunk_text(text, max_words=max_words, overlap_words=overlap)
    assert all(len(c.split()) <= max_words for c in chunks)
    seen = [w for c in chunks for w in c.split()]
    assert set(seen) == set(words)
    if len(words) <= max_words:
        assert chunks == [text]
