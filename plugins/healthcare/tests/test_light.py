"""Registration stays light (no torch) and the HTTP routes answer."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_plugin_and_cli_modules_do_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from domainfm.manager import PluginManager; "
        "pm = PluginManager(select=['healthcare']).load(); "
        "import domainfm_healthcare.plugin, domainfm_healthcare.cli; "
        "assert pm.plugins['healthcare'].status == 'loaded', pm.plugins['healthcare'].error; "
        "print(sorted(m for m in ('torch', 'transformers', 'faiss', 'spacy', 'presidio_analyzer', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_deidentify_route() -> None:
    fastapi = pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from domainfm_healthcare.serving import register_routes

    def no_predictor(domain: str) -> None:
        raise AssertionError("the de-identification route needs no model")

    app = fastapi.FastAPI()
    router = fastapi.APIRouter()
    register_routes(router, no_predictor)
    app.include_router(router)
    client = TestClient(app)
    response = client.post("/healthcare/deidentify", json={"text": "Call (555) 123-4567 about my rash"})
    assert response.status_code == 200
    assert response.json() == {"text": "Call <PHONE> about my rash", "identifiers_removed": {"PHONE": 1}}
    assert client.post("/healthcare/deidentify", json={"text": ""}).status_code == 422
