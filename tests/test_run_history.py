"""A run's evaluation record is written once; later evaluations are versioned beside it (domainfm.run_history)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainfm.errors import ConfigError
from domainfm.run_history import save_evaluation
from domainfm.types import Evaluation

RUN = {"run_id": "r1", "device": "cpu", "config": {"eval_split": "test", "data": "demo"}}


def evaluation(split: str, accuracy: float) -> Evaluation:
    return Evaluation(domain="text_classification", split=split, metrics={"accuracy": accuracy}, key_metric="accuracy",
                      n_items=4)


def test_the_first_evaluation_on_the_runs_split_becomes_its_record(tmp_path: Path) -> None:
    # `domainfm train` writes no evaluation; `domainfm evaluate RUN` on the configured split then records it
    path, is_record = save_evaluation(tmp_path, "full", evaluation("test", 0.5), RUN, data="demo",
                                      artifact=tmp_path / "artifact")
    assert is_record and path == tmp_path / "evaluations" / "full.json"
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"full": {"split": "test", "device": "cpu",
                                                                             "accuracy": 0.5}}
    record = (tmp_path / "evaluations" / "full.json").read_bytes()
    metrics = (tmp_path / "metrics.json").read_bytes()

    # every later evaluation, on any split, goes to the history and leaves the record alone
    for split, acc, data in (("validation", 0.9, "demo"), ("test", 0.7, "other.csv")):
        path, is_record = save_evaluation(tmp_path, "full", evaluation(split, acc), RUN, data=data,
                                          artifact=tmp_path / "artifact")
        assert not is_record and path.parent == tmp_path / "evaluations" / "history"
        assert path.name.endswith(f"-full-{split}.json")
        saved = json.loads(path.read_text())
        assert saved["kind"] == "evaluate" and saved["split"] == split and saved["metrics"] == {"accuracy": acc}
        assert saved["recorded_at"] and saved["evaluation"]["split"] == split
    assert json.loads(path.read_text())["changes"] == ["data: demo -> other.csv"]
    first = sorted((tmp_path / "evaluations" / "history").glob("*-validation.json"))[0]
    assert json.loads(first.read_text())["changes"] == ["split: test -> validation"]
    assert (tmp_path / "evaluations" / "full.json").read_bytes() == record
    assert (tmp_path / "metrics.json").read_bytes() == metrics


def test_an_evaluation_on_another_split_never_becomes_the_record(tmp_path: Path) -> None:
    _, is_record = save_evaluation(tmp_path, "full", evaluation("validation", 0.9), RUN, data=None,
                                   artifact=tmp_path / "artifact")
    assert not is_record
    assert not (tmp_path / "evaluations" / "full.json").exists() and not (tmp_path / "metrics.json").exists()


def test_a_split_name_cannot_leave_the_history_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="split"):
        save_evaluation(tmp_path, "full", evaluation("../../x", 0.9), RUN, data=None, artifact=tmp_path)
