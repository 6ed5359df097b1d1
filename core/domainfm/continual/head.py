"""Growing a sequence classifier's head for labels its training never saw.

The old label ids stay where they were (new labels are appended), the rows of the final linear layer for the old
labels are copied unchanged, so every old class's logit is what the parent gave until training moves it; the new
rows start small (normal, the model's ``initializer_range``) with the old rows' mean bias.

With examples of the new labels, :func:`imprint_new_rows` then sets each new row from the parent's own features
of them (weight imprinting, Qi, Brown and Lowe, CVPR 2018): the direction from the reference mean (the old
labels' examples) to the new label's mean, at the old rows' mean norm. A few dozen examples put a new intent
where the parent's features already separate it, instead of asking a small random row to travel there in a few
epochs of replay (``options.head_init=random`` keeps the random start).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
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


def head_features(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, batch_size: int = 32) -> Any:
    """The inputs of ``model``'s classification layer for ``texts`` (eval mode, no gradients): an ``(n, d)``
    float32 tensor, whatever sits between the encoder and that layer (BERT's pooler, MPNet's dense + tanh)."""
    import torch

    _, _, linear = classification_layer(model)
    captured: list[Any] = []
    hook = linear.register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0].detach().float()))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                enc = tokenizer(list(texts[start:start + batch_size]), truncation=True, max_length=max_length,
                                padding=True, return_tensors="pt")
                model(**{k: v.to(linear.weight.device) for k, v in enc.items()})
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(captured) if captured else torch.zeros(0, linear.in_features)


def imprint_new_rows(model: Any, tokenizer: Any, examples: Mapping[str, Sequence[str]], reference: Sequence[str], *,
                     max_length: int, batch_size: int = 32) -> list[str]:
    """Set the head rows of the labels in ``examples`` (label -> its texts; labels already in the grown model)
    to ``s * normalise(mean(f(label texts)) - mean(f(reference)))`` with ``s`` the mean norm of the other rows,
    and their bias to the other rows' mean bias. ``reference``: texts of the labels the parent knew (what a new
    class must be told apart from); empty: the mean over every example. Returns the labels imprinted."""
    import torch

    _, _, linear = classification_layer(model)
    ids = {name: i for i, name in model.config.id2label.items()}
    wanted = [name for name in examples if examples[name]]
    missing = [name for name in wanted if name not in ids]
    if missing:
        raise DataError(f"imprint_new_rows: labels {missing} are not in the model's head (grow it first)")
    if not wanted:
        return []
    feats = {name: head_features(model, tokenizer, examples[name], max_length=max_length, batch_size=batch_size)
             for name in wanted}
    ref = (head_features(model, tokenizer, reference, max_length=max_length, batch_size=batch_size) if reference
           else torch.cat(list(feats.values())))
    centre = ref.mean(0)
    rows = [ids[name] for name in wanted]
    others = [i for i in range(linear.out_features) if i not in set(rows)]
    with torch.no_grad():
        weight = linear.weight
        scale = float(weight[others].float().norm(dim=1).mean()) if others else 1.0
        for name, row in zip(wanted, rows, strict=True):
            direction = feats[name].mean(0) - centre
            norm = float(direction.norm())
            if norm > 0:
                weight[row] = (direction / norm * scale).to(weight)
        if linear.bias is not None and others:
            linear.bias[rows] = linear.bias[others].mean()
    return wanted


def silence_new_rows(model: Any, n_old: int) -> Any:
    """Make the head rows from ``n_old`` on unable to win (zero weights, bias -1e4): the parent as it serves,
    over the grown label set, never predicting a label it was not trained on. Returns the model."""
    import torch

    _, _, linear = classification_layer(model)
    with torch.no_grad():
        linear.weight[n_old:] = 0.0
        if linear.bias is not None:
            linear.bias[n_old:] = -1e4
    return model


def prepare_parent_base(artifact_dir: Path, labels: Sequence[str], out_dir: Path, *, seed: int = 0,
                        trust_remote_code: bool = False, imprint: Mapping[str, Sequence[str]] | None = None,
                        reference: Sequence[str] = (), max_length: int = 128, served_dir: Path | None = None) -> Path:
    """The parent's classifier, its head grown to ``labels``, saved with its tokenizer to ``out_dir`` (a
    ``save_pretrained`` folder the engine fine-tunes as its base model). With ``imprint`` (new label -> example
    texts) the new rows are imprinted from the parent's features (:func:`imprint_new_rows`). With ``served_dir``
    and new labels, the parent as it serves over the grown labels (:func:`silence_new_rows`) is saved there too,
    for scoring the parent on items with new labels."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from domainfm.io import atomic_directory

    model = AutoModelForSequenceClassification.from_pretrained(str(artifact_dir), trust_remote_code=trust_remote_code,
                                                               use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(artifact_dir), trust_remote_code=trust_remote_code)
    n_old = int(model.config.num_labels)
    grow_classifier(model, labels, seed)
    if served_dir is not None and len(labels) > n_old:
        served = copy.deepcopy(model)
        silence_new_rows(served, n_old)
        with atomic_directory(served_dir) as tmp:
            served.save_pretrained(str(tmp), safe_serialization=True)
            tokenizer.save_pretrained(str(tmp))
        del served
    if imprint:
        imprint_new_rows(model, tokenizer, imprint, reference, max_length=max_length)
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
    return out_dir
