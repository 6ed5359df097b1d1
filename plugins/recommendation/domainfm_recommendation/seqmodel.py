"""The served sequential recommender: the text-aware transformer ranks, the text/kNN model explains.

:class:`SequentialRecommender` is a :class:`~domainfm_recommendation.model.TextRecommender` (same item table,
text embeddings, histories, popularity, FAISS index, "more like this" and reasons) whose ``score`` and
``recommend`` come from the sequential network: the user's history in order, the newest item last. Items
added later (``add_items``) have no ID vector and are ranked through their text representation at once.

Ranking score: ``log_softmax(network logits) + mix_weight · text/kNN mix score``, ``mix_weight`` chosen on the
validation split (0 leaves the network alone): the mix adds the item-kNN co-occurrence signal the network
learns only through its ID vectors, and a text pull toward the recent history. ``recommend`` keeps
``fresh_slots`` places from rank ``fresh_position`` on for the best-scoring items without interactions
(:mod:`~domainfm_recommendation.fresh`).

On disk: the text recommender's files plus ``sequential.safetensors`` (network weights, warm-item mask) and
``config.json["sequential"]`` (its :class:`~domainfm_recommendation.seqnet.SeqConfig`, text width, ID rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.errors import DataError

from domainfm_recommendation.fresh import fresh_order
from domainfm_recommendation.model import Recommendation, TextRecommender, read_model_config

MODEL_KINDS = ("sequential", "text_mix")
# MovieLens, validation NDCG@10: the fused sequential model 0.092, the text/kNN mix alone 0.079, the network alone
# 0.078 (benchmarks/recommendation/sequential_bench.py)
DEFAULT_MODEL_KIND = "sequential"
FRESH_SLOTS, FRESH_POSITION = 2, 19  # places 19 and 20 of a list go to items nobody has interacted with yet


class SequentialRecommender(TextRecommender):
    """A :class:`TextRecommender` whose ranking comes from a :class:`~domainfm_recommendation.seqnet.SeqNet`."""

    model_kind = "sequential"

    def __init__(self, *args: Any, net: Any, warm: np.ndarray, mix_weight: float = 0.0,
                 fresh_slots: int = FRESH_SLOTS, fresh_position: int = FRESH_POSITION, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.net = net
        self.warm = np.asarray(warm, dtype=bool)
        self.mix_weight = float(mix_weight)
        self.fresh_slots, self.fresh_position = int(fresh_slots), int(fresh_position)
        self._scorer: Any = None

    def fresh_items(self) -> np.ndarray:
        """True for the catalogue items without interactions (no ID vector: never seen in training, or added
        since)."""
        fresh = np.ones(self.n_items, dtype=bool)
        n = min(len(self.warm), self.n_items)
        fresh[:n] = ~self.warm[:n]
        return fresh

    @classmethod
    def from_parts(cls, text_model: TextRecommender, net: Any, warm: np.ndarray,
                   mix_weight: float = 0.0) -> SequentialRecommender:
        m = text_model
        return cls(m.item_ids, m.titles, m.embeddings, m.similarity, m.popularity, m.weights, m.histories,
                   m.calibration, m.base_model, m.creators, m.dense_limit, m.index, net=net, warm=warm,
                   mix_weight=mix_weight)

    def scorer(self) -> Any:
        """The network's scorer over the current catalogue (rebuilt after ``add_items``)."""
        from domainfm_recommendation.seqtrain import SeqScorer

        if self._scorer is None or self._scorer.table.shape[0] != self.n_items:
            self._scorer = SeqScorer(self.net, self.embeddings, self.warm)
        return self._scorer

    def score(self, user_ids: Sequence[str], histories: Sequence[np.ndarray]) -> np.ndarray:
        net = self.scorer()(user_ids, histories).astype(np.float64)
        if self.mix_weight == 0.0:
            return net
        return fuse(net, super().score(user_ids, histories), self.mix_weight)

    def recommend(self, history: np.ndarray, k: int = 10, exclude: np.ndarray | None = None,
                  candidates: np.ndarray | None = None) -> list[Recommendation]:
        """Top-``k`` by the sequential network (exact over the catalogue: one matrix product per user)."""
        if k <= 0:
            raise ValueError("k must be positive")
        if len(history) == 0:
            return self.popular(k, exclude)
        scores = self.score([""], [history])[0]
        seen = history if exclude is None else exclude
        scores[np.asarray(seen, dtype=np.int64)] = -np.inf
        order = fresh_order(scores, self.fresh_items(), self.fresh_slots, self.fresh_position)[:k]
        items = [int(i) for i in order if np.isfinite(scores[i])]
        reasons = self.explain_many(history, items)
        return [Recommendation(self.item_ids[i], float(scores[i]), why) for i, why in zip(items, reasons, strict=True)]

    def recommend_many(self, histories: Sequence[np.ndarray], k: int = 10) -> list[list[Recommendation]]:
        return [self.recommend(h, k) for h in histories]

    def add_items(self, item_ids: Sequence[str], titles: Sequence[str], embeddings: np.ndarray,
                  creators: Sequence[str] | None = None) -> int:
        added = super().add_items(item_ids, titles, embeddings, creators)
        self._scorer = None  # new rows of the item table (text only: they have no ID vector)
        return added

    def save(self, path: str | Path, extra_config: dict[str, Any] | None = None) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        sequential = {"config": self.net.cfg.as_dict(), "text_dim": int(self.net.proj.in_features),
                      "id_items": self.net.n_id_items, "mix_weight": self.mix_weight,
                      "fresh_slots": self.fresh_slots, "fresh_position": self.fresh_position}
        out = super().save(path, {**(extra_config or {}), "model_kind": self.model_kind, "sequential": sequential})
        import torch

        tensors = {f"net.{k}": v.detach().contiguous() for k, v in self.net.state_dict().items()}
        tensors["warm"] = torch.from_numpy(self.warm.astype(np.uint8))
        tmp = path / "sequential.safetensors.tmp"
        save_file(tensors, str(tmp))
        tmp.replace(path / "sequential.safetensors")
        return out

    @classmethod
    def load(cls, path: str | Path) -> SequentialRecommender:
        from safetensors.torch import load_file

        from domainfm_recommendation.seqnet import SeqConfig, SeqNet

        path = Path(path)
        base = TextRecommender.load(path)
        seq = read_model_config(path).get("sequential")
        weights = path / "sequential.safetensors"
        if not isinstance(seq, dict) or not weights.is_file():
            raise DataError(f"{path}: model_kind 'sequential' but no sequential network (sequential.safetensors)")
        net = SeqNet(int(seq["text_dim"]), int(seq["id_items"]), SeqConfig(**seq["config"]))
        tensors = load_file(str(weights))
        net.load_state_dict({k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")})
        net.eval()
        model = cls.from_parts(base, net, tensors["warm"].numpy().astype(bool), float(seq.get("mix_weight", 0.0)))
        model.fresh_slots = int(seq.get("fresh_slots", 0))  # models saved before the slots existed had none
        model.fresh_position = int(seq.get("fresh_position", FRESH_POSITION))
        return model


def fuse(net_logits: np.ndarray, mix_scores: np.ndarray, mix_weight: float) -> np.ndarray:
    """``log_softmax(net_logits) + mix_weight · mix_scores`` per row (the network as log-probabilities, so one
    weight means the same at every catalogue size)."""
    from scipy.special import log_softmax

    return np.asarray(log_softmax(net_logits, axis=1) + mix_weight * mix_scores, dtype=np.float64)


def load_recommender(path: str | Path) -> TextRecommender:
    """The model in ``path``: a :class:`SequentialRecommender` or a plain :class:`TextRecommender`."""
    path = Path(path)
    config = read_model_config(path)
    kind = config.get("model_kind", "text_mix")
    if kind == "sequential":
        return SequentialRecommender.load(path)
    if kind != "text_mix":
        raise DataError(f"{path / 'config.json'}: model_kind {kind!r} is not one of {list(MODEL_KINDS)}")
    return TextRecommender.load(path)
