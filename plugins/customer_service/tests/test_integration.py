from __future__ import annotations

from pathlib import Path

import pytest

from domainfm.config import build_config
from domainfm.manager import PluginManager
from domainfm.runner import Runner
from domainfm_customer_service import DOMAIN


@pytest.mark.slow
def test_demo_with_packaged_minilm(tmp_path: Path) -> None:
    """The default model on the demo bank: intents, retrieval and hand-off all work (no bi-encoder, for speed)."""
    runner = Runner(PluginManager().load(), build_config(overrides=[
        f"output_dir={tmp_path}", "options.biencoder=false", "options.use_ner=false", "benefit.energy_tracking=false",
    ]))
    ctx = runner.context(DOMAIN)
    data = runner.load_data(ctx)
    artifact = runner.train(ctx, data)
    assistant = runner.load_predictor(ctx, artifact)
    ev = runner.evaluate(ctx, assistant, data)
    assert ev.metrics["accuracy"] >= 0.8
    assert ev.metrics["recall_at_5"] >= 0.9
    assert ev.metrics["out_of_scope_recall"] >= 0.75
    ans = assistant.answer("Somebody stole my debit card at the train station")
    assert ans["intent"] == "card_lost" and ans["answer_doc_id"] == "kb-card-lost"
    assert "kb-card-lost" in [p["doc_id"] for p in ans["passages"]]
    assert assistant.answer("What's a good recipe for lasagne?")["escalate"]


@pytest.mark.shared_data
def test_banking77_protocol_is_pinned(shared_data_dir: Path) -> None:
    folder = shared_data_dir / "customer_service"
    if not (folder / "banking77_train.csv").is_file():
        pytest.skip(f"BANKING77 not found under {folder} (set DOMAINFM_SHARED_DATA)")
    from domainfm_customer_service.bundle import build_bundle
    from domainfm_customer_service.readers import load_source

    a = build_bundle(load_source("banking77"), seed=42)
    b = build_bundle(load_source("banking77"), seed=42)
    assert a.sizes() == b.sizes() and a.sizes()["test"] == 3080
    assert a.tables["validation"]["text"] == b.tables["validation"]["text"]
    assert abs(a.sizes()["validation"] - 1000) < 80
    assert len(a.label_names or []) == 77
    assert a.sizes()["train"] + a.sizes()["validation"] == 10003
