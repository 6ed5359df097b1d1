"""Readers for interaction logs and item catalogues (CSV/TSV/JSONL/Parquet), for any domain that ranks items for users.

Every reader returns plain Python structures (:class:`Interaction` lists and :class:`ItemRecord` lists);
errors are :class:`~domainfm.errors.DataError` naming the file, the line (row for Parquet) and the field.
Defined behaviour for messy input:

- column aliases: ``userId``/``user_id`` → ``user``, ``movieId``/``item_id`` → ``item``,
  ``rating_or_click``/``click``/``value`` → ``rating``, ``ts``/``time`` → ``timestamp``;
- an empty rating means an implicit click (1.0); a non-numeric or non-finite rating is an error;
- a missing timestamp keeps file order; ISO-8601 timestamps are accepted;
- duplicates and out-of-order rows are handled later by :func:`domainfm.ranking.protocol.clean`;
- an item without text falls back to its title, then to nothing (``has_text`` False: the item is still
  ranked by collaborative signal and popularity, never by an embedding of an empty string).

``read_interactions(path)`` and ``read_items(path)`` read files; ``interactions_from_rows`` / ``items_from_rows``
validate rows a plugin read itself (e.g. a data set with its own layout, as the recommendation plugin's MovieLens
reader does with :func:`row_location`, :func:`parse_id` and :func:`optional_str`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from domainfm.errors import DataError
from domainfm.io import DEFAULT_MAX_TEXT_CHARS

USER_ALIASES = ("user", "userId", "user_id", "userid", "customer", "customer_id")
ITEM_ALIASES = ("item", "movieId", "item_id", "itemid", "product", "product_id")
RATING_ALIASES = ("rating", "rating_or_click", "click", "clicks", "value", "score")
TIME_ALIASES = ("timestamp", "ts", "time", "datetime")
TITLE_ALIASES = ("title", "name")
TEXT_ALIASES = ("text", "description", "overview", "body")
TAG_ALIASES = ("tags", "genres", "categories", "keywords")

__all__ = [
    "Interaction", "ItemRecord", "compose_text", "interactions_from_rows", "items_from_rows", "optional_str", "parse_id",
    "parse_rating", "parse_timestamp", "read_interactions", "read_items", "row_location",
]


@dataclass(frozen=True)
class Interaction:
    """One user-item event. ``order`` is the position in the source, used to break timestamp ties."""

    user: str
    item: str
    rating: float
    timestamp: float
    order: int


@dataclass(frozen=True)
class ItemRecord:
    """One catalogue item: its text is what the base model embeds."""

    item: str
    title: str
    text: str
    creator: str = ""

    @property
    def has_text(self) -> bool:
        return bool(self.text.strip())


def _pick(row: Mapping[str, Any], aliases: Iterable[str]) -> str | None:
    for name in aliases:
        if name in row:
            return name
    return None


def row_location(path: Path, row: Mapping[str, Any], index: int) -> str:
    """``path:line`` for a row read with its ``_line``, else ``path: row N``."""
    line = row.get("_line")
    return f"{path}:{line}" if line is not None else f"{path}: row {index + 1}"


def parse_id(value: Any, where: str, field: str) -> str:
    """A user or item id as text (``3.0`` reads as ``3``); missing, empty or a JSON object/array is an error."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise DataError(f"{where}: field {field!r} is missing")
    if isinstance(value, (dict, list, tuple)):
        raise DataError(f"{where}: field {field!r} is a JSON {'object' if isinstance(value, dict) else 'array'}, not an id")
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if not text:
        raise DataError(f"{where}: field {field!r} is empty")
    return text


def parse_rating(value: Any, where: str, field: str = "rating") -> float:
    """A finite float; empty means an implicit click (1.0). Anything else raises naming the field."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 1.0
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: field {field!r} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise DataError(f"{where}: field {field!r} is not finite: {value!r}")
    return number


def parse_timestamp(value: Any, where: str, field: str = "timestamp") -> float | None:
    """Seconds since the epoch from a number or an ISO-8601 string; None when empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        number = float(value)
    except (TypeError, ValueError):
        try:
            return datetime.fromisoformat(str(value).strip()).timestamp()
        except ValueError:
            raise DataError(f"{where}: field {field!r} is neither a number nor an ISO-8601 time: {value!r}") from None
    if not math.isfinite(number):
        raise DataError(f"{where}: field {field!r} is not finite: {value!r}")
    return number


