"""Issue 22 item 10: a client mistake is a 4xx whose JSON body names the field, never a 5xx or a 200 that
carries the error; 503 only when a domain has no model; no server path in any body; typed OpenAPI schemas;
``/docs`` without internet."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from domainfm.records import TextRecord
from domainfm.types import Prediction

from .conftest import FakePlugin


def post_raw(c: TestClient, path: str, raw: str) -> Any:
    """Send ``raw`` as the JSON body byte for byte (``\\ud800`` stays an escape, as a client would send it)."""
    return c.post(path, content=raw.encode("ascii"), headers={"content-type": "application/json"})


def locs(response: Any) -> list[list[Any]]:
    return [err["loc"] for err in response.json()["detail"]]


class CrashingPredictor:
    """A model that crashes (TypeError) on a record whose text is not a string, as a real tokenizer does."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.device = "cpu"
        self.calls = 0

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        self.calls += 1
        return [Prediction(label="long" if len(r["text"]) > 5 else "short", confidence=1.0) for r in records]


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ('{"texts": ["fine", "bad \\ud800 text"]}', ["body", "texts", 1]),
        ('{"records": [{"text": "fine"}, {"text": "bad \\udc00"}]}', ["body", "records", 1, "text"]),
        ('{"records": [{"text": "fine", "note": "x\\ud800"}]}', ["body", "records", 0, "note"]),
        ('{"records": [{"text": "fine", "meta": {"deep": ["\\ud83d"]}}]}', ["body", "records", 0, "meta", "deep", 0]),
    ],
)
def test_a_lone_surrogate_is_a_422_in_json_naming_the_field(make_app: Callable[..., Any], raw: str, loc: list[Any]) -> None:
    generic = FakePlugin("fake_generic")  # no record model: any fields, nested ones too
    with TestClient(make_app(generic)) as c:
        r = post_raw(c, "/fake_generic/predict", raw)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/json"
    assert loc in locs(r)
    assert generic.predictor.batches == []  # refused before the model


def test_a_bad_record_inside_a_batch_is_a_422_and_the_domain_stays_up(make_app: Callable[..., Any]) -> None:
    # Today: the model crashes on the number, the whole domain answers 503 ("down"). Even a domain that
    # declares no record model gets 'text' checked as text.
    for plugin in (FakePlugin("fake_generic"), FakePlugin("fake_typed", record_model=TextRecord)):
        plugin.predictor = CrashingPredictor(plugin.domain)  # type: ignore[assignment]
        with TestClient(make_app(plugin, with_tc=False)) as c:
            path = f"/{plugin.domain}/predict"
            bad = c.post(path, json={"records": [{"text": "fine"}, {"text": 7}, {"text": "also fine"}]})
            good = c.post(path, json={"records": [{"text": "fine"}, {"text": "also fine"}]})
            health = c.get("/health").json()
        assert bad.status_code == 422, bad.text
        assert locs(bad) == [["body", "records", 1, "text"]] and "valid string" in bad.json()["detail"][0]["msg"]
        assert good.status_code == 200 and [p["label"] for p in good.json()["predictions"]] == ["short", "long"]
        assert health["status"] == "ok" and health["domains"][plugin.domain]["status"] == "ready"
        assert plugin.predictor.calls == 1  # type: ignore[attr-defined]  # the bad batch never reached it


@pytest.mark.parametrize(
    ("record", "loc"),
    [
        ({"text": 42}, ["body", "records", 0, "text"]),
        ({"text": 4.5}, ["body", "records", 0, "text"]),
        ({"text": {"nested": "a text"}}, ["body", "records", 0, "text"]),
        ({"text": ["a", "list"]}, ["body", "records", 0, "text"]),
        ({"text": {"nested": "x" * 20_000}}, ["body", "records", 0, "text"]),
        ({"text": "fine", "channel": {"nested": "x" * 20_000}}, ["body", "records", 0, "channel"]),
        ({"text": "   "}, ["body", "records", 0, "text"]),
        ({"id": "no text"}, ["body", "records", 0, "text"]),
    ],
)
def test_text_must_be_a_string_within_the_limit(make_app: Callable[..., Any], record: dict[str, Any], loc: list[Any]) -> None:
    with TestClient(make_app()) as c:  # the trained text_classification run
        r = c.post("/text_classification/predict", json={"records": [record]})
    assert r.status_code == 422, r.text
    assert loc in locs(r)


