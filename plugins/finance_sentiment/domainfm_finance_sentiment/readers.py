"""Readers for financial sentiment data. Every error names the file and line (or row) and the field.

Sources understood by :func:`read_source` (the ``--data`` value of ``domainfm run finance_sentiment``):

- ``demo``: the project's own offline demo set (package data);
- ``phrasebank[:50agree|66agree|75agree|allagree]``: Financial PhraseBank v1.0 from the shared data directory;
- a ``Sentences_*Agree.txt`` file, or a directory holding them (``options.agreement`` picks the file);
- ``tfns[:PATH]``: Twitter Financial News Sentiment CSV (``text,label`` with 0=bearish, 1=bullish, 2=neutral);
- ``hf:<dataset id>[:<split>]``: a Hugging Face dataset (the core reader: local cache, or the hub when online);
- any ``.csv``/``.tsv``/``.jsonl``/``.parquet`` file with ``text,label[,timestamp,topic,source,entity,id]``.

Rows come back as plain dicts with ``text``, ``label`` (one of :data:`~domainfm_finance_sentiment.LABELS`)
and the optional columns that were present; no torch or datasets import happens here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from domainfm.errors import DataError
from domainfm.io import DEFAULT_MAX_TEXT_CHARS
from domainfm.shared_data import shared_data_path

from domainfm_finance_sentiment import LABELS

log = logging.getLogger(__name__)

AGREEMENTS: dict[str, str] = {
    "50agree": "Sentences_50Agree.txt",
    "66agree": "Sentences_66Agree.txt",
    "75agree": "Sentences_75Agree.txt",
    "allagree": "Sentences_AllAgree.txt",
}
OPTIONAL_COLUMNS: tuple[str, ...] = ("id", "timestamp", "topic", "source", "entity")
TFNS_LABELS: dict[str, str] = {"0": "negative", "1": "positive", "2": "neutral"}

# Spellings accepted for the three labels in generic files (case-insensitive).
LABEL_ALIASES: dict[str, str] = {
    "negative": "negative", "neg": "negative", "bearish": "negative", "-1": "negative",
    "neutral": "neutral", "neu": "neutral", "0": "neutral",
    "positive": "positive", "pos": "positive", "bullish": "positive", "1": "positive",
}


# ------------------------------------------------------------------------------------ helpers


def financial_dir() -> Path:
    """The shared ``financial`` data directory, or one line naming where it was looked for (or pass --data)."""
    return shared_data_path("financial", "the financial data sets (or pass a file path with --data)", folder=True)


def demo_path() -> Path:
    """The packaged offline demo set (JSONL)."""
    return Path(str(resources.files("domainfm_finance_sentiment") / "demo_data" / "finance_demo.jsonl"))


def normalise_label(value: Any, where: str, mapping: Mapping[str, str] | None = None) -> str:
    """Map a raw label to one of LABELS, or raise naming ``where``."""
    if value is None:
        raise DataError(f"{where}: field 'label' is missing")
    key = str(value).strip()
    table = mapping if mapping is not None else LABEL_ALIASES
    label = table.get(key, table.get(key.lower()))
    if label is None or label not in LABELS:
        raise DataError(f"{where}: field 'label': {key!r} is not one of {list(LABELS)} (or a known alias)")
    return label


def clean_text(value: Any, where: str, max_chars: int = DEFAULT_MAX_TEXT_CHARS) -> str:
    """A stripped, non-empty string with runs of whitespace collapsed: the core's checks
    (:func:`domainfm.data.clean_text`: missing, JSON object/array, empty, longer than ``max_chars``)."""
    from domainfm.data import clean_text as core_clean_text

    return " ".join(core_clean_text(value, where, "text", max_chars=max_chars).split())


def parse_timestamp(value: Any, where: str) -> datetime:
    """ISO 8601 (``Z`` allowed, no zone = UTC) or epoch seconds → an aware UTC datetime; raise naming ``where``."""
    from domainfm.readers import parse_timestamp as seconds_of

    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, bool):
        raise DataError(f"{where}: field 'timestamp': {value!r} is not a time")
    seconds = seconds_of(value, where)
    if math.isnan(seconds):
        raise DataError(f"{where}: field 'timestamp' is missing")
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise DataError(f"{where}: field 'timestamp': {value!r} is out of range") from None


def _dedupe(rows: list[dict[str, Any]], origin: str) -> tuple[list[dict[str, Any]], int]:
    """Drop exact duplicate texts (keep the first) so that no sentence lands in two splits."""
    seen: set[str] = set()
    out = []
    for row in rows:
        if row["text"] in seen:
            continue
        seen.add(row["text"])
        out.append(row)
    dropped = len(rows) - len(out)
    if dropped:
        log.info("%s: dropped %d duplicate sentence(s)", origin, dropped)
    return out, dropped


# ------------------------------------------------------------------------------------ PhraseBank


def read_phrasebank(path: str | Path) -> list[dict[str, Any]]:
    """Read one Financial PhraseBank release file (ISO-8859-1, ``sentence@label`` per line).

    Splits on the last ``@``; lines without ``@`` (the release has one stray ``1``) are skipped with a
    warning; an empty sentence or a label outside LABELS raises naming file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    rows: list[dict[str, Any]] = []
    with open(path, encoding="latin-1", newline="") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            if "@" not in line:
                log.warning("%s: skipped, no '@label' in line %r", where, line[:40])
                continue
            sentence, label = line.rsplit("@", 1)
            rows.append(
                {
                    "id": f"pb-{lineno}",
                    "text": clean_text(sentence, where),
                    "label": normalise_label(label, where, {k: k for k in LABELS}),
                }
            )
    if not rows:
        raise DataError(f"{path}: no 'sentence@label' lines found")
    return rows


