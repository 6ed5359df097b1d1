"""Fine-tuning and inference for transformer text classifiers (single texts or text pairs).

Six modes, chosen by ``ctx.config.model.mode``:

- ``full``: every weight trains (Hugging Face ``Trainer``);
- ``lora``: low-rank adapters via peft on the attention projections, merged into the weights at the end so
  the artifact loads as a plain model;
- ``head``: the encoder stays frozen; sentence embeddings are computed once and a multinomial logistic
  regression head is fitted on them (minutes on a CPU instead of hours);
- ``lpft``: that head first, then every weight fine-tuned under it through the sentence encoder's own pooling
  (:mod:`domainfm.engine.lpft`); saved as a head artifact with its own encoder;
- ``contrastive``: for a few examples per label, the encoder tuned with in-batch negatives (same-label texts
  together), its step count chosen on validation, then that head (:mod:`domainfm.engine.contrastive`); saved
  like ``lpft``;
- ``distill``: ``model.teacher`` fine-tuned (or a trained artifact reused), then the base model trained on the
  teacher's temperature-scaled probabilities plus the gold labels, over the training split and optional
  unlabelled text (:mod:`domainfm.engine.distill`); saved like ``full``, with both models' quality and speed.

Trainer runs (:mod:`domainfm.engine.hf_trainer`) get dynamic padding, length-grouped batches, AMP on GPU,
gradient accumulation, early stopping on validation macro-F1, seeds, and checkpoints under
``ctx.checkpoint_dir`` that a re-run resumes from. A checkpoint counts only once its completion marker is
written, so a kill in the middle of a save never resumes from a half-written checkpoint. Under ``torchrun`` the Trainer runs DDP (gloo on CPU).
``train.class_weights=balanced`` weights the cross-entropy (Trainer modes) and the logistic-regression heads by
``n / (K * n_k)``, for macro-F1 on imbalanced labels. ``train.strategy=recipe`` trains full or lora with
:mod:`domainfm.engine.recipe` instead (layer-wise LR decay, unfreezing, a soup of seeds, an intermediate task;
resumable too). Every model is temperature-calibrated on the validation split. The loaded model is
:class:`domainfm.engine.classifier_predictor.TextClassifierPredictor` (also importable from here).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.config import DEFAULT_BASE_MODEL
from domainfm.data import encode_labels
from domainfm.engine.calibration import (
    expected_calibration_error,
    fit_temperature_calibrator,
    softmax,
)
from domainfm.engine.class_weights import sklearn_class_weight, training_class_weights
from domainfm.engine.classifier_evaluation import (  # noqa: F401 (re-exported: they lived here)
    choose_abstain_threshold,
    evaluate_text_classifier,
    save_evaluation,
)
from domainfm.engine.classifier_evaluation import table_texts as _texts
from domainfm.engine.classifier_predictor import (  # re-exported too: the predictor lived here
    KIND_HEAD,
    KIND_HF,
    TextClassifierPredictor,
)
from domainfm.engine.classifier_predictor import pair_features as _pair_features
from domainfm.engine.hf_trainer import (
    COMPLETE_MARKER,  # noqa: F401 (re-exported: it lived here)
    build_trainer,
    count_parameters,
    last_complete_checkpoint,  # noqa: F401 (re-exported: it lived here)
    load_sequence_classifier,
    save_log_history,
    tokenized_dataset,
    train_with_resume,
    training_record,
)
from domainfm.engine.precision import training_autocast
from domainfm.errors import ConfigError, DataError
from domainfm.io import atomic_directory, save_arrays
from domainfm.models import resolve_model
from domainfm.types import (
    Artifact,
    DataBundle,
    RunContext,
)

# peft rates measured in benchmarks/techniques (PhraseBank, 800 rows, 6 epochs): lora 5e-4 and ia3 3e-3 and prompt
# 1e-2 stayed at the majority class or near it; 2e-3 / 1e-2 / 3e-2 learnt (lora 2e-3 is also the finance recipe's)
DEFAULT_LR = {"full": 5e-5, "lora": 2e-3, "head": 1.0, "lpft": 3e-5, "contrastive": 3e-5, "distill": 5e-5,
              "adalora": 2e-3, "ia3": 1e-2, "prompt": 3e-2, "ptuning": 1e-2}
PROBE_C_GRID = [0.5, 2.0, 8.0, 32.0]


# ----------------------------------------------------------------------------------- helpers


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _is_main_process() -> bool:
    return _rank() == 0


# ----------------------------------------------------------------------------------- training


def fine_tune_text_classifier(
    ctx: RunContext,
    data: DataBundle,
    *,
    label_names: Sequence[str],
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | None = None,
    train_split: str = "train",
    eval_split: str = "validation",
    intermediate_data: Callable[[str], DataBundle] | None = None,
) -> Artifact:
    """Fine-tune the configured base model on ``data`` and save the artifact to ``ctx.artifact_dir``.

    Labels in ``label_column`` may be strings from ``label_names`` or integer ids. Returns the
    :class:`~domainfm.types.Artifact` (metadata saved), with the validation temperature, validation
    metrics, parameter counts and training seconds in ``metadata``. Under ``train.strategy=recipe``
    (:mod:`domainfm.engine.recipe`) ``intermediate_data`` loads ``train.recipe.intermediate`` (default: the
    domain's ``domainfm_load_data`` through ``ctx.pm``).
    """
    cfg = ctx.config
    base = cfg.model.base or DEFAULT_BASE_MODEL
    resolved = resolve_model(base, revision=cfg.model.revision)
    train = data.split(train_split)
    valid = data.tables.get(eval_split)
    labels = list(label_names)

    def ids_of(table: Any, where: str) -> list[int]:
        raw = table[label_column]
        if raw and isinstance(raw[0], (int, np.integer)):
            bad = [i for i, v in enumerate(raw) if not 0 <= int(v) < len(labels)]
            if bad:
                raise DataError(f"{where}: row {bad[0]}: label id {raw[bad[0]]} outside 0..{len(labels) - 1}")
            return [int(v) for v in raw]
        return encode_labels(raw, labels, where)

    y_train = ids_of(train, f"{data.source}[{train_split}]")
    x_train = _texts(train, text_column, f"{data.source}[{train_split}]")
    p_train = _texts(train, text_pair_column, f"{data.source}[{train_split}]") if text_pair_column else None
    if valid is not None and len(valid):
        y_valid = ids_of(valid, f"{data.source}[{eval_split}]")
        x_valid = _texts(valid, text_column, f"{data.source}[{eval_split}]")
        p_valid = _texts(valid, text_pair_column, f"{data.source}[{eval_split}]") if text_pair_column else None
    else:
        y_valid, x_valid, p_valid = [], [], None

    _check_toolbox(cfg)
    if cfg.train.dp.enabled:  # DP-SGD on the head: its own training, calibration and metadata
        return _train_dp_head(ctx, data, labels, text_column, label_column, text_pair_column, train_split, eval_split)
    started = time.perf_counter()
    columns: dict[str, Any] = {"text_column": text_column, "label_column": label_column, "text_pair_column": text_pair_column,
               "train_split": train_split, "eval_split": eval_split}
    if cfg.train.ensemble_size > 1:
        if cfg.model.mode == "distill":
            raise ConfigError("train.ensemble_size > 1 with model.mode=distill: distil one student from the teacher "
                              "(or make the teacher an ensemble artifact and pass it as model.teacher)")
        if cfg.model.mode == "head":
            raise ConfigError("train.ensemble_size > 1 with model.mode=head: a frozen encoder's logistic head is the same "
                              "for every seed, so the members would be identical; use full, lora, lpft or contrastive")
        artifact = _train_ensemble(ctx, data, labels, columns, started)
        return _calibrate_on_validation(ctx, artifact, x_valid, p_valid, y_valid, with_macro_f1=True)
    if cfg.train.strategy == "recipe":  # layer-wise LR decay, seeds soup, intermediate task (engine.recipe)
        from domainfm.engine import recipe

        metadata = recipe.fit(ctx, resolved.path, labels, (x_train, p_train, y_train), (x_valid, p_valid, y_valid),
                              intermediate_data=intermediate_data,
                              task_texts=[str(t) for table in data.tables.values() for t in table[text_column]])
        kind = KIND_HF
    elif cfg.model.mode == "head":
        metadata = _fit_head(ctx, resolved.path, labels, x_train, p_train, y_train, x_valid, p_valid, y_valid)
        kind = KIND_HEAD
    elif cfg.model.mode == "lpft":
        if p_train is not None:
            raise DataError(f"{data.source}: model.mode=lpft classifies single texts; for text pairs use full or lora")
        metadata = _fit_transformer(ctx, resolved.path, labels, x_train, None, y_train, x_valid, None, y_valid)
        kind = KIND_HEAD
    elif cfg.model.mode == "contrastive":
        if p_train is not None:
            raise DataError(f"{data.source}: model.mode=contrastive classifies single texts; for text pairs use full or lora")
        metadata = _fit_contrastive(ctx, resolved.path, labels, x_train, y_train, x_valid, y_valid)
        kind = KIND_HEAD
    elif cfg.model.mode == "distill":
        from domainfm.engine import distill

        metadata = distill.fit_student(
            ctx, data, resolved.path, labels, columns, (x_train, p_train, y_train), (x_valid, p_valid, y_valid),
            lambda teacher_ctx: fine_tune_text_classifier(teacher_ctx, data, label_names=labels, **columns),
        )
        kind = KIND_HEAD if cfg.model.distill_student == "lpft" else KIND_HF
    else:
        metadata = _fit_transformer(ctx, resolved.path, labels, x_train, p_train, y_train, x_valid, p_valid, y_valid)
        kind = KIND_HF
    seconds = time.perf_counter() - started
    ctx.resources.train_seconds = seconds
    ctx.resources.parameters = metadata.get("parameters")
    ctx.resources.trainable_parameters = metadata.get("trainable_parameters")

    artifact = Artifact(
        path=ctx.artifact_dir,
        domain=ctx.domain,
        kind=kind,
        base_model=base,
        label_names=labels,
        device=ctx.device,
        metadata={
            **metadata,
            "mode": cfg.model.mode,
            "max_length": cfg.model.max_length,
            "text_column": text_column,
            "text_pair_column": text_pair_column,
            "train_seconds": seconds,
            "train_examples": len(x_train),
            "resolved_from": resolved.source,
        },
    )
    if _is_main_process():
        artifact.save_metadata()
    artifact = _calibrate_on_validation(ctx, artifact, x_valid, p_valid, y_valid)
    if cfg.model.mode == "distill" and _is_main_process():
        from domainfm.engine import distill

        artifact = distill.record_comparison(ctx, artifact, x_valid, p_valid, y_valid)
    return artifact


def _train_dp_head(ctx: RunContext, data: DataBundle, labels: list[str], text_column: str, label_column: str,
                   text_pair_column: str | None, train_split: str, eval_split: str) -> Artifact:
    """``train.dp.enabled``: :func:`domainfm.privacy.dp_training.train_dp_head`, for single texts and model.mode=head."""
    from domainfm.privacy.dp_training import train_dp_head

    cfg = ctx.config
    if cfg.model.mode != "head" or cfg.train.ensemble_size > 1:
        raise ConfigError(f"train.dp.enabled: DP-SGD trains one linear head on frozen embeddings; use model.mode=head "
                          f"and train.ensemble_size=1 (got model.mode={cfg.model.mode}, "
                          f"train.ensemble_size={cfg.train.ensemble_size})")
    if text_pair_column:
        raise ConfigError("train.dp.enabled: the DP head classifies single texts, not text pairs")
    return train_dp_head(ctx, data, label_names=labels, text_column=text_column, label_column=label_column,
                         train_split=train_split, eval_split=eval_split)


def _check_toolbox(cfg: Any) -> None:
    """train.augment / adversarial / regularisation apply to the Trainer modes; elsewhere they would be ignored."""
    from domainfm.engine.augment import text_methods

    train = cfg.train
    asked = [name for name, on in (("train.augment", bool(train.augment.methods)),
                                   ("train.adversarial", train.adversarial.method != "none"),
                                   ("train.regularisation", bool(train.regularisation.rdrop or train.regularisation.label_smoothing)))
             if on]
    if asked and cfg.model.mode in ("head", "contrastive"):
        raise ConfigError(f"{', '.join(asked)}: model.mode={cfg.model.mode} trains no Trainer loss they could change; "
                          "use full, lora, adalora, ia3, prompt, ptuning, lpft or distill")
    if cfg.model.mode == "distill" and text_methods(train.augment):
        raise ConfigError("train.augment.methods: the text rewrites (swap, delete, insert, keyboard, ocr) are not "
                          "applied to a distilled student (its teacher logits are computed on the rows as given); "
                          "cutoff and mixup are")


def _calibrate_on_validation(
    ctx: RunContext, artifact: Artifact, x_valid: list[str], p_valid: list[str] | None, y_valid: list[int],
    *, with_macro_f1: bool = False,
) -> Artifact:
    """Fit the artifact's temperature on validation and record validation ECE/accuracy (and macro-F1 when
    asked: an ensemble has no training-time best score of its own); DDP ranks other than 0 load the result."""
    if _is_main_process():
        predictor = TextClassifierPredictor.load(artifact, ctx.device)
        if x_valid:
            logits = predictor.predict_logits(x_valid, p_valid)
            calibrator = fit_temperature_calibrator(logits, y_valid)
            probs = calibrator.apply(logits)
            artifact.metadata["temperature"] = calibrator.temperature
            artifact.metadata["calibrator"] = calibrator.to_metadata()
            artifact.metadata["validation_ece_before"] = expected_calibration_error(softmax(logits), y_valid)
            artifact.metadata["validation_ece"] = expected_calibration_error(probs, y_valid)
            artifact.metadata["validation_accuracy"] = float(np.mean(probs.argmax(1) == np.asarray(y_valid)))
            if with_macro_f1:
                from sklearn.metrics import f1_score

                artifact.metadata["best_validation_macro_f1"] = float(f1_score(y_valid, probs.argmax(1), average="macro"))
        artifact.save_metadata()
    _barrier()
    if not _is_main_process():  # other DDP ranks pick up what rank 0 wrote
        artifact = Artifact.load(ctx.artifact_dir)
    return artifact


def _train_ensemble(ctx: RunContext, data: DataBundle, labels: list[str], columns: dict[str, Any], started: float) -> Artifact:
    """``train.ensemble_size`` members of the configured mode, seeds ``train.seed + i`` (:mod:`domainfm.engine.ensemble`)."""
    from domainfm.engine import ensemble

    cfg = ctx.config
    members = ensemble.train_members(ctx, lambda member_ctx: fine_tune_text_classifier(member_ctx, data, label_names=labels, **columns))
    seconds = time.perf_counter() - started
    parameters = sum(int(m.metadata.get("parameters") or 0) for m in members)
    trainable = sum(int(m.metadata.get("trainable_parameters") or 0) for m in members)
    ctx.resources.train_seconds = seconds
    ctx.resources.parameters = parameters
    ctx.resources.trainable_parameters = trainable
    metadata = {
        "mode": cfg.model.mode,
        "ensemble_size": len(members),
        "max_length": cfg.model.max_length,
        "text_column": columns["text_column"],
        "text_pair_column": columns["text_pair_column"],
        "train_seconds": seconds,
        "train_examples": members[0].metadata.get("train_examples"),
        "resolved_from": members[0].metadata.get("resolved_from"),
        "parameters": parameters,
        "trainable_parameters": trainable,
    }
    artifact = ensemble.assemble(ctx, members, metadata) if _is_main_process() else None
    _barrier()
    return artifact if artifact is not None else Artifact.load(ctx.artifact_dir)


def _barrier() -> None:
    """Wait for every DDP rank (a no-op outside torchrun)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _fit_head(
    ctx: RunContext,
    base_path: Path,
    labels: list[str],
    x_train: list[str],
    p_train: list[str] | None,
    y_train: list[int],
    x_valid: list[str],
    p_valid: list[str] | None,
    y_valid: list[int],
) -> dict[str, Any]:
    """Frozen encoder + logistic-regression head, its C chosen on validation macro-F1."""
    from domainfm.engine.encoder import TextEncoder
    from domainfm.engine.lpft import fit_probe

    encoder = TextEncoder(str(base_path), device=ctx.device, max_length=ctx.config.model.max_length)
    feats_train = _pair_features(encoder, x_train, p_train, ctx.config.train.eval_batch_size)
    feats_valid = _pair_features(encoder, x_valid, p_valid, ctx.config.train.eval_batch_size) if x_valid else None
    grid = [ctx.config.train.learning_rate] if ctx.config.train.learning_rate else PROBE_C_GRID
    probe = fit_probe(feats_train, y_train, feats_valid, y_valid, len(labels), grid, ctx.config.train.seed,
                      class_weight=sklearn_class_weight(ctx.config.train))
    weight, bias = probe["weight"], probe["bias"]
    if _is_main_process():
        with atomic_directory(ctx.artifact_dir) as tmp:
            save_arrays(tmp / "head.safetensors", {"weight": weight, "bias": bias})
    total = sum(p.numel() for p in encoder.model.parameters())
    return {
        "parameters": int(total + weight.size + bias.size),
        "trainable_parameters": int(weight.size + bias.size),
        "head_C": probe["C"],
        "head_class_weight": sklearn_class_weight(ctx.config.train),
        "validation_macro_f1_head": probe["validation_macro_f1"],
        "pair_features": bool(p_train),
    }


