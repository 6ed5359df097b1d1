"""A differentially private healthcare run: its benefit report carries the DP budget and the relaxed limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainfm.config import build_config
from domainfm.manager import PluginManager


def test_a_dp_run_reports_its_epsilon_and_relaxes_the_training_data_limit(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("opacus")
    from domainfm.runner import Runner

    config = build_config(None, [
        f"output_dir={tmp_path}", f"model.base={tiny_model_dir}", "options.dp=true", "options.dp_epsilon=4",
        "options.explain=false", "options.privacy_ner=false", "train.epochs=1", "model.max_length=32",
        "benefit.energy_tracking=false", "device=cpu",
    ])
    result = Runner(PluginManager(select=["healthcare"]).load(), config).run("healthcare")
    epsilon = result.artifact.metadata["dp"]["epsilon"] if result.artifact else None
    assert epsilon is not None and 0 < epsilon <= 4.0 + 1e-6

    report = json.loads((result.ctx.run_dir / "benefit.json").read_text(encoding="utf-8"))
    constraints = {c["name"]: c for c in report["constraints"]}
    assert constraints["privacy_dp_epsilon"]["at_optimum"]["value"] == pytest.approx(epsilon)
    training = constraints["privacy_identifiers_training_data"]
    assert training["limit"] == 1.0 and f"epsilon={epsilon}" in training["details"]["note"]
    assert json.loads((result.ctx.run_dir / "run.json").read_text(encoding="utf-8"))["dp_epsilon"] == epsilon
