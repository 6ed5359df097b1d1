"""Knowledge-tracing data sources as :class:`~domainfm.types.DataBundle` tables of student sequences.

Sources:

- ``demo``: the simulated class in the package data (8 arithmetic skills with a prerequisite catalogue);
- ``assist2009``: ASSISTments 2009 as preprocessed for DKVMN (``../shared/data/education/assist2009_updated``):
  its train file is split 90/10 by student (seeded) into ``train``/``validation``, its test file is ``test``;
  the 110 skill ids are the vocabulary and their names come from the mapping file;
- a file path: an interaction log or a 3-line file, split 80/10/10 (60/20/20 below 100 students) by student.

Tables have the columns ``student`` (pseudonym), ``skills`` and ``correct`` (lists of ints). Students with
a single answer stay in the bundle (``meta['notes']`` counts them) and are skipped by training windows.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.errors import DataError
from domainfm.shared_data import shared_data_path
from domainfm.types import DataBundle
from domainfm_education.kt_data import KTLog, KTSequence, read_kt_file, read_skill_names, read_three_line

ASSIST_DIR = Path("education") / "assist2009_updated"


def demo_kt_path() -> Path:
    return Path(str(resources.files("domainfm_education") / "demo_data" / "kt_demo.csv"))


def demo_catalogue_path() -> Path:
    return Path(str(resources.files("domainfm_education") / "demo_data" / "kt_catalogue.csv"))


def assist_dir() -> Path:
    return shared_data_path(ASSIST_DIR / "assist2009_updated_train.csv", "ASSISTments 2009").parent


def _student_split(n: int, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.floor(np.cumsum(fractions) * n + 1e-9).astype(int)
    parts, start = [], 0
    for end in bounds:
        parts.append(np.sort(order[start:end]))
        start = end
    return parts


def load_assist2009_log(seed: int, key: str) -> tuple[list[KTSequence], list[KTSequence], list[KTSequence], list[str]]:
    """(train, validation, test, skill titles); skill index ``i`` is ASSISTments skill id ``i + 1``."""
    folder = assist_dir()
    titles = read_skill_names(folder / "assist2009_updated_skill_mapping.txt")
    ids = sorted(titles, key=int)
    index = {sid: i for i, sid in enumerate(ids)}
    valid_ids = set(ids)
    train = read_three_line(folder / "assist2009_updated_train.csv", key, index, valid_ids)
    test = read_three_line(folder / "assist2009_updated_test.csv", key, index, valid_ids)
    tr, va = _student_split(len(train.sequences), (0.9, 0.1), seed)
    return ([train.sequences[i] for i in tr], [train.sequences[i] for i in va], test.sequences,
            [titles[sid] for sid in ids])


def sequences_to_dataset(sequences: list[KTSequence]) -> Any:
    from datasets import Dataset

    return Dataset.from_dict({
        "student": [s.student for s in sequences],
        "skills": [list(s.skills) for s in sequences],
        "correct": [list(s.correct) for s in sequences],
    })


def _bundle(parts: dict[str, list[KTSequence]], source: str, skill_keys: list[str], titles: list[str],
            notes: dict[str, int], catalogue: str | None, raw_ids: list[str] | None = None) -> DataBundle:
    tables = {name: sequences_to_dataset(seqs) for name, seqs in parts.items()}
    return DataBundle(tables=tables, source=source, label_names=None, text_column=None, label_column="correct",
                      group_columns=[], meta={"skill_keys": skill_keys, "skill_titles": titles, "notes": notes,
                                              "catalogue": catalogue, "pseudonymised": True,
                                              "raw_id_sample": list(raw_ids or [])[:500]})


def load_kt_source(source: str, seed: int, key: str) -> DataBundle:
    """Dispatch ``demo`` / ``assist2009`` / a path; students pseudonymised with ``key``."""
    if source == "assist2009":
        train, valid, test, titles = load_assist2009_log(seed, key)
        keys = [str(i + 1) for i in range(len(titles))]
        return _bundle({"train": train, "validation": valid, "test": test}, str(assist_dir()), keys, titles,
                       {}, None)
    catalogue = None
    if source == "demo":
        path, catalogue = demo_kt_path(), str(demo_catalogue_path())
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(f"{source}: no such file (sources: 'demo', 'assist2009', or a log file path)")
    log: KTLog = read_kt_file(path, key)
    n = len(log.sequences)
    if n < 5:
        raise DataError(f"{path}: needs at least 5 students to split train/validation/test, found {n}")
    fractions = (0.8, 0.1, 0.1) if n >= 100 else (0.6, 0.2, 0.2)
    parts = dict(zip(("train", "validation", "test"), _student_split(n, fractions, seed), strict=True))
    return _bundle({k: [log.sequences[i] for i in v] for k, v in parts.items()}, str(path), log.skill_names,
                   log.skill_names, log.notes, catalogue, log.raw_ids)
