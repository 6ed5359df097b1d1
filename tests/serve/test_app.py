"""Every route of the server with the in-process client: happy paths, bad and oversize bodies, failing
plugins, missing artifacts, API keys and CORS."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from domainfm.errors import DataError
from domainfm.serve.settings import ServeSettings

from .conftest import FakePlugin

TEXTS = ["my parcel arrived late and damaged", "great friendly staff", "ok"]


def client(app: Any, **kw: Any) -> TestClient:
    return TestClient(app, **kw)


def test_health_lists_domains_and_stays_up_without_models(make_app: Callable[..., Any]) -> None:
    with client(make_app(with_tc=False)) as c:
        body = c.get("/health").json()
    assert body["status"] == "ok"
    tc = body["domains"]["text_classification"]
    assert tc["status"] == "no_artifact" and "--artifact text_classification=PATH" in tc["error"]
    assert body["runtime"]["precision"] == "fp32" and body["runtime"]["forward_batch"] == 32
    assert "tuned" in body["runtime"]["allocator"]


def test_plugins_lists_name_version_status_domains(make_app: Callable[..., Any]) -> None:
    with client(make_app(FakePlugin("fake_one"))) as c:
        plugins = {p["name"]: p for p in c.get("/plugins").json()["plugins"]}
    assert plugins["domainfm.text_classification"]["domains"] == ["text_classification"]
    assert plugins["domainfm.text_classification"]["status"] == "loaded"
    assert plugins["fake_fake_one"]["domains"] == ["fake_one"]
    assert set(plugins["fake_fake_one"]) >= {"name", "version", "status", "domains"}


def test_predict_texts_and_records_on_a_trained_artifact(make_app: Callable[..., Any]) -> None:
    with client(make_app()) as c:
        by_text = c.post("/text_classification/predict", json={"texts": TEXTS})
        by_record = c.post(
            "/text_classification/predict", json={"records": [{"text": t, "id": f"r{i}"} for i, t in enumerate(TEXTS)]}
        )
        health = c.get("/health").json()["domains"]["text_classification"]
    assert by_text.status_code == 200, by_text.text
    body = by_text.json()
    assert body["domain"] == "text_classification" and body["device"] == "cpu"
    assert len(body["predictions"]) == 3
    for pred in body["predictions"]:
        assert pred["label"] in {"positive", "negative", "neutral"}
        assert abs(sum(pred["scores"].values()) - 1.0) < 1e-4 and 0.0 <= pred["confidence"] <= 1.0
    records = by_record.json()["predictions"]
    assert [p["id"] for p in records] == ["r0", "r1", "r2"]
    # The same texts get the same answer whichever way they were sent (and whatever they were batched with).
    assert [p["label"] for p in records] == [p["label"] for p in body["predictions"]]
    for a, b in zip(records, body["predictions"], strict=True):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)
    assert health["status"] == "ready" and health["device"] == "cpu" and health["batching"]["records"] == 6


def test_predictor_is_loaded_once_and_shared(make_app: Callable[..., Any]) -> None:
    plugin = FakePlugin("fake_one")
    with client(make_app(plugin)) as c:
        for _ in range(3):
            assert c.post("/fake_one/predict", json={"texts": ["hello there"]}).status_code == 200
    assert plugin.loads == 1


def test_preload_loads_models_at_startup(make_app: Callable[..., Any], tmp_path: Path) -> None:
    import gc

    plugin = FakePlugin("fake_one")
    app = make_app(plugin, settings=ServeSettings(preload=True, runs_dir=tmp_path / "none"))
    gc.unfreeze()
    try:
        with client(app) as c:
            assert plugin.loads == 1
            assert c.get("/health").json()["domains"]["fake_one"]["status"] == "ready"
            # the loaded model's objects are out of the collector's reach (no full-collection stalls)
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"texts": ["a"], "records": [{"text": "a"}]}, "body"),
        ({"texts": []}, "texts"),
        ({"texts": "not a list"}, "texts"),
        ({"texts": [1, 2]}, "texts"),
        ({"texts": [""]}, "texts"),
        ({"records": [1]}, "records"),
        ({"records": [{"text": "fine"}], "unknown": 1}, "unknown"),
    ],
)
def test_invalid_bodies_get_422_naming_the_field(make_app: Callable[..., Any], body: Any, field: str) -> None:
    with client(make_app()) as c:
        r = c.post("/text_classification/predict", json=body)
    assert r.status_code == 422, r.text
    locs = [".".join(str(p) for p in err["loc"]) for err in r.json()["detail"]]
    assert any(field in loc for loc in locs), locs


def test_malformed_json_is_422(make_app: Callable[..., Any]) -> None:
    with client(make_app()) as c:
        r = c.post("/text_classification/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_batch_size_and_text_length_limits_name_the_field(make_app: Callable[..., Any]) -> None:
    with client(make_app(max_records=4, max_text_chars=20)) as c:
        too_many = c.post("/text_classification/predict", json={"texts": ["a"] * 5})
        too_long_text = c.post("/text_classification/predict", json={"texts": ["ok", "x" * 21]})
        too_long_record = c.post("/text_classification/predict", json={"records": [{"text": "ok"}, {"text": "y" * 21}]})
        at_limit = c.post("/text_classification/predict", json={"texts": ["z" * 20] * 4})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "texts"]
    assert too_long_text.status_code == 422 and too_long_text.json()["detail"][0]["loc"] == ["body", "texts", 1]
    assert too_long_record.status_code == 422
    assert too_long_record.json()["detail"][0]["loc"] == ["body", "records", 1, "text"]
    assert "max_text_chars" in too_long_record.json()["detail"][0]["msg"]
    assert at_limit.status_code == 200


def test_plugin_input_errors_are_422(make_app: Callable[..., Any]) -> None:
    # fake_generic declares no record model: its predictor's DataError is the 422; text_classification's
    # record model names the missing field before the model runs
    with client(make_app(FakePlugin("fake_generic"))) as c:
        r = c.post("/fake_generic/predict", json={"records": [{"id": "no text here"}]})
        typed = c.post("/text_classification/predict", json={"records": [{"id": "no text here"}]})
    assert r.status_code == 422
    assert "field 'text'" in r.json()["detail"][0]["msg"]
    assert typed.status_code == 422 and typed.json()["detail"][0]["loc"] == ["body", "records", 0, "text"]


def test_oversize_bodies_get_413(make_app: Callable[..., Any]) -> None:
    big = json.dumps({"texts": ["word " * 400] * 3}).encode()
    with client(make_app(max_body_bytes=2048)) as c:
        declared = c.post("/text_classification/predict", content=big, headers={"content-type": "application/json"})

        def chunks() -> Any:  # no Content-Length: the limit is enforced while the body streams in
            for i in range(0, len(big), 512):
                yield big[i : i + 512]

        streamed = c.post("/text_classification/predict", content=chunks(), headers={"content-type": "application/json"})
        small = c.post("/text_classification/predict", json={"texts": ["fine"]})
    assert declared.status_code == 413 and "2048" in declared.json()["detail"]
    assert streamed.status_code == 413
    assert small.status_code == 200


def test_a_plugin_that_fails_to_load_gets_503_for_its_domain_only(make_app: Callable[..., Any]) -> None:
    broken = FakePlugin("fake_broken", load_error=RuntimeError("weights are corrupt"))
    fine = FakePlugin("fake_fine")
    with client(make_app(broken, fine)) as c:
        bad = c.post("/fake_broken/predict", json={"texts": ["hello there"]})
        again = c.post("/fake_broken/predict", json={"texts": ["hello there"]})
        good = c.post("/fake_fine/predict", json={"texts": ["hello there"]})
        tc = c.post("/text_classification/predict", json={"texts": ["hello there"]})
        health = c.get("/health").json()
    assert bad.status_code == 503 and "weights are corrupt" in bad.json()["detail"]
    assert bad.json()["domain"] == "fake_broken"
    assert again.status_code == 503 and broken.loads == 1  # the failure is remembered, not retried per request
    assert good.status_code == 200 and good.json()["predictions"][0]["label"] == "long"
    assert tc.status_code == 200
    assert health["status"] == "degraded" and health["domains"]["fake_broken"]["status"] == "failed"


def test_a_plugin_whose_predict_raises_gets_500_and_others_work(make_app: Callable[..., Any]) -> None:
    # A bug in the plugin is a 500 for that request, not a 503 that reads as "this server is down".
    failing = FakePlugin("fake_failing", predict_error=RuntimeError("CUDA error: device-side assert"))
    with client(make_app(failing)) as c:
        bad = c.post("/fake_failing/predict", json={"texts": ["hello there"]})
        tc = c.post("/text_classification/predict", json={"texts": ["hello there"]})
    assert bad.status_code == 500 and "device-side assert" in bad.json()["detail"]
    assert bad.json()["domain"] == "fake_failing"
    assert tc.status_code == 200


def test_a_domain_without_artifact_gets_503_on_its_routes_only(make_app: Callable[..., Any]) -> None:
    with client(make_app(FakePlugin("fake_one"), with_tc=False)) as c:
        missing = c.post("/text_classification/predict", json={"texts": ["hello"]})
        fine = c.post("/fake_one/predict", json={"texts": ["hello"]})
    assert missing.status_code == 503 and "no artifact" in missing.json()["detail"]
    assert fine.status_code == 200


def test_unknown_domain_is_404(make_app: Callable[..., Any]) -> None:
    with client(make_app()) as c:
        assert c.post("/no_such_domain/predict", json={"texts": ["a"]}).status_code == 404


# ------------------------------------------------------------------------------------------ plugin routes


def _echo_routes(router: Any, get_predictor: Any) -> None:
    @router.post("/fake_routes/echo")
    def echo(body: dict[str, Any]) -> dict[str, Any]:
        predictor = get_predictor("fake_routes")
        return {"label": predictor.predict([body])[0].label}

    @router.get("/fake_routes/boom")
    def boom() -> dict[str, Any]:
        raise KeyError("internal bug")

    @router.get("/fake_routes/bad")
    def bad() -> dict[str, Any]:
        raise DataError("field 'x' is wrong")


def _raising_routes(router: Any, get_predictor: Any) -> None:
    raise ImportError("optional dependency missing")


def test_plugin_routes_are_served_and_their_failures_are_500(make_app: Callable[..., Any]) -> None:
    routes = FakePlugin("fake_routes", routes=_echo_routes)
    broken_routes = FakePlugin("fake_noroutes", routes=_raising_routes)
    with client(make_app(routes, broken_routes)) as c:
        echo = c.post("/fake_routes/echo", json={"text": "hello there"})
        boom = c.get("/fake_routes/boom")
        bad = c.get("/fake_routes/bad")
        predict = c.post("/fake_noroutes/predict", json={"texts": ["still works"]})
        plugins = {p["name"]: p for p in c.get("/plugins").json()["plugins"]}
        health = c.get("/health").json()
    assert echo.status_code == 200 and echo.json() == {"label": "long"}
    assert boom.status_code == 500 and boom.json()["plugin"] == "fake_fake_routes" and "internal bug" in boom.json()["detail"]
    assert bad.status_code == 422
    assert predict.status_code == 200
    assert "optional dependency missing" in plugins["fake_fake_noroutes"]["error"]
    assert health["status"] == "degraded"


def test_plugin_routes_of_a_domain_without_artifact_get_503(make_app: Callable[..., Any], tmp_path: Path) -> None:
    from domainfm.config import RunConfig
    from domainfm.manager import PluginManager
    from domainfm.serve.app import create_app

    pm = PluginManager(autoload=False).load()
    plugin = FakePlugin("fake_routes", routes=_echo_routes)
    pm.register(plugin, name=plugin.name)
    app = create_app(pm, RunConfig(output_dir=tmp_path), {}, ServeSettings(runs_dir=tmp_path))
    with client(app) as c:
        r = c.post("/fake_routes/echo", json={"text": "hello"})
    assert r.status_code == 503 and "no artifact" in r.json()["detail"]


# ------------------------------------------------------------------------------------------ auth and CORS


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-API-Key": "wrong"}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"X-API-Key": "s3cret-two"}, 200),
        ({"Authorization": "Bearer s3cret-one"}, 200),
    ],
)
def test_api_keys_when_configured(make_app: Callable[..., Any], headers: dict[str, str], status: int) -> None:
    with client(make_app(api_keys=["s3cret-one", "s3cret-two"])) as c:
        assert c.get("/health").status_code == 200  # always open
        assert c.get("/plugins", headers=headers).status_code == status
        r = c.post("/text_classification/predict", json={"texts": ["hi there"]}, headers=headers)
        assert r.status_code == status
        if status == 401:
            assert r.headers["www-authenticate"] == "Bearer"


def test_open_health_hides_paths_and_errors_when_keys_are_set(make_app: Callable[..., Any]) -> None:
    with client(make_app(api_keys=["k-123"], with_tc=False)) as c:
        tc = c.get("/health").json()["domains"]["text_classification"]
    assert tc["status"] == "no_artifact" and tc["error"] is None and tc["artifact"] is None


def test_plugin_routes_need_the_key_too(make_app: Callable[..., Any]) -> None:
    with client(make_app(FakePlugin("fake_routes", routes=_echo_routes), api_keys=["k-123"])) as c:
        assert c.post("/fake_routes/echo", json={"text": "hello"}).status_code == 401
        assert c.post("/fake_routes/echo", json={"text": "hello"}, headers={"X-API-Key": "k-123"}).status_code == 200


def test_no_auth_by_default(make_app: Callable[..., Any]) -> None:
    with client(make_app()) as c:
        assert c.get("/plugins").status_code == 200


def test_cors_is_off_by_default_and_on_for_named_origins(make_app: Callable[..., Any]) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    with client(make_app()) as c:
        r = c.options("/text_classification/predict", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        assert "access-control-allow-origin" not in c.get("/health", headers={"Origin": "https://app.example"}).headers
    with client(make_app(cors_origins=["https://app.example"])) as c:
        r = c.options("/text_classification/predict", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        other = c.options("/text_classification/predict", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def _unresolvable_routes(router: Any, get_predictor: Any) -> None:
    # Under ``from __future__ import annotations`` (as in this module) a model defined in a function
    # is a forward reference FastAPI cannot resolve: without the check, /openapi.json would fail for all.
    from pydantic import BaseModel

    class LocalIn(BaseModel):
        text: str

    @router.post("/fake_unresolvable/echo")
    def echo(body: LocalIn) -> dict[str, Any]:
        return {}


def test_a_plugin_route_that_breaks_the_openapi_schema_is_left_out(make_app: Callable[..., Any]) -> None:
    with client(make_app(FakePlugin("fake_unresolvable", routes=_unresolvable_routes))) as c:
        schema = c.get("/openapi.json")
        plugins = {p["name"]: p for p in c.get("/plugins").json()["plugins"]}
        predict = c.post("/fake_unresolvable/predict", json={"texts": ["still served"]})
    assert schema.status_code == 200 and "/fake_unresolvable/echo" not in schema.json()["paths"]
    assert "from __future__ import annotations" in plugins["fake_fake_unresolvable"]["error"]
    assert predict.status_code == 200
