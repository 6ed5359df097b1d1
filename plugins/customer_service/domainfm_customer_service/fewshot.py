"""Few-shot intent classification with SetFit (contrastive fine-tuning of the sentence encoder on
same/different-intent pairs, then a logistic-regression head), for deployments with a handful of
labelled examples per intent. Needs the optional ``setfit`` dependency (``pip install
domainfm-customer-service[fewshot]``); runs offline with ``HF_DATASETS_OFFLINE=1``.
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
        report_to="none",
        save_strategy="no",
        show_progress_bar=os.environ.get("DOMAINFM_NO_PROGRESS") != "1",
    )
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"text": list(texts), "label": list(labels)}))
    trainer.train()
    return model


def predict_labels(model: Any, texts: Sequence[str]) -> np.ndarray:
    """Predicted label strings for ``texts``."""
    return np.asarray([str(p) for p in model.predict(list(texts))])


# ----------------------------------------------------------------------------------- contrastive recipe
#
# SetFit's pair sampler (CosineSimilarityLoss over random same/different pairs) needs thousands of steps to
# help with 77 intents. The recipe below uses in-batch negatives instead: every step draws ``classes_per_batch``
# different intents, two utterances of each (anchor, positive), and applies the symmetric
# MultipleNegativesRankingLoss (InfoNCE, scale 20) to the mean-pooled, L2-normalised embeddings, so each anchor
# is contrasted against every other intent in the batch at once. The learning rate is constant after a short
# warm-up, so the model after k steps is exactly what a k-step run produces: the step count can be chosen by
# evaluating along one run on validation data. A logistic-regression head is then fitted on the tuned embeddings.


class ContrastiveFewShot:
    """A contrastively tuned sentence encoder (mean pooling) plus a logistic-regression head."""

    def __init__(self, model: Any, tokenizer: Any, device: str = "cpu", max_length: int = 48) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.max_length = max_length
        self.head: Any = None

    def _embed(self, batch: list[str], grad: bool) -> Any:
        import torch

        enc = self.tokenizer(batch, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.set_grad_enabled(grad):
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    def encode(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        """L2-normalised embeddings, batches sorted by length."""
        import torch

        self.model.eval()
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), int(self.model.config.hidden_size)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                out[idx] = self._embed([texts[i] for i in idx], grad=False).float().cpu().numpy()
        return out

    def fit_head(self, texts: Sequence[str], labels: Sequence[str], c: float = 8.0, seed: int = 42) -> ContrastiveFewShot:
        """Fit the logistic-regression head on the current embeddings of (texts, labels)."""
        from sklearn.linear_model import LogisticRegression

        self.head = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(self.encode(texts), list(labels))
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted label strings."""
        if self.head is None:
            raise RuntimeError("fit_head() first")
        return np.asarray([str(p) for p in self.head.predict(self.encode(texts))])

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self.head is None:
            raise RuntimeError("fit_head() first")
        return self.head.predict_proba(self.encode(texts))


def contrastive_finetune(
    base_path: str | Path,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    steps: int = 100,
    learning_rate: float = 3e-5,
    classes_per_batch: int = 32,
    scale: float = 20.0,
    warmup_steps: int = 10,
    max_length: int = 48,
    seed: int = 42,
    device: str = "cpu",
    callback: Any = None,
    callback_steps: Sequence[int] = (),
) -> ContrastiveFewShot:
    """Tune the encoder at ``base_path`` on (texts, labels) with in-batch-negative contrastive steps.

    ``callback(step, model)`` runs before training when 0 is in ``callback_steps`` and after each listed
    step (used to choose the step count on validation data). Returns the tuned model without a head.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    model = AutoModel.from_pretrained(str(base_path), use_safetensors=True).to(device)
    tuned = ContrastiveFewShot(model, tokenizer, device=device, max_length=max_length)
    by_label: dict[str, list[str]] = {}
    for text, lab in zip(texts, labels, strict=True):
        by_label.setdefault(str(lab), []).append(str(text))
    usable = sorted(lab for lab, items in by_label.items() if len(items) >= 2)
    if len(usable) < 2:
        raise ValueError("contrastive fine-tuning needs at least two labels with two examples each")
    per_batch = min(classes_per_batch, len(usable))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, warmup_steps)))
    wanted = set(int(s) for s in callback_steps)
    if callback is not None and 0 in wanted:
        callback(0, tuned)
    target = torch.arange(per_batch, device=device)
    for step in range(1, steps + 1):
        model.train()
        chosen = rng.sample(usable, per_batch)
        pairs = [rng.sample(by_label[lab], 2) for lab in chosen]
        emb = tuned._embed([a for a, _ in pairs] + [p for _, p in pairs], grad=True)
        anchors, positives = emb[:per_batch], emb[per_batch:]
        logits = scale * anchors @ positives.T
        loss = (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if callback is not None and step in wanted:
            callback(step, tuned)
    model.eval()
    return tuned
