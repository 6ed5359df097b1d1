"""Micro-batching: concurrent requests for one domain are merged into one forward pass.

Each domain has a bounded ``asyncio.Queue`` of jobs (one job = one request's records) and a consumer task.
The consumer takes the first waiting job, then keeps taking jobs until the batch holds ``max_batch``
records or ``max_wait_ms`` has passed (it waits only while requests are arriving together: when the last
batch held one request, a lone request is not held back waiting for company that is not coming), and runs the batch in the domain's single worker thread (torch
releases the GIL; one thread per domain also keeps non-thread-safe tokenizers safe). A full queue raises
:class:`QueueFullError` at once (the server answers 429), so memory stays bounded under overload.

With batching off, the same queue and worker run each job on its own (the baseline the benchmark compares
against).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PredictFn = Callable[[Sequence[Mapping[str, Any]]], list[Any]]


class QueueFullError(RuntimeError):
    """The domain's queue is full: the client should retry later (HTTP 429)."""


@dataclass
class _Job:
    records: Sequence[Mapping[str, Any]]
    future: asyncio.Future[list[Any]]


@dataclass
class BatchStats:
    """Counters for ``/health`` and the benchmark: how well requests were merged."""

    batches: int = 0
    records: int = 0
    requests: int = 0
    rejected: int = 0
    max_batch_seen: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "requests": self.requests,
            "records": self.records,
            "rejected": self.rejected,
            "max_batch_seen": self.max_batch_seen,
            "mean_batch_records": round(self.records / self.batches, 3) if self.batches else None,
        }


class MicroBatcher:
    """One domain's queue, consumer task and worker thread."""

    def __init__(
        self,
        name: str,
        predict: PredictFn,
        *,
        max_queue: int,
        max_batch: int,
        max_wait_ms: float,
        enabled: bool = True,
        thread_initializer: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._predict = predict
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.enabled = enabled
        self.stats = BatchStats()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"predict-{name}", initializer=thread_initializer
        )
        self._queue: asyncio.Queue[_Job] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._merging = False  # did the last batch merge several requests? (then waiting for more pays)

    def _ensure_started(self) -> asyncio.Queue[_Job]:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop or self._consumer is None or self._consumer.done():
            self._loop = loop
            self._queue = asyncio.Queue(maxsize=self.max_queue)
            self._consumer = loop.create_task(self._consume(self._queue), name=f"batcher-{self.name}")
        return self._queue

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, records: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Queue one request's records and wait for their predictions (in order).

        :raises QueueFullError: when ``max_queue`` requests are already waiting.
        """
        queue = self._ensure_started()
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        try:
            queue.put_nowait(_Job(records, future))
        except asyncio.QueueFull:
            self.stats.rejected += 1
            raise QueueFullError(
                f"domain {self.name!r}: {self.max_queue} requests are already queued; retry later"
            ) from None
        return await future

    async def _consume(self, queue: asyncio.Queue[_Job]) -> None:
        loop = asyncio.get_running_loop()
        getter: asyncio.Future[_Job] | None = None
        carry: _Job | None = None
        while True:
            if carry is not None:
                batch, carry = [carry], None
            elif not queue.empty() and getter is None:
                batch = [queue.get_nowait()]
            else:
                if getter is None:
                    getter = asyncio.ensure_future(queue.get())
                batch = [await getter]
                getter = None
            size = len(batch[0].records)
            deadline = loop.time() + (self.max_wait if self._merging else 0.0)
            while self.enabled and size < self.max_batch:
                if getter is not None and getter.done():
                    job = getter.result()
                    getter = None
                elif not queue.empty():
                    # Drain what is already queued without a trip through the event loop: under load each
                    # trip waits behind many HTTP callbacks, and the deadline would cut batches short.
                    # (A pending getter that loses this race just waits on for the next job.)
                    job = queue.get_nowait()
                else:
                    # A pending get is kept across batches instead of cancelled, so no job is ever lost.
                    if getter is None:
                        getter = asyncio.ensure_future(queue.get())
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    done, _ = await asyncio.wait({getter}, timeout=remaining)
                    if not done:
                        break
                    continue
                if size + len(job.records) > self.max_batch:
                    carry = job  # starts the next batch; this one is full
                    break
                batch.append(job)
                size += len(job.records)
            self._merging = len(batch) > 1
            try:
                await self._run(batch)
            except Exception as exc:  # never let the consumer die with requests waiting on it
                for job in batch:
                    _settle(job.future, exc=exc)

    async def _run(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        live = [job for job in batch if not job.future.done()]  # skip clients that went away
        if not live:
            return
        records = [rec for job in live for rec in job.records]
        self.stats.batches += 1
        self.stats.requests += len(live)
        self.stats.records += len(records)
        self.stats.max_batch_seen = max(self.stats.max_batch_seen, len(records))
        try:
            results = await loop.run_in_executor(self._executor, self._predict, records)
        except Exception as exc:
            if len(live) == 1:
                _settle(live[0].future, exc=exc)
                return
            # One bad request must not fail the others it was batched with: run each on its own.
            for job in live:
                try:
                    _settle(job.future, await loop.run_in_executor(self._executor, self._predict, job.records))
                except Exception as one_exc:
                    _settle(job.future, exc=one_exc)
            return
        start = 0
        for job in live:
            end = start + len(job.records)
            _settle(job.future, results[start:end])
            start = end

    async def close(self) -> None:
        """Stop the consumer and the worker thread (pending requests are cancelled)."""
        if self._consumer is not None:
            self._consumer.cancel()
            try:
                await self._consumer
            except (asyncio.CancelledError, Exception):
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)


def _settle(future: asyncio.Future[list[Any]], result: list[Any] | None = None, exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result or [])
