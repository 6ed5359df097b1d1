"""Healthcare de-identification uses the core recognisers and the core mask vocabulary (issue 22.5): planted
emails, phones, IBANs, payment cards and names are masked through the CLI, HTTP and ``run``."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from domainfm.manager import PluginManager
from domainfm.privacy import PiiScanner, placeholder
from domainfm.testing import check_plugin_contract

IBAN = "DE89 3704 0044 0532 0130 00"
CARD = "4111 1111 1111 1111"
EMAIL = "ana.lima@example.com"
PHONE = "+44 20 7946 0958"
NAME = "Ana Lima"
SECRETS = (IBAN, IBAN.replace(" ", ""), CARD, CARD.replace(" ", ""), EMAIL, PHONE, NAME)
NOTE = (
    f"My name is {NAME}, headache since Monday. Mail {EMAIL} or call {PHONE}. "
    f"Refund the co-payment to IBAN {IBAN}; I paid with card {CARD}."
)
EXPECTED = {"PERSON": 1, "EMAIL": 1, "PHONE": 1, "IBAN": 1, "CARD": 1}
CORE_PLACEHOLDER = re.compile(r"<[A-Z_]+>")


def assert_masked(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} left in {text!r}"
    for kind in EXPECTED:
        assert placeholder(kind) in text, f"{placeholder(kind)} missing from {text!r}"
    assert "[" not in text, f"a healthcare-only placeholder in {text!r}"


def test_deidentifier_masks_ibans_and_cards_with_the_core_vocabulary() -> None:
    from domainfm_healthcare.deid import Deidentifier

    result = Deidentifier(use_ner=False).deidentify(NOTE)
    assert_masked(result.text)
    assert result.counts == EXPECTED
    assert result.text.count("<PHONE>") == 1  # the card is a card, not a phone number
    # the same spans and placeholders as the core scanner used on free text elsewhere in the product
    core = PiiScanner(use_ner=False, dates=True, context=True)
    assert result.text == core.mask(NOTE)


def test_cli_deid(tmp_path: Path) -> None:
    from domainfm_healthcare.cli import health

    src = tmp_path / "notes.csv"
    with src.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["note", "ward"])
        writer.writeheader()
        writer.writerows([{"note": NOTE, "ward": "B"}] * 3)
    dst = tmp_path / "clean.jsonl"
    result = CliRunner().invoke(health, ["deid", str(src), str(dst), "--no-ner"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["identifiers_removed"] == {kind: 3 * n for kind, n in EXPECTED.items()}
    for line in dst.read_text(encoding="utf-8").splitlines():
        assert_masked(json.loads(line)["note"])


def test_http_deidentify() -> None:
    fastapi = pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from domainfm_healthcare.serving import register_routes

    def no_predictor(domain: str) -> None:
        raise AssertionError("the de-identification route needs no model")

    app = fastapi.FastAPI()
    router = fastapi.APIRouter()
    register_routes(router, no_predictor)
    app.include_router(router)
    response = TestClient(app).post("/healthcare/deidentify", json={"text": NOTE})
    assert response.status_code == 200
    body = response.json()
    assert_masked(body["text"])
    assert {k: body["identifiers_removed"].get(k) for k in EXPECTED} == EXPECTED


def test_run_masks_planted_identifiers_before_training(tiny_model_dir: Path, tmp_path: Path) -> None:
    labels = ["flu", "sprain", "reflux"]
    data = tmp_path / "planted.csv"
    with data.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows({"text": f"case {i}: {labels[i % 3]} symptoms. {NOTE}", "label": labels[i % 3]} for i in range(30))
    out = tmp_path / "runs"
    report = check_plugin_contract(
        PluginManager(select=["healthcare"]).load(), "healthcare", source=str(data), output_dir=out,
        overrides=[f"model.base={tiny_model_dir}", "model.mode=head", "train.epochs=1", "model.max_length=32",
                   "options.explain=false", "options.deid_ner=false", "benefit.energy_tracking=false"],
    )
    assert report.data.meta["identifiers_removed"] == {kind: 30 * n for kind, n in EXPECTED.items()}
    for split in report.data.tables.values():
        for text in split["text"]:
            assert_masked(text)
    for path in (p for p in out.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in blob, f"{secret!r} found in {path}"
