"""``domainfm improve`` end to end on a tiny model: lineage written and read back (run.json, runs list, report),
the comparisons measured, the gate's decision recorded and honoured by the model resolver, one-line errors."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from domainfm.continual.lineage import read_lineage
from domainfm.run_layout import resolve_model
from domainfm.types import Artifact

DEMO = Path(__file__).resolve().parents[2] / "core" / "domainfm" / "demo_data" / "feedback_demo.csv"


def domainfm(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOMAINFM_NO_PROGRESS": "1", "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "domainfm.cli.main", "--no-autoload", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def write_feedback(path: Path, extra: list[dict[str, str]] | None = None) -> Path:
    with open(DEMO, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:40]
    rows += [{"text": f"I want a refund for order {i}, the kettle broke", "label": "refund", "channel": "chat"}
             for i in range(15)]
    rows += extra or []
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label", "channel"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("runs")
    done = domainfm("run", "text_classification", "--base-model", str(tiny_model_dir), "--mode", "full", "--epochs", "1",
                    "--output-dir", str(root), "--set", "model.max_length=32")
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (root / "text_classification").iterdir()
    return run_dir


@pytest.fixture
def runs(parent: Path, tmp_path: Path) -> Path:
    """A copy of the runs folder holding only the parent run."""
    root = tmp_path / "runs"
    shutil.copytree(parent, root / "text_classification" / parent.name)
    return root


def children(runs: Path, parent: Path) -> list[Path]:
    return [d for d in (runs / "text_classification").iterdir() if d.name != parent.name]


def test_improve_records_lineage_measures_and_gates(runs: Path, parent: Path, tmp_path: Path) -> None:
    feedback = write_feedback(tmp_path / "fb.csv")
    done = domainfm("improve", "text_classification", "--output-dir", str(runs), "--feedback", str(feedback),
                    "--set", "train.epochs=1", "--set", "options.replay_ratio=2", "--set", "train.regularisation.ewc=0.5")
    assert done.returncode == 0, done.stderr[-3000:]
    (child,) = children(runs, parent)
    run = json.loads((child / "run.json").read_text())
    assert run["status"] == "finished"
    lineage = read_lineage(child)
    assert lineage is not None and lineage == run["lineage"]
    assert lineage["parent_run_id"] == parent.name and lineage["generation"] == 1
    assert lineage["replay_ratio"] == 2 and lineage["regulariser"]["ewc"] == 0.5 and lineage["feedback"] == str(feedback)
    assert run["config"]["train"]["regularisation"]["anchor"].endswith("anchor.safetensors")
    train_cfg = run["config"]["train"]  # the child's default: weights back to the label mix of everything seen
    assert train_cfg["class_weights"] == "prior" and train_cfg["class_prior"]["refund"] > 0
    assert sum(train_cfg["class_prior"].values()) == pytest.approx(1.0)
    models = run["continual"]["models"]
    assert set(models) == {"parent", "replay", "naive", "full_retrain"}
    for name in ("replay", "naive", "full_retrain"):
        assert models[name]["train_seconds"] > 0 and 0 <= models[name]["overall"] <= 1
        assert models[name]["gain_on_new"] == pytest.approx(models[name]["new"] - models["parent"]["new"])
        assert models[name]["forgetting_on_old"] == pytest.approx(models["parent"]["old"] - models[name]["old"])
    sizes = run["continual"]["sizes"]
    assert sizes["replayed"] == 2 * sizes["feedback_train"] and sizes["new_labels"] == 1
    promotion = run["promotion"]
    assert promotion["reasons"] and promotion["forced"] is False and promotion["promoted"] == promotion["gate_passed"]
    # the grown head: the parent's labels keep their ids, the new one comes last
    parent_labels = Artifact.load(parent / "artifact").label_names or []
    assert (Artifact.load(child / "artifact").label_names or []) == [*parent_labels, "refund"]
    report = json.loads((child / "benefit.json").read_text())
    assert report["continual"]["lineage"]["parent_run_id"] == parent.name
    assert "Improvement from feedback" in (child / "report.html").read_text()
    assert not any((child / d).exists() for d in ("parent_base", "parent_served", "comparisons"))
    assert "promoted" in done.stdout and "full retraining" in done.stdout
    listed = domainfm("runs", "list", "--output-dir", str(runs))
    assert listed.returncode == 0 and f"{parent.name} (" in listed.stdout
    served = resolve_model("text_classification", output_dir=runs).run_dir
    assert served == (child if promotion["promoted"] else runs / "text_classification" / parent.name)


def test_force_promotes_and_is_recorded(runs: Path, parent: Path, tmp_path: Path) -> None:
    feedback = write_feedback(tmp_path / "fb.csv")
    done = domainfm("improve", str(runs / "text_classification" / parent.name), "--feedback", str(feedback),
                    "--force", "--no-compare", "--set", "train.epochs=1")
    assert done.returncode == 0, done.stderr[-3000:]
    (child,) = children(runs, parent)
    run = json.loads((child / "run.json").read_text())
    assert run["promotion"]["promoted"] is True and run["promotion"]["forced"] is (not run["promotion"]["gate_passed"])
    # the parent was scored on the same items, its grown head included (the feedback brings a new label)
    assert run["promotion"]["parent_objective"] is not None
    assert not any("could not be scored" in r for r in run["promotion"]["reasons"])
    assert set(run["continual"]["models"]) == {"parent", "replay"}
    artifact = Artifact.load(child / "artifact")  # names the chain's base model, not the deleted grown parent
    assert artifact.base_model == json.loads((parent / "run.json").read_text())["config"]["model"]["base"]
    assert artifact.metadata["continued_from"] == str(runs / "text_classification" / parent.name / "artifact")
    assert resolve_model("text_classification", output_dir=runs).run_dir == child


def test_feedback_of_one_new_label_alone_is_enough(runs: Path, parent: Path, tmp_path: Path) -> None:
    """A file of one new intent's examples is a whole feedback source (a training source needs two labels)."""
    only_new = tmp_path / "refund.csv"
    with open(only_new, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label", "channel"])
        writer.writeheader()
        writer.writerows({"text": f"refund order {i}, the kettle broke", "label": "refund", "channel": "chat"}
                         for i in range(15))
    done = domainfm("improve", "text_classification", "--output-dir", str(runs), "--feedback", str(only_new),
                    "--set", "train.epochs=1")
    assert done.returncode == 0, done.stderr[-3000:]
    (child,) = children(runs, parent)
    run = json.loads((child / "run.json").read_text())
    assert run["continual"]["sizes"]["new_labels"] == 1 and run["continual"]["sizes"]["feedback_heldout"] >= 3
    parent_labels = Artifact.load(parent / "artifact").label_names or []
    assert (Artifact.load(child / "artifact").label_names or []) == [*parent_labels, "refund"]
    trained = domainfm("run", "text_classification", "--data", str(only_new), "--output-dir", str(tmp_path / "r"))
    assert "only the label 'refund'" in one_line_error(trained)


def test_a_bad_feedback_file_fails_in_one_line_naming_file_and_line(runs: Path, parent: Path, tmp_path: Path) -> None:
    bad = write_feedback(tmp_path / "bad.csv", extra=[{"text": "no label here", "label": "", "channel": "chat"}])
    line = one_line_error(domainfm("improve", "text_classification", "--output-dir", str(runs), "--feedback", str(bad)))
    assert f"{bad}:57" in line, line
    missing = one_line_error(domainfm("improve", "text_classification", "--output-dir", str(runs),
                                      "--feedback", str(tmp_path / "nope.csv")))
    assert "nope.csv" in missing
    not_a_run = one_line_error(domainfm("improve", str(tmp_path), "--feedback", str(bad)))
    assert str(tmp_path) in not_a_run
    # the failed children are recorded as failed, never served
    assert resolve_model("text_classification", output_dir=runs).run_dir == runs / "text_classification" / parent.name


def make_run(root: Path, run_id: str, started: str, lineage: dict[str, str] | None = None,
             promotion: dict[str, bool] | None = None) -> Path:
    run_dir = root / "text_classification" / run_id
    (run_dir / "artifact").mkdir(parents=True)
    Artifact(path=run_dir / "artifact", domain="text_classification", kind="test", base_model="tiny").save_metadata()
    run = {"run_id": run_id, "domain": "text_classification", "status": "finished", "started_at": started,
           "config": {"model": {"mode": "full"}}, "lineage": lineage, "promotion": promotion}
    (run_dir / "run.json").write_text(json.dumps(run))
    return run_dir


@pytest.mark.parametrize(("promotion", "served"), [
    (None, "parent"),  # not decided yet: never served
    ({"promoted": False}, "parent"),
    ({"promoted": True}, "child"),
])
def test_the_resolver_serves_a_child_only_once_promoted(tmp_path: Path, promotion: dict[str, bool] | None,
                                                        served: str) -> None:
    make_run(tmp_path, "parent", "2026-01-01T00:00:00+00:00")
    make_run(tmp_path, "child", "2026-01-02T00:00:00+00:00", lineage={"parent_run_id": "parent"}, promotion=promotion)
    layout = resolve_model("text_classification", output_dir=tmp_path)
    assert layout.run_dir == tmp_path / "text_classification" / served
    # an explicit run directory is always honoured
    assert resolve_model(tmp_path / "text_classification" / "child").run_dir == tmp_path / "text_classification" / "child"


def test_a_child_is_tracked_with_its_parent(tmp_path: Path) -> None:
    from domainfm.config import RunConfig
    from domainfm.tracking.session import Session
    from domainfm.types import RunContext

    class Backend:
        """A tracking backend that keeps the params and tags it is given."""

        name = "recorder"

        def __init__(self) -> None:
            self.logged: dict[str, dict[str, object]] = {"params": {}, "tags": {}}

        def params(self, values: dict[str, object]) -> None:
            self.logged["params"].update(values)

        def tags(self, values: dict[str, object]) -> None:
            self.logged["tags"].update(values)

    backend = Backend()
    ctx = RunContext(run_id="child", domain="text_classification", config=RunConfig(), run_dir=tmp_path, device="cpu")
    ctx.state["lineage"] = {"parent_run_id": "parent-1", "generation": 2, "regulariser": {"l2sp": 0.0}}
    Session(ctx, [backend]).log_start(ctx)
    assert backend.logged["tags"]["domainfm.parent_run_id"] == "parent-1"
    assert backend.logged["params"]["lineage.parent_run_id"] == "parent-1"
    assert backend.logged["params"]["lineage.generation"] == 2


def test_the_child_config_weights_classes_unless_told_otherwise(parent: Path) -> None:
    from domainfm.continual.improve import parent_config

    layout = resolve_model(str(parent))
    assert parent_config(layout, []).train.class_weights == "prior"
    assert parent_config(layout, ["train.class_weights=none"]).train.class_weights == "none"

