"""Data fingerprints: a hash of each split's item ids, recorded in ``run.json`` when a run loads its data.

Two runs judged on the same test items have the same test fingerprint, whatever their configuration; ``domainfm
runs compare`` pairs their per-item outcomes only then. A split without an ``id`` column is fingerprinted by its
rows' text (the column the data bundle names), so a reshuffled or edited split still changes the hash.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from domainfm.types import DataBundle

ID_COLUMN = "id"


def split_fingerprint(table: Any, text_column: str | None) -> dict[str, Any]:
    """``{"sha256": ..., "n": rows, "basis": "ids"|"text"|"rows"}`` of one ``datasets.Dataset``."""
    columns = table.column_names
    if ID_COLUMN in columns:
        values, basis = [str(v) for v in table[ID_COLUMN]], "ids"
    elif text_column and text_column in columns:
        values, basis = [str(v) for v in table[text_column]], "text"
    else:
        values, basis = [json.dumps(row, sort_keys=True, default=str) for row in table], "rows"
    digest = hashlib.sha256()
    for value in values:
        digest.update(value.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return {"sha256": digest.hexdigest(), "n": len(values), "basis": basis}


def data_fingerprints(data: DataBundle) -> dict[str, dict[str, Any]]:
    """Every split of a data bundle, by name."""
    return {name: split_fingerprint(table, data.text_column) for name, table in data.tables.items()}
