"""Keyed pseudonyms for identifiers (students, users, patients) and a check that no raw identifier was written.

An identifier is replaced at read time by ``<prefix>`` + 16 hex digits of HMAC-SHA256(key, id): stable for one key
(the same person keeps one pseudonym across files of a run), not reversible without the key, and different under
another key. :func:`count_identifiers_in_files` is the privacy check that goes with it: how many of the raw
identifiers still occur in the text files of a folder (an artifact directory must give 0).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path

#: suffixes of the files :func:`count_identifiers_in_files` reads
TEXT_FILE_SUFFIXES = (".json", ".txt", ".csv", ".jsonl")


def pseudonymise(identifier: str, key: str, prefix: str = "s_") -> str:
    """A stable pseudonym for ``identifier`` under ``key``: ``prefix`` + 16 hex digits of HMAC-SHA256(key, id)."""
    digest = hmac.new(key.encode("utf-8"), str(identifier).encode("utf-8"), hashlib.sha256).hexdigest()
    return prefix + digest[:16]


def count_identifiers_in_files(folder: str | Path, identifiers: Iterable[str], min_chars: int = 3,
                               suffixes: tuple[str, ...] = TEXT_FILE_SUFFIXES) -> int:
    """How many distinct ``identifiers`` (those of at least ``min_chars`` characters: shorter ones match anywhere)
    occur in the text files under ``folder``."""
    wanted = [i for i in identifiers if len(i) >= min_chars]
    found: set[str] = set()
    for path in Path(folder).rglob("*"):
        if path.is_file() and path.suffix in suffixes:
            text = path.read_text(encoding="utf-8", errors="replace")
            found.update(i for i in wanted if i in text)
    return len(found)
