"""Experiment tracking (``train.report_to``): a run logged to MLflow (an embedded SQLite store, read back through
``mlflow.search_runs``) and TensorBoard (event files read back with tensorboard's event reader); the artifact's
training curves, model card and the run's data fingerprints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

from domainfm.config import build_config  # noqa: E402
from domainfm.errors import ConfigError  # noqa: E402
from domainfm.manager import PluginManager  # noqa: E402
from domainfm.runner import Runner  # noqa: E402
from domainfm.tracking import default_tracking_uri, require  # noqa: E402


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Any:
    root = tmp_path_factory.mktemp("tracked")
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        config = build_config(None, [
            f"output_dir={root}", f"model.base={tiny_model_dir}", "train.epochs=2", "model.max_length=32",
            "benefit.energy_tracking=false", "options.privacy_ner=false", "train.report_to=[mlflow, tensorboard]",
        ])
        result = Runner(PluginManager(autoload=False).load(), config).run("text_classification")
    finally:
        mp.undo()
    return result


def mlflow_runs(root: Path) -> Any:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=["domainfm-text_classification"])


def test_mlflow_run_holds_config_metrics_benefit_and_curves(tracked: Any) -> None:
    import mlflow

    ctx = tracked.ctx
    root = Path(ctx.config.output_dir)
    runs = mlflow_runs(root)
    parent = runs[runs["tags.mlflow.runName"] == f"text_classification/{ctx.run_id}"]
    assert len(parent) == 1
    row = parent.iloc[0]
    assert row["status"] == "FINISHED"
    run = json.loads((ctx.run_dir / "run.json").read_text())
    # the flattened configuration as params, the data fingerprints beside it
    assert row["params.train.epochs"] == "2.0" and row["params.model.max_length"] == "32"
    assert row["params.train.report_to"] == '["mlflow", "tensorboard"]'
    assert row["params.data_fingerprint.test"] == run["data_fingerprints"]["test"]["sha256"]
    # final metrics with their intervals, as metrics.json holds them
    metrics = json.loads((ctx.run_dir / "metrics.json").read_text())["full"]
    for name in ("macro_f1", "accuracy", "macro_f1_ci95_low", "macro_f1_ci95_high", "ece"):
        assert row[f"metrics.test/{name}"] == pytest.approx(metrics[name])
    # every benefit term and constraint, the decision and the verdict
    report = tracked.report
    assert row["tags.verdict"] == report.verdict
    for term in report.terms:
        if term.value_at_optimum is not None:
            assert row[f"metrics.benefit/term/{term.name}"] == pytest.approx(term.value_at_optimum)
    for c in report.constraints:
        assert row[f"metrics.benefit/constraint/{c.name}/limit"] == pytest.approx(c.limit)
        if c.at_optimum is not None:
            assert row[f"tags.benefit/constraint/{c.name}/status"] == c.at_optimum.status
    assert row["tags.device"] == ctx.device and row["tags.artifact_dir"] == str(ctx.artifact_dir)
    assert row["metrics.resources/latency_ms_p95"] == pytest.approx(ctx.resources.latency_ms_p95)
    # per-step loss and validation metric, as training_log.json has them
    log = json.loads((ctx.artifact_dir / "training_log.json").read_text())["log_history"]
    client = mlflow.MlflowClient()
    losses = client.get_metric_history(row["run_id"], "model/train/loss")
    logged = sorted((m.step, m.value) for m in losses)
    expected = [(e["step"], e["loss"]) for e in log if "loss" in e]
    assert [step for step, _ in logged] == [step for step, _ in expected]
    assert [value for _, value in logged] == pytest.approx([value for _, value in expected])
    evals = client.get_metric_history(row["run_id"], "model/eval/macro_f1")
    assert [m.step for m in sorted(evals, key=lambda m: m.step)] == [e["step"] for e in log if "eval_macro_f1" in e]
    assert len(evals) == 2  # one per epoch
    # the Trainer's own report_to: a child run per trained model with its per-step figures
    child = runs[runs["tags.mlflow.parentRunId"] == row["run_id"]]
    assert len(child) == 1 and child.iloc[0]["tags.mlflow.runName"] == f"{ctx.run_id}/model"
    assert len(client.get_metric_history(child.iloc[0]["run_id"], "loss")) == len(losses)
    assert {a.path for a in client.list_artifacts(row["run_id"], "report")} >= {"report/benefit.json", "report/report.html"}
    assert len(runs) == 2, "no stray runs"


def test_tensorboard_event_files_in_the_run_directory(tracked: Any) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ctx = tracked.ctx
    run_events = EventAccumulator(str(ctx.run_dir / "tensorboard" / "run")).Reload()
    metrics = json.loads((ctx.run_dir / "metrics.json").read_text())["full"]
    assert run_events.Scalars("test/macro_f1")[0].value == pytest.approx(metrics["macro_f1"])
    assert "benefit/objective" in run_events.Tags()["scalars"]
    assert "config/text_summary" in run_events.Tags()["tensors"]
    trainer_events = EventAccumulator(str(ctx.run_dir / "tensorboard" / "model")).Reload()
    assert {"train/loss", "eval/macro_f1"} <= set(trainer_events.Tags()["scalars"])
    assert len(trainer_events.Scalars("eval/macro_f1")) == 2


def test_report_model_card_and_fingerprints(tracked: Any) -> None:
    from domainfm.fingerprints import split_fingerprint

    ctx = tracked.ctx
    html = (ctx.run_dir / "report.html").read_text()
    assert "<h2>Training curves</h2>" in html and "Training curve: full" in html
    card = (ctx.artifact_dir / "README.md").read_text()
    metrics = json.loads((ctx.run_dir / "metrics.json").read_text())["full"]
    for section in ("## Base model and licence", "## Data and split", "## Metrics (95 % intervals)", "## Calibration",
                    "## Intended use", "## Limitations", "## Benefit summary"):
        assert section in card
    assert f"| macro_f1 | {metrics['macro_f1']:.4f} | [{metrics['macro_f1_ci95_low']:.4f}, " in card
    assert f"verdict: **{tracked.report.verdict}**" in card
    run = json.loads((ctx.run_dir / "run.json").read_text())
    assert set(run["data_fingerprints"]) == {"train", "validation", "test"}
    assert run["data_fingerprints"]["test"] != run["data_fingerprints"]["validation"]
    table = ctx.state["data_fingerprints"]["test"]
    assert table["n"] == run["data_sizes"]["test"]
    from datasets import Dataset

    assert split_fingerprint(Dataset.from_dict({"id": ["a", "b"]}), "text")["sha256"] != split_fingerprint(
        Dataset.from_dict({"id": ["b", "a"]}), "text")["sha256"]


def test_tracking_is_off_by_default_and_never_imports_mlflow() -> None:
    code = ("import sys; from domainfm.cli.main import main; main(['plugins', 'list']); "
            "print('IMPORTED' if {'mlflow', 'tensorboard', 'torch'} & set(sys.modules) else 'CLEAN')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("CLEAN") and "domainfm.tracking" in done.stdout


def test_tracking_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert default_tracking_uri(tmp_path) == "http://mlflow.example:5000"
    with pytest.raises(ConfigError, match="train.report_to"):
        build_config(None, ["train.report_to=wandb"])
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"mlflow is not installed; pip install 'domainfm\[tracking\]'"):
        require(["mlflow"])


def test_a_distillation_run_tracks_and_plots_teacher_and_student(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two Trainers in one train stage: each gets its child run under the one domainfm run (the first one's
    collected callback must not end the parent), and the report plots both models' curves."""
    import mlflow

    from domainfm.testing import build_tiny_model

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    student = build_tiny_model(tmp_path / "student", hidden_size=16, layers=1)
    config = build_config(None, [
        f"output_dir={tmp_path}", f"model.base={student}", "model.mode=distill", f"model.teacher={tiny_model_dir}",
        "train.epochs=1", "train.batch_size=8", "model.max_length=32", "benefit.energy_tracking=false",
        "options.privacy_ner=false", "train.report_to=mlflow",
    ])
    result = Runner(PluginManager(autoload=False).load(), config).run("text_classification")
    run_dir = result.ctx.run_dir
    assert (run_dir / "variants" / "teacher" / "artifact" / "training_log.json").is_file()
    assert (run_dir / "artifact" / "training_log.json").is_file()
    html = (run_dir / "report.html").read_text()
    assert "Training curve: teacher" in html and "Training curve: distill" in html
    runs = mlflow_runs(tmp_path)
    parent = runs[runs["tags.mlflow.runName"] == f"text_classification/{result.ctx.run_id}"].iloc[0]
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"]]
    assert sorted(children["tags.mlflow.runName"]) == sorted([f"{result.ctx.run_id}/teacher", f"{result.ctx.run_id}/model"])
    assert len(runs) == 3 and set(runs["status"]) == {"FINISHED"}
    client = mlflow.MlflowClient()
    assert client.get_metric_history(parent["run_id"], "teacher/eval/macro_f1")
    assert client.get_metric_history(parent["run_id"], "model/eval/macro_f1")
    assert parent["metrics.teacher/test/macro_f1"] == pytest.approx(result.evaluations["teacher"].metrics["macro_f1"])
    assert (run_dir / "variants" / "teacher" / "artifact" / "README.md").is_file()
    assert mlflow.active_run() is None


def test_an_unusable_tracking_store_fails_in_one_line_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from domainfm.tracking.session import open_session
    from domainfm.types import RunContext

    (tmp_path / "not-a-dir").write_text("x")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'not-a-dir' / 'mlflow.db'}")
    config = build_config(None, [f"output_dir={tmp_path}", "train.report_to=mlflow"])
    ctx = RunContext(run_id="r", domain="text_classification", config=config, run_dir=tmp_path / "r", device="cpu")
    with pytest.raises(ConfigError, match=r"train.report_to=mlflow: cannot start a run in sqlite:///") as info:
        open_session(ctx)
    assert "\n" not in str(info.value)
