"""domainfm.privacy.dp_training: DP-SGD on a linear head, for any text-classification domain (``train.dp``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from domainfm.config import build_config
from domainfm.errors import ConfigError
from domainfm.manager import PluginManager


def test_fit_dp_head_spends_at_most_its_budget_and_learns() -> None:
    pytest.importorskip("opacus")
    from domainfm.privacy.dp_training import default_delta, fit_dp_head

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=400)
    features = (rng.normal(size=(400, 8)) + 3.0 * labels[:, None]).astype(np.float32)  # two well-separated blobs
    head = fit_dp_head(features, labels, 2, target_epsilon=2.0, passes=5, batch_size=64, seed=1)
    assert head.weight.shape == (2, 8) and head.bias.shape == (2,)
    report = head.report
    assert 0 < report["epsilon"] <= 2.0 + 1e-6 and report["target_epsilon"] == 2.0
    assert report["delta"] == default_delta(400) < 1 / 400 and report["noise_multiplier"] > 0
    accuracy = float(np.mean((features @ head.weight.T + head.bias).argmax(1) == labels))
    assert accuracy > 0.9
    tighter = fit_dp_head(features, labels, 2, target_epsilon=0.5, passes=5, batch_size=64, seed=1).report
    assert tighter["noise_multiplier"] > report["noise_multiplier"]  # a smaller budget buys more noise


def test_a_text_classification_run_with_train_dp_reports_its_epsilon(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("opacus")
    from domainfm.runner import Runner

    config = build_config(None, [
        f"output_dir={tmp_path}", f"model.base={tiny_model_dir}", "model.mode=head", "train.dp.enabled=true",
        "train.dp.epsilon=3", "train.epochs=1", "model.max_length=32", "benefit.energy_tracking=false", "device=cpu",
    ])
    result = Runner(PluginManager(autoload=False).load(), config).run("text_classification")
    assert result.artifact is not None
    dp = result.artifact.metadata["dp"]
    assert result.artifact.metadata["mode"] == "dp-head" and 0 < dp["epsilon"] <= 3.0 + 1e-6
    run = json.loads((result.ctx.run_dir / "run.json").read_text(encoding="utf-8"))
    assert run["dp_epsilon"] == dp["epsilon"] and run["config"]["train"]["dp"]["enabled"] is True
    report = json.loads((result.ctx.run_dir / "benefit.json").read_text(encoding="utf-8"))
    constraints = {c["name"]: c for c in report["constraints"]}
    assert constraints["privacy_dp_epsilon"]["at_optimum"]["value"] == pytest.approx(dp["epsilon"])


def test_train_dp_needs_the_head_mode(tiny_model_dir: Path, tmp_path: Path) -> None:
    from domainfm.runner import Runner

    config = build_config(None, [f"output_dir={tmp_path}", f"model.base={tiny_model_dir}", "model.mode=full",
                                 "train.dp.enabled=true", "benefit.energy_tracking=false", "device=cpu"])
    with pytest.raises(ConfigError, match="train.dp.enabled: .* use model.mode=head"):
        Runner(PluginManager(autoload=False).load(), config).train_run("text_classification")


def test_a_mistyped_dp_setting_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="train.dp.enabled"):
        build_config(None, ["train.dp.enabled=ture"])
    with pytest.raises(ConfigError, match="train.dp.epsilon"):
        build_config(None, ["train.dp.epsilon=0"])
