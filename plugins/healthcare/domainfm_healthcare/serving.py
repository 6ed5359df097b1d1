"""HTTP routes of the healthcare plugin (``domainfm serve``): de-identification and triage."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


# Module level: FastAPI resolves the (string) annotations of the route functions from module globals.
class TextIn(BaseModel):
    text: str = Field(min_length=1, max_length=20_000)


class TriageIn(BaseModel):
    records: list[TextIn] = Field(min_length=1, max_length=64)


def register_routes(router: Any, get_predictor: Any) -> None:
    """``POST /healthcare/deidentify`` and ``POST /healthcare/triage`` (top-k, abstention, attributions)."""

    @router.post("/healthcare/deidentify")
    def deidentify(body: TextIn) -> dict[str, Any]:
        from domainfm_healthcare.deid import default_deidentifier

        result = default_deidentifier().deidentify(body.text)
        return {"text": result.text, "identifiers_removed": result.counts}

    @router.post("/healthcare/triage")
    def triage(body: TriageIn) -> list[dict[str, Any]]:
        from fastapi import HTTPException

        from domainfm.errors import DataError

        predictor = get_predictor("healthcare")
        try:
            predictions = predictor.predict([r.model_dump() for r in body.records])
        except DataError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return [p.model_dump(mode="json") for p in predictions]
