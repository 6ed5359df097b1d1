"""Input record models: what one record sent to a domain holds (``DomainSpec.record_model``).

The HTTP server validates every record of ``POST /{domain}/predict`` (and of plugin routes that predict
through the server) with its domain's record model, so a client mistake is a 422 naming the field, and
the OpenAPI schema shows the fields. Plugins subclass :class:`TextRecord` or write their own pydantic model.
Only pydantic is imported here: plugins declare their models at registration time.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, StringConstraints, WithJsonSchema

_SCALAR_SCHEMA: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]}
_JSON_TYPE: dict[type, str] = {dict: "an object", list: "an array"}


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    got = _JSON_TYPE.get(type(value), type(value).__name__)
    raise ValueError(f"must be a string, number, boolean or null, not {got}")


#: A JSON string, number, boolean or null: the type of the extra fields a record may carry (an id, a group
#: column, a topic), with one clear error for an object or array.
Scalar = Annotated[Any, PlainValidator(_scalar), WithJsonSchema(_SCALAR_SCHEMA)]

def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is blank (only whitespace)")
    return value


#: Text with at least one non-blank character.
Text = Annotated[
    str, StringConstraints(min_length=1), AfterValidator(_not_blank),
    WithJsonSchema({"type": "string", "minLength": 1, "pattern": r"\S"}),
]

#: A record id as the client sent it (predictions echo it back as a string).
RecordId = Annotated[str | int, Field(description="echoed back in the prediction's 'id'")]


class TextRecord(BaseModel):
    """One text to predict for, plus optional scalar fields (an ``id``, group or metadata columns)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Scalar]

    text: Text = Field(description="the text")
    id: RecordId | None = None


class TextPairRecord(TextRecord):
    """A text and, for models trained on sentence pairs, its second text."""

    text_pair: Text | None = Field(default=None, description="the second text, for models trained on pairs")


class GenericRecord(BaseModel):
    """The record of a domain that declares no record model: any fields; ``text``, when given, is text."""

    model_config = ConfigDict(extra="allow")

    text: Text | None = Field(default=None, description="the text, for text domains")
    id: RecordId | None = None
