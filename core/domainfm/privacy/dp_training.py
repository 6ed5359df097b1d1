"""Differentially private training for any text-classification domain: DP-SGD on a linear head over frozen embeddings.

Selected with ``train.dp.enabled=true`` and ``model.mode=head``::

    domainfm run DOMAIN --mode head --set train.dp.enabled=true --set train.dp.epsilon=4

:func:`~domainfm.engine.text_classifier.fine_tune_text_classifier` then calls :func:`train_dp_head` instead of
the logistic-regression head. Why the head only: the encoder is the public pretrained model and stays frozen, so
the head is the only thing trained on the private data, and the (epsilon, delta) guarantee covers all of it.

Training (:func:`fit_dp_head`, opacus ``make_private_with_epsilon``, RDP accountant): SGD with momentum 0.9 at
``train.learning_rate`` (default 2.0), Poisson-sampled batches of ``train.batch_size``, per-example gradients
clipped to ``train.dp.max_grad_norm``, ``HEAD_PASSES_PER_EPOCH`` passes per ``train.epochs`` (a linear head
needs more passes than a transformer); the noise is set so that the run ends at ``train.dp.epsilon`` for
``train.dp.delta`` (default ``min(1e-5, 1 / n_train^1.1)``).

What it records: ``artifact.metadata["dp"]`` (epsilon spent, target, delta, clipping norm, noise multiplier,
passes, accountant, scope). The Runner copies the epsilon to ``ctx.dp_epsilon`` (``run.json``'s ``dp_epsilon``),
and the benefit engine's privacy constraints read it: the report shows ``privacy_dp_epsilon`` and relaxes the
limit on personal data in the training text. The artifact is the engine's ``embedding-linear-head`` layout
(its predictor loads it), temperature-calibrated on validation. Needs ``opacus``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from domainfm.errors import ConfigError, DataError
from domainfm.types import Artifact, DataBundle, RunContext

HEAD_PASSES_PER_EPOCH = 10
DEFAULT_LEARNING_RATE = 2.0
MODE = "dp-head"


@dataclass(frozen=True)
class DPHead:
    """A trained head (``weight``: labels × features, ``bias``) and what its training spent (``report``)."""

    weight: np.ndarray
    bias: np.ndarray
    report: dict[str, Any]


def default_delta(n_train: int) -> float:
    """``min(1e-5, 1 / n^1.1)``: below one over the number of training rows, as (epsilon, delta)-DP asks."""
    return min(1e-5, 1.0 / max(n_train, 1) ** 1.1)


def fit_dp_head(
    features: np.ndarray, labels: np.ndarray, n_labels: int, *, target_epsilon: float, delta: float | None = None,
    max_grad_norm: float = 1.0, passes: int = HEAD_PASSES_PER_EPOCH, learning_rate: float = DEFAULT_LEARNING_RATE,
    batch_size: int = 32, seed: int = 42,
) -> DPHead:
    """Train a linear softmax head on ``features`` (rows × dims, float32) and label ids with DP-SGD."""
    import torch
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    if target_epsilon <= 0:
        raise ConfigError(f"train.dp.epsilon: must be positive, got {target_epsilon}")
    delta = default_delta(len(features)) if delta is None else delta
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(features.shape[1], n_labels)
    optimizer = torch.optim.SGD(head.parameters(), lr=learning_rate, momentum=0.9)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(np.asarray(features, dtype=np.float32)), torch.from_numpy(np.asarray(labels)).long()),
        batch_size=min(batch_size, len(features)), shuffle=True, generator=generator,
    )
    engine = PrivacyEngine(accountant="rdp")
    head, optimizer, loader = engine.make_private_with_epsilon(
        module=head, optimizer=optimizer, data_loader=loader, target_epsilon=target_epsilon, target_delta=delta,
        epochs=passes, max_grad_norm=max_grad_norm,
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    head.train()
    for _ in range(passes):
        for xb, yb in loader:
            if len(xb) == 0:  # Poisson sampling can draw an empty batch
                continue
            optimizer.zero_grad()
            loss_fn(head(xb), yb).backward()
            optimizer.step()
    module = head._module if hasattr(head, "_module") else head
    report = {
        "epsilon": float(engine.get_epsilon(delta)),
        "target_epsilon": target_epsilon,
        "delta": delta,
        "max_grad_norm": max_grad_norm,
        "noise_multiplier": float(optimizer.noise_multiplier),
        "epochs": passes,
        "accountant": "rdp",
        "scope": "linear head on frozen public embeddings",
    }
    return DPHead(module.weight.detach().cpu().numpy().astype(np.float32),
                  module.bias.detach().cpu().numpy().astype(np.float32), report)


def train_dp_head(
    ctx: RunContext, data: DataBundle, *, label_names: list[str], text_column: str = "text", label_column: str = "label",
    train_split: str = "train", eval_split: str = "validation", target_epsilon: float | None = None,
    delta: float | None = None, max_grad_norm: float | None = None,
) -> Artifact:
    """Encode ``train_split``/``eval_split`` with the frozen base model, :func:`fit_dp_head`, save the head artifact
    to ``ctx.artifact_dir`` and calibrate its temperature on ``eval_split``. The DP settings default to ``train.dp``."""
    from domainfm.config import DEFAULT_BASE_MODEL
    from domainfm.engine.calibration import expected_calibration_error, fit_temperature, softmax
    from domainfm.engine.classifier_predictor import KIND_HEAD
    from domainfm.engine.encoder import TextEncoder
    from domainfm.io import atomic_directory, save_arrays
    from domainfm.models import resolve_model

    cfg = ctx.config
    settings = cfg.train.dp
    labels = list(label_names)
    base = cfg.model.base or DEFAULT_BASE_MODEL
    resolved = resolve_model(base, revision=cfg.model.revision)
    train, valid = data.split(train_split), data.tables.get(eval_split)
    if valid is None or len(valid) == 0:
        raise DataError(f"{data.source}: the DP head needs a non-empty {eval_split!r} split to calibrate on")
    y_train = _label_ids(train[label_column], labels, f"{data.source}[{train_split}]")
    y_valid = _label_ids(valid[label_column], labels, f"{data.source}[{eval_split}]")
    started = time.perf_counter()
    encoder = TextEncoder(str(resolved.path), device=ctx.device, max_length=cfg.model.max_length)
    x_train = encoder.encode(list(train[text_column]), batch_size=cfg.train.eval_batch_size)
    x_valid = encoder.encode(list(valid[text_column]), batch_size=cfg.train.eval_batch_size)
    head = fit_dp_head(
        x_train, y_train, len(labels),
        target_epsilon=settings.epsilon if target_epsilon is None else target_epsilon,
        delta=settings.delta if delta is None else delta,
        max_grad_norm=settings.max_grad_norm if max_grad_norm is None else max_grad_norm,
        passes=max(1, int(round(cfg.train.epochs)) * HEAD_PASSES_PER_EPOCH),
        learning_rate=cfg.train.learning_rate or DEFAULT_LEARNING_RATE, batch_size=cfg.train.batch_size,
        seed=cfg.train.seed,
    )
    weight, bias = head.weight, head.bias
    with atomic_directory(ctx.artifact_dir) as tmp:
        save_arrays(tmp / "head.safetensors", {"weight": weight, "bias": bias})
    logits = x_valid @ weight.T + bias
    temperature = fit_temperature(logits, y_valid)
    probs = softmax(logits, temperature)
    total = sum(p.numel() for p in encoder.model.parameters()) + weight.size + bias.size
    ctx.resources.parameters = int(total)
    ctx.resources.trainable_parameters = int(weight.size + bias.size)
    artifact = Artifact(
        path=ctx.artifact_dir, domain=ctx.domain, kind=KIND_HEAD, base_model=base, label_names=labels,
        device=ctx.device,
        metadata={
            "mode": MODE,
            "max_length": cfg.model.max_length,
            "text_column": text_column,
            "text_pair_column": None,
            "train_seconds": time.perf_counter() - started,
            "train_examples": int(len(x_train)),
            "resolved_from": resolved.source,
            "parameters": int(total),
            "trainable_parameters": int(weight.size + bias.size),
            "dp": head.report,
            "temperature": temperature,
            "validation_ece_before": expected_calibration_error(softmax(logits), y_valid),
            "validation_ece": expected_calibration_error(probs, y_valid),
            "validation_accuracy": float(np.mean(probs.argmax(1) == y_valid)),
        },
    )
    artifact.save_metadata()
    return artifact


def _label_ids(column: list[Any], labels: list[str], where: str) -> np.ndarray:
    """Label ids from label names (or ids already), each checked against ``labels``."""
    from domainfm.data import encode_labels

    if column and isinstance(column[0], (int, np.integer)):
        bad = [i for i, v in enumerate(column) if not 0 <= int(v) < len(labels)]
        if bad:
            raise DataError(f"{where}: row {bad[0]}: label id {column[bad[0]]} outside 0..{len(labels) - 1}")
        return np.asarray([int(v) for v in column])
    return np.asarray(encode_labels(column, labels, where))