def test_a_long_string_nested_anywhere_is_held_to_the_limit(make_app: Callable[..., Any]) -> None:
    generic = FakePlugin("fake_generic")
    with TestClient(make_app(generic, max_text_chars=100)) as c:
        nested = c.post("/fake_generic/predict", json={"records": [{"text": "ok", "meta": {"note": "x" * 101}}]})
        fine = c.post("/fake_generic/predict", json={"records": [{"text": "ok", "meta": {"note": "x" * 100}}]})
        number = c.post("/fake_generic/predict", json={"records": [{"text": 12345}]})
    assert nested.status_code == 422 and locs(nested) == [["body", "records", 0, "meta", "note"]]
    assert "max_text_chars" in nested.json()["detail"][0]["msg"]
    assert fine.status_code == 200
    assert number.status_code == 422 and locs(number) == [["body", "records", 0, "text"]]


def test_a_missing_domain_field_is_a_422_not_a_200_with_a_reason(real_plugins_app: Callable[..., Any]) -> None:
    app, stubs = real_plugins_app("education", "recommendation", "knowledge_tracing")
    with TestClient(app) as c:
        no_refs = c.post("/education/predict", json={"records": [{"student_answer": "photosynthesis"}]})
        texts = c.post("/education/predict", json={"texts": ["photosynthesis"]})
        no_answer = c.post("/education/predict", json={"records": [{"reference_answers": ["light to sugar"]}]})
        graded = c.post("/education/predict", json={"records": [{"reference_answers": ["a"], "student_answer": "b"}]})
        no_user = c.post("/recommendation/predict", json={"records": [{"k": 5}]})
        bad_k = c.post("/recommendation/predict", json={"records": [{"user": "u1", "k": 0}]})
        kt = c.post("/knowledge_tracing/predict", json={"records": [{"skills": ["a", "b"], "correct": [1]}]})
    assert no_refs.status_code == 422 and ["body", "records", 0, "reference_answers"] in locs(no_refs)
    assert texts.status_code == 422 and ["body", "texts", 0, "reference_answers"] in locs(texts)
    assert no_answer.status_code == 422 and "student_answer" in no_answer.json()["detail"][0]["msg"]
    assert no_user.status_code == 422 and "'user', 'history' or 'item'" in no_user.json()["detail"][0]["msg"]
    assert bad_k.status_code == 422 and ["body", "records", 0, "k"] in locs(bad_k)
    assert kt.status_code == 422 and "differ in length" in kt.json()["detail"][0]["msg"]
    assert graded.status_code == 200
    # only the valid record reached a model
    assert stubs.predictors["education"].batches == [[{"reference_answers": ["a"], "student_answer": "b"}]]
    assert stubs.predictors["recommendation"].batches == [] and stubs.predictors["knowledge_tracing"].batches == []


