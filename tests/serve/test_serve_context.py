"""Issue 22 item 11: plugin routes reach the model through the server (``ServeContext``): its limits, the
domain's micro-batcher and the ``domainfm_predict`` hook, like ``POST /{domain}/predict``."""

# No ``from __future__ import annotations``: the route below is defined inside a function and FastAPI must
# resolve its annotations at runtime.
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from pydantic import BaseModel

from domainfm.records import TextRecord
from domainfm.serve.context import ServeDep

from .conftest import FakePlugin


class EchoIn(BaseModel):
    text: str


def _serve_routes(router: Any, get_predictor: Any) -> None:
    @router.post("/fake_ctx/echo")
    async def echo(body: EchoIn, serve: ServeDep) -> dict[str, Any]:
        [prediction] = await serve.predict("fake_ctx", [{"text": body.text}], loc=[("body",)])
        return {"label": prediction.label, "extra": prediction.extra}


def test_a_plugin_route_predicts_through_limits_batcher_and_hook(make_app: Callable[..., Any]) -> None:
    plugin = FakePlugin("fake_ctx", routes=_serve_routes, record_model=TextRecord)
    with TestClient(make_app(plugin, max_text_chars=20)) as c:
        ok = c.post("/fake_ctx/echo", json={"text": "hello there"})
        too_long = c.post("/fake_ctx/echo", json={"text": "x" * 21})
        blank = c.post("/fake_ctx/echo", json={"text": "  "})
        batching = c.get("/health").json()["domains"]["fake_ctx"]["batching"]
    assert ok.status_code == 200 and ok.json()["label"] == "long"
    assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"] == ["body", "text"]
    assert "max_text_chars" in too_long.json()["detail"][0]["msg"]
    assert blank.status_code == 422 and blank.json()["detail"][0]["loc"] == ["body", "text"]
    assert plugin.predictor.batches == [1]  # only the valid request reached the model ...
    assert batching["requests"] == 1 and batching["records"] == 1  # ... through the micro-batcher


def test_a_data_error_from_the_model_behind_a_plugin_route_is_422(make_app: Callable[..., Any]) -> None:
    from domainfm.errors import DataError

    plugin = FakePlugin("fake_ctx", routes=_serve_routes, predict_error=DataError("record 0: field 'text' is gibberish"))
    with TestClient(make_app(plugin)) as c:
        r = c.post("/fake_ctx/echo", json={"text": "qwzx"})
    assert r.status_code == 422 and "gibberish" in r.json()["detail"][0]["msg"]


def test_a_plugin_route_of_a_domain_without_model_is_503(make_app: Callable[..., Any], tmp_path: Any) -> None:
    from domainfm.config import RunConfig
    from domainfm.manager import PluginManager
    from domainfm.serve.app import create_app
    from domainfm.serve.settings import ServeSettings

    pm = PluginManager(autoload=False).load()
    plugin = FakePlugin("fake_ctx", routes=_serve_routes)
    pm.register(plugin, name=plugin.name)
    app = create_app(pm, RunConfig(output_dir=tmp_path), {}, ServeSettings(runs_dir=tmp_path))
    with TestClient(app) as c:
        r = c.post("/fake_ctx/echo", json={"text": "hello"})
    assert r.status_code == 503 and "no artifact" in r.json()["detail"] and str(tmp_path) not in r.text


def test_the_plugins_model_routes_go_through_the_server(real_plugins_app: Callable[..., Any]) -> None:
    app, stubs = real_plugins_app("recommendation", "customer_service", "healthcare", max_text_chars=1_000)
    with TestClient(app) as c:
        rec = c.post("/recommendation/recommend", json={"user": "u1", "k": 3})
        rec_batch = c.post("/recommendation/recommend", json={"records": [{"user": "u1"}, {"history": ["i1", "i2"]}]})
        rec_bad = c.post("/recommendation/recommend", json={"records": [{"user": "u1", "k": 0}]})
        ask = c.post("/customer_service/ask", json={"text": "how do I reset my password?", "k": 4})
        ask_long = c.post("/customer_service/ask", json={"text": "word " * 201})
        triage = c.post("/healthcare/triage", json={"records": [{"text": "chest pain", "id": "p1"}]})
        triage_long = c.post("/healthcare/triage", json={"records": [{"text": "ok"}, {"text": "x" * 1_001}]})
        health = c.get("/health").json()["domains"]
    # every model call went through domainfm_predict (the stub's wrapper tags it) ...
    assert rec.status_code == 200 and rec.json()["predictions"][0]["extra"]["via"] == "domainfm_predict"
    assert [p["extra"]["record"] for p in rec_batch.json()["predictions"]] == [{"user": "u1"}, {"history": ["i1", "i2"]}]
    assert ask.status_code == 200, ask.text
    assert ask.json()["via"] == "domainfm_predict" and ask.json()["record"] == {"text": "how do I reset my password?", "k": 4}
    assert ask.json()["intent"] == "stub" and ask.json()["escalate"] is False
    assert triage.status_code == 200 and triage.json()[0]["extra"]["via"] == "domainfm_predict"
    assert triage.json()[0]["extra"]["record"] == {"text": "chest pain", "id": "p1"}
    # ... and the server's limits and record models hold on them
    assert rec_bad.status_code == 422 and rec_bad.json()["detail"][0]["loc"] == ["body", "records", 0, "k"]
    assert ask_long.status_code == 422 and ask_long.json()["detail"][0]["loc"] == ["body", "text"]
    assert triage_long.status_code == 422 and triage_long.json()["detail"][0]["loc"] == ["body", "records", 1, "text"]
    # ... through each domain's micro-batcher
    assert health["recommendation"]["batching"]["requests"] == 2 and health["recommendation"]["batching"]["records"] == 3
    assert health["customer_service"]["batching"]["requests"] == 1
    assert health["healthcare"]["batching"]["requests"] == 1
    assert len(stubs.predictors["healthcare"].batches) == 1
