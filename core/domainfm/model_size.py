"""How large a trained model is, recorded once in the run's resources (``ResourceUsage.parameters``).

A plugin that trains its own torch model calls :func:`record_parameters` at the end of its train hook; the run's
training time is not the plugin's business (the Runner measures the train stage, once, for every domain).
"""

from __future__ import annotations

from typing import Any


def count_parameters(model: Any) -> tuple[int, int]:
    """(all parameters, trainable parameters) of a ``torch.nn.Module``."""
    total = trainable = 0
    for p in model.parameters():
        total += int(p.numel())
        trainable += int(p.numel()) if p.requires_grad else 0
    return total, trainable


def record_parameters(ctx: Any, model: Any) -> dict[str, int]:
    """Count ``model``'s parameters into ``ctx.resources`` (a :class:`~domainfm.types.RunContext`); returns them
    as ``{"parameters": ..., "trainable_parameters": ...}`` for the artifact's metadata."""
    total, trainable = count_parameters(model)
    ctx.resources.parameters, ctx.resources.trainable_parameters = total, trainable
    return {"parameters": total, "trainable_parameters": trainable}
