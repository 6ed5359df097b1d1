"""Property-based test of the whole API over its OpenAPI schema (schemathesis): no input gives a 5xx
other than the documented 503/429, and every response matches the schema and its documented status."""

# No ``from __future__ import annotations``: the route models below are defined inside a function and
# FastAPI must resolve them at runtime.
from collections.abc import Callable
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the test extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import FakePlugin  # noqa: E402


def _routes(router: Any, get_predictor: Any) -> None:
    from pydantic import BaseModel, Field

    class EchoIn(BaseModel):
        text: str = Field(min_length=1, max_length=200)
        n: int = Field(default=1, ge=1, le=5)

    @router.post("/fake_routes/echo")
    def echo(body: EchoIn) -> dict[str, list[str | None]]:
        predictor = get_predictor("fake_routes")
        return {"labels": [p.label for p in predictor.predict([{"text": body.text}] * body.n)]}


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_api_has_no_server_errors(make_app: Callable[..., Any], mode: str) -> None:
    # Driven through Hypothesis directly: schemathesis' pytest loader does not support pytest 9 yet.
    from schemathesis import GenerationMode

    app = make_app(FakePlugin("fake_routes", routes=_routes), max_records=16, max_text_chars=500, max_body_bytes=50_000)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/health", "/plugins", "/text_classification/predict", "/fake_routes/predict", "/fake_routes/echo"} <= paths
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    for operation in operations:
        if mode == "negative" and operation.method.upper() != "POST":
            continue  # nothing to negate: no body or parameters

        @given(case=operation.as_strategy(generation))
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        def check(case: Any) -> None:
            case.call_and_validate(checks=checks)

        check()
