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
