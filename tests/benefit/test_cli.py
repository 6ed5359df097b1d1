"""``domainfm score`` and ``domainfm runs list|compare`` on run directories written like the runner does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from domainfm import manager
from domainfm.cli.benefit_commands import runs_group, score_command
from domainfm.config import RunConfig
from domainfm.errors import DataError, DomainfmError
from domainfm.manager import PluginManager

from .conftest import THRESHOLDS, ToyPlugin, make_evaluation


@pytest.fixture
def toy_manager(monkeypatch: pytest.MonkeyPatch) -> PluginManager:
    pm = PluginManager(autoload=False).load()
    pm.register(ToyPlugin(), name="toy")
    monkeypatch.setattr(manager, "_DEFAULT", pm)
    return pm


def write_run(root: Path, run_id: str, started: str, quality: list[float] | None = None) -> Path:
    run_dir = root / "toy" / run_id
    (run_dir / "evaluations").mkdir(parents=True)
    config = RunConfig.model_validate(
        {"domain": "toy", "benefit": {"thresholds": THRESHOLDS}, "options": {"privacy_ner": False}}
    )
    run = {
        "run_id": run_id, "domain": "toy", "status": "finished", "started_at": started, "device": "cpu",
        "config": json.loads(config.model_dump_json(by_alias=True)),
        "resources": {"parameters": 1000, "latency_ms_p50": 1.0, "latency_ms_p95": 2.0, "unknown_field": 1},
    }
    (run_dir / "run.json").write_text(json.dumps(run))
    ev = make_evaluation(quality=quality) if quality else make_evaluation()
    (run_dir / "evaluations" / "full.json").write_text(ev.model_dump_json())
    return run_dir


def invoke(command: Any, args: list[str]) -> Any:
    # a fixed terminal width: rich wraps table cells to the width it detects, which differs in CI
    result = CliRunner().invoke(command, args, catch_exceptions=True, env={"COLUMNS": "200"})
    return result


def test_score_recomputes_the_report(tmp_path: Path, toy_manager: PluginManager) -> None:
    run_dir = write_run(tmp_path, "r1", "2026-01-01T00:00:00")
    result = invoke(score_command, [str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["optimum"]["threshold"] == 0.7 and out["optimum"]["objective"] == pytest.approx(1.0)
    assert (run_dir / "benefit.json").is_file() and (run_dir / "report.html").is_file()
    # lambda from the command line; an assumption override through --set
    out = json.loads(invoke(score_command, [str(run_dir), "--json", "--lambda", "4"]).output)
    assert out["lambda"] == 4.0 and out["optimum"]["threshold"] == 0.0
    out = json.loads(invoke(score_command, [str(run_dir), "--json", "--set", "benefit.assumptions.error_penalty=1"]).output)
    report = json.loads((run_dir / "benefit.json").read_text())
    net = next(t for t in report["terms"] if t["name"] == "net_value")
    assert net["assumptions"][0] == {"name": "error_penalty", "value": 1.0, "unit": "EUR", "source": "test", "overridden": True}
    table = invoke(score_command, [str(run_dir)])
    assert table.exit_code == 0 and "net_value" in table.output and "report.html" in table.output


def test_score_reuses_earlier_privacy_scans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pm = PluginManager(autoload=False).load()  # with the core's built-in constraints
    pm.register(ToyPlugin(), name="toy")
    monkeypatch.setattr(manager, "_DEFAULT", pm)
    run_dir = write_run(tmp_path, "r1", "2026-01-01T00:00:00")
    earlier = {"constraints": [{"name": "privacy_identifiers_training_data", "details": {
        "count": 2, "n_texts": 10, "n_with_identifier": 2, "n_with_name": 0, "by_kind": {"EMAIL": 2},
        "ner_used": True, "limit_source": "x"}}]}
    (run_dir / "benefit.json").write_text(json.dumps(earlier))
    assert invoke(score_command, [str(run_dir), "--json"]).exit_code == 0
    report = json.loads((run_dir / "benefit.json").read_text())
    c = next(c for c in report["constraints"] if c["name"] == "privacy_identifiers_training_data")
    assert c["at_optimum"]["value"] == pytest.approx(0.2) and "earlier report" in c["details"]["origin"]
    names = next(c for c in report["constraints"] if c["name"] == "privacy_names_training_data")
    assert names["at_optimum"]["value"] == 0.0  # the earlier scan had NER
    outputs = next(c for c in report["constraints"] if c["name"] == "privacy_identifiers_outputs")
    assert outputs["at_optimum"]["status"] == "not_measurable"


def test_score_errors_name_the_file(tmp_path: Path, toy_manager: PluginManager) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke(score_command, [str(empty)])
    assert isinstance(result.exception, DataError) and "empty: not a run directory" in str(result.exception)
    run_dir = write_run(tmp_path, "r1", "2026-01-01T00:00:00")
    (run_dir / "evaluations" / "bad.json").write_text('{"domain": "toy"}')
    result = invoke(score_command, [str(run_dir)])
    assert isinstance(result.exception, DataError) and "bad.json: field split" in str(result.exception)
    (run_dir / "evaluations" / "bad.json").unlink()
    result = invoke(score_command, [str(run_dir), "--set", "benefit.lambda=-1"])
    assert isinstance(result.exception, DomainfmError) and "benefit.lambda" in str(result.exception)


def test_runs_list_and_compare(tmp_path: Path, toy_manager: PluginManager) -> None:
    a = write_run(tmp_path, "r1", "2026-01-01T00:00:00")
    b = write_run(tmp_path, "r2", "2026-01-02T00:00:00", quality=[1.0, 1.0, 1.0, 1.0])
    for run_dir in (a, b):
        assert invoke(score_command, [str(run_dir), "--json"]).exit_code == 0
    listed = invoke(runs_group, ["list", "--output-dir", str(tmp_path), "--domain", "toy"])
    assert listed.exit_code == 0 and listed.output.index("r1") < listed.output.index("r2")
    assert "unverif" in listed.output  # the built-in energy constraints are not measurable here
    compared = json.loads(invoke(runs_group, ["compare", "r1", "r2", "--output-dir", str(tmp_path), "--json"]).output)
    changes = compared["benefit"][0]["changes"]
    moved = {(c["section"], c["name"]) for c in changes if c["moved"]}
    assert {("decision", "objective"), ("term", "net_value"), ("metric", "full.accuracy")} <= moved
    assert ("decision", "lambda") not in moved
    objective = next(c for c in changes if c["name"] == "objective")
    assert objective["before"] == pytest.approx(1.0) and objective["after"] == pytest.approx(2.0)
    table = invoke(runs_group, ["compare", str(a), str(b), "--output-dir", str(tmp_path)])
    assert table.exit_code == 0 and "net_value" in table.output
    same = invoke(runs_group, ["compare", str(a), str(a)])
    assert "nothing moved" in same.output
    missing = invoke(runs_group, ["compare", "r1", "nope", "--output-dir", str(tmp_path)])
    assert isinstance(missing.exception, DomainfmError) and "no run 'nope'" in str(missing.exception)
    assert "no runs" in invoke(runs_group, ["list", "--output-dir", str(tmp_path / "none")]).output


def test_runs_list_keeps_run_ids_whole_when_stdout_is_not_a_terminal(
    tmp_path: Path, toy_manager: PluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = ["20261205-072512-a1b2c3", "20261205-081433-d4e5f6"]
    for i, run_id in enumerate(ids):
        assert invoke(score_command, [str(write_run(tmp_path, run_id, f"2026-12-05T0{7 + i}:00:00")), "--json"]).exit_code == 0
    monkeypatch.delenv("COLUMNS", raising=False)  # a pipe or a log file: rich would assume 80 columns
    listed = CliRunner().invoke(runs_group, ["list", "--output-dir", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert "…" not in listed.output
    for run_id in ids:
        assert run_id in listed.output
    header = next(line for line in listed.output.splitlines() if "run id" in line)
    for column in ("domain", "status", "started", "key metric", "record", "verdict", "objective"):
        assert column in header
    assert "test · rescored" in listed.output  # which evaluation record and who scored


def test_score_says_which_record_it_scores_and_keeps_the_runs_own(tmp_path: Path, toy_manager: PluginManager) -> None:
    run_dir = write_run(tmp_path, "r1", "2026-01-01T00:00:00")
    training_report = {"run_id": "r1", "source": {"splits": {"full": "test"}, "scored_by": "run"}}
    (run_dir / "benefit.json").write_text(json.dumps(training_report))
    out = json.loads(invoke(score_command, [str(run_dir), "--json", "--lambda", "4"]).output)
    assert out["source"] == ("scores the test evaluation recorded when the run trained; rescored by `domainfm score` "
                             "(lambda: 1.0 -> 4.0)")
    history = run_dir / "evaluations" / "history"
    assert json.loads((history / "benefit-at-training.json").read_text()) == training_report
    record = json.loads(Path(out["paths"]["history"]).read_text())
    assert record["kind"] == "score" and record["splits"] == {"full": "test"} and record["changes"] == ["lambda: 1.0 -> 4.0"]
    report = json.loads((run_dir / "benefit.json").read_text())
    assert report["source"]["scored_by"] == "score" and report["source"]["history"].startswith("evaluations/history/")
    assert "rescored by" in (run_dir / "report.html").read_text()
    # a second rescore adds a record and keeps the first kept report
    out2 = json.loads(invoke(score_command, [str(run_dir), "--json", "--set", "benefit.assumptions.error_penalty=1"]).output)
    assert out2["paths"]["history"] != out["paths"]["history"]
    assert json.loads((history / "benefit-at-training.json").read_text()) == training_report
    assert len(list(history.glob("*-score.json"))) == 2


def test_score_refuses_evaluations_of_another_split_than_the_runs(tmp_path: Path, toy_manager: PluginManager) -> None:
    run_dir = write_run(tmp_path, "r1", "2026-01-01T00:00:00")
    ev = json.loads((run_dir / "evaluations" / "full.json").read_text())
    ev["split"] = "validation"  # what `domainfm evaluate --split validation` used to leave behind
    (run_dir / "evaluations" / "full.json").write_text(json.dumps(ev))
    result = invoke(score_command, [str(run_dir)])
    assert isinstance(result.exception, DataError)
    assert "full.json: holds the 'validation' split, but the run is judged on 'test'" in str(result.exception)


def test_runs_compare_says_which_record_each_side_shows(tmp_path: Path, toy_manager: PluginManager) -> None:
    a = write_run(tmp_path, "r1", "2026-01-01T00:00:00")
    b = write_run(tmp_path, "r2", "2026-01-02T00:00:00")
    for run_dir in (a, b):
        assert invoke(score_command, [str(run_dir), "--json"]).exit_code == 0
    assert invoke(score_command, [str(b), "--json", "--lambda", "3"]).exit_code == 0
    shown = invoke(runs_group, ["compare", "r1", "r2", "--output-dir", str(tmp_path)])
    assert shown.exit_code == 0
    assert "before: r1: the report scores the test evaluation recorded when the run trained" in shown.output
    assert "after: r2: the report scores the test evaluation recorded when the run trained; rescored" in shown.output
    compared = json.loads(invoke(runs_group, ["compare", "r1", "r2", "--output-dir", str(tmp_path), "--json"]).output)
    record = next(c for c in compared["benefit"][0]["changes"] if c["section"] == "record")
    assert record["before"] == record["after"] == "test · rescored"
