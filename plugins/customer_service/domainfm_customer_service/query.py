"""Validation of customer queries before they reach a model, an index or a log."""

from __future__ import annotations

import unicodedata
from typing import Any

from domainfm.errors import DataError

MAX_QUERY_CHARS = 2000


class QueryError(DataError):
    """A query that cannot be answered as given (empty, too long, binary)."""


def validate_query(value: Any, *, max_chars: int = MAX_QUERY_CHARS, where: str = "query") -> str:
    """Return the stripped query text, or raise :class:`QueryError` saying what is wrong with it.

    Bytes must be UTF-8; control characters other than whitespace (NUL and friends, typical of binary
    data pasted into a chat) are rejected rather than silently dropped.
    """
    if value is None:
        raise QueryError(f"{where}: no text given")
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise QueryError(f"{where}: binary data, not UTF-8 text (bad byte at offset {exc.start})") from None
    if not isinstance(value, str):
        raise QueryError(f"{where}: expected text, got {type(value).__name__}")
    if len(value) > max_chars:
        raise QueryError(f"{where}: {len(value)} characters is too long (at most {max_chars}); send the question only")
    bad = [ch for ch in value if unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\t\n\r"]
    if bad:
        raise QueryError(f"{where}: contains {len(bad)} control character(s) such as {bad[0]!r}: looks like binary data")
    text = " ".join(value.split())
    if not text:
        raise QueryError(f"{where}: empty text")
    return text
