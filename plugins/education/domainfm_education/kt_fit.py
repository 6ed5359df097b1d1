"""Windows, batches, the training loop and next-answer predictions for the knowledge-tracing models.

Protocol (pinned): every student's sequence is cut into consecutive non-overlapping windows of
``max_len`` answers (DKVMN/DKT practice); a window is one training sequence and its history starts empty.
The answer at position 0 of a window is never scored (there is nothing to predict it from). Training
uses Adam with early stopping on validation AUC, seeded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from domainfm.engine.label_evaluation import binary_auc as auc
from domainfm_education.kt_models import build_model, history_features

log = logging.getLogger(__name__)


@dataclass
class Window:
    skills: np.ndarray
    correct: np.ndarray
    feats: np.ndarray
    owner: int  # index of the sequence the window comes from


@dataclass
class FitResult:
    model: Any
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_valid_auc: float = float("nan")
    seconds: float = 0.0


def make_windows(sequences: Sequence[tuple[Sequence[int], Sequence[int]]], max_len: int) -> list[Window]:
    """Consecutive windows of at most ``max_len``; windows with fewer than 2 answers are dropped."""
    out = []
    for owner, (skills, correct) in enumerate(sequences):
        for start in range(0, len(skills), max_len):
            s = np.asarray(skills[start : start + max_len], dtype=np.int64)
            c = np.asarray(correct[start : start + max_len], dtype=np.int64)
            if len(s) >= 2:
                out.append(Window(s, c, history_features(s, c), owner))
    return out


def collate(windows: Sequence[Window], device: str) -> tuple[torch.Tensor, ...]:
    """Pad to the longest window: skills, correct, features, and the mask of scored positions (t >= 1)."""
    length = max(len(w.skills) for w in windows)
    b = len(windows)
    skills = np.zeros((b, length), dtype=np.int64)
    correct = np.zeros((b, length), dtype=np.int64)
    feats = np.zeros((b, length, windows[0].feats.shape[1]), dtype=np.float32)
    mask = np.zeros((b, length), dtype=bool)
    for i, w in enumerate(windows):
        n = len(w.skills)
        skills[i, :n], correct[i, :n], feats[i, :n] = w.skills, w.correct, w.feats
        mask[i, 1:n] = True
    return tuple(torch.from_numpy(x).to(device) for x in (skills, correct, feats, mask))


@torch.no_grad()
def predict_windows(model: Any, windows: Sequence[Window], device: str, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities and labels of every scored position, plus the window index of each."""
    model.eval()
    probs, labels, owners = [], [], []
    order = np.argsort([len(w.skills) for w in windows])
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = [windows[i] for i in idx]
        skills, correct, feats, mask = collate(batch, device)
        p = torch.sigmoid(model(skills, correct, feats))
        probs.append(p[mask].float().cpu().numpy())
        labels.append(correct[mask].cpu().numpy())
        owners.append(np.repeat(idx, mask.sum(1).cpu().numpy()))
    if not probs:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=int)
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(owners)


def fit(
    kind: str,
    n_skills: int,
    train: Sequence[Window],
    valid: Sequence[Window],
    *,
    device: str = "cpu",
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 1e-3,
    patience: int = 3,
    seed: int = 42,
    params: dict[str, Any] | None = None,
    max_seconds: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> FitResult:
    """Train a ``kind`` model; keep the weights of the epoch with the best validation AUC."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(kind, n_skills, **(params or {})).to(device)
    optim = torch.optim.Adam(model.parameters(), lr=lr)
    result = FitResult(model=model)
    best_state: dict[str, torch.Tensor] | None = None
    started = time.perf_counter()
    stale = 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(len(train))
        total, count = 0.0, 0
        for start in range(0, len(order), batch_size):
            batch = [train[i] for i in order[start : start + batch_size]]
            skills, correct, feats, mask = collate(batch, device)
            logits = model(skills, correct, feats)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[mask], correct[mask].float())
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            total += float(loss.detach()) * int(mask.sum())
            count += int(mask.sum())
        p, y, _ = predict_windows(model, valid, device) if valid else (np.zeros(0), np.zeros(0), None)
        valid_auc = auc(y, p) if len(y) else float("nan")
        row = {"epoch": epoch, "train_loss": total / max(count, 1), "valid_auc": valid_auc,
               "seconds": time.perf_counter() - started}
        result.history.append(row)
        if progress:
            progress(f"{kind} epoch {epoch}: loss {row['train_loss']:.4f} valid AUC {valid_auc:.4f}")
        if best_state is None or (valid_auc == valid_auc and not valid_auc <= result.best_valid_auc):
            result.best_valid_auc, result.best_epoch = valid_auc, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            stale = 0
        else:
            stale += 1
        if stale >= patience or (max_seconds is not None and time.perf_counter() - started > max_seconds):
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - started
    return result
