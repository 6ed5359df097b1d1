"""Layer-wise learning rates for fine-tuning an encoder: discriminative rates (layer-wise LR decay) and gradual
unfreezing (ULMFiT), as an AdamW optimizer and a per-group ``LambdaLR`` schedule the Hugging Face ``Trainer`` takes
(and saves in its checkpoints, so a resumed run continues the same schedule).

A parameter's depth: 0 = the embeddings, 1..n = encoder layer 0..n-1 (``.layer.<i>.`` in its name), n+1 =
everything above (pooler, classifier). Names of peft-wrapped models resolve the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def encoder_layers(model: Any) -> int:
    """``num_hidden_layers`` of the (possibly peft-wrapped) model; 0 when its config has none."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return int(getattr(getattr(inner, "config", None), "num_hidden_layers", 0) or 0)


def layer_depth(name: str, n_layers: int) -> int:
    """Depth of the parameter ``name``: 0 = embeddings, 1..n = encoder layers, n+1 = pooler and classifier."""
    if ".embeddings." in f".{name}":
        return 0
    if ".layer." in name:
        number = name.split(".layer.", 1)[1].split(".", 1)[0]
        if number.isdigit():
            return int(number) + 1
    return n_layers + 1


def param_groups(model: Any, *, learning_rate: float, head_learning_rate: float | None, llrd: float,
                 weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups of the trainable parameters, one per (depth, decay): the top layer at
    ``learning_rate``, each layer below ``llrd`` times the one above, the embeddings lowest, the head at
    ``head_learning_rate`` (else ``learning_rate``); no weight decay on biases and LayerNorm weights.
    Each group carries its ``depth`` for :func:`schedule`."""
    n_layers = encoder_layers(model)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        depth = layer_depth(name, n_layers)
        lr = (head_learning_rate or learning_rate) if depth == n_layers + 1 else learning_rate * llrd ** (n_layers - depth)
        no_decay = param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
        group = groups.setdefault((depth, no_decay), {"params": [], "lr": lr, "depth": depth,
                                                      "weight_decay": 0.0 if no_decay else weight_decay})
        group["params"].append(param)
    return [groups[key] for key in sorted(groups)]


def unfreezing_steps(n_layers: int, steps_per_epoch: int, unfreeze: bool) -> dict[int, int]:
    """Step at which each depth starts training: with ``unfreeze``, the head at once and each depth below a
    further ``steps_per_epoch / (n + 2)`` steps later (all of them within the first epoch); else 0 for all."""
    return {d: int((n_layers + 1 - d) * steps_per_epoch / (n_layers + 2)) if unfreeze else 0
            for d in range(n_layers + 2)}


def lr_factors(groups: list[dict[str, Any]], *, total_steps: int, warmup_steps: int,
               unfreeze_at: dict[int, int]) -> list[Callable[[int], float]]:
    """One factor function per group: linear warm-up then linear decay to 0 at ``total_steps``, and 0 until
    the group's depth is unfrozen."""

    def factor(start: int) -> Callable[[int], float]:
        def at(step: int) -> float:
            if step < start:
                return 0.0
            if step < warmup_steps:
                return (step + 1) / max(1, warmup_steps)
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

        return at

    return [factor(unfreeze_at.get(g["depth"], 0)) for g in groups]


def optimizer_and_schedule(model: Any, *, learning_rate: float, head_learning_rate: float | None, llrd: float,
                           weight_decay: float, total_steps: int, warmup_ratio: float, steps_per_epoch: int,
                           unfreeze: bool) -> tuple[Any, Any]:
    """AdamW over :func:`param_groups` and its ``LambdaLR`` (pass both as the ``Trainer``'s optimizers)."""
    import torch

    groups = param_groups(model, learning_rate=learning_rate, head_learning_rate=head_learning_rate, llrd=llrd,
                          weight_decay=weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=learning_rate, weight_decay=weight_decay)
    unfreeze_at = unfreezing_steps(encoder_layers(model), steps_per_epoch, unfreeze)
    factors = lr_factors(groups, total_steps=total_steps, warmup_steps=int(warmup_ratio * total_steps),
                         unfreeze_at=unfreeze_at)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