def _fit_contrastive(
    ctx: RunContext,
    base_path: Path,
    labels: list[str],
    x_train: list[str],
    y_train: list[int],
    x_valid: list[str],
    y_valid: list[int],
) -> dict[str, Any]:
    """Contrastive tuning of the sentence encoder, then the head on its embeddings; the step count and the
    head's C chosen on validation macro-F1 (:mod:`domainfm.engine.contrastive`)."""
    from domainfm.engine import contrastive, lpft
    from domainfm.engine.encoder import TextEncoder

    cfg = ctx.config
    encoder = TextEncoder(str(base_path), device=ctx.device, max_length=cfg.model.max_length)
    batch = cfg.train.eval_batch_size
    fitted: dict[int, dict[str, Any]] = {}

    def fit_head(step: int) -> float:
        feats_valid = encoder.encode(x_valid, batch_size=batch) if x_valid else None
        fitted[step] = lpft.fit_probe(encoder.encode(x_train, batch_size=batch), y_train, feats_valid, y_valid,
                                      len(labels), PROBE_C_GRID, cfg.train.seed,
                                      class_weight=sklearn_class_weight(cfg.train))
        return fitted[step]["validation_macro_f1"]

    steps = cfg.train.max_steps or contrastive.DEFAULT_STEPS
    autocast = training_autocast(ctx.device, cfg.train.mixed_precision)
    tuning = contrastive.tune(
        encoder.model, x_train, y_train, steps=steps,
        learning_rate=cfg.train.learning_rate or DEFAULT_LR["contrastive"], pairs_per_step=cfg.train.batch_size,
        seed=cfg.train.seed, device=ctx.device, score=fit_head if x_valid else None,
        eval_every=cfg.train.eval_steps or contrastive.DEFAULT_EVAL_EVERY, patience=cfg.train.early_stopping_patience,
        autocast=autocast,
    )
    probe = fitted.get(tuning["best_step"]) if x_valid else None
    if probe is None:  # no validation data: the last step's encoder, the grid's first C
        fit_head(tuning["best_step"])
        probe = fitted[tuning["best_step"]]
    tuned = tuning["best_step"] > 0  # else the frozen encoder won: a plain head artifact on the base model
    if _is_main_process():
        with atomic_directory(ctx.artifact_dir) as tmp:
            if tuned:
                encoder.model.save(str(tmp / lpft.ENCODER_DIR))
            save_arrays(tmp / "head.safetensors", {"weight": probe["weight"], "bias": probe["bias"]})
        from domainfm.training_log import save_log_history

        scores = {int(k): v for k, v in tuning["score_by_step"].items()}  # the head's validation macro-F1 per step
        save_log_history(ctx.artifact_dir, ctx.variant or "model", sorted(
            [{"step": s, "loss": v} for s, v in tuning.get("loss_by_step", [])] + [{"step": s, "eval_macro_f1": v} for s, v in scores.items()],
            key=lambda e: e["step"]), metric_for_best_model="macro_f1", best_metric=scores.get(tuning["best_step"]))
    total = sum(p.numel() for p in encoder.model.parameters())
    head_size = int(probe["weight"].size + probe["bias"].size)
    return {
        **({"encoder": lpft.ENCODER_DIR} if tuned else {}),
        "parameters": int(total) + head_size,
        "trainable_parameters": (int(total) if tuned else 0) + head_size,
        "head_C": probe["C"],
        "head_class_weight": sklearn_class_weight(ctx.config.train),
        "validation_macro_f1_head": probe["validation_macro_f1"],
        "best_validation_macro_f1": probe["validation_macro_f1"] if x_valid else None,
        "contrastive_steps": tuning["best_step"],
        "contrastive_steps_run": tuning["steps_run"],
        "validation_macro_f1_by_step": tuning["score_by_step"],
        "learning_rate": cfg.train.learning_rate or DEFAULT_LR["contrastive"],
        "pairs_per_step": tuning["pairs_per_step"],
        "training_autocast": autocast or "float32",
        "pooling": "the base sentence-transformer's own (mean for MiniLM)",
        "pair_features": False,
    }


