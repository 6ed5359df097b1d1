"""``hf:<dataset>[:<split>]`` data sources: a Hugging Face dataset read as table rows, for every domain.

``<dataset>`` is a hub id (``takala/financial_phrasebank``) or a local dataset folder; ``<split>`` defaults to
``train``. ``datasets.load_dataset`` reads it from the local Hugging Face cache, or from the hub when online.
Offline (``HF_DATASETS_OFFLINE``/``HF_HUB_OFFLINE``) a dataset that is not cached fails in one line saying so.
Integer ``ClassLabel`` columns come back as their label names. Rows carry ``_line``: the 1-based row number.
"""

from __future__ import annotations

import os
from typing import Any

from domainfm.errors import DataError

PREFIX = "hf:"
_TRUE = ("1", "true", "yes", "on")


def is_hf_source(source: object) -> bool:
    return isinstance(source, str) and source.startswith(PREFIX)


def parse_hf_source(source: str) -> tuple[str, str]:
    """``hf:ID[:SPLIT]`` -> (ID, SPLIT); SPLIT defaults to ``train``."""
    dataset_id, _, split = source[len(PREFIX) :].partition(":")
    dataset_id, split = dataset_id.strip(), split.strip() or "train"
    if not dataset_id:
        raise DataError(f"{source!r}: name a dataset after 'hf:', e.g. hf:takala/financial_phrasebank or hf:ID:test")
    return dataset_id, split


def hub_offline() -> bool:
    """True when the environment forbids reaching the Hugging Face hub."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))


def read_hf_records(source: str) -> list[dict[str, Any]]:
    """Rows of an ``hf:`` source as dicts; every failure is a :class:`DataError` of one line."""
    dataset_id, split = parse_hf_source(source)
    try:
        from datasets import load_dataset
    except ImportError:
        raise DataError(f"{source}: reading hf: sources needs the 'datasets' package (pip install 'domainfm[ml]')") from None
    try:
        dataset = load_dataset(dataset_id, split=split)
    except Exception as exc:  # network, unknown id, unknown split, corrupt cache: all user-facing
        if hub_offline() and isinstance(exc, (ConnectionError, FileNotFoundError)):
            raise DataError(
                f"{source}: offline (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set) and {dataset_id!r} is not in the "
                "local Hugging Face cache; load it once online, or pass a local file"
            ) from None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{source}: cannot load split {split!r} of {dataset_id!r}: {reason}") from None
    names = {
        column: feature.names
        for column, feature in dataset.features.items()
        if getattr(feature, "names", None) is not None
    }
    rows: list[dict[str, Any]] = []
    for i, record in enumerate(dataset, start=1):
        row = dict(record)
        for column, labels in names.items():
            value = row.get(column)
            if isinstance(value, int) and 0 <= value < len(labels):
                row[column] = labels[value]
        row["_line"] = i
        rows.append(row)
    return rows
