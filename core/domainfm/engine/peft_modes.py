"""The parameter-efficient modes through peft: ``lora``, ``adalora``, ``ia3``, ``prompt`` and ``ptuning``.

- ``lora``, ``adalora`` and ``ia3`` are merged into the weights after training (``merge_and_unload``): the
  artifact is a plain sequence classifier, as fast as full fine-tuning at inference;
- ``prompt`` (prompt tuning, Lester et al., 2021) and ``ptuning`` (P-tuning, Liu et al., 2021: the prompt comes
  from a small encoder) prepend virtual tokens that cannot be merged; the artifact keeps the adapter (and the
  trained classification head, peft's ``modules_to_save``) in its ``adapter/`` folder and the predictor loads it
  on the base model (:func:`load_adapter_model`).
- AdaLoRA reallocates ranks during training: :func:`adalora_callback` calls peft's ``update_and_allocate``
  after each optimizer step, as peft requires.

Prefix tuning is not offered: peft's ``PrefixTuningConfig`` needs past key values, which BERT / MPNet sequence
classifiers do not take ("Model does not support past key values which are required for prefix tuning").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domainfm.config import ModelConfig
from domainfm.errors import ConfigError

PEFT_MODES = ("lora", "adalora", "ia3", "prompt", "ptuning")
MERGED_MODES = ("lora", "adalora", "ia3")
ADAPTER_DIR = "adapter"


def add_adapters(model: Any, model_config: ModelConfig, total_steps: int,
                 modules_to_save: list[str] | None = None) -> Any:
    """``model`` wrapped for the configured peft mode (its base weights frozen, the head trainable).
    ``modules_to_save`` (lora only): further modules trained in full and saved with the adapters, e.g. the
    pooler under the classifier (peft adds the classifier itself)."""
    from peft import (
        AdaLoraConfig,
        IA3Config,
        LoraConfig,
        PromptEncoderConfig,
        PromptTuningConfig,
        TaskType,
        get_peft_model,
    )

    mode = model_config.mode
    targets = model_config.lora_target_modules
    if mode == "lora":
        config: Any = LoraConfig(task_type=TaskType.SEQ_CLS, r=model_config.lora_r, lora_alpha=model_config.lora_alpha,
                                 lora_dropout=model_config.lora_dropout, target_modules=targets or ["query", "value"],
                                 modules_to_save=modules_to_save)
    elif mode == "adalora":
        # ranks are pruned from init_r to target_r between the first and last 10 % of the steps
        steps = max(total_steps, 10)
        config = AdaLoraConfig(task_type=TaskType.SEQ_CLS, init_r=model_config.adalora_init_r,
                               target_r=model_config.adalora_target_r, lora_alpha=model_config.lora_alpha,
                               lora_dropout=model_config.lora_dropout, target_modules=targets or ["query", "value"],
                               total_step=steps, tinit=steps // 10, tfinal=steps // 10, deltaT=max(1, steps // 20))
    elif mode == "ia3":
        if targets:
            config = IA3Config(task_type=TaskType.SEQ_CLS, target_modules=targets, feedforward_modules=[])
        else:
            config = IA3Config(task_type=TaskType.SEQ_CLS)  # peft's per-architecture keys, values, feed-forward
    elif mode == "prompt":
        config = PromptTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=model_config.prompt_tokens)
    elif mode == "ptuning":
        config = PromptEncoderConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=model_config.prompt_tokens,
                                     encoder_hidden_size=model.config.hidden_size)
    else:
        raise ConfigError(f"model.mode: {mode!r} is not a peft mode ({', '.join(PEFT_MODES)})")
    try:
        return get_peft_model(model, config)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"model.mode={mode}: peft cannot wrap this model ({exc}); set model.lora_target_modules") from None


def finish(model: Any, mode: str) -> tuple[Any, bool]:
    """The model to save and whether the adapters were merged into it."""
    if mode in MERGED_MODES:
        return model.merge_and_unload(), True
    return model, False


def save_adapter(model: Any, directory: Path) -> None:
    """A prompt / P-tuning model's adapter and trained head in ``directory/adapter``."""
    model.save_pretrained(str(directory / ADAPTER_DIR), safe_serialization=True)


def load_adapter_model(artifact_path: Path, base_path: Path, labels: list[str]) -> Any:
    """The base sequence classifier with the artifact's saved adapter and head, in eval mode."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(
        str(base_path), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)}, use_safetensors=True,
    )
    model = PeftModel.from_pretrained(base, str(Path(artifact_path) / ADAPTER_DIR))
    model.eval()
    return model


def prepare_adalora_trainer(trainer: Any) -> None:
    """AdaLoRA under the Trainer: ranks reallocated after every optimizer step, and the last step's model kept.
    The final rank pattern prunes the adapters' shapes, so a checkpoint saved earlier (the best on validation)
    no longer loads into the model: no best-checkpoint reload and no early stopping for this mode."""
    from transformers import EarlyStoppingCallback

    trainer.add_callback(adalora_callback())
    trainer.args.load_best_model_at_end = False
    trainer.remove_callback(EarlyStoppingCallback)


def adalora_callback() -> Any:
    """Calls AdaLoRA's ``update_and_allocate(global_step)`` after every optimizer step (gradients still there)."""
    from transformers import TrainerCallback

    class AdaLoraAllocate(TrainerCallback):
        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            inner = getattr(model, "module", model)  # DDP
            base = getattr(inner, "base_model", None)
            if base is not None and hasattr(base, "update_and_allocate"):
                base.update_and_allocate(state.global_step)

    return AdaLoraAllocate()
