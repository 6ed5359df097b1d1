"""Fixtures for the server tests: a tiny trained text_classification run and configurable fake plugins."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from domainfm import hookimpl
from domainfm.config import RunConfig, build_config
from domainfm.errors import DataError
from domainfm.manager import PluginManager
from domainfm.types import Artifact, DomainSpec, Prediction


@pytest.fixture(scope="session")
def tc_run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A ``text_classification`` run trained on the core's demo data with the tiny random-init model,
    written the way ``domainfm train`` writes it (run.json status ``trained`` + ``artifact/``)."""
    from domainfm.runner import Runner

    out = tmp_path_factory.mktemp("serve-runs")
    cfg = build_config(
        None,
        [f"output_dir={out}", f"model.base={tiny_model_dir}", "model.mode=full", "train.epochs=1",
         "train.batch_size=16", "model.max_length=32", "benefit.energy_tracking=false", "device=cpu"],
    )
    runner = Runner(PluginManager(autoload=False).load(), cfg)
    ctx = runner.context("text_classification")
    runner.write_run_json(ctx, status="running")
    runner.train(ctx, runner.load_data(ctx))
    runner.write_run_json(ctx, status="trained")
    return ctx.run_dir


class FakePredictor:
    """Labels a text ``long`` or ``short``; records every batch it was given."""

    def __init__(self, domain: str, gate: threading.Event | None = None, fail_on: str | None = None) -> None:
        self.domain = domain
        self.device = "cpu"
        self.batches: list[int] = []
        self.gate = gate
        self.fail_on = fail_on

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        self.batches.append(len(records))
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        out = []
        for i, rec in enumerate(records):
            text = rec.get("text")
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"record {i}: field 'text' is missing or empty")
            if self.fail_on is not None and text == self.fail_on:
                raise RuntimeError("model exploded")
            label = "long" if len(text) > 5 else "short"
            out.append(Prediction(id=rec.get("id"), label=label, confidence=1.0, scores={label: 1.0}))
        return out


class FakePlugin:
    """A plugin with one domain whose behaviour the test chooses."""

    def __init__(
        self,
        domain: str,
        *,
        load_error: Exception | None = None,
        predict_error: Exception | None = None,
        gate: threading.Event | None = None,
        fail_on: str | None = None,
        routes: Callable[[Any, Any], None] | None = None,
        record_model: type[BaseModel] | None = None,
    ) -> None:
        self.name = f"fake_{domain}"
        self.domain = domain
        self.load_error = load_error
        self.predict_error = predict_error
        self.predictor = FakePredictor(domain, gate=gate, fail_on=fail_on)
        self.routes = routes
        self.record_model = record_model
        self.loads = 0

    @hookimpl
    def domainfm_domains(self) -> list[DomainSpec]:
        return [
            DomainSpec(
                name=self.domain, description="fake", tasks=["classification"], output_space="labels",
                default_data="demo", default_model="none", metrics=["accuracy"], key_metric="accuracy",
                **({"record_model": self.record_model} if self.record_model is not None else {}),
            )
        ]

    @hookimpl
    def domainfm_load_predictor(self, ctx: Any, domain: str, artifact: Artifact) -> Any:
        if domain != self.domain:
            return None
        self.loads += 1
        if self.load_error is not None:
            raise self.load_error
        return self.predictor

    @hookimpl(tryfirst=True)
    def domainfm_predict(self, ctx: Any, domain: str, predictor: Any, records: Sequence[Mapping[str, Any]]) -> Any:
        if domain != self.domain or self.predict_error is None:
            return None
        raise self.predict_error

    @hookimpl
    def domainfm_register_routes(self, router: Any, get_predictor: Any) -> None:
        if self.routes is not None:
            self.routes(router, get_predictor)


def fake_artifact(root: Path, domain: str) -> Path:
    path = root / domain / "artifact"
    path.mkdir(parents=True, exist_ok=True)
    Artifact(path=path, domain=domain, kind="fake", base_model="none").save_metadata()
    return path


@pytest.fixture
def make_app(tmp_path: Path, tc_run_dir: Path) -> Callable[..., Any]:
    """``make_app(*plugins, settings=..., artifacts=..., with_tc=True)`` → a FastAPI app on an isolated
    plugin manager (built-ins + the given fake plugins, no entry-point plugins)."""
    from domainfm.serve.app import create_app
    from domainfm.serve.settings import ServeSettings

    def build(*plugins: FakePlugin, settings: ServeSettings | None = None, artifacts: dict[str, Path] | None = None,
              with_tc: bool = True, **setting_fields: Any) -> Any:
        pm = PluginManager(autoload=False).load()
        given = dict(artifacts or {})
        if with_tc:
            given.setdefault("text_classification", tc_run_dir)
        for plugin in plugins:
            pm.register(plugin, name=plugin.name)
            given.setdefault(plugin.domain, fake_artifact(tmp_path / "fake-artifacts", plugin.domain))
        empty_runs = tmp_path / "no-runs"
        settings = settings or ServeSettings(runs_dir=empty_runs, **setting_fields)
        return create_app(pm, RunConfig(device="cpu", output_dir=empty_runs), given, settings)

    return build


class StubPredictor:
    """Stands in for a real domain's model: answers every record, echoing it in ``extra['record']``."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.device = "cpu"
        self.batches: list[list[dict[str, Any]]] = []

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        self.batches.append([dict(r) for r in records])
        return [
            Prediction(id=None, label="stub", confidence=0.5, scores={"stub": 0.5}, extra={"record": dict(r)})
            for r in records
        ]


class StubModels:
    """Loads a :class:`StubPredictor` for the real plugins' domains (``tryfirst``), so that their routes and
    record models run without a trained model; ``tag`` is what its ``domainfm_predict`` wrapper adds."""

    def __init__(self, domains: Sequence[str], tag: str = "domainfm_predict") -> None:
        self.predictors = {d: StubPredictor(d) for d in domains}
        self.tag = tag

    @hookimpl(tryfirst=True)
    def domainfm_load_predictor(self, ctx: Any, domain: str, artifact: Artifact) -> Any:
        return self.predictors.get(domain)

    @hookimpl(hookwrapper=True)
    def domainfm_predict(self, ctx: Any, domain: str, predictor: Any, records: Sequence[Mapping[str, Any]]) -> Any:
        outcome = yield
        for prediction in outcome.get_result() or []:
            prediction.extra["via"] = self.tag


@pytest.fixture
def real_plugins_app(tmp_path: Path) -> Callable[..., Any]:
    """``real_plugins_app(*domains, **settings)`` → (app, StubModels): the installed plugins of those domains
    (skipped when one is not installed), each domain's model replaced by a stub."""
    from domainfm.serve.app import create_app
    from domainfm.serve.settings import ServeSettings

    def build(*domains: str, **setting_fields: Any) -> tuple[Any, StubModels]:
        pm = PluginManager().load()
        missing = [d for d in domains if d not in pm.domains]
        if missing:
            pytest.skip(f"plugins for {missing} are not installed")
        stubs = StubModels(domains)
        pm.register(stubs, name="stub_models")
        artifacts = {d: fake_artifact(tmp_path / "stub-artifacts", d) for d in domains}
        empty_runs = tmp_path / "no-runs"
        app = create_app(pm, RunConfig(device="cpu", output_dir=empty_runs), artifacts,
                         ServeSettings(runs_dir=empty_runs, **setting_fields))
        return app, stubs

    return build
