"""``Runner.train_run`` (``domainfm train``, a plugin's own train command): the lifecycle of ``run`` without the
evaluation: run.json status (trained / failed with the error), the privacy sample, energy, and a training time
measured by the Runner, whatever the plugin reports itself."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from domainfm import hookimpl
from domainfm.config import build_config
from domainfm.errors import DataError
from domainfm.manager import PluginManager
from domainfm.runner import Runner
from domainfm.types import Artifact, DataBundle, DomainSpec, RunContext

TEXTS = ["Call Alice Smith at 555-0100", "a long enough sentence", "short"]


class Timed:
    """A torch-free domain whose training takes ~50 ms, claims 999 s itself, and fails on ``data=broken``."""

    @hookimpl
    def domainfm_domains(self) -> list[DomainSpec]:
        return [DomainSpec(name="timed", description="test domain", tasks=["classification"], output_space="labels",
                           default_data="demo", default_model="none", metrics=["accuracy"], key_metric="accuracy")]

    @hookimpl
    def domainfm_load_data(self, ctx: RunContext, domain: str, source: str) -> DataBundle | None:
        if domain != "timed":
            return None
        from datasets import Dataset

        table = Dataset.from_dict({"text": TEXTS, "label": ["a", "b", "a"]})
        return DataBundle(tables={"train": table, "test": table}, source=source, public_names=["Alice Smith"])

    @hookimpl
    def domainfm_train(self, ctx: RunContext, domain: str, data: DataBundle) -> Artifact | None:
        if domain != "timed":
            return None
        if data.source == "broken":
            raise DataError("broken: row 2: no label")
        time.sleep(0.05)
        ctx.resources.train_seconds = 999.0  # a plugin's own clock: the Runner's measurement replaces it
        ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
        artifact = Artifact(path=ctx.artifact_dir, domain="timed", kind="rule", base_model="none")
        artifact.save_metadata()
        return artifact


class FakeEnergy:
    """Stands in for codecarbon: records that the train stage ran inside it."""

    entered: list[str] = []

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def __enter__(self) -> FakeEnergy:
        FakeEnergy.entered.append(self.ctx.run_id)
        return self

    def __exit__(self, *exc: object) -> None:
        self.ctx.resources.energy_kwh = 0.001


@pytest.fixture
def runner_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    import domainfm.benefit.resources as resources

    monkeypatch.setattr(resources, "EnergyTracker", FakeEnergy)
    pm = PluginManager(autoload=False, load_builtins=False)
    pm.register(Timed(), name="timed")

    def make(*overrides: str) -> Runner:
        return Runner(pm, build_config(None, [f"output_dir={tmp_path}", "device=cpu", *overrides]))

    return make


def test_a_train_run_writes_what_run_writes_before_evaluation(runner_for: Any, tmp_path: Path) -> None:
    result = runner_for("run_name=first").train_run("timed")
    run_dir = tmp_path / "timed" / "first"
    assert result.ctx.run_dir == run_dir and result.paths["run"] == run_dir
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert run["status"] == "trained" and run["error"] is None
    assert run["data_sizes"] == {"train": 3, "test": 3} and run["data_fingerprints"]
    seconds = run["resources"]["train_seconds"]
    assert seconds == run["resources"]["stage_seconds"]["train"] and 0.04 < seconds < 5  # the Runner's, not 999
    assert run["resources"]["energy_kwh"] == 0.001 and FakeEnergy.entered[-1] == "first"
    assert (run_dir / "artifact" / "domainfm-artifact.json").is_file() and (run_dir / "artifact" / "README.md").is_file()
    # the privacy sample the benefit constraints scan, as `run` keeps it
    assert result.ctx.state["privacy_texts"]["training_data"] == TEXTS
    assert result.ctx.state["privacy_public_names"] == ["Alice Smith"]


def test_a_failed_train_run_is_recorded(runner_for: Any, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no label"):
        runner_for("run_name=bad", "data=broken").train_run("timed")
    run = json.loads((tmp_path / "timed" / "bad" / "run.json").read_text(encoding="utf-8"))
    assert run["status"] == "failed" and run["error"] == "DataError: broken: row 2: no label"


def test_a_train_run_goes_into_the_run_directory_it_is_given(runner_for: Any, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "model"
    result = runner_for().train_run("timed", run_dir=target)
    assert result.artifact is not None and result.artifact.path == target / "artifact"
    assert json.loads((target / "run.json").read_text(encoding="utf-8"))["run_id"] == "model"


def test_a_train_run_ends_its_tracked_run(runner_for: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import domainfm.tracking.plugin as tracking

    ended: list[str] = []
    monkeypatch.setattr(tracking, "finish", lambda ctx, paths=None: ended.append(ctx.run_id))
    runner_for("run_name=tracked").train_run("timed")
    assert ended == ["tracked"]  # no report stage follows a train run: train.report_to's session ends here
