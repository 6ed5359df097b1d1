"""The contract checker is strict where the benefit engine depends on it: each rule has a plugin that breaks it.

The plugin under test is a lexicon classifier (no neural network), so every check runs in well under a second
of model time; the run still goes through data, training, evaluation and the benefit engine end to end.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from domainfm import hookimpl
from domainfm.config import build_config
from domainfm.manager import PluginManager
from domainfm.testing import _assert_declared_terms_are_returned, check_plugin_contract
from domainfm.types import (
    Artifact,
    BenefitTerm,
    BenefitTermInfo,
    Constraint,
    DataBundle,
    DomainSpec,
    Evaluation,
    Outcomes,
    Prediction,
    RunContext,
)

DOMAIN = "lexicon_check"
ROWS = [("great quick friendly", "positive"), ("broken late rude", "negative")] * 6


class Lexicon:
    """A well-behaved plugin; subclasses each break one rule."""

    declared = [BenefitTermInfo(name="minutes_saved", objective="business", unit="min")]
    with_outcomes = True

    @hookimpl
    def domainfm_domains(self) -> list[DomainSpec]:
        return [DomainSpec(name=DOMAIN, description="lexicon", tasks=["classification"], output_space="labels",
                           default_data="demo", default_model="lexicon", metrics=["accuracy"], key_metric="accuracy",
                           benefit_terms=self.declared)]

    @hookimpl
    def domainfm_load_data(self, ctx: RunContext, domain: str, source: str) -> DataBundle | None:
        if domain != DOMAIN:
            return None
        from datasets import Dataset

        table = Dataset.from_list([{"text": t, "label": y} for t, y in ROWS])
        return DataBundle(tables={"train": table, "test": table}, source="in-test", label_names=["negative", "positive"])

    @hookimpl
    def domainfm_train(self, ctx: RunContext, domain: str, data: DataBundle) -> Artifact | None:
        if domain != DOMAIN:
            return None
        ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
        artifact = Artifact(path=ctx.artifact_dir, domain=domain, kind="lexicon", base_model="lexicon",
                            label_names=["negative", "positive"], device=ctx.device)
        artifact.save_metadata()
        return artifact

    @hookimpl
    def domainfm_load_predictor(self, ctx: RunContext, domain: str, artifact: Artifact) -> Any:
        return LexiconPredictor() if domain == DOMAIN else None

    @hookimpl
    def domainfm_evaluate(self, ctx: RunContext, domain: str, predictor: Any, data: DataBundle,
                          split: str) -> Evaluation | None:
        if domain != DOMAIN:
            return None
        table = data.tables[split]
        preds = predictor.predict([dict(r) for r in table])
        correct = [float(p.label == y) for p, y in zip(preds, table["label"], strict=True)]
        outcomes = Outcomes(ids=[str(i) for i in range(len(correct))], confidence=[p.confidence for p in preds],
                            quality=correct) if self.with_outcomes else None
        return Evaluation(domain=domain, split=split, metrics={"accuracy": sum(correct) / len(correct)},
                          key_metric="accuracy", n_items=len(correct), outcomes=outcomes)

    @hookimpl
    def domainfm_benefit_terms(self, ctx: RunContext, domain: str, evaluation: Evaluation) -> list[Any]:
        if domain != DOMAIN:
            return []
        return [BenefitTerm(name="minutes_saved", objective="business", unit="min", description="minutes",
                            utility=lambda b: b.automated * 1.0)]


class LexiconPredictor:
    domain = DOMAIN
    device = "cpu"

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        out = []
        for rec in records:
            positive = "great" in str(rec["text"])
            out.append(Prediction(label="positive" if positive else "negative", confidence=0.9,
                                  scores={"positive": 0.9 if positive else 0.1, "negative": 0.1 if positive else 0.9}))
        return out


class NoOutcomes(Lexicon):
    with_outcomes = False


class ClaimsEveryDomain(Lexicon):
    @hookimpl
    def domainfm_load_predictor(self, ctx: RunContext, domain: str, artifact: Artifact) -> Any:
        return LexiconPredictor()  # forgets to check the domain


class DeclaresAnotherTerm(Lexicon):
    declared = [BenefitTermInfo(name="hours_saved", objective="business", unit="h")]


class WrongUnit(Lexicon):
    declared = [BenefitTermInfo(name="minutes_saved", objective="business", unit="h")]


def contract(plugin: Lexicon, tmp_path: Path) -> Any:
    pm = PluginManager(autoload=False).load()
    pm.register(plugin, name="lexicon-check")
    return check_plugin_contract(pm, DOMAIN, output_dir=tmp_path, check_light_import=False,
                                 overrides=["benefit.energy_tracking=false", "options.privacy_ner=false"])


def test_a_well_behaved_plugin_passes_and_leaves_a_finished_run(tmp_path: Path) -> None:
    report = contract(Lexicon(), tmp_path)
    assert report.report.verdict in ("pass", "fail", "unverified")
    run = json.loads((report.run_dir / "run.json").read_text())
    assert run["status"] == "finished" and (report.run_dir / "benefit.json").is_file()


@pytest.mark.parametrize(("plugin", "message"), [
    (NoOutcomes(), "Evaluation.outcomes"),
    (ClaimsEveryDomain(), "must return None for domains that are not its own"),
    (DeclaresAnotherTerm(), "declares 'hours_saved'"),
    (WrongUnit(), "declared as business in 'h', returned as business in 'min'"),
])
def test_each_broken_rule_is_named(plugin: Lexicon, message: str, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=message):
        contract(plugin, tmp_path)
    (run_dir,) = (tmp_path / DOMAIN).iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"


def test_a_heavy_plugin_import_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "heavy_plugin_for_check.py"
    module.write_text("import torch  # noqa: F401\nfrom domainfm import hookimpl\n\n"
                      "@hookimpl\ndef domainfm_domains():\n    return []\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    import importlib

    from domainfm.testing import assert_light_import

    plugin = importlib.import_module("heavy_plugin_for_check")
    pm = PluginManager(autoload=False).load()
    pm.register(plugin, name="heavy")
    spec = DomainSpec(name="heavy_domain", description="x", tasks=["classification"], output_space="labels",
                      default_data="demo", default_model="x", metrics=["accuracy"], key_metric="accuracy", plugin="heavy")
    with pytest.raises(AssertionError, match="imports torch"):
        assert_light_import(pm, spec)


def test_every_installed_domain_returns_the_terms_it_declares() -> None:
    """DomainSpec.benefit_terms and what domainfm_benefit_terms returns must not drift (names, objectives, units)."""
    pm = PluginManager().load()
    for spec in pm.domains.values():
        ctx = RunContext(run_id="probe", domain=spec.name, config=build_config(None, []),
                         run_dir=Path(tempfile.mkdtemp()), device="cpu", pm=pm)
        probe = Evaluation(domain=spec.name, split="probe", metrics=dict.fromkeys(spec.metrics, 0.0),
                           key_metric=spec.key_metric, n_items=0,
                           outcomes=Outcomes(ids=[], confidence=[], quality=[]))
        _assert_declared_terms_are_returned(pm, spec, ctx, probe)


def test_constraints_may_be_declared(tmp_path: Path) -> None:
    class DeclaresConstraint(Lexicon):
        declared = [*Lexicon.declared, BenefitTermInfo(name="min_accuracy", objective="constraint", unit="accuracy")]

        @hookimpl
        def domainfm_benefit_terms(self, ctx: RunContext, domain: str, evaluation: Evaluation) -> list[Any]:
            if domain != DOMAIN:
                return []
            return [*Lexicon.domainfm_benefit_terms(self, ctx, domain, evaluation),
                    Constraint(name="min_accuracy", kind="safety", unit="accuracy", description="x", limit=0.5,
                               direction="min", measure=lambda b: float(b.quality.mean()) if len(b) else None)]

    assert contract(DeclaresConstraint(), tmp_path).report is not None
