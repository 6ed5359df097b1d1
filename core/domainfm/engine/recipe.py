"""``train.strategy=recipe``: a fine-tuning recipe for small encoders, for ``model.mode`` full or lora, chosen on
validation only. Any text-classification domain selects it through the config; the artifact is finalised like
every other (:func:`domainfm.engine.text_classifier.fine_tune_text_classifier`: metadata, temperature
calibration on validation).

What it adds to the plain Trainer run (settings in ``train.recipe``, :class:`domainfm.config.RecipeConfig`):

- layer-wise learning-rate decay and a head learning rate (``llrd``, ``train.head_learning_rate``), optional
  gradual unfreezing (``unfreeze``) (:mod:`domainfm.engine.layerwise`);
- evaluation every ``eval_every`` epochs keeping the best state (validation accuracy, ties broken by lower
  NLL), early stopping after ``train.early_stopping_patience`` evaluations without improvement;
- several ``seeds`` from one initialisation (the new head initialised with a fixed seed; the seeds change data
  order and dropout), optionally each with a learning-rate scale (``lr_scales``), combined into a greedy model
  soup (:mod:`domainfm.engine.soup`); ``train_budget_s`` stops starting seeds that would overrun it;
- an optional intermediate task (``intermediate``: another data source of the domain with the same labels,
  loaded through its ``domainfm_load_data``): trained first (its own seeded 90/10 split for early stopping,
  ``intermediate_epochs``), every seed starting from its weights. Its rows whose text is in the task's data
  are dropped first, so no validation or test sentence is ever trained on.

Every stage is one Hugging Face ``Trainer`` run checkpointing under ``<checkpoints>/<stage>`` with the engine's
completion marker; a finished stage leaves its best weights (``best.safetensors``) and record
(``result.json``) there. A killed run started again skips finished stages and resumes the interrupted one
from its newest complete checkpoint. LoRA uses the engine's peft adapters (:mod:`domainfm.engine.peft_modes`,
``model.lora_target_modules``) with the pooler trained in full beside the classifier, merged at the end.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.data import encode_labels, stratified_split_indices, text_key
from domainfm.engine.hf_trainer import build_trainer, last_complete_checkpoint, load_sequence_classifier, tokenized_dataset
from domainfm.engine.precision import training_autocast
from domainfm.errors import ConfigError, DataError
from domainfm.io import atomic_directory, atomic_write_json
from domainfm.types import DataBundle, RunContext

log = logging.getLogger(__name__)

RECIPE_MODES = ("full", "lora")
DEFAULT_LR = {"full": 1e-4, "lora": 2e-3}  # the top layer's; lower layers get less under llrd
HEAD_INIT_SEED = 1234  # one head initialisation for every seed: a soup needs one starting point
BEST, RESULT = "best.safetensors", "result.json"
START = "start.safetensors"  # the intermediate stage's weights (LoRA merged) every seed starts from
SELECTION = "selection"  # accuracy, ties broken by lower NLL (see _metrics)

Rows = tuple[list[str], list[str] | None, list[int]]
IntermediateLoader = Callable[[str], DataBundle]


@dataclass(frozen=True)
class Stage:
    """One Trainer run: its checkpoint folder name, seed, rates and length."""

    name: str
    seed: int
    learning_rate: float
    head_learning_rate: float | None
    epochs: float
    max_steps: int | None


def check(ctx: RunContext) -> None:
    """Refuse what the recipe cannot honour, naming the setting."""
    cfg = ctx.config
    if cfg.model.mode not in RECIPE_MODES:
        raise ConfigError(f"train.strategy=recipe trains model.mode full or lora, not {cfg.model.mode!r}; "
                          "use train.strategy=trainer for the other modes")
    t = cfg.train
    asked = [name for name, on in (("train.augment", bool(t.augment.methods)),
                                   ("train.adversarial", t.adversarial.method != "none")) if on]
    # label smoothing goes into the Trainer's arguments, so it applies; the loss terms (R-Drop, L2-SP, EWC) do not
    asked += [f"train.regularisation.{name}" for name, value in t.regularisation.model_dump().items()
              if name not in ("label_smoothing", "anchor") and value]
    if asked:
        raise ConfigError(f"{', '.join(asked)}: not applied under train.strategy=recipe (its seeds and soup "
                          "replace them); use train.strategy=trainer")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("train.strategy=recipe runs in one process; use train.strategy=trainer under torchrun")


def fit(ctx: RunContext, base_path: Path, labels: list[str], train: Rows, valid: Rows, *,
        intermediate_data: IntermediateLoader | None = None, task_texts: Sequence[str] = ()) -> dict[str, Any]:
    """Train with the recipe, save the model (LoRA merged) and its tokenizer to ``ctx.artifact_dir`` and its
    training curves; returns the artifact metadata the recipe records. ``task_texts`` are the task's texts
    (every split) that the intermediate stage drops; ``intermediate_data`` loads a source (default: the
    domain's ``domainfm_load_data`` through ``ctx.pm``)."""
    check(ctx)
    if not valid[0]:
        raise DataError("train.strategy=recipe chooses on validation: the data has no validation rows")
    cfg = ctx.config
    recipe = cfg.train.recipe
    seeds = list(recipe.seeds or [cfg.train.seed])
    lr = cfg.train.learning_rate or DEFAULT_LR[cfg.model.mode]
    head_lr = cfg.train.head_learning_rate
    autocast = training_autocast(ctx.device, cfg.train.mixed_precision)
    _, tokenizer = load_sequence_classifier(base_path, labels, trust_remote_code=cfg.model.trust_remote_code)
    train_ds = tokenized_dataset(tokenizer, *train, cfg.model.max_length)
    valid_ds = tokenized_dataset(tokenizer, *valid, cfg.model.max_length)

    init_state, intermediate = None, None
    if recipe.intermediate:
        loader = intermediate_data or _domain_loader(ctx)
        init_state, intermediate = _intermediate_stage(ctx, loader, base_path, labels, tokenizer, task_texts,
                                                       Stage("intermediate", seeds[0], lr, head_lr,
                                                             recipe.intermediate_epochs, None), autocast)
    runs: list[dict[str, Any]] = []
    model: Any = None
    for i, seed in enumerate(seeds):
        spent = sum(r["seconds"] for r in runs)  # the budget is for the seeds (the intermediate stage runs once)
        if recipe.train_budget_s and i and spent + spent / i > recipe.train_budget_s:
            log.info("budget: seed %s not started (%.0fs used of %.0fs)", seed, spent, recipe.train_budget_s)
            break
        scale = recipe.lr_scales[i % len(recipe.lr_scales)] if recipe.lr_scales else 1.0
        stage = Stage(f"seed-{seed}", seed, lr * scale, head_lr * scale if head_lr else None, cfg.train.epochs,
                      cfg.train.max_steps)
        model = _model(ctx, base_path, labels, init_state)
        runs.append(_run_stage(ctx, stage, model, tokenizer, train_ds, valid_ds, autocast))

    if recipe.soup and len(runs) > 1:
        from domainfm.engine.soup import greedy_soup

        evaluator = _trainer(ctx, runs[-1]["stage"], model, tokenizer, train_ds, valid_ds, autocast)
        state, kept, (soup_acc, _) = greedy_soup(runs, lambda s: _score(evaluator, valid_ds, s))
    else:
        top = max(range(len(runs)), key=lambda i: (runs[i]["accuracy"], -runs[i]["nll"]))
        state, kept, soup_acc = runs[top]["state"], [top], runs[top]["accuracy"]
    model.load_state_dict(state)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    final = model.merge_and_unload() if cfg.model.mode == "lora" else model
    with atomic_directory(ctx.artifact_dir) as tmp:
        final.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
    _save_curves(ctx, runs, soup_acc)
    resumed = [r["resumed_from"] for r in runs if r.get("resumed_from")]
    if resumed:
        ctx.resumed_from = resumed[0]
    steps_per_epoch = math.ceil(len(train[0]) / cfg.train.batch_size)
    return {
        "strategy": "recipe",
        "recipe_settings": {**recipe.model_dump(), "seeds": seeds},
        "parameters": int(total), "trainable_parameters": int(trainable),
        "learning_rate": lr, "head_learning_rate": head_lr,
        "seeds_trained": [r["seed"] for r in runs], "soup_seeds": [runs[i]["seed"] for i in kept],
        "per_seed": [{k: r.get(k) for k in ("seed", "lr", "accuracy", "macro_f1", "nll", "step", "steps", "seconds",
                                             "resumed_from", "history")} for r in runs],
        "best_validation_accuracy": soup_acc,
        "epochs_run": round(sum(r["steps"] for r in runs) / steps_per_epoch, 3),
        "global_step": sum(r["steps"] for r in runs),
        "resumed_from": resumed or None,
        "intermediate": intermediate,
        "training_autocast": autocast or "float32",
        **({"adapters_merged": True} if cfg.model.mode == "lora" else {}),
    }


# ----------------------------------------------------------------------------------- stages


def _model(ctx: RunContext, base_path: Path, labels: list[str], init_state: dict[str, Any] | None) -> Any:
    """The classifier every stage starts from: one fixed head initialisation, the intermediate weights when
    given, the embeddings frozen when asked, LoRA adapters (and a fully trained pooler) for lora."""
    import torch

    from domainfm.engine import peft_modes
    from domainfm.engine.layerwise import encoder_layers, layer_depth

    cfg = ctx.config
    torch.manual_seed(HEAD_INIT_SEED)
    model, _ = load_sequence_classifier(base_path, labels, trust_remote_code=cfg.model.trust_remote_code)
    if init_state is not None:
        model.load_state_dict(init_state)
    if cfg.train.recipe.freeze_embeddings:
        n_layers = encoder_layers(model)
        for name, param in model.named_parameters():
            if layer_depth(name, n_layers) == 0:
                param.requires_grad_(False)
    if cfg.model.mode == "lora":
        has_pooler = any(name.rsplit(".", 1)[-1] == "pooler" for name, _ in model.named_modules())
        model = peft_modes.add_adapters(model, cfg.model, total_steps=1, modules_to_save=["pooler"] if has_pooler else None)
    return model


def _stage_ctx(ctx: RunContext, stage: Stage, n_train: int) -> tuple[RunContext, int, int]:
    """A context whose train section drives this stage's Trainer; with its total and per-epoch step counts."""
    config = ctx.config.model_copy(deep=True)
    t = config.train
    per_epoch = math.ceil(n_train / t.batch_size)
    total = max(1, round(stage.epochs * per_epoch))
    if stage.max_steps:
        total = min(total, stage.max_steps)
    t.epochs, t.max_steps, t.seed, t.grad_accum = stage.epochs, total, stage.seed, 1
    t.eval_steps = max(1, round(t.recipe.eval_every * per_epoch))
    return replace(ctx, config=config), total, per_epoch


def _trainer(ctx: RunContext, stage: Stage, model: Any, tokenizer: Any, train_ds: Any, valid_ds: Any,
             autocast: str | None) -> Any:
    """The engine's Trainer for one stage: the layer-wise optimizer and schedule, best state by accuracy
    (then NLL), checkpoints under ``<checkpoints>/<stage>``."""
    from domainfm.engine.class_weights import balanced_class_weights
    from domainfm.engine.layerwise import optimizer_and_schedule

    stage_ctx, total, per_epoch = _stage_ctx(ctx, stage, len(train_ds))
    t = stage_ctx.config.train
    weights = (balanced_class_weights(list(train_ds["labels"]), model.config.num_labels)
               if t.class_weights == "balanced" else None)
    trainer = build_trainer(stage_ctx, model, tokenizer, train_ds, valid_ds, learning_rate=stage.learning_rate,
                            head_learning_rate=None, autocast=autocast, class_weights=weights)
    trainer.args.output_dir = str(ctx.checkpoint_dir / stage.name)
    trainer.args.metric_for_best_model = SELECTION
    trainer.compute_metrics = _metrics
    trainer.optimizer, trainer.lr_scheduler = optimizer_and_schedule(
        model, learning_rate=stage.learning_rate, head_learning_rate=stage.head_learning_rate,
        llrd=t.recipe.llrd, weight_decay=t.weight_decay, total_steps=total, warmup_ratio=t.warmup_ratio,
        steps_per_epoch=per_epoch, unfreeze=t.recipe.unfreeze)
    return trainer


def _run_stage(ctx: RunContext, stage: Stage, model: Any, tokenizer: Any, train_ds: Any, valid_ds: Any,
               autocast: str | None) -> dict[str, Any]:
    """Train one stage (or take its finished result), leaving its best weights in ``model``; returns its record
    with the best ``state``."""
    folder = ctx.checkpoint_dir / stage.name
    if (folder / RESULT).is_file() and (folder / BEST).is_file():
        import json

        from safetensors.torch import load_file

        record = json.loads((folder / RESULT).read_text(encoding="utf-8"))
        record["state"] = load_file(str(folder / BEST))
        model.load_state_dict(record["state"])
        log.info("%s: finished in an earlier attempt, taken from %s", stage.name, folder)
        return {**record, "stage": stage}
    trainer = _trainer(ctx, stage, model, tokenizer, train_ds, valid_ds, autocast)
    resume = last_complete_checkpoint(folder)
    if resume is not None:
        log.info("%s: resuming from %s", stage.name, resume)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - started
    history = [e for e in trainer.state.log_history if "eval_accuracy" in e or "loss" in e]
    best_step = int(str(trainer.state.best_model_checkpoint).rsplit("-", 1)[-1])
    best = next(e for e in history if e.get("step") == best_step and "eval_accuracy" in e)
    record = {"seed": stage.seed, "lr": stage.learning_rate, "accuracy": best["eval_accuracy"],
              "macro_f1": best["eval_macro_f1"], "nll": best["eval_nll"], "step": best_step,
              "steps": trainer.state.global_step, "seconds": seconds,
              "resumed_from": str(resume) if resume else None, "history": _history(history)}
    state = {k: v.detach().clone().contiguous() for k, v in trainer.model.state_dict().items()}
    _save_result(folder, record, state)
    return {**record, "state": state, "stage": stage}


def _save_result(folder: Path, record: dict[str, Any], state: dict[str, Any]) -> None:
    """The stage's best weights, then its record (a stage counts as finished once both exist); its
    checkpoints are no longer needed."""
    _save_weights(folder / BEST, state)
    atomic_write_json(folder / RESULT, record)
    for child in folder.glob("checkpoint-*"):
        shutil.rmtree(child, ignore_errors=True)


def _save_weights(path: Path, state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp))
    os.replace(tmp, path)


