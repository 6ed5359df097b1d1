"""Readers for short-answer grading data: generic CSV/JSONL files, the SemEval-2013 Task 7 file, the demo.

A grading row is ``question, reference_answers, student_answer, label|score`` (``question_id``, ``id``,
``corpus`` and ``split`` are optional). Defined behaviour for messy input, always with file:line and field:

- ``reference_answers`` may be a JSON list, a list (JSONL) or one string with references separated by
  ``||``; missing or empty references are an error (nothing to grade against);
- an empty ``student_answer`` is an error in training/evaluation data (the predictor itself grades a blank
  answer as ``incorrect`` by rule, see :mod:`domainfm_education.grader`);
- a ``label`` outside the label set is an error naming the allowed labels;
- with only ``score``, grades are whole points in ``0..max_score`` and the classes are the point levels
  (quadratic weighted kappa is then reported); a fractional, negative or non-numeric score is an error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from domainfm.errors import DataError
from domainfm.readers import require_columns, text_field
from domainfm.shared_data import shared_data_path

LABELS_3WAY: tuple[str, ...] = ("correct", "contradictory", "incorrect")
SEMEVAL_SPLITS: dict[str, str] = {
    "train": "train",
    "test-unseen-answers": "test_ua",
    "test-unseen-questions": "test_uq",
    "test-unseen-domains": "test_ud",
}
SEMEVAL_CORPORA: dict[str, str] = {"scientsbank": "sciEntsBank", "beetle": "beetle"}
SEMEVAL_RELATIVE = Path("education") / "semeval2013_task7_3way" / "semeval2013_task7_3way.jsonl.gz"
REFERENCE_SEPARATOR = "||"


@dataclass(frozen=True)
class GradingItem:
    """One student answer to grade, with the reference answers it is graded against."""

    id: str
    question_id: str
    question: str
    references: tuple[str, ...]
    answer: str
    label: str | None
    score: float | None
    corpus: str
    split: str | None
    where: str


def demo_grading_path() -> Path:
    """The project's own offline demo set (package data)."""
    return Path(str(resources.files("domainfm_education") / "demo_data" / "grading_demo.jsonl"))


def parse_references(value: Any, where: str) -> tuple[str, ...]:
    """Reference answers from a list, a JSON list string, or ``a || b``; raises if none is usable."""
    if value is None:
        raise DataError(f"{where}: field 'reference_answers' is missing (nothing to grade against)")
    refs: list[Any]
    if isinstance(value, (list, tuple)):
        refs = list(value)
    else:
        text = str(value).strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: field 'reference_answers' is not a valid JSON list: {exc.msg}") from None
            if not isinstance(parsed, list):
                raise DataError(f"{where}: field 'reference_answers' must be a list")
            refs = parsed
        else:
            refs = text.split(REFERENCE_SEPARATOR)
    out = tuple(str(r).strip() for r in refs if r is not None and str(r).strip())
    if not out:
        raise DataError(f"{where}: field 'reference_answers' is empty (nothing to grade against)")
    return out


def _label(value: Any, where: str, label_names: Sequence[str]) -> str:
    label = str(value).strip().lower() if value is not None else ""
    if not label:
        raise DataError(f"{where}: field 'label' is empty")
    if label not in label_names:
        raise DataError(f"{where}: field 'label': {label!r} is not one of {list(label_names)}")
    return label


def _score(value: Any, where: str) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: field 'score': {value!r} is not a number") from None
    if not math.isfinite(score) or score < 0:
        raise DataError(f"{where}: field 'score': {value!r} must be a finite number >= 0")
    if abs(score - round(score)) > 1e-9:
        raise DataError(f"{where}: field 'score': {value!r} must be a whole number of points")
    return float(round(score))


