"""Checks on request content beyond what the pydantic models say, and what error bodies may show.

- every string in a record, however deeply nested, is held to ``max_text_chars`` and must be valid
  Unicode (JSON's ``\\ud800`` escape decodes to a lone surrogate that no tokenizer or UTF-8 writer accepts);
- an error body names the field (``loc``) and the rule, never echoes the input back (a 10,000-record
  request is not sent back to its client) and shows no server filesystem path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

Loc = tuple[str | int, ...]

#: Errors listed in one 422 body; the rest are counted.
MAX_ERRORS = 20

# An absolute POSIX path of two or more components, not part of a URL, a longer word or a named root.
_PATH = re.compile(r"(?<![\w.:/~>-])/(?:[^/\s'\"`,;:()\[\]{}<>]+/)+[^/\s'\"`,;:()\[\]{}<>]*")


def surrogate_position(text: str) -> int | None:
    """Index of the first lone surrogate in ``text`` (not encodable as UTF-8), or None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def string_error(text: str, loc: Loc, max_chars: int) -> dict[str, Any] | None:
    """The 422 error for one string that is too long or not valid Unicode, or None."""
    if len(text) > max_chars:
        return {
            "type": "string_too_long",
            "loc": loc,
            "msg": f"String should have at most {max_chars} characters (max_text_chars); got {len(text)}",
            "ctx": {"max_length": max_chars},
        }
    pos = surrogate_position(text)
    if pos is not None:
        return {
            "type": "string_unicode",
            "loc": loc,
            "msg": f"String is not valid Unicode: a lone surrogate at character {pos} (send UTF-8, or escape "
            "characters outside the BMP as a surrogate pair)",
        }
    return None


def check_strings(value: Any, loc: Loc, max_chars: int) -> list[dict[str, Any]]:
    """Errors for every string (keys included) in a JSON-like ``value`` that breaks :func:`string_error`."""
    errors: list[dict[str, Any]] = []
    stack: list[tuple[Any, Loc]] = [(value, loc)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            error = string_error(item, where, max_chars)
            if error is not None:
                errors.append(error)
        elif isinstance(item, Mapping):
            for key, sub in item.items():
                key_error = string_error(str(key), (*where, "<key>"), max_chars)
                if key_error is not None:
                    errors.append(key_error)
                stack.append((sub, (*where, str(key))))
        elif isinstance(item, (list, tuple)):
            stack.extend((sub, (*where, i)) for i, sub in enumerate(item))
    errors.sort(key=lambda e: [str(p) for p in e["loc"]])
    return errors


class PathRedactor:
    """Replaces server paths in messages: known roots by a name (``<runs_dir>``), any other absolute path by
    ``<path>``. Known roots come first, longest first, so a run folder reads ``<runs_dir>/domain/run``."""

    def __init__(self, roots: Mapping[str, Path | str | None] | None = None) -> None:
        pairs = [(str(Path(path)), name) for name, path in (roots or {}).items() if path is not None]
        self._roots = sorted(pairs, key=lambda p: -len(p[0]))

    def __call__(self, text: str) -> str:
        for root, name in self._roots:
            if root not in ("", "/", "."):
                text = text.replace(str(Path(root).resolve()), name).replace(root, name)
        return _PATH.sub("<path>", text)


def public_errors(errors: Iterable[Mapping[str, Any]], redact: PathRedactor | None = None) -> list[dict[str, Any]]:
    """Validation errors as the API shows them: type, loc, msg and scalar ctx; never the input."""
    out: list[dict[str, Any]] = []
    total = 0
    for error in errors:
        total += 1
        if len(out) >= MAX_ERRORS:
            continue
        msg = str(error.get("msg", ""))
        item: dict[str, Any] = {
            "type": str(error.get("type", "value_error")),
            "loc": [p if isinstance(p, int) else str(p) for p in error.get("loc", ())],
            "msg": redact(msg) if redact is not None else msg,
        }
        ctx = {
            k: (redact(v) if redact is not None and isinstance(v, str) else v)
            for k, v in (error.get("ctx") or {}).items()
            if isinstance(v, (str, int, float, bool))  # an exception object (value_error's 'error') is left out
        }
        if ctx:
            item["ctx"] = ctx
        out.append(item)
    if total > len(out):
        out.append({"type": "too_many_errors", "loc": ["body"], "msg": f"{total - len(out)} more errors not listed"})
    return out


def prefixed(errors: Sequence[Mapping[str, Any]], prefix: Loc) -> list[dict[str, Any]]:
    """Pydantic errors of one record with ``prefix`` (e.g. ``("body", "records", 3)``) before their loc."""
    return [{**e, "loc": (*prefix, *e.get("loc", ()))} for e in errors]
