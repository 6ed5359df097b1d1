"""Training and inference for the finance_sentiment domain on the shared engine (imported only inside hooks).

Training = the core engine's ``fine_tune_text_classifier``; for full and LoRA the domain selects the core recipe
(``train.strategy=recipe`` unless the run sets ``train.strategy``: layer-wise LR decay, optional gradual
unfreezing, a greedy soup of seeds, an optional intermediate task such as ``tfns``; :mod:`domainfm.engine.recipe`),
temperature-calibrated on validation + an abstention threshold chosen on validation + a topic model saved under
``artifact/topics``. The predictor adds the topic to every prediction (``extra["topic"]``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from domainfm.config import DEFAULT_BASE_MODEL
from domainfm.engine.precision import bf16_is_fast, choose_inference_dtype, convert_module  # noqa: F401 (bf16_is_fast re-exported)
from domainfm.engine.text_classifier import (
    TextClassifierPredictor,
    choose_abstain_threshold,
    fine_tune_text_classifier,
)
from domainfm.errors import ConfigError
from domainfm.types import Artifact, DataBundle, Prediction, RunContext

from domainfm_finance_sentiment import DOMAIN, LABELS
from domainfm_finance_sentiment.topics import TopicModel, fit_topics

log = logging.getLogger(__name__)


def _encoder(base: str, device: str, max_length: int | None) -> Any:
    from domainfm.engine.encoder import TextEncoder

    return TextEncoder(base, device=device, max_length=max_length)


def train(ctx: RunContext, data: DataBundle) -> Artifact:
    """Fine-tune the sentiment classifier, pick the abstention threshold and fit the topic model."""
    from domainfm.engine import recipe

    _refuse_moved_options(ctx)
    recipe.select_by_default(ctx)
    artifact = fine_tune_text_classifier(ctx, data, label_names=list(LABELS),
                                         intermediate_data=lambda source: _intermediate_data(ctx, source))
    topics = fit_topic_model(ctx, data, artifact) if str(ctx.option("topics", "auto")) != "off" else None
    choose_serving_settings(ctx, data, artifact, topics)
    return artifact


def choose_serving_settings(ctx: RunContext, data: DataBundle, artifact: Artifact, topics: TopicModel | None = None) -> None:
    """Choose the inference precision and then the abstention threshold on the validation split and save them
    in the artifact's metadata: after training, or again for an artifact trained earlier (the precision is
    compared against float32 whatever the artifact ran at before)."""
    valid = data.tables.get("validation")
    predictor = TextClassifierPredictor.load(artifact, ctx.device, precision="float32")
    if valid is not None and len(valid):
        artifact.metadata.update(choose_inference_dtype(predictor, valid, str(ctx.option("inference_dtype", "auto")),
                                                        other_outputs=_topics_from_features(predictor, topics)))
        predictor.set_precision(artifact.metadata["inference_dtype"])
        artifact.metadata["abstain_threshold"] = choose_abstain_threshold(
            predictor, valid, target_precision=float(ctx.option("target_precision", 0.9))
        )
    artifact.save_metadata()


# the recipe's settings lived in options.* before it moved to the core (train.recipe)
MOVED_OPTIONS = {"recipe": "train.strategy", "head_lr": "train.head_learning_rate",
                 "patience": "train.early_stopping_patience",
                 **{name: f"train.recipe.{name}" for name in ("llrd", "eval_every", "train_budget_s", "unfreeze",
                                                              "freeze_embeddings", "seeds", "lr_scales", "soup",
                                                              "intermediate", "intermediate_epochs")}}


def _refuse_moved_options(ctx: RunContext) -> None:
    """A recipe setting still given as options.NAME would be ignored: say where it lives now."""
    moved = [name for name in MOVED_OPTIONS if ctx.option(name) is not None]
    if moved:
        raise ConfigError("; ".join(f"options.{n}: now {MOVED_OPTIONS[n]}" for n in moved))


def _intermediate_data(ctx: RunContext, source: str) -> DataBundle:
    """``train.recipe.intermediate``: any ``--data`` source of this domain (e.g. ``tfns``)."""
    from domainfm_finance_sentiment.plugin import domainfm_load_data

    bundle = domainfm_load_data(ctx, DOMAIN, source)
    assert bundle is not None
    return bundle


def _topics_from_features(predictor: TextClassifierPredictor, topics: TopicModel | None) -> Any:
    """When topics are assigned from the classifier's own embeddings, a function giving them (so that the
    precision choice holds them to the same rule as the labels); None otherwise."""
    if topics is None:
        return None
    base = predictor.artifact.metadata.get("topics", {}).get("base_model")
    if not FinancePredictor(predictor, topics, base).shares_encoder:
        return None

    def assign(trial: TextClassifierPredictor, texts: list[str]) -> list[str]:
        return topics.assign(trial.features(texts))

    return assign


def fit_topic_model(ctx: RunContext, data: DataBundle, artifact: Artifact) -> TopicModel:
    """Fit the topic model on the training texts' base-encoder embeddings and save it into the artifact."""
    train_table = data.split("train")
    texts = list(train_table["text"])
    topics = list(train_table["topic"]) if "topic" in train_table.column_names else None
    base = ctx.config.model.base or DEFAULT_BASE_MODEL
    encoder = _encoder(base, ctx.device, ctx.config.model.max_length)
    model = fit_topics(
        texts,
        encoder.encode(texts, batch_size=ctx.config.train.eval_batch_size),
        topics,
        n_topics=ctx.option("n_topics"),
        pinned_names=ctx.option("topic_names"),
        seed=ctx.config.train.seed,
    )
    model.save(artifact.path)
    artifact.metadata["topics"] = {"kind": model.kind, "names": model.names, "base_model": base}
    return model


