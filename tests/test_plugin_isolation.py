"""A plugin that raises outside its own domain is excluded, not fatal; every hook goes through the typed facade.

The runs here use ``mini``, a torch-free domain plugin (fixed data, a "model" that answers by text length),
so a whole run (data, train, load, evaluate, serving latency, benefit, report) takes about a second.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import pytest

from domainfm import hookimpl
from domainfm.config import RunConfig, build_config
from domainfm.errors import PluginError
from domainfm.manager import PluginManager
from domainfm.types import (
    Artifact,
    BenefitTerm,
    DataBundle,
    DomainSpec,
    Evaluation,
    Outcomes,
    Prediction,
    RunContext,
)

CORE = Path(__file__).resolve().parents[1] / "core" / "domainfm"
TEXTS = ["short", "a much longer text", "tiny", "another long sentence here", "mid size", "ok"]


class MiniPredictor:
    domain = "mini"
    device = "cpu"

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        out = []
        for rec in records:
            label = "long" if len(str(rec["text"])) > 8 else "short"
            out.append(Prediction(label=label, confidence=0.9, scores={label: 0.9}))
        return out


class MiniDomain:
    """A complete domain without torch; ``dp_epsilon`` makes its training 'differentially private'."""

    def __init__(self, dp_epsilon: float | None = None) -> None:
        self.dp_epsilon = dp_epsilon

    @hookimpl
    def domainfm_domains(self) -> list[DomainSpec]:
        return [DomainSpec(name="mini", description="test domain", tasks=["classification"], output_space="labels",
                           default_data="demo", default_model="none", metrics=["accuracy"], key_metric="accuracy")]

    @hookimpl
    def domainfm_load_data(self, ctx: RunContext, domain: str, source: str) -> DataBundle | None:
        if domain != "mini":
            return None
        from datasets import Dataset

        table = {"text": TEXTS, "label": ["long" if len(t) > 8 else "short" for t in TEXTS]}
        return DataBundle(tables={"train": Dataset.from_dict(table), "test": Dataset.from_dict(table)}, source=source)

    @hookimpl
    def domainfm_train(self, ctx: RunContext, domain: str, data: DataBundle) -> Artifact | None:
        if domain != "mini":
            return None
        ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
        metadata = {"dp": {"epsilon": self.dp_epsilon, "delta": 1e-5}} if self.dp_epsilon is not None else {}
        artifact = Artifact(path=ctx.artifact_dir, domain="mini", kind="rule", base_model="none", metadata=metadata)
        artifact.save_metadata()
        return artifact

    @hookimpl
    def domainfm_load_predictor(self, ctx: RunContext, domain: str, artifact: Artifact) -> MiniPredictor | None:
        return MiniPredictor() if domain == "mini" else None

    @hookimpl
    def domainfm_evaluate(
        self, ctx: RunContext, domain: str, predictor: MiniPredictor, data: DataBundle, split: str
    ) -> Evaluation | None:
        if domain != "mini":
            return None
        table = data.tables[split]
        preds = predictor.predict([dict(r) for r in table])
        quality = [float(p.label == gold) for p, gold in zip(preds, table["label"], strict=True)]
        return Evaluation(
            domain="mini", split=split, metrics={"accuracy": sum(quality) / len(quality)}, key_metric="accuracy",
            n_items=len(quality),
            outcomes=Outcomes(ids=[str(i) for i in range(len(quality))], confidence=[0.9] * len(quality),
                              quality=quality),
        )

    @hookimpl
    def domainfm_benefit_terms(self, ctx: RunContext, domain: str, evaluation: Evaluation) -> list[Any]:
        if domain != "mini":
            return []
        return [BenefitTerm(name="answers", objective="business", unit="items", description="right answers",
                            utility=lambda b: b.automated * b.quality)]


class ObserverCrash:
    """A tracking plugin whose stage observer is broken for every domain."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def domainfm_stage_started(self, ctx: RunContext, stage: str) -> None:
        self.calls += 1
        raise RuntimeError("tracking server unreachable")


