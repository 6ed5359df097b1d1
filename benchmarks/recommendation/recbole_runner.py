"""RecBole sequential models (SASRec, GRU4Rec, BERT4Rec) trained on the benchmark's own pinned split and
scored with the plugin's evaluation code.

- The split goes to RecBole as pre-split atomic files (``benchmark_filename``) in RecBole's augmented
  sequential layout: one row per (history prefix, next item). Run ``validation``: train rows are the prefixes
  of each user's ``train`` history, used to pick hyper-parameters and the epoch count; run ``test``: train rows
  are the prefixes of ``train + validation`` (the protocol's refit), trained for the chosen epoch count.
  Histories are cut to the last ``max_len`` items, RecBole's ``MAX_ITEM_LIST_LENGTH``.
- The epoch loop is ``Trainer._train_epoch``'s body (Adam, the model's own ``calculate_loss``): no tensorboard,
  no pickled checkpoints; the best epoch's ``state_dict`` is kept in memory.
- Scores: ``model.full_sort_predict`` over RecBole's item vocabulary, mapped back to the catalogue's item
  positions and ranked by :func:`domainfm_recommendation.pipeline.evaluate_scorer` (history excluded, full
  ranking, ties by position), exactly like every other model of the benchmark. Catalogue items that occur in no
  interaction are outside RecBole's vocabulary and score -inf (no held-out item is one of them).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from domainfm_recommendation.pipeline import IndexedSplit

DATASET = "seqsplit"
ITEM_FIELD = "item_id"
LIST_FIELD = "item_id_list"


def _token_rows(users: Sequence[str], seqs: Sequence[Sequence[str]], targets: Sequence[str]) -> list[str]:
    return [f"{u}\t{' '.join(s)}\t{t}" for u, s, t in zip(users, seqs, targets, strict=True)]


def write_atomic_files(folder: Path, ix: IndexedSplit, run: str, max_len: int) -> Path:
    """``<folder>/<DATASET>/<DATASET>.{train,valid,test}.inter`` for ``run`` ('validation' or 'test')."""
    ids = np.asarray(ix.item_ids, dtype=object)
    source = ix.train_hist if run == "validation" else ix.full_hist
    users, seqs, targets = [], [], []
    for user, hist in zip(ix.users, source, strict=True):
        tokens = ids[hist].tolist()
        for t in range(1, len(tokens)):
            users.append(user)
            seqs.append(tokens[max(0, t - max_len) : t])
            targets.append(tokens[t])
    header = f"user_id:token\t{LIST_FIELD}:token_seq\t{ITEM_FIELD}:token"
    out = folder / DATASET
    out.mkdir(parents=True, exist_ok=True)
    rows = {"train": _token_rows(users, seqs, targets)}
    for name, which in (("valid", "validation"), ("test", "test")):
        hists = ix.hist(which)
        rows[name] = _token_rows(ix.eval_users, [ids[h[-max_len:]].tolist() for h in hists],
                                 ids[ix.targets(which)].tolist())
    for name, lines in rows.items():
        (out / f"{DATASET}.{name}.inter").write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return out


def recbole_config(model: str, data_path: Path, params: dict[str, Any], max_len: int, seed: int) -> Any:
    from recbole.config import Config

    settings: dict[str, Any] = {
        "data_path": str(data_path),
        "checkpoint_dir": str(data_path / "checkpoints"),
        "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": ITEM_FIELD,
        "load_col": {"inter": ["user_id", LIST_FIELD, ITEM_FIELD]},
        "alias_of_item_id": [LIST_FIELD],
        "MAX_ITEM_LIST_LENGTH": max_len,
        "train_neg_sample_args": None,
        "loss_type": "CE",
        "eval_args": {"order": "TO", "mode": "full", "group_by": "user", "split": {"LS": "valid_and_test"}},
        "device": "cpu",
        "use_gpu": False,
        "seed": seed,
        "reproducibility": True,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
        "train_batch_size": 2048,  # RecBole's default
        "eval_batch_size": 2048,
        "weight_decay": 0.0,
        **params,
    }
    return Config(model=model, dataset=DATASET, config_dict=settings)


class RecBoleScorer:
    """``scorer(users, histories) -> (B, n_items)`` in catalogue positions, from ``full_sort_predict``."""

    def __init__(self, model: Any, dataset: Any, item_ids: Sequence[str], max_len: int) -> None:
        token_id = dataset.field2token_id[ITEM_FIELD]
        self.model = model
        self.max_len = max_len
        self.internal = np.asarray([token_id.get(it, 0) for it in item_ids], dtype=np.int64)
        self.unknown = np.asarray([it not in token_id for it in item_ids])

    def __call__(self, users: Sequence[str], histories: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        from recbole.data.interaction import Interaction

        seqs = [self.internal[np.asarray(h, dtype=np.int64)[-self.max_len :]] for h in histories]
        item_seq = np.zeros((len(seqs), self.max_len), dtype=np.int64)
        for r, s in enumerate(seqs):
            item_seq[r, : len(s)] = s
        lengths = np.asarray([max(len(s), 1) for s in seqs], dtype=np.int64)
        inter = Interaction({self.model.ITEM_SEQ: torch.from_numpy(item_seq),
                             self.model.ITEM_SEQ_LEN: torch.from_numpy(lengths)})
        self.model.eval()
        with torch.no_grad():
            scores = self.model.full_sort_predict(inter).reshape(len(seqs), -1).float().numpy()
        out = scores[:, self.internal].astype(np.float64)
        out[:, self.unknown] = -np.inf
        return out


@dataclass
class TrainLog:
    epochs_run: int = 0
    best_epoch: int = 0
    best_validation_ndcg_at_10: float = -1.0
    validation_curve: list[float] = field(default_factory=list)
    seconds: float = 0.0


def build(model_name: str, data_path: Path, params: dict[str, Any], max_len: int, seed: int) -> tuple[Any, Any, Any]:
    """(config, dataset, train_data) for one model on one run's atomic files."""
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    config = recbole_config(model_name, data_path, params, max_len, seed)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    return config, dataset, train_data


