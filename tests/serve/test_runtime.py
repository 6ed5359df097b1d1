"""How a merged batch runs: length-sorted forward passes, threads per pass size, bf16, bounded heap."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from domainfm.serve.runtime import BatchRunner, HeapTrimmer, record_size, tune_allocator


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        self.calls.append([r["text"] for r in records])
        return [f"p:{r['text']}" for r in records]


def _records(texts: list[str]) -> list[dict[str, Any]]:
    return [{"id": str(i), "text": t} for i, t in enumerate(texts)]


def test_batch_is_split_by_length_and_answers_come_back_in_order() -> None:
    texts = ["x" * n for n in (9, 1, 7, 3, 8, 2, 6, 4, 5)]
    predict = Recorder()
    out = BatchRunner(predict, forward_batch=4)(_records(texts))
    assert out == [f"p:{t}" for t in texts]
    assert [len(c) for c in predict.calls] == [4, 4, 1]
    assert [[len(t) for t in c] for c in predict.calls] == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]


def test_small_batch_or_no_split_is_one_pass() -> None:
    predict = Recorder()
    BatchRunner(predict, forward_batch=0)(_records(["bb", "a", "ccc"]))
    BatchRunner(predict, forward_batch=8)(_records(["bb", "a", "ccc"]))
    assert predict.calls == [["bb", "a", "ccc"], ["bb", "a", "ccc"]]


def test_wrong_result_count_is_an_error() -> None:
    runner = BatchRunner(lambda records: ["only one"], forward_batch=2)
    with pytest.raises(RuntimeError, match="1 results for 2 records"):
        runner(_records(["a", "b", "c"]))


def test_record_size_counts_text_only() -> None:
    assert record_size({"id": "12", "text": "abc", "n": 5}) == 5


def test_threads_follow_the_pass_size(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    seen: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    runner = BatchRunner(Recorder(), forward_batch=32, torch_threads=2, threads_min_records=4)
    runner(_records(["a"] * 2))
    runner(_records(["a"] * 3))  # unchanged: not set again
    runner(_records(["a"] * 40))  # passes of 20 and 20
    runner(_records(["a"]))
    assert seen == [1, 2, 1]


def test_bf16_runs_under_autocast() -> None:
    torch = pytest.importorskip("torch")
    states: list[bool] = []

    def predict(records: Sequence[Mapping[str, Any]]) -> list[int]:
        states.append(torch.is_autocast_enabled("cpu"))
        return [0] * len(records)

    BatchRunner(predict, precision="bf16")(_records(["a"]))
    BatchRunner(predict, precision="fp32")(_records(["a"]))
    assert states == [True, False]
    with pytest.raises(ValueError, match="precision"):
        BatchRunner(predict, precision="int4")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator tuning is Linux-only")
def test_allocator_tuning_and_trimming() -> None:
    info = tune_allocator()
    assert "tuned" in info
    trimmer = HeapTrimmer(every_s=0.0)
    trimmer.maybe_trim()
    assert trimmer.trims == 0  # 0 = never
    trimmer = HeapTrimmer(every_s=1e-9)
    trimmer.maybe_trim()
    if info["tuned"]:
        assert trimmer.trims == 1
