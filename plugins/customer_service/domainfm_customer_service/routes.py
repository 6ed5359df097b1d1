"""HTTP routes: ``POST /customer_service/ask`` answers one question (used by ``domainfm serve``).

The question goes through the server like a ``/customer_service/predict`` record: its text limits, the
domain's micro-batcher and ``domainfm_predict``. Imported only inside ``domainfm_register_routes``; the
models live at module level so that FastAPI can resolve them for the OpenAPI schema.
"""

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from domainfm.serve.context import ServeDep
from domainfm.types import Prediction

from domainfm_customer_service import DOMAIN


class AskRequest(BaseModel):
    text: str = Field(description="the customer's question")
    k: Optional[int] = Field(default=None, ge=1, le=50, description="passages to return")


class Passage(BaseModel):
    doc_id: str
    score: float


class AskResponse(BaseModel):
    """The decision for one question: the intent, whether it escalates to a human and why, and the answer."""

    model_config = ConfigDict(extra="allow")

    intent: Optional[str]
    confidence: Optional[float]
    escalate: bool
    scores: Optional[dict[str, float]]
    passages: list[Passage]


def answer_of(prediction: Prediction) -> AskResponse:
    """The ask answer of a customer_service prediction (its ``extra`` holds answer and escalation fields)."""
    return AskResponse(
        **{
            **prediction.extra,
            "intent": prediction.label,
            "confidence": prediction.confidence,
            "escalate": prediction.abstained,
            "scores": prediction.scores,
            "passages": [{"doc_id": r.id, "score": r.score} for r in prediction.ranking or []],
        }
    )


def add_routes(router: Any) -> None:
    """Register ``POST /customer_service/ask`` on ``router``."""

    @router.post(f"/{DOMAIN}/ask", response_model=AskResponse)
    async def ask(request: AskRequest, serve: ServeDep) -> AskResponse:
        record: dict[str, Any] = {"text": request.text}
        if request.k is not None:
            record["k"] = request.k
        [prediction] = await serve.predict(DOMAIN, [record], loc=[("body",)])
        return answer_of(prediction)
