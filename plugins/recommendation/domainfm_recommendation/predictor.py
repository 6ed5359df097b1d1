"""The loaded recommender behind ``domainfm predict``, the HTTP route and the ``rec`` commands.

Records (one dict each):

- ``{"user": "u1", "k": 10}``: recommendations for a known user (seen items excluded);
- ``{"user": "new", "history": ["i3", "i7"]}`` or ``{"history": [...]}``: a new user with a few items
  (cold start), or extra recent items for a known user;
- ``{"item": "i3", "k": 10}``: "more like this".

Defined behaviour for bad requests, never a crash: an unknown user without history gets the popular
items (``extra.fallback = "popularity"``); unknown ids in a history are ignored and listed in
``extra.unknown_history_items``; an unknown item or a record with neither ``user``, ``history`` nor
``item`` is answered with ``abstained=True`` and the reason in ``explanation.error``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.types import Prediction, RankedItem

from domainfm_recommendation.model import Recommendation, TextRecommender

DEFAULT_K = 10
MAX_K = 1000


class RecommendationPredictor:
    """Answers recommendation and similar-item requests from a :class:`TextRecommender`."""

    domain = "recommendation"

    def __init__(self, model: TextRecommender, device: str = "cpu", artifact_path: Path | None = None) -> None:
        self.model = model
        self.device = device
        self.artifact_path = artifact_path
        self._encoder: Any = None

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> RecommendationPredictor:
        from domainfm_recommendation.seqmodel import load_recommender

        path = Path(path)
        return cls(load_recommender(path), device, path)

    # ------------------------------------------------------------------------------ requests

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        return [self._one(r) for r in records]

    def _one(self, record: Mapping[str, Any]) -> Prediction:
        try:
            k = int(record.get("k", DEFAULT_K))
        except (TypeError, ValueError):
            return _refuse(None, f"field 'k' is not an integer: {record.get('k')!r}")
        if not 1 <= k <= MAX_K:
            return _refuse(None, f"field 'k' must be in [1, {MAX_K}], got {k}")
        if record.get("item") is not None and record.get("user") is None and not record.get("history"):
            return self._similar(str(record["item"]), k)
        if record.get("user") is None and not record.get("history"):
            return _refuse(None, "record needs 'user', 'history' or 'item'")
        user = None if record.get("user") is None else str(record["user"])
        history = record.get("history") or []
        if isinstance(history, str):
            history = [h for h in history.replace(",", " ").split() if h]
        return self._recommend(user, [str(h) for h in history], k)

    def _recommend(self, user: str | None, history: list[str], k: int) -> Prediction:
        positions, unknown = self.model.history_of(user, history)
        known_user = user is not None and user in self.model.histories
        recs = self.model.recommend(positions, k)
        extra: dict[str, Any] = {"history_length": int(len(positions)), "known_user": known_user}
        if unknown:
            extra["unknown_history_items"] = unknown
        if len(positions) == 0:
            extra["fallback"] = "popularity"
        confidence = self._confidence(recs, len(positions))
        return Prediction(id=user, ranking=_ranked(recs), confidence=confidence, extra=extra)

    def _similar(self, item: str, k: int) -> Prediction:
        try:
            recs = self.model.similar(item, k)
        except KeyError:
            return _refuse(item, f"unknown item {item!r}")
        return Prediction(id=item, ranking=_ranked(recs), extra={"kind": "similar_items"})

    def _confidence(self, recs: list[Recommendation], history_len: int) -> float:
        scores = np.asarray([r.score for r in recs] + [0.0] * max(0, 10 - len(recs)), dtype=float)[None, :]
        return float(self.model.confidence(scores, np.asarray([history_len], dtype=float))[0])

    # ------------------------------------------------------------------------------ cold items

    def add_items(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Add new catalogue items (``item``, ``title``, ``text``/``tags``): recommendable at once."""
        from domainfm_recommendation.pipeline import embed_items
        from domainfm_recommendation.readers import items_from_rows

        items = items_from_rows([dict(r) for r in records], "add_items")
        if not items:
            return 0
        embeddings = embed_items([it.text for it in items], self.encoder())
        return self.model.add_items([it.item for it in items], [it.title for it in items], embeddings,
                                    [it.creator for it in items])

    def encoder(self) -> Any:
        """The base-model text encoder (loaded on first use: only cold items and text queries need it)."""
        if self._encoder is None:
            from domainfm.engine.encoder import TextEncoder

            self._encoder = TextEncoder(self.model.base_model, device=self.device)
        return self._encoder


def _ranked(recs: list[Recommendation]) -> list[RankedItem]:
    return [RankedItem(id=r.item, score=r.score, reason=r.reason) for r in recs]


def _refuse(pid: str | None, message: str) -> Prediction:
    return Prediction(id=pid, ranking=[], abstained=True, explanation={"error": message})
