"""Data helpers shared by plugins: tables to ``datasets.Dataset`` and pinned, seeded splits.

Splits are deterministic functions of (data, seed): the same file and seed always give the same split,
so evaluation protocols are pinned in code. ``datasets`` is imported inside functions.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from domainfm.errors import DataError
from domainfm.io import DEFAULT_MAX_TEXT_CHARS, read_records

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

log = logging.getLogger(__name__)


def read_table(
    path: str | Path, required: Sequence[str] = (), max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
) -> list[dict[str, Any]]:
    """Read CSV/TSV/JSONL/Parquet rows (or an ``hf:`` dataset); errors name the file and line. Rows carry
    ``_line``. Lines are capped so that one huge line fails fast (see :func:`domainfm.io.max_line_chars`)."""
    return read_records(path, required=tuple(required), max_text_chars=max_text_chars)


def records_to_dataset(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> Dataset:
    """Build a ``datasets.Dataset`` from row dicts (keeping only ``columns`` when given)."""
    from datasets import Dataset

    if columns is not None:
        rows = [{c: r.get(c) for c in columns} for r in rows]
    else:
        rows = [{k: v for k, v in r.items() if k != "_line"} for r in rows]
    if not rows:
        return Dataset.from_dict({c: [] for c in (columns or [])})
    return Dataset.from_list(list(rows))


def clean_text(value: Any, where: str, field: str = "text", max_chars: int | None = None) -> str:
    """Return a stripped string, or raise :class:`DataError` naming ``where`` and ``field``.

    Refused: a missing value (None, NaN), bytes that are not UTF-8, a JSON object or array, a boolean, an
    empty string and, when ``max_chars`` is given, a text longer than that. Numbers are read as their text.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise DataError(f"{where}: field {field!r} is missing (null)")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{where}: field {field!r} is not valid UTF-8") from None
    if isinstance(value, dict):
        raise DataError(f"{where}: field {field!r} is a JSON object, not a string")
    if isinstance(value, (list, tuple)):
        raise DataError(f"{where}: field {field!r} is a JSON array, not a string")
    if isinstance(value, bool):
        raise DataError(f"{where}: field {field!r} is {str(value).lower()}, not a string")
    text = str(value).strip()
    if not text:
        raise DataError(f"{where}: field {field!r} is empty")
    if max_chars is not None and len(text) > max_chars:
        raise DataError(
            f"{where}: field {field!r} has {len(text):,} characters; the limit is {max_chars:,} "
            "(--set max_text_chars=N)"
        )
    return text


_READING_FEEDBACK: ContextVar[bool] = ContextVar("domainfm_reading_feedback", default=False)


@contextmanager
def reading_feedback() -> Iterator[None]:
    """Readers called inside this block read feedback for ``domainfm improve``, not a training set.

    Feedback is labelled data added to a model that already knows the other labels: corrections of one intent,
    or the examples of one new label, are a whole feedback file. :func:`require_labels` then asks for one label
    instead of two (the improvement plan mixes the parent's labels back in).
    """
    token = _READING_FEEDBACK.set(True)
    try:
        yield
    finally:
        _READING_FEEDBACK.reset(token)


def is_reading_feedback() -> bool:
    """True inside :func:`reading_feedback`: a reader may then return feedback as one training table (the
    improvement plan splits it) instead of a training set's train/validation/test split."""
    return _READING_FEEDBACK.get()


def text_key(text: Any) -> str:
    """A text as compared across data sets: whitespace collapsed, case folded (``"Q3  Profit"`` == ``"q3 profit"``)."""
    return " ".join(str(text).split()).casefold()


def require_labels(labels: Sequence[Any], where: str, minimum: int = 2) -> None:
    """Refuse data with fewer than ``minimum`` distinct labels: a classifier trained on one label scores
    accuracy 1.0 on a test set of that label and measures nothing. Inside :func:`reading_feedback` one label
    is enough."""
    if _READING_FEEDBACK.get():
        minimum = min(minimum, 1)
    distinct = sorted({str(x) for x in labels})
    if len(distinct) < minimum:
        found = f"only the label {distinct[0]!r}" if distinct else "no labels"
        raise DataError(f"{where}: {found} in {len(labels)} row(s); classification needs at least {minimum} labels")


