"""Class weights for imbalanced labels (``train.class_weights``): the Trainer's loss and the heads' option."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from domainfm.config import TrainConfig
from domainfm.errors import ConfigError


def sklearn_class_weight(train: TrainConfig) -> str | None:
    """scikit-learn's ``class_weight`` for a logistic-regression head under ``train``."""
    return "balanced" if train.class_weights == "balanced" else None


def prior_class_weights(y_train: list[int], labels: Sequence[str], prior: Mapping[str, float]) -> list[float]:
    """``prior[k] / share_k`` per label, scaled to average 1 over the training rows (label-shift importance
    weights: the weighted rows have the label mix ``prior``); a label absent from either side gets 1.0."""
    counts = np.bincount(np.asarray(y_train, dtype=int), minlength=len(labels)).astype(float)
    total = float(sum(max(float(prior.get(k, 0.0)), 0.0) for k in labels))
    weights = np.ones(len(labels))
    for i, k in enumerate(labels):
        if counts[i] > 0 and total > 0 and prior.get(k, 0.0) > 0:
            weights[i] = (float(prior[k]) / total) / (counts[i] / len(y_train))
    mean = float((weights[np.asarray(y_train, dtype=int)]).mean()) if len(y_train) else 1.0
    return (weights / mean).tolist()


def training_class_weights(train: TrainConfig, y_train: list[int], labels: Sequence[str]) -> list[float] | None:
    """The cross-entropy weights ``train.class_weights`` asks for (None: unweighted)."""
    if train.class_weights == "balanced":
        return balanced_class_weights(y_train, len(labels))
    if train.class_weights == "prior":
        if not train.class_prior:
            raise ConfigError("train.class_weights=prior needs train.class_prior (label -> share)")
        return prior_class_weights(y_train, labels, train.class_prior)
    return None


def balanced_class_weights(y_train: list[int], n_labels: int) -> list[float]:
    """``n / (K * n_k)`` per label (scikit-learn's "balanced"); a label with no training example gets 1.0."""
    counts = np.bincount(np.asarray(y_train, dtype=int), minlength=n_labels).astype(float)
    present = counts > 0
    weights = np.ones(n_labels)
    weights[present] = len(y_train) / (present.sum() * counts[present])
    return weights.tolist()


def weighted_cross_entropy(weights: list[float]) -> Any:
    """A ``compute_loss_func`` for the Trainer: class-weighted cross-entropy on the logits. Under gradient
    accumulation (``num_items_in_batch`` given) the weighted sum is divided by the accumulated batch's size;
    balanced weights average 1 over the training set, so the scale matches the unweighted loss."""
    import torch

    table = torch.tensor(weights, dtype=torch.float32)

    def loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        weight = table.to(logits.device)
        if num_items_in_batch is None:
            return torch.nn.functional.cross_entropy(logits.float(), labels, weight=weight)
        per_item = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        return (per_item * weight[labels]).sum() / num_items_in_batch

    return loss