def _history(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("step", "epoch", "loss", "eval_accuracy", "eval_macro_f1", "eval_nll", "eval_loss")
    return [{k: e[k] for k in keys if k in e} for e in entries]


def _metrics(pred: Any) -> dict[str, float]:
    """Accuracy, macro-F1, NLL and the selection score: accuracy minus NLL / (1000 n), which orders by
    accuracy (one item is 1/n) and breaks ties by the lower NLL."""
    from sklearn.metrics import f1_score

    from domainfm.engine.calibration import softmax

    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
    logits, y = np.asarray(logits, dtype=np.float64), np.asarray(pred.label_ids)
    probs = softmax(logits)
    nll = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))))
    accuracy = float(np.mean(logits.argmax(1) == y))
    return {"accuracy": accuracy, "macro_f1": float(f1_score(y, logits.argmax(1), average="macro")), "nll": nll,
            SELECTION: accuracy - nll / (1000 * max(1, len(y)))}


def _score(trainer: Any, valid_ds: Any, state: dict[str, Any]) -> tuple[float, float]:
    """(accuracy, NLL) of ``state`` on validation."""
    trainer.model.load_state_dict(state)
    metrics = trainer.predict(valid_ds, metric_key_prefix="soup").metrics
    return metrics["soup_accuracy"], metrics["soup_nll"]


