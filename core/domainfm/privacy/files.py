"""Which files of a directory are scanned for personal data, and the texts each contributes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Files an artifact directory holds that come from the base model's tokenizer, not from user data; they
# are large token lists that a name recogniser would flag token by token.
TOKENIZER_FILES = frozenset(
    {"vocab.txt", "vocab.json", "merges.txt", "tokenizer.json", "spiece.model", "sentencepiece.bpe.model"}
)
TEXT_SUFFIXES = frozenset(
    {".txt", ".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".md", ".yaml", ".yml", ".html", ".htm", ".xml",
     ".log", ".cfg", ".ini", ".toml", ".text"}
)
MAX_FILE_BYTES = 20 * 1024 * 1024


def skip_reason(file: Path, max_bytes: int) -> str | None:
    """Why ``file`` is not scanned (tokenizer vocabulary, not text-like, too large, binary), or None."""
    if file.name in TOKENIZER_FILES:
        return "tokenizer vocabulary of the base model"
    if file.suffix.lower() not in TEXT_SUFFIXES:
        return f"not a text-like file ({file.suffix or 'no suffix'})"
    size = file.stat().st_size
    if size > max_bytes:
        return f"larger than {max_bytes} bytes ({size})"
    with open(file, "rb") as fh:
        if b"\x00" in fh.read(8192):
            return "binary content"
    return None


def file_texts(file: Path) -> list[str]:
    """The texts of a file to scan: string values for JSON/JSONL (keys and literals are not data), else lines."""
    raw = file.read_text(encoding="utf-8")
    suffix = file.suffix.lower()
    if suffix == ".json":
        try:
            return json_strings(json.loads(raw))
        except json.JSONDecodeError:
            pass
    elif suffix in (".jsonl", ".ndjson"):
        out: list[str] = []
        for line in raw.splitlines():
            try:
                out.extend(json_strings(json.loads(line)))
            except json.JSONDecodeError:
                out.append(line)
        return [t for t in out if t.strip()]
    return [ln for ln in raw.splitlines() if ln.strip()]


def json_strings(obj: Any) -> list[str]:
    """The non-blank string values in a parsed JSON value (keys and other literals are not data)."""
    if isinstance(obj, str):
        return [obj] if obj.strip() else []
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in json_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in json_strings(v)]
    return []
