"""The Hugging Face ``Trainer`` run behind the ``full``, ``lora`` and ``lpft`` modes of
:mod:`domainfm.engine.text_classifier`: the pretrained classifier and its LoRA adapters, tokenised datasets,
training arguments, metrics, callbacks, the optimizer, checkpoints with their completion marker, and resume.

torch, datasets, transformers and peft are imported inside the functions, like the rest of the engine.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.config import ModelConfig
from domainfm.engine.class_weights import weighted_cross_entropy
from domainfm.io import atomic_write_json
from domainfm.types import RunContext

log = logging.getLogger(__name__)

COMPLETE_MARKER = "domainfm-checkpoint-complete"
HEAD_PREFIX = ("classifier", "head.")  # an HF classifier's head; the lpft module's linear head


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-N`` directory that has its completion marker."""
    if not folder.is_dir():
        return None
    done = []
    for child in folder.iterdir():
        if child.is_dir() and child.name.startswith("checkpoint-") and (child / COMPLETE_MARKER).is_file():
            try:
                done.append((int(child.name.split("-")[-1]), child))
            except ValueError:
                continue
    return max(done)[1] if done else None


def count_parameters(model: Any) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return int(total), int(trainable)


def load_sequence_classifier(base_path: Path, labels: list[str], *, trust_remote_code: bool) -> tuple[Any, Any]:
    """The base model with a new, randomly initialised classification head for ``labels``, and its tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_path), trust_remote_code=trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(base_path),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        trust_remote_code=trust_remote_code,
        use_safetensors=True,
    )
    return model, tokenizer


def add_lora_adapters(model: Any, model_config: ModelConfig) -> Any:
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=model_config.lora_r,
        lora_alpha=model_config.lora_alpha,
        lora_dropout=model_config.lora_dropout,
        target_modules=model_config.lora_target_modules or ["query", "value"],
    )
    return get_peft_model(model, lora)


def tokenized_dataset(
    tokenizer: Any, texts: list[str], pairs: list[str] | None, ys: list[int], max_length: int,
    extra: dict[str, list[Any]] | None = None,
) -> Any:
    """A ``datasets.Dataset`` of token ids, ``labels`` and a ``length`` column for length-grouped batches;
    ``extra`` columns (one value per text, e.g. teacher logits) are kept as they are."""
    from datasets import Dataset

    def tokenize(batch: dict[str, list[Any]]) -> dict[str, Any]:
        enc = tokenizer(
            batch["text"],
            batch["pair"] if pairs is not None else None,
            truncation=True,
            max_length=max_length,
        )
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        return enc

    cols: dict[str, list[Any]] = {"text": texts, "labels": ys, **(extra or {})}
    if pairs is not None:
        cols["pair"] = pairs
    ds = Dataset.from_dict(cols)
    return ds.map(tokenize, batched=True, remove_columns=[c for c in ("text", "pair") if c in cols])


def build_trainer(
    ctx: RunContext,
    model: Any,
    tokenizer: Any,
    train_ds: Any,
    valid_ds: Any | None,
    *,
    learning_rate: float,
    head_learning_rate: float | None,
    autocast: str | None,
    class_weights: list[float] | None,
    trainer_class: type | None = None,
    data_collator: Any = None,
) -> Any:
    """A ``Trainer`` that checkpoints under ``ctx.checkpoint_dir`` and, given a validation set, keeps the best
    macro-F1 model and stops early. ``head_learning_rate`` (when set) trains the head at its own rate.
    ``trainer_class`` / ``data_collator`` replace the plain ``Trainer`` and padding collator (distillation's loss
    and its teacher-logits column)."""
    from transformers import DataCollatorWithPadding, Trainer

    has_valid = valid_ds is not None
    args = _training_arguments(ctx, learning_rate=learning_rate, autocast=autocast, has_valid=has_valid)
    # about five loss points per epoch (at most every 50 steps): a small set still gets a training curve
    per_epoch = -(-len(train_ds) // (ctx.config.train.batch_size * ctx.config.train.grad_accum))
    args.logging_steps = max(1, min(50, per_epoch // 5))
    callbacks = _callbacks(early_stopping_patience=ctx.config.train.early_stopping_patience if has_valid else 0)
    callbacks += list(ctx.state.get("trainer_callbacks", ()))  # e.g. domainfm tune's per-evaluation reports
    optimizers: tuple[Any, Any] = (None, None)
    if head_learning_rate:
        optimizers = (_head_and_body_optimizer(model, learning_rate, head_learning_rate, ctx.config.train.weight_decay), None)
    from domainfm.tracking import adapt_trainer, trainer_environment

    with trainer_environment(ctx):  # the Trainer's TensorBoard callback reads its folder when it is created
        return adapt_trainer((trainer_class or Trainer)(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=valid_ds,
            data_collator=data_collator or DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
            compute_metrics=_accuracy_and_macro_f1,
            callbacks=callbacks,
            optimizers=optimizers,
            compute_loss_func=weighted_cross_entropy(class_weights) if class_weights is not None else None,
        ), ctx)


def train_with_resume(ctx: RunContext, trainer: Any) -> None:
    """Train, resuming from the newest complete checkpoint (recorded as ``ctx.state["resumed_from"]``)."""
    resume = last_complete_checkpoint(ctx.checkpoint_dir)
    if resume is not None:
        log.info("resuming from %s", resume)
        ctx.state["resumed_from"] = str(resume)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)


def save_log_history(ctx: RunContext, trainer: Any) -> None:
    """The Trainer's log history beside the checkpoints and, as the model's training curves, in its artifact
    (``training_log.json``: the report plots it, the tracking plugin logs it)."""
    from domainfm.tracking import model_name
    from domainfm.training_log import save_training_log

    atomic_write_json(ctx.checkpoint_dir / "trainer_state_summary.json", {"log_history": trainer.state.log_history})
    if ctx.artifact_dir.is_dir():
        save_training_log(ctx.artifact_dir, trainer, model_name(ctx))


def _training_arguments(ctx: RunContext, *, learning_rate: float, autocast: str | None, has_valid: bool) -> Any:
    from transformers import TrainingArguments

    from domainfm.scale.distributed import ddp_backend, per_rank_batch_size
    from domainfm.tracking import trainer_arguments

    train = ctx.config.train
    on_gpu = ctx.device.startswith("cuda")
    strategy = "steps" if train.eval_steps else "epoch"
    return TrainingArguments(
        output_dir=str(ctx.checkpoint_dir),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps or -1,
        per_device_train_batch_size=per_rank_batch_size(train.batch_size),  # train.batch_size is the global batch
        per_device_eval_batch_size=train.eval_batch_size,
        gradient_accumulation_steps=train.grad_accum,
        learning_rate=learning_rate,
        weight_decay=train.weight_decay,
        label_smoothing_factor=train.regularisation.label_smoothing,
        warmup_steps=train.warmup_ratio,
        lr_scheduler_type="linear",
        eval_strategy=strategy if has_valid else "no",
        save_strategy=strategy,
        eval_steps=train.eval_steps,
        save_steps=train.eval_steps or 500,
        save_total_limit=train.save_total_limit,
        load_best_model_at_end=has_valid,
        metric_for_best_model="macro_f1" if has_valid else None,
        greater_is_better=True,
        seed=train.seed,
        data_seed=train.seed,
        train_sampling_strategy="group_by_length" if train.group_by_length else "random",
        length_column_name="length",
        fp16=autocast == "float16",
        bf16=autocast == "bfloat16",
        use_cpu=not on_gpu,
        ddp_backend=ddp_backend(on_gpu),  # gloo between CPU processes, NCCL between GPUs (torchrun, Ray Train)
        dataloader_num_workers=train.num_workers,
        **trainer_arguments(ctx),  # train.report_to: the Trainer's own TensorBoard / MLflow callbacks
        logging_strategy="steps",
        logging_steps=50,
        save_only_model=False,
        disable_tqdm=os.environ.get("DOMAINFM_NO_PROGRESS") == "1",
    )


def _accuracy_and_macro_f1(pred: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
    y_hat = np.asarray(logits).argmax(axis=1)
    return {
        "accuracy": float(accuracy_score(pred.label_ids, y_hat)),
        "macro_f1": float(f1_score(pred.label_ids, y_hat, average="macro")),
    }


def _callbacks(*, early_stopping_patience: int | None) -> list[Any]:
    from transformers import EarlyStoppingCallback

    callbacks: list[Any] = [_mark_complete_callback()]
    if early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=early_stopping_patience))
    return callbacks


def _mark_complete_callback() -> Any:
    """Marks each checkpoint complete once saved, so a kill mid-save never leaves one to resume from."""
    from transformers import TrainerCallback

    class MarkComplete(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if path.is_dir():
                    (path / COMPLETE_MARKER).write_text(str(state.global_step), encoding="utf-8")

    return MarkComplete()


def _head_and_body_optimizer(model: Any, learning_rate: float, head_learning_rate: float, weight_decay: float) -> Any:
    import torch

    head = [p for n, p in model.named_parameters() if n.startswith(HEAD_PREFIX) and p.requires_grad]
    body = [p for n, p in model.named_parameters() if not n.startswith(HEAD_PREFIX) and p.requires_grad]
    return torch.optim.AdamW(
        [{"params": body, "lr": learning_rate}, {"params": head, "lr": head_learning_rate}],
        weight_decay=weight_decay,
    )


def training_record(
    ctx: RunContext, trainer: Any, *, parameters: int, trainable: int, learning_rate: float, autocast: str | None,
    class_weights: Any,
) -> dict[str, Any]:
    """What every Trainer-trained artifact records about its training run (sizes, steps, best score, precision)."""
    return {
        "parameters": parameters,
        "trainable_parameters": trainable,
        "best_validation_macro_f1": trainer.state.best_metric,
        "epochs_run": trainer.state.epoch,
        "global_step": trainer.state.global_step,
        "learning_rate": learning_rate,
        "resumed_from": ctx.state.get("resumed_from"),
        "training_autocast": autocast or "float32",
        "class_weights": None if class_weights is None else [round(float(w), 6) for w in class_weights],
    }
