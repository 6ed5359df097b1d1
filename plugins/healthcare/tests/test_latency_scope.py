"""The benefit report's latency times the serving path only and says what was timed (issue 22.6): attributions
are computed when a record asks for them, never inside the latency measurement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from domainfm.config import build_config
from domainfm.manager import PluginManager
from domainfm.runner import Runner


def test_run_times_the_answer_path_and_says_so(tiny_model_dir: Path, tmp_path: Path, monkeypatch: Any) -> None:
    import domainfm_healthcare.attributions as attributions

    def no_attributions(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("integrated gradients ran inside the serving-latency measurement")

    monkeypatch.setattr(attributions, "TokenAttributor", no_attributions)
    cfg = build_config(None, [
        f"output_dir={tmp_path}", f"model.base={tiny_model_dir}", "model.mode=head", "train.epochs=1",
        "model.max_length=32", "options.ig_steps=4", "options.deid_ner=false", "options.privacy_ner=false",
        "benefit.energy_tracking=false",
    ])
    result = Runner(PluginManager(select=["healthcare"]).load(), cfg).run("healthcare")
    report = json.loads((result.ctx.run_dir / "benefit.json").read_text())
    constraints = {c["name"]: c for c in report["constraints"]}
    timed = constraints["resource_latency_p95"]["details"]["timed"]
    assert timed.startswith("de-identification, calibrated top-3 suggestions and abstention")
    assert "attributions only for records asking for them" in timed
    assert "of the test split one per call, after 1 untimed warm-up call" in timed
    assert f"Timed: {timed}" in constraints["latency_p95"]["description"]
    assert f"Timed: {timed}" in constraints["resource_latency_p95"]["description"]
    assert result.ctx.resources.latency_ms_p95 is not None


def test_attributions_on_request(tiny_model_dir: Path, tmp_path: Path) -> None:
    from domainfm.engine.text_classifier import TextClassifierPredictor
    from domainfm.testing import check_plugin_contract
    from domainfm.types import Artifact
    from domainfm_healthcare.deid import Deidentifier
    from domainfm_healthcare.predictor import HealthcarePredictor

    report = check_plugin_contract(
        PluginManager(select=["healthcare"]).load(), "healthcare", source="demo", output_dir=tmp_path,
        overrides=[f"model.base={tiny_model_dir}", "model.mode=head", "train.epochs=1", "model.max_length=32",
                   "options.ig_steps=4", "benefit.energy_tracking=false"],
    )
    assert all(p.explanation is None for p in report.predictions)  # the default: no attributions unasked
    inner = TextClassifierPredictor.load(Artifact.load(report.artifact.path), "cpu")
    predictor = HealthcarePredictor(inner, Deidentifier(use_ner=False), ig_steps=4)
    plain, asked = predictor.predict([{"text": "fever and cough for three days"},
                                      {"text": "fever and cough for three days", "explain": True}])
    assert plain.explanation is None
    assert set(asked.explanation["attributions"]) == {s["label"] for s in asked.extra["top_k"]}
    always = HealthcarePredictor(inner, Deidentifier(use_ner=False), ig_steps=4, explain=True)
    assert always.predict([{"text": "itchy rash on both arms"}])[0].explanation is not None
    assert "integrated-gradients attributions" in always.serving_path
    with pytest.raises(Exception, match="options.explain"):
        HealthcarePredictor(inner, Deidentifier(use_ner=False), explain="sometimes")
