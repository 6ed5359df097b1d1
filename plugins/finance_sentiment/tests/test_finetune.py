"""The plugin's fine-tuning recipe (layer-wise LR decay, unfreezing, seed soup) and inference precisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domainfm.config import build_config
from domainfm.types import RunContext
from domainfm_finance_sentiment import DOMAIN, LABELS, plugin


def make_ctx(tmp_path: Path, *overrides: str) -> RunContext:
    return RunContext(run_id="t", domain=DOMAIN, config=build_config(None, list(overrides)), run_dir=tmp_path,
                      device="cpu")


def test_length_grouped_batches_cover_every_index_once() -> None:
    from domainfm_finance_sentiment.finetune import length_grouped_batches

    lengths = list(np.random.default_rng(0).integers(3, 60, size=1000))
    batches = length_grouped_batches(lengths, 32, np.random.default_rng(1))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    assert all(len(b) <= 32 for b in batches)
    spread = np.mean([np.ptp(np.asarray(lengths)[b]) for b in batches if len(b) == 32])
    assert spread < 10  # similar lengths in a batch: little padding


def test_layerwise_learning_rates(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    from domainfm_finance_sentiment.finetune import Recipe, param_groups

    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir), num_labels=3)
    n = model.config.num_hidden_layers
    groups = param_groups(model, Recipe(lr=1e-3, llrd=0.5, head_lr=5e-3), n)
    by_depth = {g["depth"]: g["lr"] for g in groups}
    assert by_depth[n + 1] == pytest.approx(5e-3)  # pooler + classifier
    assert by_depth[n] == pytest.approx(1e-3)  # top layer
    assert by_depth[0] == pytest.approx(1e-3 * 0.5**n)  # embeddings
    assert all(g["weight_decay"] == 0.0 for g in groups if all(p.ndim < 2 for p in g["params"]))
    seen = sum(len(g["params"]) for g in groups)
    assert seen == sum(1 for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_soup_recipe_trains_calibrates_and_loads(tmp_path: Path, tiny_model_dir: Path, mode: str) -> None:
    from transformers import AutoModelForSequenceClassification

    from domainfm_finance_sentiment.model import FinancePredictor, train

    ctx = make_ctx(tmp_path, f"model.base={tiny_model_dir}", f"model.mode={mode}", "train.epochs=1",
                   "train.batch_size=16", "model.max_length=32", "options.topics=off", "options.seeds=[1, 2]",
                   "options.eval_every=0.5", "options.unfreeze=true", "train.learning_rate=0.001",
                   "options.lr_scales=[1.0, 2.0]")
    data = plugin.domainfm_load_data(ctx, DOMAIN, "demo")
    assert data is not None
    artifact = train(ctx, data)
    meta = artifact.metadata
    assert meta["recipe"] == "soup" and meta["seeds_trained"] == [1, 2]
    assert [r["lr"] for r in meta["per_seed"]] == pytest.approx([1e-3, 2e-3])
    assert set(meta["soup_seeds"]) <= {1, 2} and meta["soup_seeds"]
    assert meta["temperature"] > 0 and meta["inference_dtype"] in ("float32", "bfloat16", "int8-ort")
    assert all(h["epoch"] <= 1.0 for r in meta["per_seed"] for h in r["history"])
    # a plain HF classifier on disk (LoRA merged): the per-sentence pipeline baseline can load it
    plain = AutoModelForSequenceClassification.from_pretrained(str(artifact.path))
    assert not any("lora" in name for name, _ in plain.named_parameters())
    predictor = FinancePredictor.load(artifact, "cpu")
    probs = predictor.predict_proba(["Profit rose sharply.", "The company cut its outlook."])
    assert probs.shape == (2, len(LABELS)) and np.allclose(probs.sum(1), 1.0)


def test_max_steps_and_budget_stop_training(tmp_path: Path, tiny_model_dir: Path) -> None:
    from domainfm_finance_sentiment.finetune import fine_tune

    ctx = make_ctx(tmp_path, f"model.base={tiny_model_dir}", "train.max_steps=2", "train.batch_size=8",
                   "model.max_length=16", "options.seeds=[1, 2, 3]", "options.train_budget_s=0.001")
    data = plugin.domainfm_load_data(ctx, DOMAIN, "demo")
    assert data is not None
    artifact = fine_tune(ctx, data, list(LABELS))
    assert artifact.metadata["seeds_trained"] == [1]  # the budget stops seeds 2 and 3
    assert artifact.metadata["per_seed"][0]["steps"] == 2


def test_mixed_precision_bf16_trains_under_autocast(tmp_path: Path, tiny_model_dir: Path) -> None:
    from domainfm.engine.precision import bf16_is_fast
    from safetensors.torch import load_file

    from domainfm_finance_sentiment.finetune import fine_tune

    weights = {}
    for setting in ("fp32", "bf16"):
        ctx = make_ctx(tmp_path / setting, f"model.base={tiny_model_dir}", "train.max_steps=3", "train.batch_size=8",
                       "model.max_length=16", "options.seeds=[1]", f"train.mixed_precision={setting}")
        data = plugin.domainfm_load_data(ctx, DOMAIN, "demo")
        assert data is not None
        artifact = fine_tune(ctx, data, list(LABELS))
        fast = setting == "bf16" and bf16_is_fast("cpu")
        assert artifact.metadata["training_autocast"] == ("bfloat16" if fast else "float32")
        weights[setting] = load_file(str(artifact.path / "model.safetensors"))
    assert all(bool(v.isfinite().all()) for v in weights["bf16"].values())
    if not bf16_is_fast("cpu"):
        pytest.skip("this CPU has no fast bf16: both runs trained in float32")
    moved = [k for k, v in weights["bf16"].items() if not np.allclose(v.numpy(), weights["fp32"][k].numpy(), atol=0)]
    assert moved  # the same seed and data in float32 gives other weights: autocast was on


def test_inference_dtypes(tmp_path: Path, tiny_model_dir: Path) -> None:
    from domainfm.engine.text_classifier import TextClassifierPredictor
    from domainfm.errors import ConfigError
    from domainfm_finance_sentiment.finetune import fine_tune
    from domainfm_finance_sentiment.model import choose_inference_dtype, set_inference_dtype

    ctx = make_ctx(tmp_path, f"model.base={tiny_model_dir}", "train.max_steps=2", "train.batch_size=8",
                   "model.max_length=16")
    data = plugin.domainfm_load_data(ctx, DOMAIN, "demo")
    assert data is not None
    artifact = fine_tune(ctx, data, list(LABELS))
    texts = list(data.tables["validation"]["text"])[:20]
    from domainfm.engine.calibration import softmax

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
    chosen = choose_inference_dtype(TextClassifierPredictor.load(artifact, "cpu"), data.tables["validation"])
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
def test_intermediate_stage_seeds_start_from_its_weights(tmp_path: Path, tiny_model_dir: Path, mode: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from domainfm_finance_sentiment import finetune

    ctx = make_ctx(tmp_path, f"model.base={tiny_model_dir}", f"model.mode={mode}", "train.max_steps=2",
                   "train.batch_size=8", "model.max_length=16", "options.seeds=[1, 2]",
                   "options.intermediate_epochs=1")
    data = plugin.domainfm_load_data(ctx, DOMAIN, "demo")
    assert data is not None
    held_out = list(data.tables["validation"]["text"])[:3] + list(data.tables["test"]["text"])[:2]
    own = [(f"Quarterly sales {word} at the {i}th plant.", label) for i, (word, label) in
           enumerate([("fell", "negative"), ("held", "neutral"), ("rose", "positive")] * 12)]
    # a held-out sentence with other spacing and case is still the same sentence
    leaked = [("  " + t.upper().replace(" ", "  "), "neutral") for t in held_out]
    ctx.config.options["intermediate"] = str(_write_intermediate(tmp_path / "extra.csv", own + leaked))

    inits: list[dict | None] = []
    build = finetune._build_model

    def spy(base_path: str, labels: list[str], recipe: finetune.Recipe, init_state: dict | None = None):
        inits.append(init_state)
        return build(base_path, labels, recipe, init_state)

    stages: list[dict] = []
    stage = finetune.intermediate_stage

    def stage_spy(*args, **kwargs):
        state, done = stage(*args, **kwargs)
        stages.append(state)
        return state, done

    monkeypatch.setattr(finetune, "_build_model", spy)
    monkeypatch.setattr(finetune, "intermediate_stage", stage_spy)
    artifact = finetune.fine_tune(ctx, data, list(LABELS))
    done = artifact.metadata["intermediate"]
    assert done["rows"] == len(own) + len(leaked)
    assert done["dropped_in_task_data"] == len(leaked)
    assert done["train_examples"] + done["validation_examples"] == len(own)
    assert inits[0] is None  # the intermediate model starts from the base
    assert len(inits) == 3 and all(s is stages[0] for s in inits[1:])  # both seeds start from its weights
    assert not any("lora" in k for k in stages[0])  # LoRA adapters are merged before the seeds start


def test_intermediate_source_with_a_bad_label_names_file_and_line(tmp_path: Path, tiny_model_dir: Path) -> None:
    from domainfm.errors import DataError
    from domainfm_finance_sentiment.finetune import fine_tune

    rows = [(f"Text {i}.", lab) for i, lab in enumerate(["bullish", "neutral", "bearish"] * 5)]
    rows[7] = ("Shares went sideways.", "sideways")
    extra = _write_intermediate(tmp_path / "extra.csv", rows)
    ctx = make_ctx(tmp_path, f"model.base={tiny_model_dir}", "train.max_steps=1", "train.batch_size=8",
                   "model.max_length=16", f"options.intermediate={extra}")
    data = plugin.domainfm_load_data(ctx, DOMAIN, "demo")
    assert data is not None
    with pytest.raises(DataError, match=r"extra.csv.*9.*'sideways'"):
        fine_tune(ctx, data, list(LABELS))


@pytest.mark.parametrize(("value", "expected"), [("tfns", "tfns"), ("off", None), ("none", None), ("", None)])
def test_intermediate_option_parsing(tmp_path: Path, value: str, expected: str | None) -> None:
    from domainfm_finance_sentiment.finetune import recipe_from_ctx

    recipe = recipe_from_ctx(make_ctx(tmp_path, f"options.intermediate={value}", "options.intermediate_epochs=1.5"))
    assert recipe.intermediate == expected
    assert recipe.intermediate_epochs == 1.5
    assert recipe_from_ctx(make_ctx(tmp_path)).intermediate is None


def test_intermediate_labels_outside_the_tasks_raise(tmp_path: Path, tiny_model_dir: Path) -> None:
    from domainfm.errors import DataError
    from domainfm_finance_sentiment.finetune import Recipe, intermediate_stage

    extra = _write_intermediate(tmp_path / "extra.csv", [(f"Text {i}.", lab) for i, lab in
                                                         enumerate(["negative", "positive", "neutral"] * 5)])
    data = plugin.domainfm_load_data(make_ctx(tmp_path), DOMAIN, "demo")
    assert data is not None
    with pytest.raises(DataError, match=r"options.intermediate \(.*extra.csv\): row 2: label 'neutral'"):
        intermediate_stage(Recipe(intermediate=str(extra)), str(tiny_model_dir), ["negative", "positive"], None, data,
                           0, "cpu")