def train(
    model_name: str,
    config: Any,
    dataset: Any,
    train_data: Any,
    epochs: int,
    evaluate: Callable[[Any], float] | None = None,
    patience: int = 3,
    deadline: float | None = None,
) -> tuple[Any, TrainLog]:
    """Train up to ``epochs`` epochs; with ``evaluate`` keep the best epoch (early stop after ``patience``)."""
    import torch
    from torch.nn.utils.clip_grad import clip_grad_norm_

    from recbole.utils import get_model, init_seed

    init_seed(config["seed"], config["reproducibility"])
    model = get_model(model_name)(config, train_data.dataset).to(torch.device("cpu"))
    optimizer = torch.optim.Adam(model.parameters(), lr=config["learning_rate"], weight_decay=config["weight_decay"] or 0.0)
    clip = config["clip_grad_norm"]
    log = TrainLog()
    best_state: dict[str, Any] | None = None
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        for inter in train_data:
            optimizer.zero_grad()
            losses = model.calculate_loss(inter)
            loss = sum(losses) if isinstance(losses, tuple) else losses
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{model_name}: loss is {loss.item()} at epoch {epoch}")
            loss.backward()
            if clip:
                clip_grad_norm_(model.parameters(), **clip)
            optimizer.step()
        log.epochs_run = epoch
        if evaluate is not None:
            score = evaluate(model)
            log.validation_curve.append(score)
            if score > log.best_validation_ndcg_at_10 + 1e-12:
                log.best_validation_ndcg_at_10, log.best_epoch = score, epoch
                best_state = copy.deepcopy(model.state_dict())
            elif epoch - log.best_epoch >= patience:
                break
        if deadline is not None and time.perf_counter() > deadline:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        log.best_epoch = log.epochs_run
    log.seconds = time.perf_counter() - started
    return model, log
