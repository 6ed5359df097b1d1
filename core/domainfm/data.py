"""Data helpers shared by plugins: tables to ``datasets.Dataset`` and pinned, seeded splits.

Splits are deterministic functions of (data, seed): the same file and seed always give the same split,
so evaluation protocols are pinned in code. ``datasets`` is imported inside functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from domainfm.errors import DataError
from domainfm.io import read_records

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset


def read_table(path: str | Path, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Read CSV/TSV/JSONL/Parquet rows; errors name the file and line. Rows carry ``_line``."""
    return read_records(path, required=tuple(required))


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


def clean_text(value: Any, where: str) -> str:
    """Return a stripped string, or raise :class:`DataError` for empty or non-text values."""
    if value is None:
        raise DataError(f"{where}: text is missing")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{where}: text is not valid UTF-8") from None
    text = str(value).strip()
    if not text:
        raise DataError(f"{where}: text is empty")
    return text


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
) -> dict[str, Dataset]:
    """Split a dataset into named parts, stratified by ``label_column``, deterministic given ``seed``."""
    parts = stratified_split_indices(dataset[label_column], fractions, seed)
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