class TermsCrash:
    """A carbon-pricing style plugin whose benefit terms raise for every domain."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def domainfm_benefit_terms(self, ctx: RunContext, domain: str, evaluation: Evaluation) -> list[Any]:
        self.calls += 1
        raise KeyError("carbon_price")


class PredictWrapperCrash:
    """A predict wrapper that fails after the wrapped call (e.g. while logging the predictions)."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl(wrapper=True)
    def domainfm_predict(self, ctx: Any, domain: str, predictor: Any, records: Any) -> Generator[None, Any, Any]:
        self.calls += 1
        result = yield
        raise ValueError(f"cannot log {len(result)} predictions\nsecond line of the message")


def _config(tmp_path: Path) -> RunConfig:
    return build_config(
        None, [f"output_dir={tmp_path}", "benefit.energy_tracking=false", "device=cpu", "options.privacy_ner=false"]
    )


def _manager(*plugins: tuple[str, object]) -> PluginManager:
    pm = PluginManager(autoload=False).load()
    for name, plugin in plugins:
        assert pm.register(plugin, name=name) is not None, pm.plugins[name].error
    return pm


def test_plugins_raising_outside_their_domain_are_excluded_and_the_run_finishes(tmp_path: Path) -> None:
    from domainfm.runner import Runner

    observer, terms, wrapper = ObserverCrash(), TermsCrash(), PredictWrapperCrash()
    pm = _manager(("mini", MiniDomain()), ("tracker", observer), ("carbon", terms), ("logger", wrapper))
    result = Runner(pm, _config(tmp_path)).run("mini")

    excluded = {e.plugin: e for e in result.excluded_plugins}
    assert set(excluded) == {"tracker", "carbon", "logger"}
    assert excluded["tracker"].hook == "domainfm_stage_started"
    assert excluded["tracker"].error == "RuntimeError: tracking server unreachable"
    assert excluded["carbon"].hook == "domainfm_benefit_terms" and "carbon_price" in excluded["carbon"].error
    assert excluded["logger"].hook == "domainfm_predict" and excluded["logger"].domain == "mini"
    assert "\n" not in excluded["logger"].error and "second line" in excluded["logger"].error
    for name in excluded:
        assert pm.pm.is_blocked(name) and pm.plugins[name].status == "broken"
        assert "excluded" in (pm.plugins[name].error or "")

    run = json.loads((result.ctx.run_dir / "run.json").read_text())
    assert run["status"] == "finished"
    benefit = json.loads((result.ctx.run_dir / "benefit.json").read_text())
    assert {e["plugin"] for e in benefit["excluded_plugins"]} == {"tracker", "carbon", "logger"}
    assert benefit["terms"][0]["name"] == "answers"  # the domain's own terms are all there
    html = (result.ctx.run_dir / "report.html").read_text()
    assert "Excluded plugins" in html and "tracking server unreachable" in html and "carbon_price" in html

    calls = (observer.calls, terms.calls, wrapper.calls)
    again = Runner(pm, _config(tmp_path)).run("mini")  # blocked for the rest of the process
    assert (observer.calls, terms.calls, wrapper.calls) == calls
    assert {e.plugin for e in again.excluded_plugins} == {"tracker", "carbon", "logger"}


class TermUtilityCrash:
    """Returns a term for every domain whose utility raises when the engine measures it."""

    @hookimpl
    def domainfm_benefit_terms(self, ctx: RunContext, domain: str, evaluation: Evaluation) -> list[Any]:
        return [BenefitTerm(name="carbon_cost", objective="business", unit="EUR", description="CO2 at a price",
                            utility=lambda b: b.automated * (b.resources.co2_kg / 1000))]  # co2_kg is None


def test_a_foreign_term_that_raises_when_measured_is_excluded_too(tmp_path: Path) -> None:
    from domainfm.runner import Runner

    pm = _manager(("mini", MiniDomain()), ("carbon", TermUtilityCrash()))
    result = Runner(pm, _config(tmp_path)).run("mini")
    assert [t.name for t in result.report.terms] == ["answers"]
    [excluded] = result.report.excluded_plugins
    assert excluded.plugin == "carbon" and excluded.hook == "benefit term 'carbon_cost'"
    assert excluded.error.startswith("TypeError:") and pm.pm.is_blocked("carbon")


