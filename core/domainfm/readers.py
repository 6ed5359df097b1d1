"""A reader kit for plugin data files: every mistake is one :class:`~domainfm.errors.DataError` naming the file,
the line and the field.

Tables (CSV, TSV, JSONL, Parquet) are read by :func:`domainfm.data.read_table`, whose rows carry ``_line``;
these helpers validate what is in them::

    rows = read_table(path)
    header = require_columns(rows, path, ("text",))            # "u.csv: missing column 'text'; found [...]"
    label_col = pick_column(header, ("intent", "label"))       # first alias present, case-insensitive
    for row in rows:
        where = row_where(path, row)                           # "u.csv:7"
        text = text_field(row.get("text"), where, "text")      # "u.csv:7: field 'text' is empty"
        done = parse_binary(row.get("done"), where, "done")    # 0/1, true/false, yes/no

Plain text documents (:func:`read_text_document`) and JSON objects (:func:`read_json_object`) get the same
treatment: size, binary content and encoding are checked and named.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from domainfm.errors import DataError
from domainfm.io import DEFAULT_MAX_TEXT_CHARS

#: The table formats :func:`domainfm.data.read_table` reads.
TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
TRUE_VALUES = frozenset({"1", "1.0", "true", "yes", "y", "t"})
FALSE_VALUES = frozenset({"0", "0.0", "false", "no", "n", "f"})
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024


def row_where(path: str | Path, row: dict[str, Any]) -> str:
    """``path:line`` for a row read by :func:`domainfm.data.read_table` (just ``path`` when it has no line)."""
    return f"{path}:{row['_line']}" if "_line" in row else str(path)


def columns_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The header of a table's rows, without the reader's ``_line``."""
    return [c for c in rows[0] if c != "_line"] if rows else []


def require_columns(rows: Sequence[dict[str, Any]], source: str | Path, needed: Iterable[str]) -> list[str]:
    """The table's header; a table without rows, or without one of ``needed``, is an error naming what was found."""
    if not rows:
        raise DataError(f"{source}: no rows")
    header = columns_of(rows)
    for column in needed:
        if column not in header:
            raise DataError(f"{source}: missing column {column!r}; found {sorted(header)}")
    return header


def pick_column(columns: Iterable[str], aliases: Sequence[str]) -> str | None:
    """The first of ``aliases`` that names a column (compared case-insensitively), as the column is spelled."""
    lower = {c.lower(): c for c in columns}
    return next((lower[a] for a in aliases if a in lower), None)


def text_field(value: Any, where: str, field: str, max_chars: int | None = DEFAULT_MAX_TEXT_CHARS) -> str:
    """A non-empty text with runs of whitespace collapsed to one space: the core's checks
    (:func:`domainfm.data.clean_text`: missing, empty, a JSON object or array, longer than ``max_chars``)."""
    from domainfm.data import clean_text

    return " ".join(clean_text(value, where, field, max_chars=max_chars).split())


def optional_text(value: Any) -> str | None:
    """A stripped text, or None for a missing value (None, NaN) or a blank one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def parse_binary(value: Any, where: str, field: str) -> int:
    """1 or 0 from ``1``/``0``, ``true``/``false``, ``yes``/``no`` (any case); anything else is an error."""
    text = str(value).strip().lower() if value is not None else ""
    if text in TRUE_VALUES:
        return 1
    if text in FALSE_VALUES:
        return 0
    raise DataError(f"{where}: field {field!r}: {value!r} is not 0/1 (or true/false)")


def parse_timestamp(value: Any, where: str, field: str = "timestamp") -> float:
    """Seconds from a number or an ISO-8601 date/time (``Z`` allowed, no zone = UTC); NaN for a missing or blank
    value."""
    if value is None or str(value).strip() == "":
        return math.nan
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise DataError(f"{where}: field {field!r}: {value!r} is neither a number nor ISO-8601") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()  # naive = UTC, not local


def check_suffix(path: Path, allowed: Sequence[str], what: str) -> None:
    """Refuse a file whose suffix is not one of ``allowed``, naming the formats that are."""
    if path.suffix.lower() not in allowed:
        raise DataError(f"{path}: unknown {what} format {path.suffix or '(no suffix)'!r}; use one of {list(allowed)}")


def find_file(folder: Path, stems: Sequence[str], suffixes: Sequence[str] = TABLE_SUFFIXES) -> Path | None:
    """The first ``<stem><suffix>`` that exists in ``folder`` (stems in order, then suffixes), or None."""
    for stem in stems:
        for suffix in suffixes:
            candidate = folder / f"{stem}{suffix}"
            if candidate.exists():
                return candidate
    return None


def read_text_document(path: Path, max_bytes: int = MAX_DOCUMENT_BYTES) -> str:
    """The UTF-8 text of one document; too large, binary (a NUL byte) or undecodable content is an error."""
    size = path.stat().st_size
    if size > max_bytes:
        raise DataError(f"{path}: {size} bytes is larger than the {max_bytes}-byte limit for one document")
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise DataError(f"{path}: binary content, not a text document")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 (byte {exc.start})") from None


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; undecodable or invalid JSON, or another JSON value, is an error naming ``what``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a JSON object of {what}: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of {what}")
    return data


class Vocabulary:
    """Names of a categorical field (skills, items, intents) -> dense indices in order of first sight.

    ``fixed`` (a trained model's vocabulary) makes it closed: an unknown name gets None, for the caller to drop and
    count, never a new index silently mapped onto another meaning.
    """

    def __init__(self, fixed: Mapping[str, int] | None = None) -> None:
        self.fixed = fixed is not None
        self.index: dict[str, int] = dict(fixed) if fixed is not None else {}

    def get(self, name: str) -> int | None:
        """The index of ``name``; a new index for a new name unless the vocabulary is fixed (then None)."""
        if name in self.index:
            return self.index[name]
        if self.fixed:
            return None
        self.index[name] = len(self.index)
        return self.index[name]

    def names(self) -> list[str]:
        """The names by index."""
        out = [""] * len(self.index)
        for name, i in self.index.items():
            out[i] = name
        return out
