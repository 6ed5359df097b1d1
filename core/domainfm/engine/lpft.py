"""LP-FT for sentence encoders: fit a linear probe on frozen embeddings, then fine-tune every weight under it.

``model.mode=lpft``. Kumar et al. (ICLR 2022, "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution") show that starting full fine-tuning from a fitted linear head, instead of a random one,
changes the pretrained features less and generalises better. It also fixes a mismatch for sentence-transformers
checkpoints such as all-MiniLM-L6-v2: they were trained to be read through mean pooling, while
``AutoModelForSequenceClassification`` reads an untrained [CLS] pooler. Here the model is the
``SentenceTransformer`` itself (its own pooling and normalisation) plus the probe's linear layer, trained with
cross-entropy by the engine's Trainer setup (checkpoints, resume, early stopping). The artifact is of the head
kind with its fine-tuned encoder saved inside it (``encoder/``), so inference is the head kind's path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ENCODER_DIR = "encoder"


def fit_probe(
    train_features: np.ndarray,
    y_train: Sequence[int],
    valid_features: np.ndarray | None,
    y_valid: Sequence[int],
    n_labels: int,
    grid: Sequence[float],
    seed: int,
    class_weight: str | None = None,
) -> dict[str, Any]:
    """Multinomial logistic regression on frozen features, its C chosen on validation macro-F1
    (``class_weight="balanced"``: scikit-learn's balanced class weights).

    Returns ``weight`` (n_labels x dim), ``bias``, ``C`` and ``validation_macro_f1``. A label never seen in
    training gets a bias of -1e4, so it can never be predicted.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    best: tuple[float, float, Any] | None = None
    for c in grid:
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed, class_weight=class_weight)
        clf.fit(train_features, y_train)
        score = f1_score(y_valid, clf.predict(valid_features), average="macro") if valid_features is not None else 0.0
        if best is None or score > best[0]:
            best = (float(score), float(c), clf)
    assert best is not None
    clf = best[2]
    weight = np.zeros((n_labels, train_features.shape[1]), dtype=np.float32)
    bias = np.zeros(n_labels, dtype=np.float32)
    classes = clf.classes_.astype(int)
    if len(classes) == 2 and clf.coef_.shape[0] == 1:  # sklearn's binary form: one row of coefficients
        weight[classes[1]], bias[classes[1]] = clf.coef_[0], clf.intercept_[0]
    else:
        weight[classes], bias[classes] = clf.coef_, clf.intercept_
    bias[sorted(set(range(n_labels)) - set(classes.tolist()))] = -1e4
    return {"weight": weight, "bias": bias, "C": best[1], "validation_macro_f1": best[0]}


def build_model(encoder: Any, weight: np.ndarray, bias: np.ndarray) -> Any:
    """A torch module: L2-normalised ``SentenceTransformer`` embeddings -> linear layer initialised from the probe.

    ``forward(input_ids, attention_mask, token_type_ids=None, labels=None)`` returns ``{"loss", "logits"}``
    as the Hugging Face Trainer expects.
    """
    import torch
    from torch import nn

    class SentenceClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = nn.Linear(weight.shape[1], weight.shape[0])
            with torch.no_grad():
                self.head.weight.copy_(torch.as_tensor(weight))
                self.head.bias.copy_(torch.as_tensor(np.maximum(bias, -30.0)))  # -1e4 would swamp the loss scale

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None, labels: Any = None) -> dict[str, Any]:
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                features["token_type_ids"] = token_type_ids
            # L2-normalised like TextEncoder.encode (the probe's features, and inference): idempotent for
            # encoders that end in a Normalize module
            embedding = nn.functional.normalize(self.encoder(features)["sentence_embedding"], p=2, dim=1)
            logits = self.head(embedding)
            loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
            return {"loss": loss, "logits": logits}

    return SentenceClassifier()


def save(model: Any, directory: Path, never_seen: Sequence[int]) -> None:
    """Write the fine-tuned encoder to ``directory/encoder`` and the head to ``directory/head.safetensors``."""
    from domainfm.io import save_arrays

    model.encoder.save(str(directory / ENCODER_DIR))
    weight = model.head.weight.detach().float().cpu().numpy()
    bias = model.head.bias.detach().float().cpu().numpy()
    bias[list(never_seen)] = -1e4
    save_arrays(directory / "head.safetensors", {"weight": weight.astype(np.float32), "bias": bias.astype(np.float32)})
