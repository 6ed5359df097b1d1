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


def read_records(path: str | Path, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Read CSV, TSV, JSONL/NDJSON or Parquet into a list of dicts.

    Raises :class:`DataError` naming the file (and line for text formats) on undecodable bytes,
    malformed rows or missing ``required`` columns.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    suffix = suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz"):
        rows = list(_read_jsonl(path))
    elif suffix in (".csv", ".tsv", ".csv.gz", ".tsv.gz"):
        rows = _read_csv(path, delimiter="\t" if suffix.startswith(".tsv") else ",")
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise DataError(f"{path}: cannot read Parquet: {exc}") from exc
    else:
        raise DataError(f"{path}: unsupported format {suffix!r} (use .csv, .tsv, .jsonl or .parquet)")
    if required:
        present = set(rows[0]) if rows else set()
        missing = [c for c in required if c not in present]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; found {sorted(present)}")
    return rows


def _open_text(path: Path):  # type: ignore[no-untyped-def]
    import gzip

    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with _open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
                if not isinstance(obj, dict):
                    raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                obj["_line"] = lineno
                yield obj
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc


def _read_csv(path: Path, delimiter: str) -> list[dict[str, Any]]:
    import csv

    rows: list[dict[str, Any]] = []
    try:
        with _open_text(path) as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            if reader.fieldnames is None:
                raise DataError(f"{path}: empty file (no header)")
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
        raise DataError(f"{path}: malformed CSV: {exc}") from exc
    return rows