def test_a_failure_in_the_plugins_own_domain_still_fails_the_run(tmp_path: Path) -> None:
    from domainfm.runner import Runner

    class OwnObserver(MiniDomain):
        @hookimpl
        def domainfm_stage_started(self, ctx: RunContext, stage: str) -> None:
            if stage == "evaluate":
                raise RuntimeError("own observer")

    pm = _manager(("mini", OwnObserver()))
    with pytest.raises(PluginError, match="plugin 'mini' in domainfm_stage_started: RuntimeError: own observer"):
        Runner(pm, _config(tmp_path)).run("mini")
    assert pm.exclusions == [] and pm.plugins["mini"].status == "loaded"


def test_strict_mode_fails_on_the_first_exclusion_in_one_line(tmp_path: Path) -> None:
    from domainfm.errors import BrokenPluginError
    from domainfm.runner import Runner

    pm = PluginManager(autoload=False, strict=True).load()
    pm.register(MiniDomain(), name="mini")
    pm.register(ObserverCrash(), name="tracker")
    with pytest.raises(BrokenPluginError) as info:
        Runner(pm, _config(tmp_path)).run("mini")
    assert "\n" not in str(info.value) and "tracker" in str(info.value)


def test_a_predict_wrapper_that_raises_does_not_make_the_server_answer_503(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from domainfm.serve.app import create_app
    from domainfm.serve.settings import ServeSettings

    wrapper = PredictWrapperCrash()
    pm = _manager(("mini", MiniDomain()), ("logger", wrapper))
    artifact = tmp_path / "mini" / "artifact"
    artifact.mkdir(parents=True)
    Artifact(path=artifact, domain="mini", kind="rule", base_model="none").save_metadata()
    app = create_app(pm, RunConfig(device="cpu", output_dir=tmp_path), {"mini": artifact},
                     ServeSettings(runs_dir=tmp_path / "none", micro_batching=False))
    with TestClient(app) as client:
        first = client.post("/mini/predict", json={"texts": ["hello", "a longer hello there"]})
        second = client.post("/mini/predict", json={"texts": ["hello"]})
        plugins = client.get("/plugins").json()
    assert first.status_code == 200, first.text
    assert [p["label"] for p in first.json()["predictions"]] == ["short", "long"]
    assert second.status_code == 200 and wrapper.calls == 1
    listed = {p["name"]: p for p in plugins["plugins"]} if isinstance(plugins, dict) else {p["name"]: p for p in plugins}
    assert listed["logger"]["status"] == "broken" and "excluded" in listed["logger"]["error"]


class CommandsCrash:
    """Adds a command, then raises in domainfm_register_commands; also observes stages and adds terms."""

    def __init__(self) -> None:
        self.stage_calls = 0

    @hookimpl
    def domainfm_register_commands(self, cli: click.Group) -> None:
        cli.add_command(click.Command("half-registered", callback=lambda: None))
        raise ImportError("no module named 'rich_extras'")

    @hookimpl
    def domainfm_stage_started(self, ctx: RunContext, stage: str) -> None:
        self.stage_calls += 1


def test_a_plugin_broken_by_register_commands_takes_part_in_no_hook(tmp_path: Path) -> None:
    from domainfm.runner import Runner

    broken = CommandsCrash()
    pm = _manager(("mini", MiniDomain()), ("cmds", broken))
    root = click.Group("domainfm")
    pm.hooks.register_commands(root)  # what the CLI's root group does when it is first used
    assert "half-registered" not in root.commands  # what it added before raising is taken back
    info = pm.plugins["cmds"]
    assert info.status == "broken" and "domainfm_register_commands" in (info.error or "")
    assert "rich_extras" in (info.error or "") and "\n" not in (info.error or "")
    Runner(pm, _config(tmp_path)).run("mini")
    assert broken.stage_calls == 0


# ------------------------------------------------------------------------------------------ the facade


def test_no_core_module_but_the_facade_calls_pm_hook() -> None:
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        if path.name in ("hooks.py", "manager.py"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\.hook\.domainfm_|\bpm\.hook\b|\.pm\.(get_plugin|register|unregister)\(", line):
                offenders.append(f"{path.relative_to(CORE)}:{n}: {line.strip()}")
    assert offenders == []


class Tracer:
    """Wraps every registration hook: proves they are dispatched through pluggy."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl(wrapper=True)
    def domainfm_domains(self) -> Generator[None, Any, Any]:
        result = yield
        self.seen.append(f"domains:{len(result)}")
        return result

    @hookimpl(wrapper=True)
    def domainfm_register_commands(self, cli: click.Group) -> Generator[None, Any, Any]:
        self.seen.append("commands")
        return (yield)

    @hookimpl(wrapper=True)
    def domainfm_register_routes(self, router: Any, get_predictor: Any) -> Generator[None, Any, Any]:
        self.seen.append("routes")
        return (yield)


class Registers(MiniDomain):
    @hookimpl
    def domainfm_register_commands(self, cli: click.Group) -> None:
        cli.add_command(click.Command("mini-hello", callback=lambda: None))

    @hookimpl
    def domainfm_register_routes(self, router: Any, get_predictor: Any) -> None:
        router.add_api_route("/mini/hello", lambda: {"hello": "mini"}, methods=["GET"])


def test_registration_hooks_are_dispatched_through_pluggy_so_wrappers_see_them() -> None:
    from fastapi import APIRouter

    tracer = Tracer()
    pm = PluginManager(autoload=False, load_builtins=False)
    pm.register(tracer, name="tracer")
    pm.register(Registers(), name="mini")
    assert "mini" in pm.domains and "domains:1" in tracer.seen
    group = click.Group("root")
    pm.hooks.register_commands(group)
    router = APIRouter()
    pm.hooks.register_routes("mini", router, get_predictor=lambda domain: None)
    assert "mini-hello" in group.commands and [r.path for r in router.routes] == ["/mini/hello"]
    assert "commands" in tracer.seen and "routes" in tracer.seen


def test_a_plugin_whose_routes_raise_is_reported_by_the_server_not_excluded() -> None:
    from fastapi import APIRouter

    class BadRoutes(MiniDomain):
        @hookimpl
        def domainfm_register_routes(self, router: Any, get_predictor: Any) -> None:
            raise ImportError("optional dependency missing")

    pm = _manager(("mini", BadRoutes()))
    with pytest.raises(ImportError, match="optional dependency missing"):
        pm.hooks.register_routes("mini", APIRouter(), get_predictor=lambda domain: None)
    assert pm.exclusions == [] and "mini" in pm.domains  # the server serves it through the core routes


class OverridesDomains:
    @hookimpl(tryfirst=True, wrapper=True)
    def domainfm_domains(self) -> Generator[None, Any, Any]:
        results = yield  # one list of specs per plugin
        return [[s.model_copy(update={"description": "relabelled"}) for s in specs] for specs in results]


def test_a_wrapper_can_change_what_a_plugin_declares() -> None:
    pm = PluginManager(autoload=False, load_builtins=False)
    pm.register(OverridesDomains(), name="relabel")
    pm.register(MiniDomain(), name="mini")
    assert pm.domains["mini"].description == "relabelled"


def test_validation_does_not_overwrite_pluggy_hookimpl_functions() -> None:
    pm = _manager(("mini", MiniDomain()))
    for caller in pm.pm.get_hookcallers(pm.pm.get_plugin("mini")) or []:
        for impl in caller.get_hookimpls():
            # pluggy's own HookImpl.function: the attribute pluggy found on the object it registered
            assert getattr(impl.plugin, impl.function.__name__) is impl.function


def test_every_hookspec_has_one_typed_facade_method() -> None:
    import inspect

    from domainfm import hookspecs
    from domainfm.hooks import Hooks

    specs = {n.removeprefix("domainfm_") for n in dir(hookspecs) if n.startswith("domainfm_")}
    methods = {n for n, f in inspect.getmembers(Hooks, inspect.isfunction) if not n.startswith("_")}
    assert specs <= methods, specs - methods


# ------------------------------------------------------------------------------------------ DP epsilon


def test_a_dp_run_gets_the_dp_constraint_and_the_relaxed_training_data_limit(tmp_path: Path) -> None:
    from domainfm.benefit.runs import context_from_run
    from domainfm.runner import Runner

    pm = _manager(("mini", MiniDomain(dp_epsilon=3.0)))
    result = Runner(pm, _config(tmp_path)).run("mini")
    assert result.ctx.dp_epsilon == 3.0 and result.ctx.state["dp_epsilon"] == 3.0  # the old key still reads it
    report = json.loads((result.ctx.run_dir / "benefit.json").read_text())
    constraints = {c["name"]: c for c in report["constraints"]}
    dp = constraints["privacy_dp_epsilon"]
    assert dp["at_optimum"]["value"] == 3.0 and dp["at_optimum"]["status"] == "pass"
    training = constraints["privacy_identifiers_training_data"]
    assert training["limit"] == 1.0 and "differentially private" in training["details"]["note"]
    assert json.loads((result.ctx.run_dir / "run.json").read_text())["dp_epsilon"] == 3.0
    assert context_from_run(result.ctx.run_dir, pm=pm).dp_epsilon == 3.0  # `domainfm score` keeps it


def test_a_run_without_dp_gets_neither(tmp_path: Path) -> None:
    from domainfm.runner import Runner

    pm = _manager(("mini", MiniDomain()))
    result = Runner(pm, _config(tmp_path)).run("mini")
    names = {c.name: c for c in result.report.constraints}
    assert "privacy_dp_epsilon" not in names and names["privacy_identifiers_training_data"].limit == 0.0
    assert result.ctx.dp_epsilon is None and "dp_epsilon" not in result.ctx.state


# ------------------------------------------------------------------------------------------ wrapper paths


class Wrapper:
    """A predict wrapper that fails at a chosen point: 'before' its yield, 'after' it, or while handling
    ('handling') an error of the wrapped call; 'passes' lets that error through unchanged."""

    def __init__(self, where: str) -> None:
        self.where = where

    @hookimpl(wrapper=True)
    def domainfm_predict(self, ctx: Any, domain: str, predictor: Any, records: Any) -> Generator[None, Any, Any]:
        if self.where == "before":
            raise RuntimeError("before")
        try:
            result = yield
        except Exception:  # the wrapped call's error, as the core raises it (a PluginError naming the plugin)
            if self.where == "handling":
                raise RuntimeError("while handling") from None
            raise
        if self.where == "after":
            raise RuntimeError("after")
        return result


class FailingPredict(MiniDomain):
    @hookimpl
    def domainfm_predict(self, ctx: Any, domain: str, predictor: Any, records: Any) -> Any:
        if domain == "mini" and records and records[0]["text"] == "explode":
            raise ValueError("model exploded")
        return None


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_failing_wrapper_is_transparent_and_excluded(where: str) -> None:
    pm = _manager(("mini", MiniDomain()), ("wrap", Wrapper(where)))
    preds = pm.hooks.predict(None, "mini", MiniPredictor(), [{"text": "a long enough text"}])
    assert preds is not None and [p.label for p in preds] == ["long"]
    assert pm.exclusions[0].plugin == "wrap" and pm.exclusions[0].error == f"RuntimeError: {where}"


def test_an_error_of_the_wrapped_call_is_not_the_wrappers_fault() -> None:
    pm = _manager(("mini", FailingPredict()), ("wrap", Wrapper("passes")))
    with pytest.raises(PluginError, match="plugin 'mini' in domainfm_predict: ValueError: model exploded"):
        pm.hooks.predict(None, "mini", MiniPredictor(), [{"text": "explode"}])
    assert pm.exclusions == []


def test_a_wrapper_that_raises_while_handling_the_wrapped_error_is_excluded_and_the_error_goes_on() -> None:
    pm = _manager(("mini", FailingPredict()), ("wrap", Wrapper("handling")))
    with pytest.raises(PluginError, match="model exploded"):
        pm.hooks.predict(None, "mini", MiniPredictor(), [{"text": "explode"}])
    assert [e.plugin for e in pm.exclusions] == ["wrap"] and "while handling" in pm.exclusions[0].error


class ForeignWrongType:
    @hookimpl(tryfirst=True)
    def domainfm_evaluate(self, ctx: Any, domain: str, predictor: Any, data: Any, split: str) -> Any:
        return {"accuracy": 1.0}  # for every domain, and the wrong type


def test_a_foreign_plugin_breaking_the_contract_is_excluded_and_the_owner_answers(tmp_path: Path) -> None:
    from domainfm.runner import Runner

    pm = _manager(("mini", MiniDomain()), ("wrongtype", ForeignWrongType()))
    result = Runner(pm, _config(tmp_path)).run("mini")
    assert result.evaluations["full"].metrics["accuracy"] == 1.0 and result.evaluations["full"].domain == "mini"
    [excluded] = result.excluded_plugins
    assert excluded.plugin == "wrongtype" and "returned dict, expected Evaluation" in excluded.error
