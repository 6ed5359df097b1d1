"""The one model resolver (domainfm.run_layout) on run folders written the way the runner writes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainfm.errors import ConfigError, DataError
from domainfm.run_layout import check_name, resolve_model
from domainfm.types import Artifact


def make_artifact(path: Path, domain: str = "text_classification", **metadata: object) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    Artifact(path=path, domain=domain, kind="test", base_model="tiny", metadata=dict(metadata)).save_metadata()
    return path


def make_run(root: Path, run_id: str, started: str = "2026-01-01T00:00:00+00:00", domain: str = "text_classification",
             variants: tuple[str, ...] = (), status: str = "finished", mode: str = "full") -> Path:
    run_dir = root / domain / run_id
    run_dir.mkdir(parents=True)
    run = {"run_id": run_id, "domain": domain, "status": status, "started_at": started,
           "config": {"model": {"mode": mode}, "eval_split": "test"}}
    (run_dir / "run.json").write_text(json.dumps(run))
    if status in ("finished", "trained"):
        if variants:
            for name in variants:
                make_artifact(run_dir / "variants" / name / "artifact", domain, variant=name)
        else:
            make_artifact(run_dir / "artifact", domain)
    return run_dir


def choose_in_report(run_dir: Path, variant: str) -> None:
    points = [{"variant": "other"}, {"variant": variant}]
    (run_dir / "benefit.json").write_text(json.dumps({"optimum": 1, "points": points}))


def test_a_run_directory_and_its_artifact_directory(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "r1", mode="lora")
    layout = resolve_model(run_dir)
    assert layout.run_dir == run_dir and layout.artifact_dir == run_dir / "artifact" and layout.source == "run"
    assert layout.variant == "lora"  # the run's configured mode names the single artifact's evaluation
    assert layout.load_artifact().domain == "text_classification"
    via_artifact = resolve_model(run_dir / "artifact")
    assert via_artifact.run_dir == run_dir and via_artifact.source == "artifact"


def test_the_variant_name_is_the_one_the_evaluation_was_recorded_under(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "r1")
    (run_dir / "evaluations").mkdir()
    (run_dir / "evaluations" / "ensemble.json").write_text(
        json.dumps({"extra": {"artifact_path": str(run_dir / "artifact")}}))
    assert resolve_model(run_dir).variant == "ensemble"


def test_an_artifact_outside_any_run(tmp_path: Path) -> None:
    artifact = make_artifact(tmp_path / "rec-model", "recommendation", variant="two-tower")
    layout = resolve_model(artifact, domain="recommendation")
    assert layout.run_dir is None and layout.artifact_dir == artifact and layout.variant == "two-tower"
    assert layout.run_json() == {}


def test_multi_variant_policy(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "r1", variants=("full", "lora"))
    with pytest.raises(DataError, match="several model variants.*--variant: full, lora"):
        resolve_model(run_dir)
    assert resolve_model(run_dir, variant="full").artifact_dir == run_dir / "variants" / "full" / "artifact"
    with pytest.raises(DataError, match="no variant 'head'; it has full, lora"):
        resolve_model(run_dir, variant="head")
    choose_in_report(run_dir, "lora")  # the operating point the run's benefit report chose
    assert resolve_model(run_dir).variant == "lora"
    assert resolve_model(run_dir, variant="full").variant == "full"  # naming one wins over the report
    direct = resolve_model(run_dir / "variants" / "full" / "artifact")
    assert direct.variant == "full" and direct.run_dir == run_dir and set(direct.variants) == {"full", "lora"}


def test_a_domain_name_or_folder_is_its_newest_trained_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # started_at decides, not the folder name
    make_run(tmp_path, "zzz-old", started="2026-01-01T00:00:00+00:00")
    newer = make_run(tmp_path, "aaa-new", started="2026-02-01T00:00:00+00:00")
    make_run(tmp_path, "still-running", started="2026-03-01T00:00:00+00:00", status="running")  # no model yet
    layout = resolve_model("text_classification", output_dir=tmp_path)
    assert layout.run_dir == newer and layout.source == "domain"
    assert resolve_model(tmp_path / "text_classification").run_dir == newer
    with pytest.raises(DataError, match="healthcare: no run with a trained model"):
        resolve_model("healthcare", output_dir=tmp_path)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("/etc", "/etc: not a run directory"),
        ("does/not/exist", "does/not/exist: no such run directory, artifact directory or domain name"),
    ],
)
def test_references_that_are_not_models(ref: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        resolve_model(ref)


def test_more_mistakes_name_the_path(tmp_path: Path) -> None:
    file = tmp_path / "model.bin"
    file.write_text("x")
    with pytest.raises(DataError, match="is a file"):
        resolve_model(file)
    running = make_run(tmp_path, "r-running", status="running")
    with pytest.raises(DataError, match=r"r-running: this run has no trained model \(status: running\)"):
        resolve_model(running)
    run_dir = make_run(tmp_path, "r-tc")
    with pytest.raises(DataError, match="a model of domain 'text_classification'; this command needs a 'healthcare'"):
        resolve_model(run_dir, domain="healthcare")
    broken = make_run(tmp_path, "r-broken")
    (broken / "artifact" / "domainfm-artifact.json").write_text('{"domain": "text_classification"}')
    with pytest.raises(DataError, match="domainfm-artifact.json: field path"):
        resolve_model(broken).load_artifact()
    (broken / "artifact" / "domainfm-artifact.json").write_text("{not json")
    with pytest.raises(DataError, match="domainfm-artifact.json:1: invalid JSON"):
        resolve_model(broken)


@pytest.mark.parametrize("name", ["../../../x", "a/b", ".hidden", "", "..", "x" * 129, "two\nlines", "c:\\x"])
def test_names_that_would_leave_their_folder_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="run_name: .* is not a valid name"):
        check_name(name, "run_name")


def test_ordinary_names_pass() -> None:
    for name in ("my-run_1.2", "20261205-072512-a1b2c3", "Run7"):
        assert check_name(name, "run_name") == name
