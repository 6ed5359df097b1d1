"""Line sources for the monitor, with resumable positions.

A source yields :class:`Line` objects (raw bytes plus where they came from) and reports, per file, the byte
offset just after the last line handed out. The monitor stores these positions in its SQLite state in the
same transaction as the state they produced, so a restart re-reads exactly the lines whose effects were not
committed. Only complete lines (ending in a newline) are read from files that may still be appended to.
"""

from __future__ import annotations

import os
import select
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class Line:
    """One raw input line: ``origin`` (file path or ``<stdin>``), 1-based ``lineno``, bytes without newline."""

    origin: str
    lineno: int
    raw: bytes


class Source(Protocol):
    def read(self, max_lines: int, final: bool) -> list[Line]: ...

    def positions(self) -> dict[str, tuple[int, int]]: ...

    def close(self) -> None: ...


class FileTail:
    """Read complete lines of one file from a byte offset; picks up lines appended later."""

    def __init__(self, path: Path, offset: int = 0, lineno: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.lineno = lineno
        self._fh: BinaryIO | None = None

    def _handle(self) -> BinaryIO:
        if self._fh is None:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - kept open while tailing
        self._fh.seek(self.offset)
        return self._fh

    def read(self, max_lines: int, final: bool) -> list[Line]:
        fh = self._handle()
        out: list[Line] = []
        origin = str(self.path)
        while len(out) < max_lines:
            raw = fh.readline()
            if not raw:
                break
            if not raw.endswith(b"\n") and not final:
                break  # a writer is in the middle of this line; read it once it is complete
            self.offset += len(raw)
            self.lineno += 1
            out.append(Line(origin, self.lineno, raw.rstrip(b"\r\n")))
        return out

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class FileSource:
    """A single JSONL file (optionally followed as it grows)."""

    def __init__(self, path: Path, positions: dict[str, tuple[int, int]]) -> None:
        offset, lineno = positions.get(str(path), (0, 0))
        self.tail = FileTail(path, offset, lineno)

    def read(self, max_lines: int, final: bool) -> list[Line]:
        return self.tail.read(max_lines, final)

    def positions(self) -> dict[str, tuple[int, int]]:
        return {str(self.tail.path): (self.tail.offset, self.tail.lineno)}

    def close(self) -> None:
        self.tail.close()


class DirectorySource:
    """Every ``pattern`` file of a directory in name order; new files and appended lines are picked up."""

    def __init__(self, directory: Path, positions: dict[str, tuple[int, int]], pattern: str = "*.jsonl") -> None:
        self.directory = directory
        self.pattern = pattern
        self.tails: dict[str, FileTail] = {}
        for name, (offset, lineno) in positions.items():
            if Path(name).parent == directory:
                self.tails[name] = FileTail(Path(name), offset, lineno)

    def _scan(self) -> list[FileTail]:
        for path in sorted(self.directory.glob(self.pattern)):
            if path.is_file() and str(path) not in self.tails:
                self.tails[str(path)] = FileTail(path)
        return [self.tails[k] for k in sorted(self.tails) if Path(k).exists()]

    def read(self, max_lines: int, final: bool) -> list[Line]:
        out: list[Line] = []
        for tail in self._scan():
            if len(out) >= max_lines:
                break
            out.extend(tail.read(max_lines - len(out), final))
        return out

    def positions(self) -> dict[str, tuple[int, int]]:
        return {k: (t.offset, t.lineno) for k, t in self.tails.items()}

    def close(self) -> None:
        for tail in self.tails.values():
            tail.close()


class StdinSource:
    """Lines from standard input. A pipe cannot be rewound: positions are line counts, for the record only."""

    def __init__(self, positions: dict[str, tuple[int, int]], wait_seconds: float = 0.5) -> None:
        self.lineno = positions.get("<stdin>", (0, 0))[1]
        self.wait = wait_seconds
        self.buffer = b""
        self.eof = False
        self.fd = sys.stdin.buffer.fileno()

    def read(self, max_lines: int, final: bool) -> list[Line]:
        out: list[Line] = []
        while len(out) < max_lines:
            if b"\n" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\n", 1)
                self.lineno += 1
                out.append(Line("<stdin>", self.lineno, raw.rstrip(b"\r")))
                continue
            if self.eof:
                if self.buffer and final:
                    self.lineno += 1
                    out.append(Line("<stdin>", self.lineno, self.buffer))
                    self.buffer = b""
                break
            ready, _, _ = select.select([self.fd], [], [], self.wait if not out else 0.0)
            if not ready:
                break  # nothing arrived in time: commit what we have
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                self.eof = True
            self.buffer += chunk
        return out

    @property
    def exhausted(self) -> bool:
        return self.eof and not self.buffer

    def positions(self) -> dict[str, tuple[int, int]]:
        return {"<stdin>": (0, self.lineno)}

    def close(self) -> None:
        pass


def open_source(spec: str, positions: dict[str, tuple[int, int]], pattern: str = "*.jsonl") -> Source:
    """``-`` for stdin, a directory, or a file (resolved to an absolute path so positions stay valid)."""
    if spec == "-":
        return StdinSource(positions)
    path = Path(spec).resolve()
    if path.is_dir():
        return DirectorySource(path, positions, pattern)
    if not path.is_file():
        raise FileNotFoundError(f"{spec}: no such file or directory")
    return FileSource(path, positions)
