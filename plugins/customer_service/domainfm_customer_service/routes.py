"""HTTP routes: ``POST /customer_service/ask`` answers one question (used by ``domainfm serve``).

Imported only inside ``domainfm_register_routes``; the request model lives at module level so that
FastAPI can resolve it for the OpenAPI schema.
"""

from typing import Any, Optional

from pydantic import BaseModel, Field

from domainfm_customer_service import DOMAIN


class AskRequest(BaseModel):
    text: str = Field(description="the customer's question")
    k: Optional[int] = Field(default=None, ge=1, le=50, description="passages to return")


def add_routes(router: Any, get_predictor: Any) -> None:
    """Register ``POST /customer_service/ask`` on ``router``."""
    from fastapi import HTTPException

    from domainfm.errors import DataError

    @router.post(f"/{DOMAIN}/ask")
    def ask(request: AskRequest) -> dict[str, Any]:
        assistant = get_predictor(DOMAIN)
        try:
            return assistant.answer(request.text, k=request.k)
        except DataError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
