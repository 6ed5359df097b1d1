"""A trained run through the CLI: its test evaluation is immutable, its checkpoints are gone once it finished, and
every command that needs a model reads it the same way (run directory, artifact directory, domain name or folder)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def domainfm(*args: str, input: str | bytes | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOMAINFM_NO_PROGRESS": "1", "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "domainfm.cli.main", *args], input=input.encode() if isinstance(
        input, str) else input, capture_output=True, env=env, timeout=timeout)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(errors="replace"),
                                       done.stderr.decode(errors="replace"))


def one_line_error(done: subprocess.CompletedProcess[str], returncode: int = 2) -> str:
    assert done.returncode == returncode, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """One finished text_classification run on the tiny model (its folder is copied by each test that writes)."""
    root = tmp_path_factory.mktemp("runs")
    done = domainfm("--no-autoload", "run", "text_classification", "--base-model", str(tiny_model_dir), "--mode", "full",
                    "--epochs", "1", "--output-dir", str(root), "--set", "model.max_length=32")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (root / "text_classification").iterdir()
    return run_dir


@pytest.fixture
def run_dir(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "runs" / "text_classification" / trained.name
    shutil.copytree(trained, copy)
    return copy


def test_a_finished_run_keeps_no_checkpoints(trained: Path) -> None:
    assert not list(trained.rglob("checkpoint-*")), "checkpoints of a finished run"
    assert (trained / "artifact" / "model.safetensors").is_file()
    assert json.loads((trained / "run.json").read_text())["status"] == "finished"


def test_evaluate_and_score_never_change_the_runs_test_evaluation(run_dir: Path) -> None:
    frozen = {name: (run_dir / name).read_bytes() for name in ("metrics.json", "evaluations/full.json")}
    training_report = (run_dir / "benefit.json").read_bytes()
    test_f1 = json.loads(frozen["metrics.json"])["full"]["macro_f1"]
    assert json.loads(frozen["metrics.json"])["full"]["split"] == "test"

    ev = domainfm("--no-autoload", "evaluate", str(run_dir), "--split", "validation")
    assert ev.returncode == 0, ev.stderr[-2000:]
    for name, content in frozen.items():
        assert (run_dir / name).read_bytes() == content, f"{name} was rewritten by evaluate"
    out = json.loads(ev.stdout)
    assert out["split"] == "validation" and out["record"].startswith("history")
    record = json.loads(Path(out["written"]).read_text())
    assert record["kind"] == "evaluate" and record["split"] == "validation" and record["variant"] == "full"
    assert "split: test -> validation" in record["changes"] and record["recorded_at"]

    scored = domainfm("--no-autoload", "score", str(run_dir), "--lambda", "2", "--json")
    assert scored.returncode == 0, scored.stderr[-2000:]
    report = json.loads((run_dir / "benefit.json").read_text())
    assert report["source"]["splits"] == {"full": "test"} and report["source"]["scored_by"] == "score"
    assert report["metrics"]["full"]["macro_f1"] == pytest.approx(test_f1)  # the headline: the test split
    for name, content in frozen.items():
        assert (run_dir / name).read_bytes() == content, f"{name} was rewritten by score"
    history = run_dir / "evaluations" / "history"
    assert (history / "benefit-at-training.json").read_bytes() == training_report
    assert len(list(history.glob("*-score.json"))) == 1 and len(list(history.glob("*-full-validation.json"))) == 1
    assert "rescored by" in (run_dir / "report.html").read_text()

    listed = domainfm("--no-autoload", "runs", "list", "--output-dir", str(run_dir.parent.parent))
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if run_dir.name in line)
    assert f"macro_f1={test_f1:.4f}" in row and "test · rescored" in row


def test_predict_takes_a_run_an_artifact_a_domain_folder_or_a_domain_name(run_dir: Path) -> None:
    root = run_dir.parent.parent
    outputs = []
    for ref, extra in ((str(run_dir), []), (str(run_dir / "artifact"), []), (str(root / "text_classification"), []),
                       ("text_classification", ["--output-dir", str(root)])):
        done = domainfm("--no-autoload", "predict", ref, *extra, input="my parcel arrived broken\n")
        assert done.returncode == 0, (ref, done.stderr[-2000:])
        outputs.append(json.loads(done.stdout)["label"])
    assert len(set(outputs)) == 1
    by_name = domainfm("--no-autoload", "predict", "text_classification", "--output-dir", str(root), input="hi\n")
    assert f"using the newest run of text_classification: {run_dir}" in by_name.stderr


def test_binary_stdin_to_predict_is_one_line(run_dir: Path) -> None:
    line = one_line_error(domainfm("--no-autoload", "predict", str(run_dir), input=b"\xff\xfe\x00\x01binary\n"))
    assert line == "error: <stdin>:1: not UTF-8 text (byte 0xff at column 1)"
    line = one_line_error(domainfm("--no-autoload", "predict", str(run_dir), input=b"ok\n\x00\x00\n"))
    assert line == "error: <stdin>:2: binary data (a NUL byte); expected text lines or JSONL"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "/etc"], "error: /etc: not a run directory"),
        (["evaluate", "/etc"], "error: /etc: not a run directory"),
        (["predict", "text_classification", "--output-dir", "/nonexistent-runs"],
         "error: text_classification: no run with a trained model under /nonexistent-runs/text_classification"),
        (["score", "/etc"], "error: /etc: not a run directory"),
        (["predict", "no/such/run"], "error: no/such/run: no such run directory, artifact directory or domain name"),
    ],
)
def test_a_wrong_model_reference_is_one_line(args: list[str], message: str) -> None:
    assert one_line_error(domainfm("--no-autoload", *args, input="hi\n")).startswith(message)


@pytest.mark.skipif(importlib.util.find_spec("domainfm_healthcare") is None, reason="healthcare plugin not installed")
def test_health_triage_on_a_model_of_another_domain_is_one_line(run_dir: Path) -> None:
    line = one_line_error(domainfm("health", "triage", str(run_dir), "fever and cough"), returncode=1)
    assert line == (f"Error: {run_dir / 'artifact'}: a model of domain 'text_classification'; this command needs a "
                    "'healthcare' model")


@pytest.mark.parametrize(
    ("plugin", "args"),
    [
        ("domainfm_healthcare", ["health", "triage", "/etc", "fever"]),
        ("domainfm_education", ["edu", "grade", "--model", "/etc", "--input", "x.csv", "--output", "y.jsonl"]),
        ("domainfm_recommendation", ["rec", "recommend", "u001", "--artifact", "/etc"]),
    ],
)
def test_plugin_commands_resolve_models_like_the_core(plugin: str, args: list[str]) -> None:
    if importlib.util.find_spec(plugin) is None:
        pytest.skip(f"{plugin} not installed")
    line = one_line_error(domainfm(*args), returncode=1)
    assert line.startswith("Error: /etc: not a run directory")
