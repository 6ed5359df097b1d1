"""Request and response bodies of the core routes (predictions are :class:`domainfm.types.Prediction`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, create_model, model_validator
from pydantic.types import JsonValue

from domainfm.types import Prediction

_EXACTLY_ONE: list[JsonValue] = [{"required": ["records"]}, {"required": ["texts"]}]


class PredictRequestBase(BaseModel):
    """Exactly one of ``records`` (objects with the domain's input fields) or ``texts``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": _EXACTLY_ONE})

    records: list[Any] | None = None
    texts: list[str] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequestBase:
        if (self.records is None) == (self.texts is None):
            raise ValueError("give exactly one of 'records' or 'texts'")
        return self

    def as_records(self) -> list[Any]:
        """The records as sent (validated record models), or one ``{"text": t}`` per text."""
        if self.records is not None:
            return list(self.records)
        return [{"text": t} for t in self.texts or []]

    def record_locs(self) -> list[tuple[str | int, ...]]:
        """Where each record of :meth:`as_records` sits in the body, for error messages."""
        field = "records" if self.records is not None else "texts"
        return [("body", field, i) for i in range(len(self.records if self.records is not None else self.texts or []))]


def _valid_text(value: str) -> str:
    from domainfm.serve.validation import surrogate_position

    if not value.strip():
        raise ValueError("is blank (only whitespace)")
    pos = surrogate_position(value)
    if pos is not None:
        raise ValueError(f"is not valid Unicode: a lone surrogate at character {pos}")
    return value


def _model_name(domain: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in domain.split("_")) + "PredictRequest"


def predict_request_model(
    domain: str, record_model: type[BaseModel], max_records: int, max_text_chars: int
) -> type[PredictRequestBase]:
    """The domain's request model, with its record model and this server's limits, so that the OpenAPI schema
    shows the record's fields, the limits and that exactly one of ``records``/``texts`` is given.

    The fields are not nullable: ``"records": null`` is a 422 like any other wrong type.
    """
    text = Annotated[
        str,
        StringConstraints(min_length=1, max_length=max_text_chars),
        AfterValidator(_valid_text),
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": max_text_chars, "pattern": r"\S"}),
    ]
    return create_model(
        _model_name(domain),
        __base__=PredictRequestBase,
        __doc__=f"A batch for {domain}: exactly one of `records` or `texts`.",
        records=(
            list[record_model],  # type: ignore[valid-type]
            Field(
                default=None, min_length=1, max_length=max_records,
                description=f"input records ({record_model.__name__}); every string at most {max_text_chars} characters",
            ),
        ),
        texts=(
            list[text],
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
