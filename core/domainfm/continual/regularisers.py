"""L2-SP and EWC: penalties that keep a fine-tuned model near the weights it started from.

Both are :class:`~domainfm.engine.loss_terms.LossTerm` s (their ``extra`` returns the penalty) switched on by
``train.regularisation.l2sp`` / ``train.regularisation.ewc``:

- **L2-SP** (Li et al., 2018): ``l2sp / 2 · Σ (θ − θ₀)²`` over the trained body weights;
- **EWC** (Kirkpatrick et al., 2017): ``ewc / 2 · Σ F · (θ − θ₀)²``, ``F`` the diagonal Fisher information of
  the parent on its own training data (squared gradients of its loss, scaled to mean 1 so ``ewc`` and ``l2sp``
  are on the same scale).

``θ₀`` comes from ``train.regularisation.anchor`` (a safetensors file: ``param.NAME`` and, for EWC,
``fisher.NAME``; ``domainfm improve`` writes it from the parent) or, for L2-SP without one, from the weights the
training starts from (the pretrained or parent model). The classification head is never anchored: a grown head
has rows the parent never had, and L2-SP leaves the new task's head free by design. Parameter names are matched
after removing the wrappers' prefixes (peft's ``base_model.model.``, DDP's ``module.``); a model whose trained
weights match no anchor (e.g. LoRA adapters against a full model's anchor) is refused in one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from domainfm.config import RegularisationConfig
from domainfm.engine.loss_terms import LossTerm, Step
from domainfm.errors import ConfigError

PARAM_PREFIX = "param."
FISHER_PREFIX = "fisher."
WRAPPER_PREFIXES = ("module.", "base_model.model.")
HEAD_PREFIXES = ("classifier", "score", "head.")


def plain_name(name: str) -> str:
    """A parameter's name without the wrappers' prefixes."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
    return name


def is_head(name: str) -> bool:
    return plain_name(name).startswith(HEAD_PREFIXES)


class WeightAnchor(LossTerm):
    """``weight / 2 · Σ F · (θ − θ₀)²`` over the trained, non-head parameters (``F`` = 1 for L2-SP)."""

    def __init__(self, name: str, weight: float, anchor: str | None, use_fisher: bool) -> None:
        self.name = name
        self.weight = weight
        self.anchor = anchor
        self.use_fisher = use_fisher
        self._pairs: list[tuple[Any, Any, Any]] | None = None

    def _bind(self, model: Any) -> list[tuple[Any, Any, Any]]:
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad and not is_head(n)]
        stored: dict[str, Any] = {}
        if self.anchor is not None:
            from safetensors.torch import load_file

            stored = load_file(str(self.anchor))
        pairs = []
        for name, param in params:
            key = plain_name(name)
            if self.anchor is None:
                ref, fisher = param.detach().clone(), None
            else:
                ref = stored.get(PARAM_PREFIX + key)
                fisher = stored.get(FISHER_PREFIX + key) if self.use_fisher else None
                if ref is None or ref.shape != param.shape or (self.use_fisher and fisher is None):
                    continue
                ref = ref.to(device=param.device, dtype=param.dtype)
                fisher = None if fisher is None else fisher.to(device=param.device, dtype=param.dtype)
            pairs.append((param, ref, fisher))
        if not pairs:
            raise ConfigError(f"train.regularisation.{self.name}: no trained weight has an anchor in "
                              f"{self.anchor or 'the starting model'} (LoRA/prompt modes train adapters the anchor "
                              "does not hold; use model.mode=full)")
        return pairs

    def extra(self, step: Step, outputs: Any, loss: Any) -> Any:
        if self._pairs is None:
            self._pairs = self._bind(step.model)
        total: Any = 0.0
        for param, ref, fisher in self._pairs:
            diff = (param.float() - ref.float()).pow(2)
            total = total + ((diff * fisher.float()).sum() if fisher is not None else diff.sum())
        return 0.5 * self.weight * total


def weight_anchor_terms(reg: RegularisationConfig) -> list[LossTerm]:
    """The L2-SP / EWC terms ``train.regularisation`` asks for."""
    terms: list[LossTerm] = []
    if reg.l2sp > 0:
        terms.append(WeightAnchor("l2sp", reg.l2sp, reg.anchor, use_fisher=False))
    if reg.ewc > 0:
        if not reg.anchor:
            raise ConfigError("train.regularisation.ewc needs train.regularisation.anchor (the parent's weights and "
                              "Fisher information; domainfm improve writes it)")
        if not Path(reg.anchor).is_file():
            raise ConfigError(f"train.regularisation.anchor: {reg.anchor}: no such file")
        terms.append(WeightAnchor("ewc", reg.ewc, reg.anchor, use_fisher=True))
    return terms


def fisher_diagonal(model: Any, batches: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The diagonal empirical Fisher of ``model`` over ``batches`` (dicts of model inputs with ``labels``): the mean
    squared gradient of each non-head parameter, scaled so the mean over all entries is 1."""
    import torch

    params = {n: p for n, p in model.named_parameters() if not is_head(n)}
    sums = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    model.eval()
    count = 0
    for batch in batches:
        model.zero_grad(set_to_none=True)
        out = model(**batch)
        out.loss.backward()
        for n, p in params.items():
            if p.grad is not None:
                sums[n] += p.grad.detach().float().pow(2)
        count += 1
    model.zero_grad(set_to_none=True)
    if count == 0:
        raise ConfigError("train.regularisation.ewc: no parent training rows to estimate the Fisher information on")
    total = sum(float(s.sum()) for s in sums.values())
    size = sum(s.numel() for s in sums.values())
    scale = size / total if total > 0 else 1.0
    return {plain_name(n): s * scale for n, s in sums.items()}


def save_anchor(model: Any, path: Path, fisher: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s non-head weights (``param.NAME``) and ``fisher`` (``fisher.NAME``) to ``path``."""
    import os
    import tempfile

    from safetensors.torch import save_file

    tensors = {PARAM_PREFIX + plain_name(n): p.detach().float().contiguous().cpu()
               for n, p in model.named_parameters() if not is_head(n)}
    for name, value in (fisher or {}).items():
        tensors[FISHER_PREFIX + name] = value.contiguous().cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    save_file(tensors, tmp)
    os.replace(tmp, path)
    return path


def write_parent_anchor(base_dir: Path, texts: Sequence[str], labels: Sequence[int], path: Path, *,
                        with_fisher: bool, max_length: int, batch_size: int = 16, max_rows: int = 512) -> Path:
    """The anchor file of a parent model saved at ``base_dir``: its weights and, ``with_fisher``, the Fisher
    information on up to ``max_rows`` of ``texts`` (the rows replayed from its training data)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(base_dir), use_safetensors=True)
    fisher = None
    if with_fisher:
        tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
        rows = list(zip(texts, labels, strict=True))[:max_rows]

        def batches() -> Iterable[dict[str, Any]]:
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                enc = tokenizer([t for t, _ in chunk], truncation=True, max_length=max_length, padding=True,
                                return_tensors="pt")
                yield {**enc, "labels": torch.tensor([y for _, y in chunk])}

        fisher = fisher_diagonal(model, batches())
    return save_anchor(model, path, fisher)