def split_shortfalls(labels: Sequence[Any], parts: Sequence[np.ndarray], names: Sequence[str]) -> list[str]:
    """One message per label that some part of a split got no example of, saying where its examples went."""
    values = [str(x) for x in labels]
    placed = [Counter(values[i] for i in idx) for idx in parts]
    total = Counter(values)
    out = []
    for label in sorted(total):
        missing = [name for name, counts in zip(names, placed, strict=True) if counts[label] == 0]
        if missing:
            went = ", ".join(f"{name} {counts[label]}" for name, counts in zip(names, placed, strict=True))
            out.append(
                f"label {label!r} has {total[label]} example(s), too few to split: {went}; "
                f"{' and '.join(missing)} {'has' if len(missing) == 1 else 'have'} none of it"
            )
    return out


def check_split(
    labels: Sequence[Any], parts: Sequence[np.ndarray], names: Sequence[str], where: str, train: str = "train"
) -> list[str]:
    """Log a warning per label a part of the split lacks (:func:`split_shortfalls`) and refuse a split whose
    ``train`` part holds fewer than two labels. Returns the warnings."""
    warnings = split_shortfalls(labels, parts, names)
    for message in warnings:
        log.warning("%s: %s", where, message)
    if train in names:
        idx = parts[list(names).index(train)]
        require_labels([labels[i] for i in idx], f"{where} (the {train} split)")
    return warnings


def stratified_split_indices(
    labels: Sequence[Any], fractions: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 42
) -> list[np.ndarray]:
    """Indices of a seeded split stratified by label (every label spread over all parts)."""
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray([str(x) for x in labels])
    parts: list[list[int]] = [[] for _ in fractions]
    for label in sorted(set(labels_arr.tolist())):
        idx = np.flatnonzero(labels_arr == label)
        rng.shuffle(idx)
        bounds = np.floor(np.cumsum(fractions) * len(idx) + 1e-9).astype(int)
        start = 0
        for p, end in enumerate(bounds):
            parts[p].extend(idx[start:end].tolist())
            start = end
    return [np.sort(np.asarray(p, dtype=int)) for p in parts]


def stratified_split(
    dataset: Dataset,
    label_column: str = "label",
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 42,
    names: tuple[str, str, str] = ("train", "validation", "test"),
    where: str = "data",
) -> dict[str, Dataset]:
    """Split a dataset into named parts, stratified by ``label_column``, deterministic given ``seed``.

    A label with too few rows for every part is logged with where its rows went; a train part with fewer
    than two labels raises :class:`DataError` (see :func:`check_split`).
    """
    labels = dataset[label_column]
    parts = stratified_split_indices(labels, fractions, seed)
    check_split(labels, parts, names, where)
    return {name: dataset.select(idx.tolist()) for name, idx in zip(names, parts, strict=True)}


def group_split(
    dataset: Dataset,
    group_column: str,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 42,
    names: tuple[str, str, str] = ("train", "validation", "test"),
) -> dict[str, Dataset]:
    """Split so that all rows of a group land in one part (e.g. near-duplicate clusters, students)."""
    groups = np.asarray([str(g) for g in dataset[group_column]])
    unique = np.array(sorted(set(groups.tolist())))
    rng = np.random.default_rng(seed)
    rng.shuffle(unique)
    bounds = np.floor(np.cumsum(fractions) * len(unique) + 1e-9).astype(int)
    out: dict[str, Dataset] = {}
    start = 0
    for name, end in zip(names, bounds, strict=True):
        chosen = set(unique[start:end].tolist())
        out[name] = dataset.select(np.flatnonzero(np.isin(groups, list(chosen))).tolist())
        start = end
    return out


def encode_labels(values: Sequence[Any], label_names: Sequence[str], where: str = "data") -> list[int]:
    """Map label strings to ids; a label outside ``label_names`` raises naming the row."""
    index = {name: i for i, name in enumerate(label_names)}
    out = []
    for row, value in enumerate(values):
        key = str(value).strip()
        if key not in index:
            raise DataError(f"{where}: row {row}: label {key!r} is not one of {list(label_names)}")
        out.append(index[key])
    return out
