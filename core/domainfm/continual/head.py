"""Growing a sequence classifier's head for labels its training never saw.

The old label ids stay where they were (new labels are appended), the rows of the final linear layer for the old
labels are copied unchanged, so every old class's logit is what the parent gave until training moves it; the new
rows start small (normal, the model's ``initializer_range``) with the old rows' mean bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domainfm.errors import DataError

HEAD_NAMES = ("classifier", "score", "head", "out_proj")


def grown_labels(parent_labels: Sequence[str], seen: Sequence[str]) -> list[str]:
    """The parent's labels in their order, then the labels in ``seen`` the parent lacks (sorted)."""
    old = list(parent_labels)
    return old + sorted(set(seen) - set(old))


def classification_layer(model: Any) -> tuple[Any, str, Any]:
    """``(parent module, attribute, linear)`` of the final linear layer that produces the label logits: the last
    ``nn.Linear`` with ``num_labels`` outputs under a head-like name (BERT's ``classifier``, RoBERTa/MPNet's
    ``classifier.out_proj``, GPT-2's ``score``)."""
    import torch

    n = int(model.config.num_labels)
    found: tuple[Any, str, Any] | None = None
    for name, module in model.named_modules():
        for attr, child in module.named_children():
            full = f"{name}.{attr}" if name else attr
            if isinstance(child, torch.nn.Linear) and child.out_features == n and any(h in full for h in HEAD_NAMES):
                found = (module, attr, child)
    if found is None:
        raise DataError(f"{type(model).__name__}: no classification layer with {n} outputs to grow")
    return found


def grow_classifier(model: Any, labels: Sequence[str], seed: int = 0) -> Any:
    """Grow ``model``'s head in place to ``labels`` (the old labels first, in their order) and update its config's
    ``num_labels`` / ``id2label`` / ``label2id``. Returns the model."""
    import torch

    old = [model.config.id2label[i] for i in range(int(model.config.num_labels))]
    if list(labels[: len(old)]) != old:
        raise DataError(f"grow_classifier: the new label list must start with the old labels {old[:5]}...")
    parent, attr, linear = classification_layer(model)
    extra = len(labels) - len(old)
    if extra > 0:
        grown = torch.nn.Linear(linear.in_features, len(labels), bias=linear.bias is not None,
                                device=linear.weight.device, dtype=linear.weight.dtype)
        generator = torch.Generator().manual_seed(seed)
        std = float(getattr(model.config, "initializer_range", 0.02))
        with torch.no_grad():
            grown.weight[: len(old)] = linear.weight
            fresh = torch.randn(extra, linear.in_features, generator=generator) * std
            grown.weight[len(old):] = fresh.to(grown.weight)
            if linear.bias is not None:
                grown.bias[: len(old)] = linear.bias
                grown.bias[len(old):] = linear.bias.mean()
        setattr(parent, attr, grown)
    model.config.num_labels = len(labels)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {name: i for i, name in enumerate(labels)}
    if hasattr(model, "num_labels"):
        model.num_labels = len(labels)
    return model


def prepare_parent_base(artifact_dir: Path, labels: Sequence[str], out_dir: Path, *, seed: int = 0,
                        trust_remote_code: bool = False) -> Path:
    """The parent's classifier, its head grown to ``labels``, saved with its tokenizer to ``out_dir`` (a
    ``save_pretrained`` folder the engine fine-tunes as its base model)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from domainfm.io import atomic_directory

    model = AutoModelForSequenceClassification.from_pretrained(str(artifact_dir), trust_remote_code=trust_remote_code,
                                                               use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(artifact_dir), trust_remote_code=trust_remote_code)
    grow_classifier(model, labels, seed)
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
    return out_dir