def rows_to_items(
    rows: Sequence[dict[str, Any]], source: str, label_names: Sequence[str] = LABELS_3WAY
) -> list[GradingItem]:
    """Validate raw rows (from :func:`domainfm.data.read_table`) into :class:`GradingItem` objects."""
    columns = require_columns(rows, source, ("question", "reference_answers", "student_answer"))
    has_label = "label" in columns
    if not has_label and "score" not in columns:
        raise DataError(f"{source}: needs a 'label' or a 'score' column; found {sorted(columns)}")
    items = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        where = f"{source}:{row.get('_line', i + 1)}"
        question = text_field(row.get("question"), where, "question")
        item_id = str(row.get("id") or row.get("answer_id") or f"row{row.get('_line', i + 1)}")
        if item_id in seen:
            raise DataError(f"{where}: field 'id': duplicate id {item_id!r}")
        seen.add(item_id)
        label = _label(row.get("label"), where, label_names) if has_label else None
        score = _score(row.get("score"), where) if not has_label else None
        split = row.get("split")
        items.append(
            GradingItem(
                id=item_id,
                question_id=str(row.get("question_id") or question),
                question=question,
                references=parse_references(row.get("reference_answers"), where),
                answer=text_field(row.get("student_answer"), where, "student_answer"),
                label=label,
                score=score,
                corpus=str(row.get("corpus") or "default"),
                split=str(split).strip() if split not in (None, "") else None,
                where=where,
            )
        )
    return items


def read_grading_file(path: str | Path, label_names: Sequence[str] = LABELS_3WAY) -> list[GradingItem]:
    """Read a grading CSV/TSV/JSONL/Parquet file; errors name the file, line and field."""
    from domainfm.data import read_table

    return rows_to_items(read_table(path), str(path), label_names)


def read_semeval(path: str | Path, corpora: Sequence[str] | None = None) -> list[GradingItem]:
    """Read the flattened SemEval-2013 Task 7 3-way file; ``split`` becomes train/test_ua/test_uq/test_ud.

    :param corpora: keep only these (``scientsbank``, ``beetle``; case-insensitive); None keeps both.
    """
    from domainfm.data import read_table

    rows = read_table(path, required=("corpus", "split", "question", "reference_answers", "student_answer", "label"))
    items = rows_to_items(rows, str(path), LABELS_3WAY)
    wanted = None
    if corpora:
        unknown = [c for c in corpora if c.lower() not in SEMEVAL_CORPORA]
        if unknown:
            raise DataError(f"semeval: unknown corpus {unknown}; use {sorted(SEMEVAL_CORPORA)}")
        wanted = {SEMEVAL_CORPORA[c.lower()] for c in corpora}
    out = []
    for item in items:
        if item.split not in SEMEVAL_SPLITS:
            raise DataError(f"{item.where}: field 'split': {item.split!r} is not one of {list(SEMEVAL_SPLITS)}")
        if wanted is None or item.corpus in wanted:
            out.append(replace(item, split=SEMEVAL_SPLITS[item.split]))
    return out


def semeval_path() -> Path:
    """Where the SemEval file is under the shared data folder; raises a clear error when it is absent."""
    return shared_data_path(SEMEVAL_RELATIVE, "SemEval-2013 Task 7 data")


def score_label_names(items: Sequence[GradingItem], max_score: float | None = None) -> list[str]:
    """Class names for score data: every whole point from 0 to the maximum (``'0'``, ``'1'``, ...)."""
    top = max_score if max_score is not None else max(float(i.score or 0.0) for i in items)
    for item in items:
        if item.score is not None and item.score > top:
            raise DataError(f"{item.where}: field 'score': {item.score:g} is above max_score {top:g}")
    return [str(k) for k in range(int(top) + 1)]


def item_class(item: GradingItem) -> str:
    """The class an item is trained on: its label, or its score as a point level."""
    if item.label is not None:
        return item.label
    return str(int(item.score or 0))


def items_to_dataset(items: Sequence[GradingItem]) -> Any:
    """A ``datasets.Dataset`` with one row per answer (references kept as a list column)."""
    from domainfm.data import records_to_dataset

    rows = [
        {
            "id": it.id,
            "question_id": it.question_id,
            "question": it.question,
            "reference_answers": list(it.references),
            "student_answer": it.answer,
            "label": item_class(it),
            "corpus": it.corpus,
        }
        for it in items
    ]
    columns = ["id", "question_id", "question", "reference_answers", "student_answer", "label", "corpus"]
    return records_to_dataset(rows, columns=columns)
