"""One composable training loss for the Hugging Face ``Trainer``: a criterion plus a list of loss terms.

Every technique that changes how a training batch is turned into a loss plugs in here instead of writing its own
``Trainer`` subclass, so techniques combine (R-Drop with adversarial training with mixup, distillation with any of
them, and later regularisers such as L2-SP or EWC):

- the **criterion** ``(logits, targets) -> loss`` is the primary loss: cross-entropy with the run's class weights
  and ``TrainingArguments.label_smoothing_factor`` by default (:func:`cross_entropy_criterion`); distillation's
  KL-to-the-teacher is another criterion (``targets`` holds ``labels`` and any extra columns the terms asked for);
- a **term** (:class:`LossTerm`) may change the batch before the main forward pass (:meth:`LossTerm.prepare`:
  token cutoff masks tokens, mixup mixes embeddings and wraps the criterion, adversarial training switches the
  batch to embeddings) and may add a loss after it (:meth:`LossTerm.extra`: R-Drop's second dropout pass,
  the adversarial loss, a weight penalty).

Terms run in training only; evaluation gets the criterion on the clean batch. :func:`loss_trainer_class` makes
the ``Trainer`` subclass; ``build_trainer(..., trainer_class=...)`` takes it. Adding a technique = one
``LossTerm`` subclass and one line in :func:`terms_from_config` (or the caller passes its own list).

torch and transformers are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from domainfm.config import TrainConfig

Criterion = Callable[[Any, dict[str, Any]], Any]


@dataclass
class Step:
    """One training batch on its way to a loss. ``inputs`` are the model's keyword arguments, ``targets`` the
    ``labels`` and extra columns; ``embeds`` is set once the batch runs on word embeddings (:meth:`use_embeddings`)."""

    model: Any
    inputs: dict[str, Any]
    targets: dict[str, Any]
    criterion: Criterion
    embeds: Any = None
    state: dict[str, Any] = field(default_factory=dict)

    def loss(self, logits: Any) -> Any:
        return self.criterion(logits, self.targets)

    def forward(self, **override: Any) -> Any:
        return self.model(**{**self.inputs, **override})

    def use_embeddings(self) -> Any:
        """Replace ``input_ids`` by their word embeddings (``inputs_embeds``, gradient flowing to the embedding
        matrix) and return them; the model adds positions and token types as usual."""
        if self.embeds is None:
            if "input_ids" not in self.inputs:
                raise ValueError("an embedding-level technique needs input_ids in the batch")
            table = self.model.get_input_embeddings()
            self.embeds = table(self.inputs.pop("input_ids"))
            self.inputs["inputs_embeds"] = self.embeds
        return self.embeds

    def set_embeddings(self, embeds: Any) -> None:
        self.embeds = embeds
        self.inputs["inputs_embeds"] = embeds


class LossTerm:
    """A technique in the composable loss. Override :meth:`prepare` and/or :meth:`extra`."""

    name = "term"
    columns: tuple[str, ...] = ()
    """extra dataset columns the term reads from ``Step.targets`` (kept by the Trainer, popped from the inputs)"""
    needs_embeddings = False
    """true when the term runs the model on ``inputs_embeds`` (refused for models that take token ids only)"""

    def prepare(self, step: Step) -> None:
        """Change the batch (``step.inputs`` / ``step.criterion``) before the main forward pass."""

    def extra(self, step: Step, outputs: Any, loss: Any) -> Any | None:
        """An additional loss, given the main pass's outputs and loss (None: nothing to add)."""
        return None


def logits_of(outputs: Any) -> Any:
    return outputs["logits"] if isinstance(outputs, dict) else outputs.logits


def cross_entropy_criterion(class_weights: Sequence[float] | None = None, label_smoothing: float = 0.0) -> Criterion:
    """Cross-entropy in float32 with optional class weights and label smoothing."""
    import torch
    import torch.nn.functional as F

    table = None if class_weights is None else torch.tensor(list(class_weights), dtype=torch.float32)

    def criterion(logits: Any, targets: dict[str, Any]) -> Any:
        weight = None if table is None else table.to(logits.device)
        return F.cross_entropy(logits.float(), targets["labels"], weight=weight, label_smoothing=label_smoothing)

    return criterion


def symmetric_kl(logits_a: Any, logits_b: Any) -> Any:
    """``(KL(p_a || p_b) + KL(p_b || p_a)) / 2`` per batch mean, in float32."""
    import torch.nn.functional as F

    log_a, log_b = F.log_softmax(logits_a.float(), dim=-1), F.log_softmax(logits_b.float(), dim=-1)
    kl_ab = (log_a.exp() * (log_a - log_b)).sum(-1)
    kl_ba = (log_b.exp() * (log_b - log_a)).sum(-1)
    return ((kl_ab + kl_ba) / 2).mean()


class RDrop(LossTerm):
    """R-Drop (Liang et al., 2021): a second forward pass under other dropout masks; its loss plus ``alpha`` times
    the symmetric KL between the two passes' predictions."""

    name = "rdrop"

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def extra(self, step: Step, outputs: Any, loss: Any) -> Any:
        second = logits_of(step.forward())
        return step.loss(second) + self.alpha * symmetric_kl(logits_of(outputs), second)


