"""Training and scoring of :class:`~domainfm_recommendation.seqnet.SeqNet` on item-position histories.

Training sequences: each history is cut, newest first, into windows of ``max_len + 1`` items that overlap by
one item, so every transition (item → next item) of the history is a training target exactly once. Model
selection: the epoch count (and, in the benchmark, the configuration) is chosen on the validation split with
the train histories; the final model is refitted on train + validation for that many epochs.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from domainfm_recommendation.seqnet import SeqConfig, SeqNet, right_align


def training_windows(histories: Sequence[np.ndarray], max_len: int) -> list[np.ndarray]:
    """Windows of at most ``max_len + 1`` items (inputs = all but the last, targets = all but the first)."""
    out: list[np.ndarray] = []
    for h in histories:
        h = np.asarray(h, dtype=np.int64)
        end = len(h)
        while end >= 2:
            start = max(0, end - max_len - 1)
            out.append(h[start:end])
            if start == 0:
                break
            end = start + 1
    return out


def warm_items(histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """True for items that occur in ``histories`` (they get an ID vector)."""
    warm = np.zeros(n_items, dtype=bool)
    for h in histories:
        warm[np.asarray(h, dtype=np.int64)] = True
    return warm


@dataclass
class FitLog:
    epochs_run: int = 0
    best_epoch: int = 0
    best_validation_ndcg_at_10: float = -1.0
    validation_curve: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _batch(windows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    inputs, mask = right_align([w[:-1] for w in windows], max(len(w) - 1 for w in windows))
    targets, _ = right_align([w[1:] for w in windows], inputs.shape[1])
    return torch.from_numpy(inputs), torch.from_numpy(mask), torch.from_numpy(targets)


def _loss(net: SeqNet, table: torch.Tensor, states: torch.Tensor, targets: torch.Tensor,
          generator: torch.Generator, warm_ids: torch.Tensor) -> torch.Tensor:
    """Next-item cross-entropy against the warm items (those with training interactions).

    Items without any training interaction are left out of the softmax: nobody could have chosen them yet
    (in serving they are the newly added items), so training them as negatives would only teach the model to
    bury their text.
    """
    valid = targets >= 0
    h = states[valid]
    tgt = targets[valid]
    negatives = net.cfg.negatives
    if negatives <= 0 or negatives >= len(warm_ids):
        logits = h @ table.T
        if len(warm_ids) < table.shape[0]:
            blocked = torch.ones(table.shape[0], dtype=torch.bool)
            blocked[warm_ids] = False
            logits = logits.masked_fill(blocked[None, :], float("-inf"))
        return F.cross_entropy(logits, tgt)
    # sampled softmax: the target against uniform draws from the warm catalogue (uniform: no logQ term)
    sample = warm_ids[torch.randint(0, len(warm_ids), (negatives,), generator=generator)]
    pos = (h * table[tgt]).sum(-1, keepdim=True)
    neg = h @ table[sample].T
    neg = neg.masked_fill(sample[None, :] == tgt[:, None], float("-inf"))
    return F.cross_entropy(torch.cat([pos, neg], dim=1), torch.zeros(len(tgt), dtype=torch.long))


def fit_seqnet(
    text: np.ndarray,
    histories: Sequence[np.ndarray],
    cfg: SeqConfig,
    *,
    epochs: int | None = None,
    evaluate: Callable[[SeqNet, np.ndarray], float] | None = None,
    deadline: float | None = None,
    log_every: Callable[[int, float, float | None], None] | None = None,
) -> tuple[SeqNet, np.ndarray, FitLog]:
    """Train on ``histories`` (item positions, oldest first) for ``epochs`` (default ``cfg.epochs``).

    With ``evaluate(net, warm) -> validation NDCG@10`` the best epoch is kept and training stops after
    ``cfg.patience`` epochs without improvement. Returns the network, the warm-item mask and the log.
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    n_items = text.shape[0]
    warm = warm_items(histories, n_items)
    net = SeqNet(text.shape[1], n_items, cfg)
    text_t = torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32))
    warm_t = torch.from_numpy(warm)
    warm_ids = torch.from_numpy(np.flatnonzero(warm))
    windows = training_windows(histories, cfg.max_len)
    if not windows:
        raise ValueError("no history has two items: nothing to learn an order from")
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    log = FitLog()
    best_state: dict[str, torch.Tensor] | None = None
    started = time.perf_counter()
    for epoch in range(1, (epochs or cfg.epochs) + 1):
        net.train()
        order = rng.permutation(len(windows))
        total, batches = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            inputs, mask, targets = _batch([windows[i] for i in order[start : start + cfg.batch_size]])
            keep = None
            if cfg.id_dropout > 0:
                keep = torch.rand(n_items, generator=generator) >= cfg.id_dropout
            table = net.item_table(text_t, warm_t, keep)
            loss = _loss(net, table, net.encode(table, inputs, mask), targets, generator, warm_ids)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            total += float(loss.detach())
            batches += 1
        log.epochs_run = epoch
        log.losses.append(total / max(batches, 1))
        score = None
        if evaluate is not None:
            score = evaluate(net, warm)
            log.validation_curve.append(score)
            if score > log.best_validation_ndcg_at_10 + 1e-12:
                log.best_validation_ndcg_at_10, log.best_epoch = score, epoch
                best_state = copy.deepcopy(net.state_dict())
            elif epoch - log.best_epoch >= cfg.patience:
                if log_every is not None:
                    log_every(epoch, log.losses[-1], score)
                break
        if log_every is not None:
            log_every(epoch, log.losses[-1], score)
        if deadline is not None and time.perf_counter() > deadline:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        log.best_epoch = log.epochs_run
    log.seconds = time.perf_counter() - started
    net.eval()
    return net, warm, log


class SeqScorer:
    """Scores over the catalogue for histories: ``scorer(users, histories) -> (B, n_items)``."""

    def __init__(self, net: SeqNet, text: np.ndarray, warm: np.ndarray, batch_size: int = 256) -> None:
        self.net = net
        self.batch_size = batch_size
        with torch.no_grad():
            net.eval()
            self.table = net.item_table(torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32)),
                                        torch.from_numpy(np.asarray(warm, dtype=bool)))

    def states(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """The last state of each (non-empty) history."""
        seqs, mask = right_align(list(histories), self.net.cfg.max_len)
        with torch.no_grad():
            return self.net.encode(self.table, torch.from_numpy(seqs), torch.from_numpy(mask))[:, -1]

    def __call__(self, users: Sequence[str], histories: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for start in range(0, len(histories), self.batch_size):
            states = self.states(histories[start : start + self.batch_size])
            with torch.no_grad():
                out.append((states @ self.table.T).numpy())
        return np.vstack(out) if out else np.zeros((0, self.table.shape[0]), dtype=np.float32)
