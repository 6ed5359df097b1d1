"""``train.strategy=recipe`` on tiny random-init models: selectable by the core text_classification domain,
layer-wise learning rates, the unfreezing schedule, soup averaging, validated settings, resume after a kill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from domainfm.config import build_config
from domainfm.errors import ConfigError
from domainfm.manager import PluginManager
from domainfm.runner import Runner
from domainfm.types import Artifact, RunContext

BASE = ["train.batch_size=32", "model.max_length=16", "benefit.energy_tracking=false", "train.strategy=recipe",
        "train.learning_rate=0.001"]


def _runner(tmp_path: Path, model_dir: Path, *overrides: str) -> tuple[Runner, RunContext]:
    cfg = build_config(None, [f"output_dir={tmp_path}", f"model.base={model_dir}", *BASE, *overrides])
    runner = Runner(PluginManager(autoload=False).load(), cfg)
    return runner, runner.context("text_classification")


def _weights(artifact: Artifact) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(Path(artifact.path) / "model.safetensors"))


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_the_core_text_classification_domain_trains_with_the_recipe(tmp_path: Path, tiny_model_dir: Path,
                                                                     mode: str) -> None:
    from transformers import AutoModelForSequenceClassification

    runner, ctx = _runner(tmp_path, tiny_model_dir, f"model.mode={mode}", "train.max_steps=4",
                          "train.recipe.seeds=[1, 2]", "train.recipe.lr_scales=[1.0, 2.0]",
                          "train.recipe.eval_every=0.3")
    data = runner.load_data(ctx)
    artifact = runner.train(ctx, data)
    meta = artifact.metadata
    assert meta["strategy"] == "recipe" and meta["mode"] == mode
    assert meta["seeds_trained"] == [1, 2] and meta["soup_seeds"] and set(meta["soup_seeds"]) <= {1, 2}
    assert [r["lr"] for r in meta["per_seed"]] == pytest.approx([1e-3, 2e-3])
    assert all(r["steps"] == 4 for r in meta["per_seed"])
    assert meta["temperature"] > 0 and 0 <= meta["validation_accuracy"] <= 1  # the engine's calibration step
    plain = AutoModelForSequenceClassification.from_pretrained(str(artifact.path))  # LoRA merged: a plain model
    assert not any("lora" in name for name, _ in plain.named_parameters())
    predictor = runner.load_predictor(ctx, Artifact.load(artifact.path))
    probs = predictor.predict_proba(["a refund please", "thanks a lot"])
    assert probs.shape[0] == 2 and np.allclose(probs.sum(1), 1.0)
    curves = (Path(artifact.path) / "training_log.json").read_text()
    assert '"seed": 1' in curves and '"seed": 2' in curves


def test_layerwise_learning_rates(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from domainfm.engine.layerwise import param_groups

    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir), num_labels=3)
    n = model.config.num_hidden_layers
    groups = param_groups(model, learning_rate=1e-3, head_learning_rate=5e-3, llrd=0.5, weight_decay=0.01)
    by_depth = {g["depth"]: g["lr"] for g in groups}
    assert by_depth == pytest.approx({0: 1e-3 * 0.5**n, **{d: 1e-3 * 0.5 ** (n - d) for d in range(1, n + 1)},
                                      n + 1: 5e-3})
    assert all(g["weight_decay"] == 0.0 for g in groups if all(p.ndim < 2 for p in g["params"]))
    assert all(g["weight_decay"] == 0.01 for g in groups if all(p.ndim == 2 for p in g["params"]))
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)


def test_gradual_unfreezing_opens_depths_top_down_within_the_first_epoch(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from domainfm.engine.layerwise import optimizer_and_schedule, unfreezing_steps

    assert unfreezing_steps(2, 8, unfreeze=False) == {0: 0, 1: 0, 2: 0, 3: 0}
    assert unfreezing_steps(2, 8, unfreeze=True) == {3: 0, 2: 2, 1: 4, 0: 6}
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir), num_labels=3)
    optimizer, schedule = optimizer_and_schedule(model, learning_rate=1e-3, head_learning_rate=None, llrd=1.0,
                                                 weight_decay=0.0, total_steps=20, warmup_ratio=0.0,
                                                 steps_per_epoch=8, unfreeze=True)
    open_at: dict[int, int] = {}
    for step in range(20):
        for group in optimizer.param_groups:
            if group["lr"] > 0:
                open_at.setdefault(group["depth"], step)
        optimizer.step()
        schedule.step()
    assert open_at == {3: 0, 2: 2, 1: 4, 0: 6}  # head first, embeddings last, all within epoch 1
    assert all(g["lr"] == 0.0 for g in optimizer.param_groups)  # linear decay to 0 at the last step


def test_soup_averages_weights_and_keeps_only_what_holds_validation() -> None:
    import torch

    from domainfm.engine.soup import average_states, greedy_soup

    states = [{"w": torch.tensor([float(i), 2.0 * i]), "ids": torch.tensor([7, 8])} for i in (1, 2, 6)]
    mean = average_states(states)
    assert torch.allclose(mean["w"], torch.tensor([3.0, 6.0])) and torch.equal(mean["ids"], torch.tensor([7, 8]))
    candidates = [{"state": s, "accuracy": a, "nll": 0.5} for s, a in zip(states, (0.8, 0.9, 0.7), strict=True)]

    def score(state: dict[str, Any]) -> tuple[float, float]:  # accuracy falls once the soup's weight passes 2.5
        return (0.95 if float(state["w"][0]) <= 2.5 else 0.6), 0.4

    soup, kept, best = greedy_soup(candidates, score)
    assert kept == [1, 0] and best == (0.95, 0.4)  # the best first; seed 3 would drop validation accuracy
    assert torch.allclose(soup["w"], torch.tensor([1.5, 3.0]))


@pytest.mark.parametrize(("override", "field"), [("train.recipe.unfreeze=ture", "train.recipe.unfreeze"),
                                                 ("train.recipe.soup=maybe", "train.recipe.soup"),
                                                 ("train.strategy=soup", "train.strategy"),
                                                 ("train.recipe.llrd=0", "train.recipe.llrd")])
def test_a_bad_setting_is_an_error_naming_its_field(override: str, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^config: {field}: "):
        build_config(None, [override])


@pytest.mark.parametrize("value", ["off", "none", "''", "false"])
def test_no_intermediate_stage_spelled_several_ways(value: str) -> None:
    assert build_config(None, [f"train.recipe.intermediate={value}"]).train.recipe.intermediate is None
    assert build_config(None, ["train.recipe.intermediate=tfns"]).train.recipe.intermediate == "tfns"


def test_the_recipe_refuses_modes_and_techniques_it_does_not_apply(tmp_path: Path, tiny_model_dir: Path) -> None:
    for extra, message in ((["model.mode=head"], "model.mode full or lora"),
                           (["train.augment.methods=swap"], "train.augment: not applied")):
        runner, ctx = _runner(tmp_path, tiny_model_dir, *extra)
        with pytest.raises(ConfigError, match=message):
            runner.train(ctx, runner.load_data(ctx))


class _Killed(Exception):
    pass


def _kill_in(stage: str, at_step: int) -> Any:
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if Path(args.output_dir).name == stage and state.global_step == at_step:
                raise _Killed(f"{stage} step {at_step}")

    return Kill()


def _record_trainings(started: list[str]) -> Any:
    from transformers import TrainerCallback

    class Record(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            started.append(Path(args.output_dir).name)

    return Record()


def test_a_killed_recipe_run_resumes_where_it_stopped(tmp_path: Path, tiny_model_dir: Path) -> None:
    from domainfm.engine.text_classifier import fine_tune_text_classifier

    settings = ("train.max_steps=6", "train.recipe.seeds=[1, 2]", "train.recipe.eval_every=0.3",
                "train.early_stopping_patience=100")

    def train(folder: Path, callbacks: list[Any]) -> Artifact:
        runner, ctx = _runner(folder, tiny_model_dir, "run_name=r", *settings)
        data = runner.load_data(ctx)
        ctx.state["trainer_callbacks"] = callbacks
        return fine_tune_text_classifier(ctx, data, label_names=data.label_names or [])

    reference = train(tmp_path / "whole", [])
    with pytest.raises(_Killed):
        train(tmp_path / "killed", [_kill_in("seed-2", 5)])
    checkpoints = tmp_path / "killed" / "text_classification" / "r" / "checkpoints"
    assert (checkpoints / "seed-1" / "result.json").is_file()  # seed 1 finished before the kill
    started: list[str] = []
    resumed = train(tmp_path / "killed", [_record_trainings(started)])
    assert started == ["seed-2"]  # seed 1 is not trained again
    per_seed = {r["seed"]: r for r in resumed.metadata["per_seed"]}
    assert per_seed[1]["resumed_from"] is None
    assert str(per_seed[2]["resumed_from"]).endswith("seed-2/checkpoint-4")
    assert resumed.metadata["resumed_from"] == [per_seed[2]["resumed_from"]]
    assert per_seed[2]["steps"] == 6
    assert [h["step"] for h in per_seed[2]["history"] if "eval_accuracy" in h] == [2, 4, 6]
    want, got = _weights(reference), _weights(resumed)
    assert want.keys() == got.keys()
    assert all(np.allclose(want[k], got[k], atol=1e-6) for k in want)  # the same model as without the kill