class TokenCutoff(LossTerm):
    """Token cutoff (Shen et al., 2020): each row loses attention to a random ``ratio`` of its tokens (never the
    first, ``[CLS]``, nor the last, ``[SEP]``)."""

    name = "cutoff"

    def __init__(self, ratio: float) -> None:
        self.ratio = ratio

    def prepare(self, step: Step) -> None:
        import torch

        mask = step.inputs.get("attention_mask")
        if mask is None:
            return
        mask = mask.clone()
        lengths = mask.sum(dim=1)
        for row, n in enumerate(lengths.tolist()):
            inner = int(n) - 2
            cut = int(round(inner * self.ratio))
            if inner <= 1 or cut < 1:
                continue
            positions = torch.randperm(inner, device=mask.device)[:cut] + 1
            mask[row, positions] = 0
        step.inputs["attention_mask"] = mask


class EmbeddingMixup(LossTerm):
    """Embedding-level mixup (Guo et al., 2019): each row's word embeddings mixed with another row's,
    ``lam ~ Beta(alpha, alpha)`` (the larger share kept for the row), and the loss mixed the same way."""

    name = "mixup"
    needs_embeddings = True

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def prepare(self, step: Step) -> None:
        import torch

        embeds = step.use_embeddings()
        n = embeds.shape[0]
        if n < 2:
            return
        beta = torch.distributions.Beta(torch.tensor(self.alpha), torch.tensor(self.alpha))
        lam = float(beta.sample())
        lam = max(lam, 1.0 - lam)
        perm = torch.randperm(n, device=embeds.device)
        step.set_embeddings(lam * embeds + (1.0 - lam) * embeds[perm])
        if "attention_mask" in step.inputs:
            mask = step.inputs["attention_mask"]
            step.inputs["attention_mask"] = torch.maximum(mask, mask[perm])
        base = step.criterion

        def mixed(logits: Any, targets: dict[str, Any]) -> Any:
            shuffled = {k: v[perm] if hasattr(v, "shape") and v.shape[:1] == (n,) else v for k, v in targets.items()}
            return lam * base(logits, targets) + (1.0 - lam) * base(logits, shuffled)

        step.criterion = mixed
        step.state["mixup_lambda"] = lam


def terms_from_config(train: TrainConfig) -> list[LossTerm]:
    """The terms ``train.augment`` (cutoff, mixup), ``train.regularisation`` (R-Drop) and ``train.adversarial``
    ask for, in the order they apply: batch changes first, then the extra losses."""
    from domainfm.engine.adversarial import adversarial_term

    terms: list[LossTerm] = []
    if "cutoff" in train.augment.methods:
        terms.append(TokenCutoff(train.augment.cutoff))
    if "mixup" in train.augment.methods:
        terms.append(EmbeddingMixup(train.augment.mixup_alpha))
    if train.regularisation.rdrop > 0:
        terms.append(RDrop(train.regularisation.rdrop))
    adversarial = adversarial_term(train.adversarial)
    if adversarial is not None:
        terms.append(adversarial)
    from domainfm.continual.regularisers import weight_anchor_terms

    terms.extend(weight_anchor_terms(train.regularisation))  # L2-SP / EWC toward a parent's weights
    return terms


def needs_loss_trainer(train: TrainConfig, terms: Sequence[LossTerm]) -> bool:
    return bool(terms) or train.regularisation.label_smoothing > 0


def composed_loss(step: Step, terms: Sequence[LossTerm], training: bool) -> tuple[Any, Any, dict[str, float]]:
    """The main pass's loss plus every term's extra loss (terms only in training); returns (loss, outputs of
    the main pass, each part's value for logging)."""
    active = terms if training else ()
    for term in active:
        term.prepare(step)
    outputs = step.forward()
    loss = step.loss(logits_of(outputs))
    parts = {"criterion": float(loss.detach())}
    total = loss
    for term in active:
        added = term.extra(step, outputs, loss)
        if added is not None:
            parts[term.name] = float(added.detach())
            total = total + added
    return total, outputs, parts


def loss_trainer_class(
    terms: Sequence[LossTerm],
    criterion: Criterion | None = None,
    *,
    class_weights: Sequence[float] | None = None,
    eval_criterion: Criterion | None = None,
    columns: Sequence[str] = (),
) -> type:
    """A ``Trainer`` subclass whose loss is ``criterion`` (default: cross-entropy with ``class_weights`` and the
    arguments' ``label_smoothing_factor``) plus ``terms``. ``eval_criterion`` scores batches in evaluation (default:
    the criterion; distillation uses plain cross-entropy there, as validation rows have no teacher logits).
    ``columns``: extra dataset columns the criterion reads from ``targets`` (e.g. distillation's teacher logits)."""
    from transformers import Trainer

    terms = list(terms)
    kept = tuple(dict.fromkeys([*columns, *(c for t in terms for c in t.columns)]))

    class LossTermsTrainer(Trainer):
        loss_terms = terms
        extra_columns: tuple[str, ...] = kept
        loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it under gradient accumulation

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            signature_columns = cast(list[str], self._signature_columns)  # set by the call above
            for column in self.extra_columns:
                if column not in signature_columns:
                    signature_columns.append(column)

        def _criterion(self, training: bool) -> Criterion:
            if not training and eval_criterion is not None:
                return eval_criterion
            if criterion is not None:
                return criterion
            return cross_entropy_criterion(class_weights, float(self.args.label_smoothing_factor))

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            inputs = dict(inputs)
            targets = {"labels": inputs.pop("labels")}
            for column in self.extra_columns:
                if column in inputs:
                    targets[column] = inputs.pop(column)
            training = bool(model.training)
            step = Step(model=model, inputs=inputs, targets=targets, criterion=self._criterion(training))
            loss, outputs, _parts = composed_loss(step, self.loss_terms, training)
            return (loss, outputs) if return_outputs else loss

    return LossTermsTrainer