def _save_curves(ctx: RunContext, runs: list[dict[str, Any]], best: float) -> None:
    """Every seed's training loss and validation figures, one curve per seed, in the artifact's training log."""
    from domainfm.tracking import model_name
    from domainfm.training_log import save_log_history

    entries = [{**h, "seed": r["seed"]} for r in runs for h in r["history"]]
    save_log_history(ctx.artifact_dir, model_name(ctx), entries, metric_for_best_model="accuracy", best_metric=best)


# ----------------------------------------------------------------------------------- intermediate task


def _domain_loader(ctx: RunContext) -> IntermediateLoader:
    if ctx.pm is None:
        raise ConfigError("train.recipe.intermediate: this run has no plugin manager to load the source through; "
                          "pass intermediate_data to fine_tune_text_classifier")
    pm = ctx.pm

    def load(source: str) -> DataBundle:
        bundle = pm.hooks.load_data(ctx, ctx.domain, source)
        if bundle is None:
            raise ConfigError(f"train.recipe.intermediate={source!r}: domain {ctx.domain} loads no such source")
        return bundle

    return load


def _intermediate_stage(ctx: RunContext, load: IntermediateLoader, base_path: Path, labels: list[str], tokenizer: Any,
                        task_texts: Sequence[str], stage: Stage, autocast: str | None
                        ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train on the intermediate source; returns (the weights every seed starts from, what was done).

    :raises DataError: the source has a label outside the task's labels (its head would mean nothing).
    :raises ConfigError: fewer than 10 of its rows are left once the task's own texts are dropped.
    """
    source = str(ctx.config.train.recipe.intermediate)
    folder = ctx.checkpoint_dir / stage.name
    done_file, start_file = folder / "intermediate.json", folder / START
    if done_file.is_file() and start_file.is_file():
        import json

        from safetensors.torch import load_file

        return load_file(str(start_file)), json.loads(done_file.read_text(encoding="utf-8"))
    bundle = load(source)
    texts = [str(t) for table in bundle.tables.values() for t in table["text"]]
    raw = [v for table in bundle.tables.values() for v in table["label"]]
    y_all = encode_labels(raw, labels, f"train.recipe.intermediate ({bundle.source})")
    own = {text_key(t) for t in task_texts}
    keep = [i for i, t in enumerate(texts) if text_key(t) not in own]
    if len(keep) < 10:
        raise ConfigError(f"train.recipe.intermediate={source!r}: only {len(keep)} rows are not in the task's data; "
                          "too few to train on")
    y = np.asarray([y_all[i] for i in keep])
    train_idx, valid_idx = stratified_split_indices(y.tolist(), (0.9, 0.1), seed=stage.seed)
    x = [texts[keep[i]] for i in train_idx], [texts[keep[i]] for i in valid_idx]
    max_length = ctx.config.model.max_length
    train_ds = tokenized_dataset(tokenizer, x[0], None, y[train_idx].tolist(), max_length)
    valid_ds = tokenized_dataset(tokenizer, x[1], None, y[valid_idx].tolist(), max_length)
    model = _model(ctx, base_path, labels, None)
    run = _run_stage(ctx, stage, model, tokenizer, train_ds, valid_ds, autocast)
    if ctx.config.model.mode == "lora":
        model = model.merge_and_unload()
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    done = {"source": bundle.source, "rows": len(texts), "dropped_in_task_data": len(texts) - len(keep),
            "train_examples": len(train_idx), "validation_examples": len(valid_idx), "epochs": stage.epochs,
            "steps": run["steps"], "best_step": run["step"], "validation_accuracy": run["accuracy"],
            "validation_macro_f1": run["macro_f1"], "seconds": round(run["seconds"], 1)}
    _save_weights(start_file, state)
    atomic_write_json(done_file, done)
    log.info("intermediate %s: %s", source, done)
    return state, done


def select_by_default(ctx: RunContext) -> None:
    """For a domain whose default is the recipe: select it for full and lora unless the run set
    ``train.strategy`` itself (an explicit ``train.strategy=trainer`` stays)."""
    train = ctx.config.train
    if "strategy" not in train.model_fields_set and ctx.config.model.mode in RECIPE_MODES:
        train.strategy = "recipe"
