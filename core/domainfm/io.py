"""Atomic file writes and table readers whose errors name the file and line."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from domainfm.errors import DataError


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; give the file the permissions an ordinary write would (0666 & ~umask).
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def save_arrays(path: str | Path, arrays: Mapping[str, Any]) -> Path:
    """Write numpy arrays as a safetensors file, atomically, each array in C order.

    ``safetensors.numpy.save_file`` writes an array's memory as it lies: a Fortran-ordered array (scikit-learn's
    ``LogisticRegression.coef_`` is one) loads back with its values scrambled, silently. Save numpy weights
    through this function, never ``save_file`` directly.
    """
    import numpy as np
    from safetensors.numpy import save

    return atomic_write_bytes(path, save({name: np.ascontiguousarray(value) for name, value in arrays.items()}))


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temp directory next to ``path``; on success it replaces ``path`` in one rename."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


DEFAULT_MAX_TEXT_CHARS = 10_000
"""Characters one text may have (the config field ``max_text_chars``); the server's default is the same."""


def max_line_chars(max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> int:
    """The longest line a table reader accepts: room for one capped text with JSON escapes (``\\uXXXX``
    surrogate pairs are 12 characters per emoji) and other fields. Reading stops at this many characters, so a
    50 MB line fails after ~200 KB instead of loading gigabytes."""
    return 16 * max_text_chars + 65_536


def read_records(
    path: str | Path, required: tuple[str, ...] = (), max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
) -> list[dict[str, Any]]:
    """Read CSV, TSV, JSONL/NDJSON or Parquet into a list of dicts (UTF-8, with or without a BOM).

    Raises :class:`DataError` naming the file (and line for text formats) on undecodable bytes, malformed
    rows, a column named twice, a line longer than :func:`max_line_chars` of ``max_text_chars``, or a
    ``required`` column missing from the header (from any JSONL record). ``hf:<id>[:<split>]`` reads a
    Hugging Face dataset (:func:`domainfm.hf.read_hf_records`).
    """
    if str(path).startswith("hf:") and not Path(path).exists():
        from domainfm.hf import read_hf_records

        rows = read_hf_records(str(path))
        _check_required(path, rows, required)
        return rows
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    limit = max_line_chars(max_text_chars)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    suffix = suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz"):
        rows = list(_read_jsonl(path, limit, max_text_chars))
        for row in rows:
            missing = [c for c in required if c not in row]
            if missing:
                raise DataError(f"{path}:{row['_line']}: field {missing[0]!r} is missing")
    elif suffix in (".csv", ".tsv", ".csv.gz", ".tsv.gz"):
        rows = _read_csv(path, "\t" if suffix.startswith(".tsv") else ",", limit, max_text_chars)
    elif suffix == ".parquet":
        rows = _read_parquet(path)
    else:
        raise DataError(f"{path}: unsupported format {suffix!r} (use .csv, .tsv, .jsonl or .parquet)")
    _check_required(path, rows, required)
    return rows


def _check_required(path: str | Path, rows: list[dict[str, Any]], required: tuple[str, ...]) -> None:
    if required:
        present = set(rows[0]) - {"_line"} if rows else set()
        missing = [c for c in required if c not in present]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; found {sorted(present)}")


def _open_text(path: Path):  # type: ignore[no-untyped-def]
    import gzip

    # utf-8-sig: spreadsheet software starts UTF-8 CSV files with a byte-order mark
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def bounded_lines(lines: Any, where: str, limit: int, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> Iterator[str]:
    """The lines of a text stream, read with ``readline(limit)`` so a line longer than ``limit`` characters
    raises naming ``where`` and the line after reading at most ``limit`` characters of it."""
    lineno = 0
    while True:
        line = lines.readline(limit + 2)  # + 2: room for a "\r\n" after a line of exactly ``limit``
        if not line:
            return
        lineno += 1
        if len(line.rstrip("\r\n")) > limit:
            raise DataError(
                f"{where}:{lineno}: line is longer than {limit:,} characters; a text may have at most "
                f"{max_text_chars:,} (--set max_text_chars=N)"
            )
        yield line


def _no_duplicate_keys(where: str) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise DataError(f"{where}: key {key!r} appears twice in one object")
            out[key] = value
        return out

    return hook


def _read_jsonl(path: Path, limit: int, max_text_chars: int) -> Iterator[dict[str, Any]]:
    try:
        with _open_text(path) as fh:
            for lineno, line in enumerate(bounded_lines(fh, str(path), limit, max_text_chars), start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line, object_pairs_hook=_no_duplicate_keys(f"{path}:{lineno}"))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
                if not isinstance(obj, dict):
                    raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                obj["_line"] = lineno
                yield obj
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc


def _read_csv(path: Path, delimiter: str, limit: int, max_text_chars: int) -> list[dict[str, Any]]:
    import csv

    rows: list[dict[str, Any]] = []
    reader: csv.DictReader[str] | None = None
    try:
        with _open_text(path) as fh:
            reader = csv.DictReader(bounded_lines(fh, str(path), limit, max_text_chars), delimiter=delimiter)
            if reader.fieldnames is None:
                raise DataError(f"{path}: empty file (no header)")
            _no_duplicate_columns(f"{path}:{reader.line_num}", list(reader.fieldnames))
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise DataError(f"{path}:{line}: more fields than the header has")
                if any(v is None for v in row.values()):
                    raise DataError(f"{path}:{line}: fewer fields than the header has")
                row["_line"] = line
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        where = f"{path}:{reader.line_num}" if reader is not None else str(path)
        raise DataError(f"{where}: malformed CSV: {exc}") from exc
    return rows


def _no_duplicate_columns(where: str, columns: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(columns, start=1):
        key = name.strip()
        if key in seen:
            raise DataError(
                f"{where}: column {key!r} appears twice in the header (columns {seen[key]} and {i}); "
                "rename or drop one"
            )
        seen[key] = i


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        _no_duplicate_columns(str(path), list(pq.read_schema(path).names))
        table = pq.read_table(path)
    except DataError:
        raise
    except Exception as exc:  # pyarrow raises several types for corrupt files
        reason = " ".join(str(exc).split())[:300]
        raise DataError(f"{path}: cannot read Parquet: {reason}") from exc
    return table.to_pylist()


# ------------------------------------------------------------------------------------------ prediction input


def check_record_texts(record: Mapping[str, Any], where: str, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> None:
    """Refuse a prediction record whose ``text`` is not a string, or with any string (nested ones too) longer
    than ``max_text_chars``; the message names ``where`` and the field's path."""
    text = record.get("text")
    if "text" in record and not isinstance(text, str):
        kinds: dict[type, str] = {dict: "a JSON object", list: "a JSON array"}
        kind = kinds.get(type(text), f"{json.dumps(text)}")
        raise DataError(f"{where}: field 'text' is {kind}, not a string")
    for name, value in _strings(record, ""):
        if len(value) > max_text_chars:
            raise DataError(
                f"{where}: field {name!r} has {len(value):,} characters; the limit is {max_text_chars:,} "
                "(max_text_chars)"
            )


def _strings(value: Any, prefix: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield prefix, value
    elif isinstance(value, Mapping):
        for key, child in value.items():
            if key != "_line":
                yield from _strings(child, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)):
        for i, child in enumerate(value):
            yield from _strings(child, f"{prefix}[{i}]")


def read_input_records(
    path: str, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS, stdin: Any = None
) -> list[dict[str, Any]]:
    """Prediction records from a table file, or from ``-`` (``stdin``, default ``sys.stdin.buffer``): JSONL
    objects or plain text lines. Lines are read bounded (a huge line fails after :func:`max_line_chars`
    characters), bytes are decoded here so binary input is named as such, and every record passes
    :func:`check_record_texts`."""
    if path != "-":
        rows = read_records(path, max_text_chars=max_text_chars)
        for row in rows:
            check_record_texts(row, f"{path}:{row['_line']}", max_text_chars)
        return [{k: v for k, v in r.items() if k != "_line"} for r in rows]
    import sys

    stream = stdin if stdin is not None else sys.stdin.buffer
    limit = max_line_chars(max_text_chars)
    records: list[dict[str, Any]] = []
    for lineno, raw in enumerate(_bounded_byte_lines(stream, 4 * limit, max_text_chars), start=1):
        where = f"<stdin>:{lineno}"
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{where}: not UTF-8 text (byte {raw[exc.start]:#04x} at column {exc.start + 1})") from None
        if "\x00" in line:
            raise DataError(f"{where}: binary data (a NUL byte); expected text lines or JSONL")
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line, object_pairs_hook=_no_duplicate_keys(where))
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: invalid JSON: {exc.msg}") from None
        else:
            record = {"text": line.rstrip("\r\n")}
        check_record_texts(record, where, max_text_chars)
        records.append(record)
    return records


def _bounded_byte_lines(stream: Any, limit_bytes: int, max_text_chars: int) -> Iterator[bytes]:
    lineno = 0
    while True:
        raw = stream.readline(limit_bytes + 2)
        if not raw:
            return
        lineno += 1
        if len(raw.rstrip(b"\r\n")) > limit_bytes:
            raise DataError(
                f"<stdin>:{lineno}: line is longer than {limit_bytes:,} bytes; a text may have at most "
                f"{max_text_chars:,} characters (max_text_chars)"
            )
        yield raw
