"""The finance domain's training: the core recipe (``train.strategy=recipe``) by default for full and LoRA, its
intermediate task through the plugin's own sources, and the inference precisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domainfm.config import build_config
from domainfm.types import RunContext
from domainfm_finance_sentiment import DOMAIN, LABELS, plugin

TINY = ["train.batch_size=8", "model.max_length=16", "options.topics=off"]


def make_ctx(tmp_path: Path, *overrides: str) -> RunContext:
    return RunContext(run_id="t", domain=DOMAIN, config=build_config(None, list(overrides)), run_dir=tmp_path,
                      device="cpu")


def _train(ctx: RunContext):  # type: ignore[no-untyped-def]
    from domainfm_finance_sentiment.model import train

    data = plugin.domainfm_load_data(ctx, DOMAIN, "demo")
    assert data is not None
    return train(ctx, data), data


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_the_domain_trains_with_the_core_recipe_by_default(tmp_path: Path, tiny_model_dir: Path, mode: str) -> None:
    from transformers import AutoModelForSequenceClassification

    from domainfm_finance_sentiment.model import FinancePredictor

    ctx = make_ctx(tmp_path, f"model.base={tiny_model_dir}", f"model.mode={mode}", *TINY, "train.max_steps=4",
                   "train.recipe.seeds=[1, 2]", "train.recipe.unfreeze=true", "train.learning_rate=0.001")
    artifact, _ = _train(ctx)
    meta = artifact.metadata
    assert meta["strategy"] == "recipe" and meta["seeds_trained"] == [1, 2] and meta["soup_seeds"]
    assert meta["recipe_settings"]["unfreeze"] is True
    assert meta["temperature"] > 0 and meta["inference_dtype"] in ("float32", "bfloat16", "int8-ort")
    plain = AutoModelForSequenceClassification.from_pretrained(str(artifact.path))  # LoRA merged
    assert not any("lora" in name for name, _ in plain.named_parameters())
    probs = FinancePredictor.load(artifact, "cpu").predict_proba(["Profit rose sharply.", "The company cut its outlook."])
    assert probs.shape == (2, len(LABELS)) and np.allclose(probs.sum(1), 1.0)


def test_an_explicit_trainer_strategy_is_kept(tmp_path: Path, tiny_model_dir: Path) -> None:
    ctx = make_ctx(tmp_path, f"model.base={tiny_model_dir}", *TINY, "train.max_steps=2", "train.strategy=trainer")
    artifact, _ = _train(ctx)
    assert "strategy" not in artifact.metadata and artifact.metadata["global_step"] == 2


@pytest.mark.parametrize(("option", "where"), [("seeds=[1, 2]", "train.recipe.seeds"), ("recipe=engine", "train.strategy"),
                                               ("head_lr=0.001", "train.head_learning_rate")])
def test_recipe_options_of_the_old_plugin_recipe_say_where_they_moved(tmp_path: Path, option: str, where: str) -> None:
    from domainfm.errors import ConfigError

    from domainfm_finance_sentiment.model import train

    ctx = make_ctx(tmp_path, f"options.{option}")
    with pytest.raises(ConfigError, match=rf"options\.{option.split('=')[0]}: now {where}"):
        train(ctx, None)  # type: ignore[arg-type]


def test_max_steps_and_budget_stop_training(tmp_path: Path, tiny_model_dir: Path) -> None:
    ctx = make_ctx(tmp_path, f"model.base={tiny_model_dir}", *TINY, "train.max_steps=2", "train.recipe.seeds=[1, 2, 3]",
                   "train.recipe.train_budget_s=0.001")
    artifact, _ = _train(ctx)
    assert artifact.metadata["seeds_trained"] == [1]  # the budget stops seeds 2 and 3
    assert artifact.metadata["per_seed"][0]["steps"] == 2


def test_mixed_precision_bf16_trains_under_autocast(tmp_path: Path, tiny_model_dir: Path) -> None:
    from domainfm.engine.precision import bf16_is_fast

    for setting in ("fp32", "bf16"):
        ctx = make_ctx(tmp_path / setting, f"model.base={tiny_model_dir}", *TINY, "train.max_steps=2",
                       f"train.mixed_precision={setting}")
        artifact, _ = _train(ctx)
        fast = setting == "bf16" and bf16_is_fast("cpu")
        assert artifact.metadata["training_autocast"] == ("bfloat16" if fast else "float32")


def test_inference_dtypes(tmp_path: Path, tiny_model_dir: Path) -> None:
    from domainfm.engine.calibration import softmax
    from domainfm.engine.text_classifier import TextClassifierPredictor
    from domainfm.errors import ConfigError
    from domainfm_finance_sentiment.model import choose_inference_dtype, set_inference_dtype

    artifact, data = _train(make_ctx(tmp_path, f"model.base={tiny_model_dir}", *TINY, "train.max_steps=2"))
    texts = list(data.tables["validation"]["text"])[:20]
    # Precision is compared on the model's own softmax: the calibrator fitted on this tiny model may be a step
    # function (top-label isotonic, the fallback for a temperature at its bound), which turns a 1e-3 logit
    # difference at a knot into a jump of its step height.
    base = softmax(TextClassifierPredictor.load(artifact, "cpu", precision="float32").predict_logits(texts))
    for dtype in ("bfloat16", "int8"):
        predictor = TextClassifierPredictor.load(artifact, "cpu", precision=dtype)
        assert predictor.precision == dtype
        assert np.allclose(predictor.predict_proba(texts).sum(1), 1.0)
        probs = softmax(predictor.predict_logits(texts))
        assert probs.shape == base.shape
        assert np.abs(probs - base).max() < 0.1
    with pytest.raises(ConfigError, match="inference_dtype"):
        set_inference_dtype(TextClassifierPredictor.load(artifact, "cpu"), "fp4")
    with pytest.raises(ConfigError, match="inference_dtype"):
        TextClassifierPredictor.load(artifact, "cpu", precision="fp16")
    chosen = choose_inference_dtype(TextClassifierPredictor.load(artifact, "cpu", precision="float32"),
                                    data.tables["validation"])
    assert chosen["inference_dtype"] in ("float32", "bfloat16", "int8-ort")
    assert "float32" in chosen["validation_accuracy_by_dtype"]


def _write_intermediate(path: Path, rows: list[tuple[str, str]]) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_the_intermediate_task_is_a_source_of_this_domain_without_the_tasks_texts(
        tmp_path: Path, tiny_model_dir: Path, mode: str) -> None:
    from safetensors.torch import load_file

    data = plugin.domainfm_load_data(make_ctx(tmp_path), DOMAIN, "demo")
    assert data is not None
    held_out = list(data.tables["validation"]["text"])[:3] + list(data.tables["test"]["text"])[:2]
    own = [(f"Quarterly sales {word} at the {i}th plant.", label) for i, (word, label) in
           enumerate([("fell", "negative"), ("held", "neutral"), ("rose", "positive")] * 12)]
    # a held-out sentence with other spacing and case is still the same sentence
    leaked = [("  " + t.upper().replace(" ", "  "), "neutral") for t in held_out]
    extra = _write_intermediate(tmp_path / "extra.csv", own + leaked)
    ctx = make_ctx(tmp_path, f"model.base={tiny_model_dir}", f"model.mode={mode}", *TINY, "train.max_steps=2",
                   "train.recipe.seeds=[1, 2]", "train.recipe.intermediate_epochs=1",
                   f"train.recipe.intermediate={extra}")
    artifact, _ = _train(ctx)
    done = artifact.metadata["intermediate"]
    assert done["rows"] == len(own) + len(leaked)
    assert done["dropped_in_task_data"] == len(leaked)
    assert done["train_examples"] + done["validation_examples"] == len(own)
    start = load_file(str(ctx.checkpoint_dir / "intermediate" / "start.safetensors"))
    assert not any("lora" in k for k in start)  # LoRA merged before the seeds start from it
    assert artifact.metadata["seeds_trained"] == [1, 2]


def test_intermediate_source_with_a_bad_label_names_file_and_line(tmp_path: Path, tiny_model_dir: Path) -> None:
    from domainfm.errors import DataError

    rows = [(f"Text {i}.", lab) for i, lab in enumerate(["bullish", "neutral", "bearish"] * 5)]
    rows[7] = ("Shares went sideways.", "sideways")
    extra = _write_intermediate(tmp_path / "extra.csv", rows)
    ctx = make_ctx(tmp_path, f"model.base={tiny_model_dir}", *TINY, "train.max_steps=1",
                   f"train.recipe.intermediate={extra}")
    with pytest.raises(DataError, match=r"extra.csv.*9.*'sideways'"):
        _train(ctx)


def test_the_benchmark_preset_is_a_valid_config_selecting_the_recipe() -> None:
    preset = Path(__file__).resolve().parents[1] / "presets" / "phrasebank-50agree.yaml"
    cfg = build_config(preset)
    assert cfg.data == "phrasebank:50agree" and cfg.train.strategy == "recipe" and cfg.model.mode == "full"
    assert cfg.train.recipe.intermediate == "tfns" and cfg.train.recipe.seeds == [42, 43, 44]


def test_the_base_size_preset_is_the_distillation_benchmarks_tfns_teacher() -> None:
    import os
    import sys

    bench = Path(__file__).resolve().parents[3] / "benchmarks" / "finance_sentiment"
    environ = dict(os.environ)
    sys.path.insert(0, str(bench))
    try:
        import distill  # sets offline / no-progress environment defaults for its own runs
    finally:
        sys.path.remove(str(bench))
        os.environ.clear()
        os.environ.update(environ)
    preset = build_config(Path(__file__).resolve().parents[1] / "presets" / "phrasebank-50agree-mpnet.yaml")
    teacher = distill.settings_for(False)["teacher"]
    overrides = ["model.mode=full", f"model.base={distill.TEACHER}", *distill.common_overrides(teacher),
                 *distill.TEACHER_VARIANTS["tfns"]]
    measured = build_config(None, ["train.strategy=trainer", *overrides])
    assert preset.model.base == measured.model.base and preset.model.max_length == measured.model.max_length
    assert preset.train.recipe == measured.train.recipe
    for field in ("strategy", "epochs", "batch_size", "learning_rate", "warmup_ratio", "early_stopping_patience",
                  "mixed_precision", "seed"):
        assert getattr(preset.train, field) == getattr(measured.train, field), field
