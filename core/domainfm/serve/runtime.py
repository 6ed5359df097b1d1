"""How a merged batch is run in the domain's worker thread: length-sorted forward passes, torch threads per
batch size, optional bf16 autocast, and a bounded heap (glibc allocator tuning and periodic trimming).

Measured on the 2-core benchmark machine (``benchmarks/serve``), serving finance_sentiment (MiniLM):

- nearly all server CPU is the model's matrix products; HTTP, JSON and pydantic together are a few percent;
- sorting a merged batch by text length and running it in forward passes of <= 32 records cuts padding
  (sentence-transformers pads each pass to its longest text) and the CPU per record by ~15 %;
- a second torch thread only pays for large passes; on a small pass it costs more than it gains, so passes
  below ``threads_min_records`` run on one thread;
- with varied tensor sizes from several threads, glibc's dynamic mmap threshold and per-thread arenas make
  RSS creep up for minutes (+24 % over a 10-minute soak); a fixed mmap threshold, at most 2 arenas and
  ``malloc_trim`` every few seconds keep it flat.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

PredictFn = Callable[[Sequence[Mapping[str, Any]]], list[Any]]

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()  # glibc only (musl has no mallopt tuning)
        return libc
    except (OSError, AttributeError):
        return None


def tune_allocator(mmap_threshold: int = 1 << 20, arena_max: int = 2, trim_threshold: int = 64 << 20) -> dict[str, Any]:
    """Make glibc's heap stay bounded under a long-running mixed-size load (no-op elsewhere).

    A fixed ``M_MMAP_THRESHOLD`` turns off the dynamic threshold (which, after large tensors are freed,
    serves later large allocations from the fragmenting heap instead of mmap); ``M_ARENA_MAX`` bounds the
    per-thread arenas. Call it early in the process. Returns what was set, for ``/health``.
    """
    libc = _libc()
    if libc is None:
        return {"tuned": False, "reason": "not glibc"}
    ok = all(
        libc.mallopt(param, value) == 1
        for param, value in ((_M_MMAP_THRESHOLD, mmap_threshold), (_M_ARENA_MAX, arena_max), (_M_TRIM_THRESHOLD, trim_threshold))
    )
    return {"tuned": ok, "mmap_threshold": mmap_threshold, "arena_max": arena_max, "trim_threshold": trim_threshold}


class HeapTrimmer:
    """Calls glibc ``malloc_trim(0)`` at most every ``every_s`` seconds (thread-safe, no-op off glibc)."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.trims = 0
        self._libc = _libc() if every_s > 0 else None
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def maybe_trim(self) -> None:
        if self._libc is None:
            return
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        with self._lock:
            if now - self._last < self.every_s:
                return
            self._libc.malloc_trim(0)
            self._last = time.monotonic()
            self.trims += 1


def record_size(record: Mapping[str, Any]) -> int:
    """Characters of text in a record: the sort key that keeps similar lengths in one forward pass."""
    return sum(len(v) for v in record.values() if isinstance(v, str))


class BatchRunner:
    """Runs one merged batch for a domain in its worker thread (see the module docstring).

    :param predict: the domain's blocking predict (``PredictorRegistry.predict`` bound to the domain).
    :param forward_batch: records per forward pass after sorting by length (0 = the whole batch at once).
    :param torch_threads: torch intra-op threads for passes of ``threads_min_records`` records or more
        (None = leave torch's setting alone); smaller passes run on one thread.
    :param precision: ``fp32`` (no autocast: the model runs at its artifact's own precision) or ``bf16``
        (autocast; faster on CPUs with bf16 instructions, predictions may differ slightly: measure first).
    :param device: where the model runs (autocast's device type).
    """

    def __init__(
        self,
        predict: PredictFn,
        *,
        forward_batch: int = 32,
        torch_threads: int | None = None,
        threads_min_records: int = 16,
        precision: str = "fp32",
        device: Callable[[], str] | str = "cpu",
        trimmer: HeapTrimmer | None = None,
    ) -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, not {precision!r}")
        self._predict = predict
        self.forward_batch = forward_batch
        self.torch_threads = torch_threads
        self.threads_min_records = threads_min_records
        self.precision = precision
        self._device = device
        self.trimmer = trimmer
        self._threads_now: int | None = None

    def __call__(self, records: Sequence[Mapping[str, Any]]) -> list[Any]:
        try:
            if not self.forward_batch or len(records) <= self.forward_batch:
                with self._context(len(records)):
                    return self._predict(records)
            order = sorted(range(len(records)), key=lambda i: record_size(records[i]))
            out: list[Any] = [None] * len(records)
            for start in range(0, len(order), self.forward_batch):
                idx = order[start : start + self.forward_batch]
                with self._context(len(idx)):
                    results = self._predict([records[i] for i in idx])
                if len(results) != len(idx):  # the registry checks this; keep the reordering safe anyway
                    raise RuntimeError(f"predict returned {len(results)} results for {len(idx)} records")
                for i, result in zip(idx, results, strict=True):
                    out[i] = result
            return out
        finally:
            if self.trimmer is not None:
                self.trimmer.maybe_trim()

    @contextlib.contextmanager
    def _context(self, n: int) -> Iterator[None]:
        if self.torch_threads is not None:
            self._set_threads(self.torch_threads if n >= self.threads_min_records else 1)
        if self.precision == "fp32":
            yield
            return
        import torch

        device = self._device() if callable(self._device) else self._device
        kind = "cuda" if str(device).startswith("cuda") else "cpu"
        with torch.autocast(kind, dtype=torch.bfloat16):
            yield

    def _set_threads(self, threads: int) -> None:
        if threads == self._threads_now:
            return
        import torch

        torch.set_num_threads(threads)
        self._threads_now = threads
