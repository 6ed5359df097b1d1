"""HTTP routes of the healthcare plugin (``domainfm serve``): de-identification and triage."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from domainfm.records import TextRecord
from domainfm.serve.context import ServeDep
from domainfm.types import Prediction


# Module level: FastAPI resolves the (string) annotations of the route functions from module globals.
class TextIn(BaseModel):
    text: str = Field(min_length=1, max_length=20_000)


class TriageIn(BaseModel):
    records: list[TextRecord] = Field(min_length=1, max_length=64)


def register_routes(router: Any, get_predictor: Any) -> None:
    """``POST /healthcare/deidentify`` and ``POST /healthcare/triage`` (top-k, abstention, attributions).

    Triage reaches the model through the server (``ServeDep``): its text limits, micro-batcher and
    ``domainfm_predict``; ``get_predictor`` is not used.
    """

    @router.post("/healthcare/deidentify")
    def deidentify(body: TextIn) -> dict[str, Any]:
        from domainfm_healthcare.deid import default_deidentifier

        result = default_deidentifier().deidentify(body.text)
        return {"text": result.text, "identifiers_removed": result.counts}

    @router.post("/healthcare/triage", response_model=list[Prediction])
    async def triage(body: TriageIn, serve: ServeDep) -> list[Prediction]:
        loc = [("body", "records", i) for i in range(len(body.records))]
        return await serve.predict("healthcare", body.records, loc=loc)
