"""Micro-batching: merging, order, bounds, isolation of a bad request, back-pressure (429)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
import pytest

from domainfm.serve.batching import MicroBatcher, QueueFullError

from .conftest import FakePlugin


class Recorder:
    """A predict function that records batch sizes and can be held closed by a gate."""

    def __init__(self, gate: threading.Event | None = None, bad: str | None = None) -> None:
        self.batches: list[list[Any]] = []
        self.gate = gate
        self.bad = bad
        self.entered = threading.Event()

    def __call__(self, records: Sequence[Mapping[str, Any]]) -> list[Any]:
        self.batches.append([r["x"] for r in records])
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.bad is not None and any(r["x"] == self.bad for r in records):
            raise ValueError(f"bad record {self.bad}")
        return [r["x"] * 10 for r in records]


async def _gather(batcher: MicroBatcher, jobs: list[list[Any]]) -> list[Any]:
    return await asyncio.gather(*(batcher.submit([{"x": x} for x in job]) for job in jobs), return_exceptions=True)


def test_concurrent_requests_are_merged_in_order() -> None:
    predict = Recorder()
    batcher = MicroBatcher("d", predict, max_queue=100, max_batch=64, max_wait_ms=50)

    async def main() -> list[Any]:
        try:
            return await _gather(batcher, [[i, i + 100] for i in range(20)])
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert results == [[i * 10, (i + 100) * 10] for i in range(20)]
    assert len(predict.batches) < 20  # merged
    assert sum(len(b) for b in predict.batches) == 40
    assert batcher.stats.requests == 20 and batcher.stats.records == 40


def test_batches_never_exceed_max_batch() -> None:
    predict = Recorder()
    batcher = MicroBatcher("d", predict, max_queue=100, max_batch=5, max_wait_ms=50)

    async def main() -> list[Any]:
        try:
            return await _gather(batcher, [[i, i, i] for i in range(10)])
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert results == [[i * 10] * 3 for i in range(10)]
    assert max(len(b) for b in predict.batches) <= 5


def test_without_batching_each_request_runs_alone() -> None:
    predict = Recorder()
    batcher = MicroBatcher("d", predict, max_queue=100, max_batch=64, max_wait_ms=50, enabled=False)

    async def main() -> list[Any]:
        try:
            return await _gather(batcher, [[i] for i in range(8)])
        finally:
            await batcher.close()

    assert asyncio.run(main()) == [[i * 10] for i in range(8)]
    assert sorted(len(b) for b in predict.batches) == [1] * 8


def test_a_bad_request_fails_alone() -> None:
    predict = Recorder(bad=3)
    batcher = MicroBatcher("d", predict, max_queue=100, max_batch=64, max_wait_ms=50)

    async def main() -> list[Any]:
        try:
            return await _gather(batcher, [[i] for i in range(6)])
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [[0], [10], [20], [40], [50]]


def test_a_full_queue_rejects_at_once_and_memory_stays_bounded() -> None:
    gate = threading.Event()
    predict = Recorder(gate=gate)
    batcher = MicroBatcher("d", predict, max_queue=3, max_batch=1, max_wait_ms=0)

    async def main() -> list[Any]:
        first = asyncio.ensure_future(batcher.submit([{"x": 0}]))
        while not predict.entered.is_set():  # the worker now holds request 0
            await asyncio.sleep(0.005)
        waiting = [asyncio.ensure_future(batcher.submit([{"x": i}])) for i in (1, 2, 3)]
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        with pytest.raises(QueueFullError):
            await batcher.submit([{"x": 4}])
        rejected_in = time.perf_counter() - started
        assert batcher.queued == 3 and batcher.stats.rejected == 1
        gate.set()
        out = await asyncio.gather(first, *waiting)
        await batcher.close()
        return [out, rejected_in]

    out, rejected_in = asyncio.run(main())
    assert out == [[0], [10], [20], [30]]
    assert rejected_in < 0.5  # answered without waiting for the worker


def test_429_when_the_domain_queue_is_full(make_app: Callable[..., Any]) -> None:
    gate = threading.Event()
    plugin = FakePlugin("fake_slow", gate=gate)
    app = make_app(plugin, max_queue=2, max_batch=1, max_wait_ms=0)

    async def main() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            body = {"texts": ["hello there"]}
            first = asyncio.ensure_future(c.post("/fake_slow/predict", json=body))
            while not plugin.predictor.batches:  # request 1 is inside the model
                await asyncio.sleep(0.005)
            queued = [asyncio.ensure_future(c.post("/fake_slow/predict", json=body)) for _ in range(2)]
            await asyncio.sleep(0.05)
            rejected = await c.post("/fake_slow/predict", json=body)
            other = await c.post("/text_classification/predict", json=body)  # other domains are not held up
            assert rejected.headers["retry-after"] == "1" and "retry later" in rejected.json()["detail"]
            gate.set()
            done = await asyncio.gather(first, *queued)
            for batcher in app.state.batchers.values():
                await batcher.close()
            return [rejected.status_code, other.status_code, *[r.status_code for r in done]]

    assert asyncio.run(main()) == [429, 200, 200, 200, 200]


def test_a_broken_result_fails_its_requests_not_the_consumer() -> None:
    calls = []

    def flaky(records: Sequence[Mapping[str, Any]]) -> Any:
        calls.append(len(records))
        return None if len(calls) == 1 else [r["x"] for r in records]  # None cannot be split per request

    batcher = MicroBatcher("d", flaky, max_queue=10, max_batch=8, max_wait_ms=0)

    async def main() -> list[Any]:
        try:
            with pytest.raises(TypeError):
                await asyncio.wait_for(batcher.submit([{"x": 1}]), 5)
            return await asyncio.wait_for(batcher.submit([{"x": 2}]), 5)
        finally:
            await batcher.close()

    assert asyncio.run(main()) == [2]


def test_a_backlog_is_drained_into_one_batch_without_waiting() -> None:
    gate = threading.Event()
    predict = Recorder(gate=gate)
    batcher = MicroBatcher("d", predict, max_queue=100, max_batch=64, max_wait_ms=0)

    async def main() -> list[Any]:
        first = asyncio.ensure_future(batcher.submit([{"x": 0}]))
        while not predict.entered.is_set():  # the worker holds request 0; the next ten queue up
            await asyncio.sleep(0.005)
        backlog = [asyncio.ensure_future(batcher.submit([{"x": i}])) for i in range(1, 11)]
        await asyncio.sleep(0.01)
        gate.set()
        out = await asyncio.gather(first, *backlog)
        await batcher.close()
        return out

    assert asyncio.run(main()) == [[i * 10] for i in range(11)]
    assert [len(b) for b in predict.batches] == [1, 10]


def test_a_lone_request_is_not_held_back_for_the_max_wait() -> None:
    predict = Recorder()
    batcher = MicroBatcher("d", predict, max_queue=100, max_batch=64, max_wait_ms=500)

    async def main() -> float:
        try:
            started = asyncio.get_running_loop().time()
            for i in range(3):  # one client, one request at a time: nothing to merge with
                assert await batcher.submit([{"x": i}]) == [i * 10]
            return asyncio.get_running_loop().time() - started
        finally:
            await batcher.close()

    assert asyncio.run(main()) < 0.5  # 3 x 500 ms if each waited
    assert predict.batches == [[0], [1], [2]]
