"""Few-shot helpers: seeded per-intent sampling, and SetFit (contrastive fine-tuning of the sentence encoder on
same/different-intent pairs, then a logistic-regression head) as an alternative to the core's
``model.mode=contrastive`` (in-batch negatives, which needs far fewer steps with many intents). SetFit needs the
optional ``setfit`` dependency (``pip install domainfm-customer-service[fewshot]``); runs offline with
``HF_DATASETS_OFFLINE=1``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def sample_per_class(texts: Sequence[str], labels: Sequence[str], n: int, seed: int = 42) -> tuple[list[str], list[str]]:
    """``n`` examples per label (all of a label's examples when it has fewer), seeded and deterministic."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_label.setdefault(lab, []).append(i)
    chosen: list[int] = []
    for lab in sorted(by_label):
        idx = by_label[lab]
        chosen.extend(rng.sample(idx, min(n, len(idx))))
    chosen.sort()
    return [texts[i] for i in chosen], [labels[i] for i in chosen]


def train_setfit(
    base_path: str | Path,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    device: str = "cpu",
    max_steps: int = 300,
    batch_size: int = 32,
    max_length: int = 64,
    seed: int = 42,
    output_dir: str | Path = "setfit-checkpoints",
    report_to: str | list[str] = "none",
) -> Any:
    """Train a SetFit model on (texts, labels) and return it (``model.predict_proba(texts)`` works)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    model = SetFitModel.from_pretrained(str(base_path), device=device, labels=sorted(set(labels)))
    args = TrainingArguments(
        output_dir=str(output_dir),
        batch_size=batch_size,
        num_epochs=1,
        max_steps=max_steps,
        max_length=max_length,
        seed=seed,
        report_to=report_to,  # the Trainer's trackers (domainfm.tracking.trainer_arguments(ctx)["report_to"])
        save_strategy="no",
        show_progress_bar=os.environ.get("DOMAINFM_NO_PROGRESS") != "1",
    )
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"text": list(texts), "label": list(labels)}))
    trainer.train()
    return model


def predict_labels(model: Any, texts: Sequence[str]) -> np.ndarray:
    """Predicted label strings for ``texts``."""
    return np.asarray([str(p) for p in model.predict(list(texts))])
