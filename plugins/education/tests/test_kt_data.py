"""Knowledge-tracing readers: both formats, pseudonyms, unknown skills, lengths 1 and 10,000."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainfm.errors import DataError
from domainfm_education.kt_data import (
    parse_correct,
    pseudonymise,
    read_interactions,
    read_kt_file,
    read_skill_names,
    read_three_line,
)
from domainfm_education.kt_sources import load_kt_source


def test_three_line_format(write) -> None:  # type: ignore[no-untyped-def]
    path = write("t.csv", "3\n5,7,5\n1,0,1\n1\n7\n0\n")
    log = read_three_line(path, key="k")
    assert log.skill_names == ["5", "7"]
    assert [s.skills for s in log.sequences] == [[0, 1, 0], [1]]
    assert log.notes["single_interaction_students"] == 1
    assert all(s.student.startswith("s_") for s in log.sequences)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3\n1,2\n1,0\n", r"t\.csv:1: count 3 does not match 2 skills"),
        ("2\n1,2\n1,2\n", r"t\.csv:3: answer #2: field 'correct': '2' is not 0/1"),
        ("x\n1\n1\n", r"t\.csv:1: field 'count'"),
        ("2\n1,2\n1,0\n1\n", "not a multiple of 3"),
    ],
)
def test_three_line_errors(write, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=message):
        read_three_line(write("t.csv", text), key="k")


def test_three_line_rejects_skills_outside_the_known_set(write) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=r"t\.csv:2: field 'skill' #2: '999'"):
        read_three_line(write("t.csv", "2\n1,999\n1,0\n"), key="k", valid_skills={"1", "2"})


def test_interaction_log_orders_by_time_and_pseudonymises(write) -> None:  # type: ignore[no-untyped-def]
    text = ("user_id,skill_name,is_correct,timestamp\n"
            "ann,add,1,2026-01-02T10:00:00\nann,sub,0,2026-01-01T10:00:00\nbob,add,true,\n")
    log = read_interactions(write("log.csv", text), key="secret")
    ann = next(s for s in log.sequences if s.student == pseudonymise("ann", "secret"))
    assert [log.skill_names[i] for i in ann.skills] == ["sub", "add"] and ann.correct == [0, 1]
    assert pseudonymise("ann", "secret") != pseudonymise("ann", "other")
    assert all("ann" not in s.student and "bob" not in s.student for s in log.sequences)
    assert sorted(log.raw_ids) == ["ann", "bob"]


def test_unknown_skills_with_a_fixed_vocabulary_are_dropped_and_counted(write) -> None:  # type: ignore[no-untyped-def]
    path = write("log.csv", "student,skill,correct\na,add,1\na,calculus,0\na,add,0\nb,topology,1\n")
    log = read_kt_file(path, key="k", skill_index={"add": 0})
    assert log.sequences[0].skills == [0, 0] and log.notes["unknown_skill_interactions"] == 2
    assert len(log.sequences) == 2 and log.sequences[1].skills == []  # kept: gets prior mastery


def test_interaction_log_errors(write) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=r"l\.csv:3: field 'correct': 'maybe'"):
        read_interactions(write("l.csv", "student,skill,correct\na,x,1\na,x,maybe\n"), key="k")
    with pytest.raises(DataError, match="missing column 'skill'"):
        read_interactions(write("m.csv", "student,correct\na,1\n"), key="k")
    with pytest.raises(DataError, match=r"n\.csv:2: field 'timestamp'"):
        read_interactions(write("n.csv", "student,skill,correct,timestamp\na,x,1,yesterday\n"), key="k")


def test_long_sequences_are_read_whole(write) -> None:  # type: ignore[no-untyped-def]
    n = 10_000
    path = write("long.csv", f"{n}\n" + ",".join(["3"] * n) + "\n" + ",".join(["1", "0"] * (n // 2)) + "\n")
    assert len(read_three_line(path, key="k").sequences[0]) == n


@given(st.sampled_from(["1", "0", "true", "False", " yes ", "n", 1, 0, "1.0"]))
def test_parse_correct_accepts_the_usual_spellings(value: object) -> None:
    assert parse_correct(value, "w") in (0, 1)


@given(st.text(max_size=8).filter(lambda t: t.strip().lower() not in
       {"1", "0", "1.0", "0.0", "true", "false", "yes", "no", "y", "n", "t", "f"}))
def test_parse_correct_rejects_anything_else(value: str) -> None:
    with pytest.raises(DataError, match="field 'correct'"):
        parse_correct(value, "w")


def test_skill_name_files_either_order(write) -> None:  # type: ignore[no-untyped-def]
    assert read_skill_names(write("a.txt", "31\tCircumference \n")) == {"31": "Circumference"}
    assert read_skill_names(write("b.txt", "Rounding\t38\n")) == {"38": "Rounding"}


def test_demo_source_splits_by_student() -> None:
    bundle = load_kt_source("demo", seed=1, key="k")
    students = {name: set(t["student"]) for name, t in bundle.tables.items()}
    assert not students["train"] & students["test"] and sum(len(s) for s in students.values()) == 80
    assert bundle.meta["catalogue"] and bundle.meta["pseudonymised"]
    assert not any(s.startswith("student-") for names in students.values() for s in names)


@pytest.mark.shared_data
def test_assist2009_shape(shared_data_dir) -> None:  # type: ignore[no-untyped-def]
    if not (shared_data_dir / "education" / "assist2009_updated").is_dir():
        pytest.skip("assist2009_updated absent")
    from domainfm_education.kt_sources import load_assist2009_log

    train, valid, test, names = load_assist2009_log(seed=42, key="k")
    assert len(names) == 110 and len(train) + len(valid) == 2921 and len(test) == 1230
    assert sum(len(s) for s in train + valid) == 224_218 and sum(len(s) for s in test) == 101_419