def set_inference_dtype(predictor: TextClassifierPredictor, dtype: str) -> None:
    """Kept for callers of earlier versions: :meth:`TextClassifierPredictor.set_precision`."""
    predictor.set_precision(dtype)


class FinancePredictor:
    """Calibrated sentiment probabilities plus a topic for each text."""

    def __init__(self, inner: TextClassifierPredictor, topics: TopicModel | None, topic_base: str | None) -> None:
        self.inner = inner
        self.domain = DOMAIN
        self.device = inner.device
        self.labels = inner.labels
        self.topics = topics
        self._topic_base = topic_base
        self._encoder: Any = None

    @classmethod
    def load(cls, artifact: Artifact, device: str = "cpu") -> FinancePredictor:
        inner = TextClassifierPredictor.load(artifact, device)  # runs at the precision chosen on validation
        topics = TopicModel.load(artifact.path)
        base = (artifact.metadata.get("topics") or {}).get("base_model") or artifact.base_model
        return cls(inner, topics, base)

    @property
    def shares_encoder(self) -> bool:
        """The classifier is a head on the same frozen encoder the topics were fitted on: one encode serves both."""
        meta = self.inner.artifact.metadata
        return (self.inner.is_head and self._topic_base == self.inner.artifact.base_model
                and not meta.get("pair_features") and not meta.get("encoder"))  # lpft: the encoder was fine-tuned

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Temperature-calibrated probabilities in LABELS order."""
        return self.inner.predict_proba(list(texts))

    def assign_topics(self, texts: Sequence[str]) -> list[str] | None:
        if self.topics is None:
            return None
        if self.shares_encoder:
            return self.topics.assign(self.inner.features(list(texts)))
        if self._encoder is None:
            self._encoder = _encoder(self._topic_base or DEFAULT_BASE_MODEL, self.device,
                                     int(self.inner.artifact.metadata.get("max_length", 128)))
            if self.inner.precision == "bfloat16":  # int8 is the classifier's own choice, not the topics'
                self._encoder.model = convert_module(self._encoder.model, "bfloat16", self.device)
        return self.topics.assign(self._encoder.encode(list(texts)))

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        predictions, features = self.inner.predict_with_features(records)
        missing = [i for i, r in enumerate(records) if not r.get("topic")]
        assigned: list[str] | None = None
        if missing and self.topics is not None and features is not None and self.shares_encoder:
            assigned = self.topics.assign(features[missing])
        elif missing:
            assigned = self.assign_topics([str(records[i]["text"]) for i in missing])
        found = dict(zip(missing, assigned or [], strict=False))
        for i, (record, pred) in enumerate(zip(records, predictions, strict=True)):
            topic = record.get("topic") or found.get(i)
            if topic is not None:
                pred.extra["topic"] = str(topic)
                pred.extra["topic_source"] = "given" if record.get("topic") else (self.topics.kind if self.topics else None)
        return predictions
