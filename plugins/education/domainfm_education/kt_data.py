"""Knowledge-tracing data: interaction logs and the 3-line-per-student format, with pseudonymised students.

Formats:

- interaction log (CSV/TSV/JSONL/Parquet): ``student, skill|question, correct[, timestamp]``; rows are
  ordered per student by timestamp (ISO-8601 or a number), ties and missing timestamps keep file order;
  ``correct`` is 0/1 (also true/false, yes/no);
- 3-line format (ASSISTments as preprocessed for DKVMN): per student a line with the number of attempts,
  a line of comma-separated skill ids and a line of comma-separated 0/1 answers.

Student ids never leave this module in clear: they are replaced by a keyed hash (HMAC-SHA256) at read
time. Defined behaviour for messy input (errors name file:line:field):

- a count that does not match the lists, a non-0/1 answer, an empty skill: error;
- with a fixed skill vocabulary (a trained model), interactions on unknown skills are dropped and counted
  in ``notes`` (never silently mapped to another skill);
- a student with a single interaction has no next answer to predict: kept for mastery, excluded from
  training/evaluation pairs (counted in ``notes``); very long histories are cut into windows later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domainfm.errors import DataError
from domainfm.pseudonyms import pseudonymise
from domainfm.readers import Vocabulary, parse_binary, parse_timestamp, pick_column, require_columns

STUDENT_ALIASES = ("student", "student_id", "user", "user_id", "learner")
SKILL_ALIASES = ("skill", "skill_id", "skill_name", "kc", "concept", "question", "question_id", "item")
CORRECT_ALIASES = ("correct", "is_correct", "answer_correct", "response")
TIME_ALIASES = ("timestamp", "time", "ts", "datetime", "order")


@dataclass
class KTSequence:
    """One student's answers in time order: skill indices into the log's vocabulary and 0/1 answers."""

    student: str
    skills: list[int]
    correct: list[int]

    def __len__(self) -> int:
        return len(self.skills)


@dataclass
class KTLog:
    """All sequences of a file plus the skill vocabulary (index -> name) and notes on dropped data."""

    sequences: list[KTSequence]
    skill_names: list[str]
    notes: dict[str, int] = field(default_factory=dict)
    raw_ids: list[str] = field(default_factory=list, repr=False)  # in memory only, for the privacy check

    @property
    def skill_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.skill_names)}


def parse_correct(value: Any, where: str) -> int:
    """0/1 from 0/1, true/false, yes/no; anything else is an error naming ``where``."""
    return parse_binary(value, where, "correct")


def read_interactions(path: str | Path, key: str, skill_index: Mapping[str, int] | None = None) -> KTLog:
    """Read an interaction log into per-student sequences (students pseudonymised with ``key``)."""
    from domainfm.data import read_table

    rows = read_table(path)
    columns = require_columns(rows, path, ())
    student_col, skill_col = pick_column(columns, STUDENT_ALIASES), pick_column(columns, SKILL_ALIASES)
    correct_col, time_col = pick_column(columns, CORRECT_ALIASES), pick_column(columns, TIME_ALIASES)
    for name, col, aliases in (("student", student_col, STUDENT_ALIASES), ("skill", skill_col, SKILL_ALIASES),
                               ("correct", correct_col, CORRECT_ALIASES)):
        if col is None:
            raise DataError(f"{path}: missing column {name!r} (or one of {list(aliases)}); found {columns}")
    vocab = Vocabulary(skill_index)
    notes = {"unknown_skill_interactions": 0, "single_interaction_students": 0}
    per_student: dict[str, list[tuple[float, int, int, int]]] = {}
    for order, row in enumerate(rows):
        where = f"{path}:{row.get('_line', order + 1)}"
        student = str(row.get(student_col) or "").strip()
        if not student:
            raise DataError(f"{where}: field {student_col!r} is empty")
        skill = str(row.get(skill_col) or "").strip()
        if not skill:
            raise DataError(f"{where}: field {skill_col!r} is empty")
        correct = parse_correct(row.get(correct_col), where)
        stamp = parse_timestamp(row.get(time_col), where) if time_col else math.nan
        events = per_student.setdefault(student, [])  # a student with only unknown skills still gets a row
        idx = vocab.get(skill)
        if idx is None:
            notes["unknown_skill_interactions"] += 1
            continue
        events.append((stamp, order, idx, correct))
    sequences = []
    for student, events in per_student.items():
        events.sort(key=lambda e: (math.inf if math.isnan(e[0]) else e[0], e[1]))
        seq = KTSequence(pseudonymise(student, key), [e[2] for e in events], [e[3] for e in events])
        notes["single_interaction_students"] += int(len(seq) == 1)
        sequences.append(seq)
    return KTLog(sequences, vocab.names(), notes, raw_ids=list(per_student))


def read_three_line(
    path: str | Path, key: str, skill_index: Mapping[str, int] | None = None, valid_skills: set[str] | None = None
) -> KTLog:
    """Read the 3-line-per-student format; students are named ``<file>:<n>`` before pseudonymisation.

    :param valid_skills: when given (e.g. the 110 ASSISTments ids), any other skill id is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) % 3:
        raise DataError(f"{path}: {len(lines)} lines is not a multiple of 3 (count, skills, answers per student)")
    vocab = Vocabulary(skill_index)
    notes = {"unknown_skill_interactions": 0, "single_interaction_students": 0}
    sequences = []
    for block in range(0, len(lines), 3):
        line = block + 1
        try:
            count = int(lines[block])
        except ValueError:
            raise DataError(f"{path}:{line}: field 'count': {lines[block]!r} is not an integer") from None
        skills = [s.strip() for s in lines[block + 1].rstrip(",").split(",")]
        answers = [a.strip() for a in lines[block + 2].rstrip(",").split(",")]
        if count < 1 or len(skills) != count or len(answers) != count:
            raise DataError(
                f"{path}:{line}: count {count} does not match {len(skills)} skills (line {line + 1}) "
                f"and {len(answers)} answers (line {line + 2})"
            )
        seq = KTSequence(pseudonymise(f"{path.name}:{block // 3}", key), [], [])
        for pos, (skill, answer) in enumerate(zip(skills, answers, strict=True)):
            if not skill or (valid_skills is not None and skill not in valid_skills):
                raise DataError(f"{path}:{line + 1}: field 'skill' #{pos + 1}: {skill!r} is not a known skill id")
            correct = parse_correct(answer, f"{path}:{line + 2}: answer #{pos + 1}")
            idx = vocab.get(skill)
            if idx is None:
                notes["unknown_skill_interactions"] += 1
                continue
            seq.skills.append(idx)
            seq.correct.append(correct)
        notes["single_interaction_students"] += int(len(seq) == 1)
        sequences.append(seq)
    return KTLog(sequences, vocab.names(), notes)


def is_three_line(path: str | Path) -> bool:
    """True when the file's first line is a bare integer (the 3-line format), not a header."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".txt", ""):
        return False
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline().strip()
    return first.isdigit()


def read_kt_file(path: str | Path, key: str, skill_index: Mapping[str, int] | None = None) -> KTLog:
    """Read either format, detected from the first line."""
    if not Path(path).exists():
        raise DataError(f"{path}: no such file")
    if is_three_line(path):
        return read_three_line(path, key, skill_index)
    return read_interactions(path, key, skill_index)


def read_skill_names(path: str | Path) -> dict[str, str]:
    """ASSISTments mapping files (``id<TAB>name`` or ``name<TAB>id``; the numeric side is the id) -> {id: name}."""
    out: dict[str, str] = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) != 2 or not (parts[0].isdigit() or parts[1].isdigit()):
            raise DataError(f"{path}:{lineno}: expected 'id<TAB>name' or 'name<TAB>id'")
        sid, name = (parts[0], parts[1]) if parts[0].isdigit() else (parts[1], parts[0])
        out[sid] = name
    return out
