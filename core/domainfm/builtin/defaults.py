"""The core's default hook implementations (registered as the built-in plugin ``domainfm.defaults``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from domainfm import hookimpl
from domainfm.types import Prediction, Predictor, RunContext


@hookimpl(trylast=True)
def domainfm_predict(
    ctx: RunContext, domain: str, predictor: Predictor, records: Sequence[Mapping[str, Any]]
) -> list[Prediction] | None:
    """Default prediction for every domain: ask the predictor."""
    return list(predictor.predict(records))


TEXT_CLASSIFIER_KINDS = ("hf-sequence-classification", "embedding-linear-head", "text-classifier-ensemble")


@hookimpl(trylast=True)
def domainfm_load_predictor(ctx: RunContext, domain: str, artifact: Any) -> Predictor | None:
    """Default loader for every domain whose artifact the core engine wrote (any of ``TEXT_CLASSIFIER_KINDS``):
    a plugin built on ``fine_tune_text_classifier`` needs no ``domainfm_load_predictor`` of its own."""
    if artifact.kind not in TEXT_CLASSIFIER_KINDS:
        return None
    from domainfm.engine.text_classifier import TextClassifierPredictor

    return TextClassifierPredictor.load(artifact, ctx.device)
