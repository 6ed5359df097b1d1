"""Turn a grading data source into a :class:`~domainfm.types.DataBundle` with pinned, seeded splits.

Sources:

- ``demo``: the project's demo set, stratified 60/20/20 by label (seed = ``train.seed``);
- ``semeval`` or ``semeval:scientsbank`` / ``semeval:beetle`` (comma-separated): SemEval-2013 Task 7
  3-way from the shared data folder. Its own train split is divided 90/10 (stratified by label, seeded)
  into ``train`` / ``validation``; the official test splits become ``test_ua``, ``test_uq``, ``test_ud``
  (unseen answers / questions / domains) and ``test`` is ``test_ua``. Test data never reaches training
  or threshold choice;
- a file path (CSV/TSV/JSONL/Parquet). A ``split`` column (``train``/``validation``/``test``, other values
  become extra tables) is used as given; otherwise the rows are stratified 60/20/20 (80/10/10 from 500 rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from domainfm.errors import DataError
from domainfm.types import DataBundle
from domainfm_education.grading_data import (
    LABELS_3WAY,
    GradingItem,
    demo_grading_path,
    item_class,
    items_to_dataset,
    read_grading_file,
    read_semeval,
    score_label_names,
    semeval_path,
)

GROUP_COLUMNS = ["question_id", "corpus"]


def _split_indices(items: Sequence[GradingItem], fractions: tuple[float, float, float], seed: int) -> list[list[int]]:
    from domainfm.data import stratified_split_indices

    return [p.tolist() for p in stratified_split_indices([item_class(i) for i in items], fractions, seed)]


def _bundle(parts: dict[str, list[GradingItem]], source: str, label_names: list[str], meta: dict) -> DataBundle:
    tables = {name: items_to_dataset(items) for name, items in parts.items() if items}
    if "train" not in tables:
        raise DataError(f"{source}: no training rows")
    return DataBundle(tables=tables, source=source, label_names=label_names, text_column="student_answer",
                      label_column="label", group_columns=list(GROUP_COLUMNS), meta=meta)


def load_semeval(corpora: Sequence[str] | None, seed: int, path: Path | None = None) -> DataBundle:
    """SemEval-2013 Task 7 3-way as train/validation/test_ua/test_uq/test_ud (+ ``test`` = ``test_ua``)."""
    path = path or semeval_path()
    items = read_semeval(path, corpora)
    by_split: dict[str, list[GradingItem]] = {}
    for item in items:
        by_split.setdefault(str(item.split), []).append(item)
    train_all = by_split.pop("train", [])
    if not train_all:
        raise DataError(f"{path}: no training rows for corpora {corpora or 'all'}")
    train_idx, valid_idx, _ = _split_indices(train_all, (0.9, 0.1, 0.0), seed)
    parts = {"train": [train_all[i] for i in train_idx], "validation": [train_all[i] for i in valid_idx]}
    parts.update(by_split)
    if "test_ua" in parts:
        parts["test"] = parts["test_ua"]
    meta = {"corpora": sorted({i.corpus for i in items}), "protocol": "semeval2013-3way; validation = 10% of train"}
    return _bundle(parts, str(path), list(LABELS_3WAY), meta)


def load_grading_file(path: Path, seed: int, label_names: Sequence[str] | None = None,
                      max_score: float | None = None) -> DataBundle:
    """A user's grading file (or the demo), split by its ``split`` column or stratified by class."""
    items = read_grading_file(path, label_names or LABELS_3WAY)
    if items[0].label is None:
        names = score_label_names(items, max_score)
    else:
        names = list(label_names or LABELS_3WAY)
    if any(i.split for i in items):
        parts: dict[str, list[GradingItem]] = {}
        for item in items:
            if not item.split:
                raise DataError(f"{item.where}: field 'split' is empty while other rows have one")
            parts.setdefault(item.split, []).append(item)
    else:
        if len(items) < 10:
            raise DataError(f"{path}: needs at least 10 graded answers to split, found {len(items)}")
        fractions = (0.8, 0.1, 0.1) if len(items) >= 500 else (0.6, 0.2, 0.2)
        idx = _split_indices(items, fractions, seed)
        parts = {name: [items[i] for i in part] for name, part in zip(("train", "validation", "test"), idx, strict=True)}
    return _bundle(parts, str(path), names, {"protocol": "split column" if items[0].split else "stratified by class"})


def load_grading_source(source: str, seed: int, label_names: Sequence[str] | None = None,
                        max_score: float | None = None) -> DataBundle:
    """Dispatch ``demo`` / ``semeval[:corpora]`` / a path to the right reader."""
    if source == "demo":
        return load_grading_file(demo_grading_path(), seed, label_names, max_score)
    if source == "semeval" or source.startswith("semeval:"):
        corpora = [c for c in source.partition(":")[2].split(",") if c] or None
        return load_semeval(corpora, seed)
    path = Path(source)
    if path.name.startswith("semeval2013_task7"):
        return load_semeval(None, seed, path)
    if not path.exists():
        raise DataError(f"{source}: no such file (sources: 'demo', 'semeval[:scientsbank|beetle]', or a file path)")
    return load_grading_file(path, seed, label_names, max_score)
