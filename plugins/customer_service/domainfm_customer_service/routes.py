"""HTTP routes: ``POST /customer_service/ask`` answers one question (used by ``domainfm serve``)."""

from __future__ import annotations

from typing import Any

from domainfm_customer_service import DOMAIN


def add_routes(router: Any, get_predictor: Any) -> None:
    from fastapi import HTTPException
    from pydantic import BaseModel

    from domainfm.errors import DataError

    class AskRequest(BaseModel):
        text: str
        k: int | None = None

    @router.post(f"/{DOMAIN}/ask")
    def ask(request: AskRequest) -> dict[str, Any]:
        assistant = get_predictor(DOMAIN)
        try:
            return assistant.answer(request.text, k=request.k)
        except DataError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
