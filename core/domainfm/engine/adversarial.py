"""Adversarial training on the word embeddings (``train.adversarial``), as terms of the composable loss
(:mod:`domainfm.engine.loss_terms`).

- ``fgm`` (Miyato et al., 2017): ``r = epsilon * g / ||g||`` with ``g`` the gradient of the clean loss with
  respect to a row's word embeddings; the loss at ``embeddings + r`` is added (times ``weight``);
- ``pgd`` (Madry et al., 2018): ``steps`` ascent steps of size ``step_size`` on ``r``, each projected back into
  the L2 ball of radius ``epsilon``; the loss at the last ``r`` is added;
- ``freelb`` (Zhu et al., 2020): the same ascent, but the losses at every step are averaged (the parameters get
  the gradient of each step), starting from a random ``r`` inside the ball.

Norms are per row, over the row's real tokens (padding gets no perturbation). The perturbation is a constant
for the parameters' gradient: only the adversarial loss through the model (and the embedding matrix) trains.
"""

from __future__ import annotations

from typing import Any

from domainfm.config import AdversarialConfig
from domainfm.engine.loss_terms import LossTerm, Step, logits_of


def _row_normalised(g: Any, mask: Any) -> Any:
    """``g`` masked to real tokens and divided by each row's L2 norm."""
    g = g * mask
    norm = g.flatten(1).norm(dim=1).clamp_min(1e-12)
    return g / norm.view(-1, *([1] * (g.dim() - 1)))


def _project(delta: Any, epsilon: float) -> Any:
    norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    scale = (epsilon / norm).clamp(max=1.0)
    return delta * scale.view(-1, *([1] * (delta.dim() - 1)))


class EmbeddingAdversary(LossTerm):
    """FGM, PGD or FreeLB on the word embeddings; see the module docstring."""

    needs_embeddings = True

    def __init__(self, method: str, epsilon: float, steps: int = 1, step_size: float | None = None,
                 weight: float = 1.0) -> None:
        if method not in ("fgm", "pgd", "freelb"):
            raise ValueError(f"train.adversarial.method: {method!r} is not fgm, pgd or freelb")
        self.name = method
        self.method = method
        self.epsilon = epsilon
        self.steps = 1 if method == "fgm" else steps
        self.step_size = step_size or epsilon / self.steps
        self.weight = weight

    def prepare(self, step: Step) -> None:
        embeds = step.use_embeddings()
        if not embeds.requires_grad:  # a frozen embedding matrix (peft modes): the gradient is taken at a leaf
            step.set_embeddings(embeds.detach().requires_grad_(True))

    def _mask(self, step: Step) -> Any:
        embeds = step.embeds
        mask = step.inputs.get("attention_mask")
        if mask is None:
            return embeds.new_ones(embeds.shape[:2]).unsqueeze(-1)
        return mask[:, : embeds.shape[1]].unsqueeze(-1).to(embeds.dtype)

    def adversarial_loss(self, step: Step, clean_loss: Any) -> Any:
        import torch

        embeds = step.embeds
        mask = self._mask(step)
        if self.method == "fgm":
            (g,) = torch.autograd.grad(clean_loss, embeds, retain_graph=True)
            delta = self.epsilon * _row_normalised(g.detach(), mask)
            return step.loss(logits_of(step.forward(inputs_embeds=embeds + delta)))
        if self.method == "freelb":
            delta = _project(torch.empty_like(embeds).uniform_(-1, 1) * mask, self.epsilon * torch.rand(()).item())
        else:
            delta = torch.zeros_like(embeds)
        losses = []
        for _ in range(self.steps):
            delta = delta.detach().requires_grad_(True)
            # pgd: the ascent runs on detached embeddings (only the final loss trains); freelb: every step trains
            base = embeds if self.method == "freelb" else embeds.detach()
            loss = step.loss(logits_of(step.forward(inputs_embeds=base + delta)))
            if self.method == "freelb":
                losses.append(loss)
            (g,) = torch.autograd.grad(loss, delta, retain_graph=self.method == "freelb")
            delta = _project(delta.detach() + self.step_size * _row_normalised(g.detach(), mask), self.epsilon)
        if self.method == "freelb":
            return torch.stack(losses).mean()
        return step.loss(logits_of(step.forward(inputs_embeds=embeds + delta.detach())))

    def extra(self, step: Step, outputs: Any, loss: Any) -> Any:
        return self.weight * self.adversarial_loss(step, loss)


def adversarial_term(config: AdversarialConfig) -> EmbeddingAdversary | None:
    if config.method == "none":
        return None
    return EmbeddingAdversary(config.method, config.epsilon, config.steps, config.step_size, config.weight)