def test_503_only_when_a_domain_has_no_model_and_no_server_path_in_any_body(
    make_app: Callable[..., Any], tmp_path: Path
) -> None:
    path_bug = FakePlugin("fake_paths", predict_error=FileNotFoundError(f"{tmp_path}/weights/model.safetensors"))
    broken = FakePlugin("fake_broken", load_error=OSError(f"cannot read /srv/models/{tmp_path.name}/config.json"))
    with TestClient(make_app(path_bug, broken, with_tc=False)) as c:
        no_model = c.post("/text_classification/predict", json={"texts": ["hello"]})
        load_failed = c.post("/fake_broken/predict", json={"texts": ["hello"]})
        crashed = c.post("/fake_paths/predict", json={"texts": ["hello"]})
        invalid = c.post("/text_classification/predict", json={"texts": [""]})
        bodies = [no_model.text, load_failed.text, crashed.text, invalid.text, c.get("/health").text, c.get("/plugins").text]
    assert no_model.status_code == 503 and "no artifact" in no_model.json()["detail"]
    assert load_failed.status_code == 503
    assert crashed.status_code == 500 and "FileNotFoundError" in crashed.json()["detail"]  # a bug, not "down"
    assert invalid.status_code == 422
    for body in bodies:
        assert str(tmp_path) not in body and "/srv/models" not in body, body
        assert not re.search(r'(?<![\w:/])/(tmp|srv|home|root|work)/', body), body
    assert "<runs_dir>/text_classification" in no_model.json()["detail"]
    assert "<path>" in crashed.json()["detail"]


def test_a_too_large_batch_is_refused_without_echoing_it(make_app: Callable[..., Any]) -> None:
    with TestClient(make_app(max_body_bytes=10_000_000)) as c:
        texts = c.post("/text_classification/predict", json={"texts": ["secret-abc"] * 10_000})
        records = c.post("/text_classification/predict", json={"records": [{"text": "secret-abc"}] * 10_000})
    for r, field in ((texts, "texts"), (records, "records")):
        assert r.status_code == 422 and locs(r) == [["body", field]]
        assert "256" in r.text and "secret-abc" not in r.text and len(r.content) < 1_000


def test_openapi_shows_typed_records_and_exactly_one_of_texts_or_records(real_plugins_app: Callable[..., Any]) -> None:
    app, _ = real_plugins_app("text_classification", "education", "recommendation")
    with TestClient(app) as c:
        schema = c.get("/openapi.json").json()
    components = schema["components"]["schemas"]

    def body_schema(path: str) -> dict[str, Any]:
        ref = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        return components[ref.rsplit("/", 1)[-1]]

    def record_schema(request: dict[str, Any]) -> dict[str, Any]:
        return components[request["properties"]["records"]["items"]["$ref"].rsplit("/", 1)[-1]]

    tc = body_schema("/text_classification/predict")
    assert tc["oneOf"] == [{"required": ["records"]}, {"required": ["texts"]}]
    assert tc["additionalProperties"] is False
    assert tc["properties"]["records"]["maxItems"] == 256 and tc["properties"]["texts"]["items"]["maxLength"] == 10_000
    text_record = record_schema(tc)
    assert text_record["required"] == ["text"] and text_record["properties"]["text"]["type"] == "string"
    assert "object" not in json.dumps(text_record["additionalProperties"])  # extra fields are scalars only
    grading = record_schema(body_schema("/education/predict"))
    assert "reference_answers" in grading["required"]
    rec = record_schema(body_schema("/recommendation/predict"))
    assert {"user", "history", "item", "k"} <= set(rec["properties"]) and rec["additionalProperties"] is False
    ok = schema["paths"]["/education/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/PredictResponse")
    assert components["PredictResponse"]["properties"]["predictions"]["items"]["$ref"].endswith("/Prediction")


def test_docs_work_offline(make_app: Callable[..., Any]) -> None:
    with TestClient(make_app()) as c:
        for page in ("/docs", "/redoc"):
            html = c.get(page)
            assert html.status_code == 200 and "text/html" in html.headers["content-type"]
            assert not re.search(r"https?://", html.text), f"{page} loads something from the internet"
            assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
            assert any(a.endswith(".js") for a in assets), assets
            for asset in assets:
                got = c.get(asset)
                assert got.status_code == 200 and len(got.content) > 1_000, asset
            assert "url: '/openapi.json'" in html.text or 'spec-url="/openapi.json"' in html.text
        bundle = c.get("/static-offline-docs/swagger-ui-bundle.js").text
        assert "SwaggerUIBundle" in bundle
