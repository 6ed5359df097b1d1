"""Request and response bodies of the core routes (predictions are :class:`domainfm.types.Prediction`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, model_validator

from domainfm.types import Prediction


class PredictRequestBase(BaseModel):
    """Exactly one of ``records`` (dicts with the domain's input fields) or ``texts``."""

    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Any]] | None = None
    texts: list[str] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequestBase:
        if (self.records is None) == (self.texts is None):
            raise ValueError("give exactly one of 'records' or 'texts'")
        return self

    def as_records(self) -> list[dict[str, Any]]:
        if self.records is not None:
            return [dict(r) for r in self.records]
        return [{"text": t} for t in self.texts or []]


def predict_request_model(max_records: int, max_text_chars: int) -> type[PredictRequestBase]:
    """The request model with this server's limits in it, so that they show in the OpenAPI schema."""
    text = Annotated[str, StringConstraints(min_length=1, max_length=max_text_chars)]
    return create_model(  # type: ignore[call-overload,no-any-return]
        "PredictRequest",
        __base__=PredictRequestBase,
        records=(
            list[dict[str, Any]] | None,
            Field(default=None, min_length=1, max_length=max_records, description="input records, e.g. {'text': ...}"),
        ),
        texts=(
            list[text] | None,  # type: ignore[valid-type]
            Field(default=None, min_length=1, max_length=max_records, description="plain texts (= records with only 'text')"),
        ),
    )


class PredictResponse(BaseModel):
    """One prediction per input, in order, and where the model ran."""

    domain: str
    device: str
    predictions: list[Prediction]


class DomainHealth(BaseModel):
    status: str = Field(description="ready | not_loaded | no_artifact | failed")
    artifact: str | None = None
    device: str | None = None
    error: str | None = None
    queued: int = 0
    batching: dict[str, Any] = Field(default_factory=dict)


class HealthResponse(BaseModel):
    status: str
    version: str
    domains: dict[str, DomainHealth]
    runtime: dict[str, Any] = Field(
        default_factory=dict, description="how batches run: precision, torch threads, forward batch, allocator tuning"
    )


class PluginOut(BaseModel):
    name: str
    version: str | None
    module: str
    builtin: bool
    status: str
    error: str | None
    domains: list[str]


class PluginsResponse(BaseModel):
    plugins: list[PluginOut]


class ErrorResponse(BaseModel):
    detail: Any