def phrasebank_file(location: str | Path | None = None, agreement: str = "50agree") -> Path:
    """Resolve a PhraseBank file from a file, a directory of release files, or the shared data dir."""
    key = agreement.lower().replace("%", "").replace("_", "")
    if key not in AGREEMENTS:
        raise DataError(f"PhraseBank agreement {agreement!r} is not one of {sorted(AGREEMENTS)}")
    if location is None:
        location = financial_dir() / "financial_phrasebank_v1.0"
    location = Path(location)
    if location.is_dir():
        location = location / AGREEMENTS[key]
    if not location.is_file():
        raise DataError(f"{location}: PhraseBank file not found")
    return location


# ------------------------------------------------------------------------------------ generic tables


def read_labelled_table(
    path: str | Path, label_map: Mapping[str, str] | None = None, require_label: bool = True
) -> list[dict[str, Any]]:
    """Read CSV/TSV/JSONL/Parquet with ``text,label[,id,timestamp,topic,source,entity]``.

    Timestamps are normalised to ISO 8601 UTC strings; every error names file, line and field.
    """
    from domainfm.io import read_records

    path = Path(path)
    raw = read_records(path, required=("text", "label") if require_label else ("text",))
    rows: list[dict[str, Any]] = []
    for i, record in enumerate(raw):
        line = record.get("_line", i + 2)
        where = f"{path}:{line}"
        row: dict[str, Any] = {"text": clean_text(record.get("text"), where)}
        if require_label or record.get("label") not in (None, ""):
            row["label"] = normalise_label(record.get("label"), where, label_map)
        for col in OPTIONAL_COLUMNS:
            value = record.get(col)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if col == "timestamp":
                row[col] = parse_timestamp(value, where).isoformat()
            else:
                row[col] = str(value).strip()
        row.setdefault("id", f"row-{line}")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def read_tfns(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Twitter Financial News Sentiment (``text,label``; 0=bearish→negative, 1=bullish→positive, 2=neutral)."""
    if path is None:
        path = financial_dir() / "twitter_financial_news_sentiment" / "sent_train.csv"
    rows = read_labelled_table(path, label_map=TFNS_LABELS)
    for row in rows:
        row["source"] = "twitter"
    return rows


def read_hub(source: str, text_column: str = "text", label_column: str = "label") -> list[dict[str, Any]]:
    """An ``hf:<id>[:<split>]`` dataset through the core reader (:mod:`domainfm.hf`: the local cache, or the hub
    when online); ``ClassLabel`` ids come back as names and are mapped through :data:`LABEL_ALIASES`."""
    from domainfm.hf import read_hf_records

    records = read_hf_records(source)
    for col in (text_column, label_column):
        if records and col not in records[0]:
            raise DataError(f"{source}: missing column {col!r}; has {sorted(set(records[0]) - {'_line'})}")
    rows = []
    for rec in records:
        where = f"{source} row {rec['_line']}"
        rows.append(
            {"id": f"hf-{rec['_line']}", "text": clean_text(rec[text_column], where),
             "label": normalise_label(rec[label_column], where)}
        )
    return rows


# ------------------------------------------------------------------------------------ dispatch


def read_source(source: str, options: Mapping[str, Any] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read ``source`` (see the module docstring) into rows plus metadata (origin, duplicates dropped)."""
    options = dict(options or {})
    agreement = str(options.get("agreement", "50agree"))
    label_map = options.get("label_map")
    if source == "demo":
        rows, origin = read_labelled_table(demo_path()), str(demo_path())
    elif source == "phrasebank" or source.startswith("phrasebank:"):
        if ":" in source:
            agreement = source.split(":", 1)[1]
        path = phrasebank_file(None, agreement)
        rows, origin = read_phrasebank(path), str(path)
    elif source == "tfns" or source.startswith("tfns:"):
        path = Path(source.split(":", 1)[1]) if ":" in source else None
        rows = read_tfns(path)
        origin = str(path or "tfns")
    elif source.startswith("hf:"):
        rows = read_hub(source, options.get("text_column", "text"), options.get("label_column", "label"))
        origin = source
    else:
        path = Path(source)
        if path.is_dir():
            path = phrasebank_file(path, agreement)
        if not path.exists():
            raise DataError(f"{path}: no such file (sources: demo, phrasebank[:AGREE], tfns[:PATH], hf:ID, or a file)")
        if path.suffix.lower() == ".txt":
            rows = read_phrasebank(path)
        else:
            rows = read_labelled_table(path, label_map=label_map)
        origin = str(path)
    rows, dropped = _dedupe(rows, origin)
    return rows, {"origin": origin, "duplicates_dropped": dropped, "rows": len(rows)}


def label_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(LABELS, 0)
    for row in rows:
        counts[row["label"]] += 1
    return counts