def interactions_from_rows(rows: list[dict[str, Any]], path: str | Path) -> list[Interaction]:
    """Validate row dicts (as read by ``domainfm.data.read_table``) into :class:`Interaction` records."""
    path = Path(path)
    if not rows:
        raise DataError(f"{path}: no interactions")
    user_col, item_col = _pick(rows[0], USER_ALIASES), _pick(rows[0], ITEM_ALIASES)
    if user_col is None or item_col is None:
        raise DataError(
            f"{path}: needs a user column (one of {list(USER_ALIASES)}) and an item column "
            f"(one of {list(ITEM_ALIASES)}); found {sorted(k for k in rows[0] if k != '_line')}"
        )
    rating_col, time_col = _pick(rows[0], RATING_ALIASES), _pick(rows[0], TIME_ALIASES)
    out: list[Interaction] = []
    for i, row in enumerate(rows):
        where = row_location(path, row, i)
        user = parse_id(row.get(user_col), where, user_col)
        item = parse_id(row.get(item_col), where, item_col)
        rating = parse_rating(row.get(rating_col), where, rating_col) if rating_col else 1.0
        ts = parse_timestamp(row.get(time_col), where, time_col) if time_col else None
        out.append(Interaction(user, item, rating, float(i) if ts is None else ts, i))
    return out


def items_from_rows(rows: list[dict[str, Any]], path: str | Path) -> list[ItemRecord]:
    """Validate catalogue rows into :class:`ItemRecord`; text = title + text + tags/genres."""
    path = Path(path)
    if not rows:
        return []
    item_col = _pick(rows[0], ITEM_ALIASES)
    if item_col is None:
        raise DataError(f"{path}: needs an item column (one of {list(ITEM_ALIASES)})")
    title_col, text_col = _pick(rows[0], TITLE_ALIASES), _pick(rows[0], TEXT_ALIASES)
    tag_cols = [c for c in TAG_ALIASES if c in rows[0]]
    seen: dict[str, int] = {}
    out: list[ItemRecord] = []
    for i, row in enumerate(rows):
        where = row_location(path, row, i)
        item = parse_id(row.get(item_col), where, item_col)
        if item in seen:
            raise DataError(f"{where}: duplicate item {item!r} (first at row {seen[item] + 1})")
        seen[item] = i
        title = _text(row.get(title_col), where, title_col) if title_col else ""
        parts = [_text(row.get(text_col), where, text_col)] if text_col else []
        for col in tag_cols:
            tags = _tags(row.get(col))
            if tags:
                parts.append(f"{col}: {', '.join(tags)}")
        out.append(ItemRecord(item, title, compose_text(title, parts), optional_str(row.get("creator"))))
    return out


def compose_text(title: str, parts: Iterable[str]) -> str:
    """The text an item is embedded from: its title, then description and tags; may be empty."""
    pieces = [p.strip() for p in [title, *parts] if p and p.strip()]
    return ". ".join(pieces)


def optional_str(value: Any) -> str:
    """A stripped text, empty for a missing value (None, NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _text(value: Any, where: str, field: str) -> str:
    """An optional text field (empty when missing): the core's checks for a JSON object/array and for length."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip()):
        return ""
    from domainfm.data import clean_text

    return clean_text(value, where, field, max_chars=DEFAULT_MAX_TEXT_CHARS)


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        raw = [str(v) for v in value]
    else:
        text = optional_str(value)
        if text in ("", "(no genres listed)"):
            return []
        raw = text.replace("|", ",").split(",")
    return [t.strip() for t in raw if t.strip()]


def read_interactions(path: str | Path) -> list[Interaction]:
    """Read an interaction log (CSV/TSV/JSONL/Parquet) with ``user,item[,rating][,timestamp]``."""
    from domainfm.data import read_table

    return interactions_from_rows(read_table(path), path)


def read_items(path: str | Path) -> list[ItemRecord]:
    """Read an item catalogue with ``item[,title][,text][,tags|genres]`` (CSV/TSV/JSONL/Parquet)."""
    from domainfm.data import read_table

    return items_from_rows(read_table(path), path)
