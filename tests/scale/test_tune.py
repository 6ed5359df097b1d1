"""``domainfm tune``: every trial is a normal run with its own directory; the best one is recorded in JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from domainfm.errors import ConfigError
from domainfm.scale.tune import load_space


def cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOMAINFM_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "domainfm.cli.main", "--no-autoload", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def test_a_bad_space_is_one_line(tmp_path: Path) -> None:
    cases = {
        "x: 1\n": "x: needs type",
        "train.learning_rate: {type: loguniform, low: 0, high: 1}\n": "loguniform needs low > 0",
        "train.batch_size: {type: choice, values: []}\n": "non-empty values",
        "train.epochs: {type: int, low: 3, high: 1}\n": "low < high",
    }
    for text, message in cases.items():
        (tmp_path / "space.yaml").write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_space(tmp_path / "space.yaml")
    done = cli("tune", "text_classification", "--space", str(tmp_path / "missing.yaml"), "--trials", "1")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.yaml'}: no such search space file"]


@pytest.mark.parametrize("engine", ["optuna", pytest.param("ray", marks=pytest.mark.slow)])
def test_trials_are_runs_and_the_best_is_recorded(engine: str, tmp_path: Path, tiny_model_dir: Path) -> None:
    if engine == "ray":
        pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[scale]')")
    (tmp_path / "space.yaml").write_text("train.learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-2}\n"
                                         "train.batch_size: {type: choice, values: [8, 16]}\n")
    done = cli("tune", "text_classification", "--space", str(tmp_path / "space.yaml"), "--trials", "2",
               "--engine", engine, "--name", "t", "--metric", "accuracy", "--output-dir", str(tmp_path / "runs"),
               "--set", f"model.base={tiny_model_dir}", "--set", "model.mode=full",
               "--set", "train.epochs=1", "--set", "model.max_length=32")
    assert done.returncode == 0, done.stderr[-4000:]
    record = json.loads((tmp_path / "runs" / "text_classification" / "tune-t.json").read_text())
    assert record["engine"] == engine and record["metric"] == "accuracy"
    assert len(record["trials"]) == 2
    finished = [t for t in record["trials"] if t["status"] == "finished"]
    assert finished and record["best_value"] == max(t["value"] for t in finished)
    best_run = Path(record["best_run"])
    assert best_run.parent == (tmp_path / "runs" / "text_classification").resolve()
    assert best_run.name.startswith("tune-t-trial-")
    run = json.loads((best_run / "run.json").read_text())
    assert run["status"] == "finished"
    assert {k: run["config"]["train"][k.split(".")[1]] for k in record["best_params"]} == record["best_params"]
    assert (best_run / "metrics.json").is_file()


def test_without_ray_auto_runs_the_optuna_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from domainfm.scale import tune as tune_module

    (tmp_path / "space.yaml").write_text("train.epochs: {type: int, low: 1, high: 2}\n")
    calls: list[str] = []

    def fake(engine: str) -> object:
        def run(*args: object, **kwargs: object) -> tune_module.TuneResult:
            calls.append(engine)
            return tune_module.TuneResult({"train.epochs": 1}, 0.5, "runs/x", [], engine)
        return run

    monkeypatch.setattr(tune_module, "_tune_optuna", fake("optuna"))
    monkeypatch.setattr(tune_module, "_tune_ray", fake("ray"))
    monkeypatch.setattr(tune_module, "_has_ray", lambda: False)
    result = tune_module.tune("text_classification", tmp_path / "space.yaml", 1, output_dir=tmp_path, name="a")
    assert calls == ["optuna"] and result.engine == "optuna"
    assert json.loads((tmp_path / "text_classification" / "tune-a.json").read_text())["engine"] == "optuna"
    monkeypatch.setattr(tune_module, "_has_ray", lambda: True)
    tune_module.tune("text_classification", tmp_path / "space.yaml", 1, output_dir=tmp_path, name="b")
    assert calls == ["optuna", "ray"]