def _fit_transformer(
    ctx: RunContext,
    base_path: Path,
    labels: list[str],
    x_train: list[str],
    p_train: list[str] | None,
    y_train: list[int],
    x_valid: list[str],
    p_valid: list[str] | None,
    y_valid: list[int],
) -> dict[str, Any]:
    """``full``, ``lpft`` and the peft modes: fine-tune under the Hugging Face Trainer
    (:mod:`domainfm.engine.hf_trainer`), with the toolbox's augmentation, adversarial training and regularisation
    (:mod:`domainfm.engine.augment`, :mod:`domainfm.engine.loss_terms`) when configured."""
    from transformers import set_seed

    from domainfm.engine import peft_modes
    from domainfm.engine.augment import augment_training_rows
    from domainfm.engine.loss_terms import loss_trainer_class, needs_loss_trainer, terms_from_config

    cfg = ctx.config
    terms = terms_from_config(cfg.train)
    if cfg.model.mode == "lpft" and any(t.needs_embeddings for t in terms):
        raise ConfigError("model.mode=lpft runs a sentence encoder on token ids: train.augment mixup and "
                          "train.adversarial need a sequence classifier (full or a peft mode)")
    n_rows = len(x_train)
    # training rows only: validation (model selection, calibration) and test stay as collected
    x_train, p_train, y_train = augment_training_rows(x_train, p_train, y_train, cfg.train.augment, cfg.train.seed)
    set_seed(cfg.train.seed)  # the new classifier head is initialised below, before the Trainer seeds
    model, tokenizer, probe_meta = _build_transformer_model(ctx, base_path, labels, x_train, y_train, x_valid, y_valid)
    total, trainable = count_parameters(model)
    train_ds = tokenized_dataset(tokenizer, x_train, p_train, y_train, cfg.model.max_length)
    valid_ds = tokenized_dataset(tokenizer, x_valid, p_valid, y_valid, cfg.model.max_length) if x_valid else None
    lr = cfg.train.learning_rate or DEFAULT_LR[cfg.model.mode]
    autocast = training_autocast(ctx.device, cfg.train.mixed_precision)
    class_weights = training_class_weights(cfg.train, y_train, labels)
    composed = needs_loss_trainer(cfg.train, terms)
    trainer = build_trainer(
        ctx, model, tokenizer, train_ds, valid_ds, learning_rate=lr, autocast=autocast,
        class_weights=None if composed else class_weights,  # the composed loss weights its own cross-entropy
        head_learning_rate=cfg.train.head_learning_rate if cfg.model.mode in ("full", "lpft") else None,
        trainer_class=loss_trainer_class(terms, class_weights=class_weights) if composed else None,
    )
    if cfg.model.mode == "adalora":
        peft_modes.prepare_adalora_trainer(trainer)
    train_with_resume(ctx, trainer)

    final, merged = (peft_modes.finish(trainer.model, cfg.model.mode) if cfg.model.mode in peft_modes.PEFT_MODES
                     else (trainer.model, False))
    if trainer.is_world_process_zero():
        _save_transformer_artifact(ctx, final, tokenizer, len(labels), y_train)
        save_log_history(ctx, trainer)
    techniques = _technique_metadata(cfg, terms, n_rows, len(x_train))
    return {
        **techniques,
        **({"adapters_merged": merged} if cfg.model.mode in peft_modes.PEFT_MODES else {}),
        **({"peft_adapter": peft_modes.ADAPTER_DIR}
           if cfg.model.mode in peft_modes.PEFT_MODES and not merged else {}),
        **training_record(ctx, trainer, parameters=total, trainable=trainable, learning_rate=lr, autocast=autocast,
                          class_weights=class_weights),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        **probe_meta,
    }


