"""Every fine-tuned model keeps its training curves (``training_log.json`` in its artifact) for the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainfm.config import build_config
from domainfm.manager import PluginManager
from domainfm.runner import Runner
from domainfm.training_log import TRAINING_LOG, curves, read_training_log


def train(tmp_path: Path, model_dir: Path, mode: str) -> Path:
    cfg = build_config(None, [f"output_dir={tmp_path}", f"model.base={model_dir}", f"model.mode={mode}",
                              "train.epochs=2", "train.batch_size=8", "model.max_length=32", "train.max_steps=24",
                              "benefit.energy_tracking=false"])
    runner = Runner(PluginManager(autoload=False).load(), cfg)
    ctx = runner.context("text_classification")
    return Path(runner.train(ctx, runner.load_data(ctx)).path)


@pytest.mark.parametrize("mode", ["lora", "lpft", "contrastive"])
def test_each_trained_mode_saves_loss_and_validation_curves(tmp_path: Path, tiny_model_dir: Path, mode: str) -> None:
    artifact = train(tmp_path, tiny_model_dir, mode)
    log = read_training_log(artifact / TRAINING_LOG)
    series = curves(log)
    assert series["loss"] and all(v > 0 for _, v in series["loss"])
    assert series["eval_macro_f1"] and all(0 <= v <= 1 for _, v in series["eval_macro_f1"])
    assert log["metric_for_best_model"] == "macro_f1"
    assert log["best_metric"] in [v for _, v in series["eval_macro_f1"]]


def test_a_frozen_encoders_head_has_no_training_curve(tmp_path: Path, tiny_model_dir: Path) -> None:
    artifact = train(tmp_path, tiny_model_dir, "head")  # a logistic regression fitted in one go: no steps
    assert not (artifact / TRAINING_LOG).exists()
