"""Optional API-key authentication: ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from typing import Any


def key_matches(given: str, keys: Sequence[str]) -> bool:
    """Constant-time comparison against every key (no early exit on the first match)."""
    given_b = given.encode("utf-8")
    found = False
    for key in keys:
        found |= hmac.compare_digest(given_b, key.encode("utf-8"))
    return found


def make_auth_dependency(keys: Sequence[str]) -> Callable[..., Any]:
    """A FastAPI dependency that answers 401 unless a configured key is presented.

    Declared through FastAPI's security classes so that the OpenAPI schema documents both ways.
    """
    from fastapi import HTTPException, Security
    from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

    api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
    bearer = HTTPBearer(auto_error=False)
    frozen = list(keys)

    async def require_api_key(
        api_key: str | None = Security(api_key_header),
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> None:
        given = api_key if api_key else credentials.credentials if credentials is not None else None
        if given is None:
            raise HTTPException(
                status_code=401,
                detail="missing API key: send header X-API-Key or Authorization: Bearer",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not key_matches(given, frozen):
            raise HTTPException(status_code=401, detail="invalid API key", headers={"WWW-Authenticate": "Bearer"})

    return require_api_key
