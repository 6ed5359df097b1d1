"""Contrastive few-shot tuning of a sentence encoder, then a linear head (``model.mode=contrastive``).

For a handful of labelled examples per label (e.g. 8 per intent), the frozen-encoder head (``head``) leaves the
encoder's geometry as pretrained, and full fine-tuning has too little data to train a classifier from scratch.
This mode first pulls same-label texts together in the encoder's own embedding space, then fits the head:

- every step draws ``pairs_per_step`` different labels and two texts of each (anchor, positive) and applies the
  symmetric in-batch-negatives loss (InfoNCE / MultipleNegativesRankingLoss, ``scale`` 20) to the encoder's
  own sentence embeddings (its pooling and normalisation modules), so each anchor is contrasted with every
  other label in the batch at once. SetFit's random same/different pairs need thousands of steps to help with
  77 labels; in-batch negatives need tens (BANKING77, 8 per intent: see benchmarks/customer_service);
- the learning rate is constant after a short warm-up, so the encoder after k steps is exactly what a k-step run
  produces: the step count is chosen along one run, at each of ``eval_steps`` (and step 0, the frozen
  encoder), by the head's validation macro-F1 (the head's C chosen on the same validation data), with early
  stopping after ``patience`` evaluations without improvement; the best step's weights are kept in memory.

The result is a head artifact with its own encoder (``encoder/``), like LP-FT, so inference is the head kind's
path; when the frozen encoder (step 0) scores best it is a plain head artifact on the base model. A run takes minutes on a CPU and is not checkpointed; a killed run starts again.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from domainfm.engine.precision import TrainingAmp
from domainfm.errors import DataError

DEFAULT_STEPS = 100
DEFAULT_EVAL_EVERY = 25
WARMUP_STEPS = 10
SCALE = 20.0


def label_groups(texts: Sequence[str], labels: Sequence[int]) -> dict[int, list[str]]:
    """Texts by label, only labels with at least two texts (an anchor needs a positive)."""
    groups: dict[int, list[str]] = {}
    for text, label in zip(texts, labels, strict=True):
        groups.setdefault(int(label), []).append(str(text))
    return {label: items for label, items in sorted(groups.items()) if len(items) >= 2}


def evaluation_steps(steps: int, every: int) -> list[int]:
    """0 (the frozen encoder), every ``every`` steps, and the last step."""
    return sorted({0, *range(every, steps + 1, every), steps})


def tune(
    encoder: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    steps: int,
    learning_rate: float,
    pairs_per_step: int,
    seed: int,
    device: str,
    score: Callable[[int], float] | None = None,
    eval_every: int = DEFAULT_EVAL_EVERY,
    patience: int | None = None,
    autocast: str | None = None,
) -> dict[str, Any]:
    """Tune ``encoder`` (a ``SentenceTransformer``, in place) with in-batch-negative steps.

    ``score(step)`` is called at each evaluation step with the encoder in its current state and returns the
    validation score (higher is better); the weights of the best-scoring step are restored at the end. Without
    ``score`` every step runs and the last weights stay. Returns ``best_step``, ``steps_run`` and
    ``score_by_step`` and ``pairs_per_step`` (labels per step: those with two texts, at most ``pairs_per_step``).
    ``autocast`` (``"bfloat16"``, ``"float16"`` or None: :func:`domainfm.engine.precision.training_autocast`) runs
    the training steps' forward passes under autocast.
    """
    import torch

    groups = label_groups(texts, labels)
    if len(groups) < 2:
        raise DataError("model.mode=contrastive needs at least two labels with two training texts each")
    per_step = min(pairs_per_step, len(groups))
    rng = random.Random(seed)
    torch.manual_seed(seed)
    encoder.to(device)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / WARMUP_STEPS))
    target = torch.arange(per_step, device=device)
    amp = TrainingAmp(device, autocast)
    checkpoints = set(evaluation_steps(steps, eval_every)) if score is not None else set()
    scores: dict[int, float] = {}
    losses: list[tuple[int, float]] = []  # (step, in-batch contrastive loss): the training curve
    best: tuple[float, int, dict[str, Any] | None] = (-np.inf, steps, None)
    stale = 0
    step = 0
    while True:
        if step in checkpoints:
            encoder.eval()
            scores[step] = float(score(step))  # type: ignore[misc]
            if scores[step] > best[0]:
                state = {k: v.detach().to("cpu", copy=True) for k, v in encoder.state_dict().items()}
                best, stale = (scores[step], step, state), 0
            else:
                stale += 1
                if patience is not None and stale >= patience:
                    break
        if step >= steps:
            break
        step += 1
        encoder.train()
        chosen = rng.sample(sorted(groups), per_step)
        pairs = [rng.sample(groups[label], 2) for label in chosen]
        features = encoder.preprocess([a for a, _ in pairs] + [p for _, p in pairs])
        features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        with amp.autocast():
            sentence = encoder(features)["sentence_embedding"]
        embeddings = torch.nn.functional.normalize(sentence.float(), p=2, dim=1)
        logits = SCALE * embeddings[:per_step] @ embeddings[per_step:].T
        loss = (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2
        amp.backward_step(loss, optimizer)
        losses.append((step, float(loss.detach())))
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    encoder.eval()
    if best[2] is not None:
        encoder.load_state_dict(best[2])
    return {"best_step": best[1] if score is not None else step, "steps_run": step,
            "score_by_step": {str(k): v for k, v in sorted(scores.items())}, "pairs_per_step": per_step,
            "loss_by_step": losses}
