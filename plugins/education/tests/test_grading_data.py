"""Grading readers: formats, splits and the defined behaviour for bad input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domainfm.errors import DataError
from domainfm_education.grading_data import (
    LABELS_3WAY,
    demo_grading_path,
    parse_references,
    read_grading_file,
    read_semeval,
    score_label_names,
)
from domainfm_education.grading_sources import load_grading_source, load_semeval

HEADER = "question,reference_answers,student_answer,label\n"


def test_demo_set_is_complete_and_balanced_enough() -> None:
    items = read_grading_file(demo_grading_path())
    assert len(items) == 120
    assert {i.label for i in items} == set(LABELS_3WAY)
    assert len({i.question_id for i in items}) == 10
    assert all(i.references and i.answer for i in items)


def test_demo_bundle_splits_are_disjoint_and_seeded() -> None:
    a = load_grading_source("demo", seed=3)
    b = load_grading_source("demo", seed=3)
    ids = {name: set(t["id"]) for name, t in a.tables.items()}
    assert ids == {name: set(t["id"]) for name, t in b.tables.items()}
    assert not ids["train"] & ids["test"] and not ids["validation"] & ids["test"]
    assert sum(len(v) for v in ids.values()) == 120
    assert a.label_names == list(LABELS_3WAY) and a.group_columns == ["question_id", "corpus"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["a", " b "], ("a", "b")),
        ('["x", "y"]', ("x", "y")),
        ("first || second", ("first", "second")),
        ("only one", ("only one",)),
    ],
)
def test_reference_formats(value: object, expected: tuple[str, ...]) -> None:
    assert parse_references(value, "f:1") == expected


@pytest.mark.parametrize("value", [None, "", "  ||  ", [], ["", " "], "[]"])
def test_missing_references_are_an_error(value: object) -> None:
    with pytest.raises(DataError, match="f:3: field 'reference_answers'"):
        parse_references(value, "f:3")


@given(st.text(max_size=60))
@settings(max_examples=150, deadline=None)
def test_reference_parser_never_crashes(text: str) -> None:
    try:
        refs = parse_references(text, "prop")
    except DataError as exc:
        assert "prop" in str(exc)
    else:
        assert refs and all(r.strip() == r and r for r in refs)


def test_csv_errors_name_file_line_and_field(write) -> None:  # type: ignore[no-untyped-def]
    path = write("g.csv", HEADER + 'Q1,"ref a || ref b",an answer,correct\nQ2,,answer two,incorrect\n')
    with pytest.raises(DataError, match=r"g\.csv:3: field 'reference_answers'"):
        read_grading_file(path)
    path = write("h.csv", HEADER + "Q1,ref,   ,correct\n")
    with pytest.raises(DataError, match=r"h\.csv:2: field 'student_answer' is empty"):
        read_grading_file(path)
    path = write("i.csv", HEADER + "Q1,ref,answer,partially right\n")
    with pytest.raises(DataError, match=r"i\.csv:2: field 'label': 'partially right' is not one of"):
        read_grading_file(path)


def test_labels_are_normalised(write) -> None:  # type: ignore[no-untyped-def]
    path = write("g.csv", HEADER + "Q1,ref,answer, Correct \n")
    assert read_grading_file(path)[0].label == "correct"


def test_scores_become_point_levels(write) -> None:  # type: ignore[no-untyped-def]
    rows = [{"question": "q", "reference_answers": ["r"], "student_answer": f"a{i}", "score": i % 3} for i in range(12)]
    path = write("s.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    items = read_grading_file(path)
    assert score_label_names(items) == ["0", "1", "2"]
    bundle = load_grading_source(str(path), seed=0)
    assert bundle.label_names == ["0", "1", "2"]
    bad = write("t.jsonl", json.dumps({**rows[0], "score": 1.5}) + "\n")
    with pytest.raises(DataError, match=r"t\.jsonl:1: field 'score': 1\.5 must be a whole number"):
        read_grading_file(bad)
    with pytest.raises(DataError, match="above max_score"):
        score_label_names(items, max_score=1)


def test_split_column_is_respected(write) -> None:  # type: ignore[no-untyped-def]
    lines = ["question,reference_answers,student_answer,label,split"]
    lines += [f"Q,ref,answer {i},{LABELS_3WAY[i % 3]},{['train', 'validation', 'test'][i % 3]}" for i in range(9)]
    bundle = load_grading_source(str(write("s.csv", "\n".join(lines) + "\n")), seed=0)
    assert bundle.sizes() == {"train": 3, "validation": 3, "test": 3}


def test_unknown_source_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="no such file"):
        load_grading_source("/nonexistent/grades.csv", seed=0)


@pytest.mark.shared_data
def test_semeval_counts_match_the_published_ones(shared_data_dir) -> None:  # type: ignore[no-untyped-def]
    path = shared_data_dir / "education" / "semeval2013_task7_3way" / "semeval2013_task7_3way.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    items = read_semeval(path)
    counts: dict[tuple[str, str], int] = {}
    for item in items:
        counts[(item.corpus, str(item.split))] = counts.get((item.corpus, str(item.split)), 0) + 1
    assert counts[("sciEntsBank", "train")] == 4969 and counts[("sciEntsBank", "test_ua")] == 540
    assert counts[("sciEntsBank", "test_uq")] == 733 and counts[("sciEntsBank", "test_ud")] == 4562
    assert counts[("beetle", "train")] == 3941 and counts[("beetle", "test_uq")] == 819
    bundle = load_semeval(["beetle"], seed=42, path=path)
    assert set(bundle.tables) == {"train", "validation", "test_ua", "test_uq", "test"}
    train_ids, valid_ids = set(bundle.tables["train"]["id"]), set(bundle.tables["validation"]["id"])
    assert not train_ids & valid_ids and len(train_ids) + len(valid_ids) == 3941
    assert not train_ids & set(bundle.tables["test"]["id"])