def _build_transformer_model(
    ctx: RunContext, base_path: Path, labels: list[str], x_train: list[str], y_train: list[int],
    x_valid: list[str], y_valid: list[int],
) -> tuple[Any, Any, dict[str, Any]]:
    """The model to fine-tune for the configured mode, its tokenizer, and the probe's metadata (lpft only)."""
    cfg = ctx.config
    if cfg.model.mode == "lpft":
        return probe_then_model(ctx, base_path, len(labels), x_train, y_train, x_valid, y_valid)
    model, tokenizer = load_sequence_classifier(base_path, labels, trust_remote_code=cfg.model.trust_remote_code)
    from domainfm.engine import peft_modes

    if cfg.model.mode in peft_modes.PEFT_MODES:
        model = peft_modes.add_adapters(model, cfg.model, _total_steps(ctx, len(x_train)))
    return model, tokenizer, {}


def _total_steps(ctx: RunContext, n_train: int) -> int:
    """Optimizer steps the Trainer will take (AdaLoRA's rank schedule needs it up front)."""
    train = ctx.config.train
    per_epoch = max(1, -(-n_train // (train.batch_size * train.grad_accum)))
    return int(train.max_steps or max(1, round(per_epoch * train.epochs)))


def _technique_metadata(cfg: Any, terms: list[Any], n_rows: int, n_trained: int) -> dict[str, Any]:
    """What the artifact records of train.augment / adversarial / regularisation (only what is switched on)."""
    train = cfg.train
    out: dict[str, Any] = {}
    if train.augment.methods:
        out["augment"] = {**train.augment.model_dump(), "training_rows": n_rows, "rows_after_augmentation": n_trained}
    if train.adversarial.method != "none":
        out["adversarial"] = train.adversarial.model_dump()
    if train.regularisation.rdrop or train.regularisation.label_smoothing:
        out["regularisation"] = train.regularisation.model_dump()
    if terms:
        out["loss_terms"] = [t.name for t in terms]
    return out


def _save_transformer_artifact(ctx: RunContext, model: Any, tokenizer: Any, n_labels: int, y_train: list[int]) -> None:
    with atomic_directory(ctx.artifact_dir) as tmp:
        if ctx.config.model.mode == "lpft":
            from domainfm.engine import lpft

            lpft.save(model, tmp, never_seen=sorted(set(range(n_labels)) - set(y_train)))
        elif hasattr(model, "peft_config"):  # prompt / P-tuning: the adapter cannot be merged
            from domainfm.engine import peft_modes

            peft_modes.save_adapter(model, tmp)
            tokenizer.save_pretrained(str(tmp))
        else:
            model.save_pretrained(str(tmp), safe_serialization=True)
            tokenizer.save_pretrained(str(tmp))


def probe_then_model(
    ctx: RunContext, base_path: Path, n_labels: int, x_train: list[str], y_train: list[int],
    x_valid: list[str], y_valid: list[int],
) -> tuple[Any, Any, dict[str, Any]]:
    """LP-FT's first stage: the linear probe on frozen embeddings, and the module to fine-tune under it (also the
    start of a distilled student with ``model.distill_student=lpft``)."""
    from domainfm.engine import lpft
    from domainfm.engine.encoder import TextEncoder

    cfg = ctx.config
    encoder = TextEncoder(str(base_path), device=ctx.device, max_length=cfg.model.max_length)
    feats_train = encoder.encode(x_train, batch_size=cfg.train.eval_batch_size)
    feats_valid = encoder.encode(x_valid, batch_size=cfg.train.eval_batch_size) if x_valid else None
    probe = lpft.fit_probe(feats_train, y_train, feats_valid, y_valid, n_labels, PROBE_C_GRID, cfg.train.seed,
                           class_weight=sklearn_class_weight(ctx.config.train))
    model = lpft.build_model(encoder.model, probe["weight"], probe["bias"])
    meta = {"encoder": lpft.ENCODER_DIR, "probe_C": probe["C"], "validation_macro_f1_probe": probe["validation_macro_f1"],
            "pooling": "the base sentence-transformer's own (mean for MiniLM)"}
    return model, encoder.model.tokenizer, meta


def remove_checkpoints(ctx: RunContext) -> None:
    """Delete training checkpoints once the artifact is saved (they can be large)."""
    shutil.rmtree(ctx.checkpoint_dir, ignore_errors=True)
