from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from domainfm.manager import PluginManager
from domainfm.testing import build_tiny_model, check_plugin_contract
from domainfm_customer_service import DOMAIN


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def demo_run(tiny: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    out = tmp_path_factory.mktemp("runs")
    report = check_plugin_contract(
        PluginManager().load(), DOMAIN, source="demo", output_dir=out,
        overrides=[f"model.base={tiny}", "options.use_ner=false", "train.epochs=1", f"options.feedback_db={out}/fb.sqlite"],
    )
    return report, out


def test_plugins_list_does_not_import_torch() -> None:
    code = (
        "import sys; from domainfm.manager import PluginManager; pm = PluginManager().load(); "
        f"assert {DOMAIN!r} in pm.domains; "
        "import domainfm_customer_service.plugin, domainfm_customer_service.cli; "
        "bad = [m for m in ('torch', 'transformers', 'faiss', 'bm25s', 'sentence_transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_contract_on_demo(demo_run) -> None:  # noqa: ANN001
    report, _ = demo_run
    ev = report.evaluation
    assert set(report.data.tables) == {"train", "validation", "test", "kb", "qa"}
    for name in ("accuracy", "macro_f1", "recall_at_5", "mrr", "automation_rate", "escalation_precision", "escalation_recall"):
        assert name in ev.metrics and 0.0 <= ev.metrics[name] <= 1.0, name
    assert ev.outcomes is not None and ev.outcomes.groups["channel"]
    assert "automation_vs_accuracy" in ev.curves
    assert {"retrieval_dense_only", "retrieval_bm25_only"} <= set(ev.baselines)
    assert ev.extra["pii_findings_in_index_and_logs"] == 0
    meta = report.artifact.metadata["customer_service"]
    assert meta["classifier_mode"] == "head" and "training rows" in meta["classifier_mode_reason"]
    assert meta["index"]["documents"] == 14 and meta["biencoder"]["steps"] >= 1
    root = Path(report.artifact.path)
    assert (root / "kb_index" / "manifest.json").is_file() and (root / "biencoder").is_dir()
    assert not (root / "biencoder" / "README.md").exists()  # the model card would quote customer text
    names = {c.name for c in report.contributions}
    assert {"agent_time_saved", "customer_wait_saved", "pii_in_index_and_logs", "error_rate_gap_across_groups"} <= names
    for pred in report.predictions:
        assert pred.label and pred.confidence is not None and "answer" in pred.extra
        assert pred.extra["escalate"] == pred.abstained and isinstance(pred.extra["escalation_reasons"], list)
        assert "out_of_scope_score" in pred.extra["escalation_scores"]
    assert "misled_customer_cost" in names
    oos = meta["oos"]
    assert oos["max_false_escalation"] == 0.05 and oos["method"] in oos["methods_compared"]
    assert oos["negative_pool"]["held_out"] > 0 and oos["validation_out_of_scope"]["labelled"] > 0


def test_threshold_comes_from_validation(demo_run) -> None:  # noqa: ANN001
    from domainfm_customer_service.assistant import CustomerServiceAssistant
    from domainfm_customer_service.training import escalation_threshold

    report, _ = demo_run
    assistant = CustomerServiceAssistant.load(report.artifact.path, "cpu", use_ner=False)
    meta = report.artifact.metadata["customer_service"]
    redo = escalation_threshold(None, assistant.classifier, report.data, meta["target_precision"])  # type: ignore[arg-type]
    assert redo["escalation_threshold"] == meta["escalation_threshold"]
    shuffled = report.data.tables["test"]
    assert meta["validation_items"] == len(report.data.tables["validation"]) != 0
    assert len(shuffled) > 0


def _cli(args: list[str]):  # noqa: ANN202
    from domainfm_customer_service.cli import cs

    return CliRunner().invoke(cs, args, catch_exceptions=False)


def test_cli_ask_json_and_bad_queries(demo_run) -> None:  # noqa: ANN001
    report, _ = demo_run
    art = str(report.artifact.path)
    res = _cli(["ask", "I lost my card, my email is ann@example.org", "--artifact", art, "--no-ner", "--json"])
    assert res.exit_code == 0, res.output
    ans = json.loads(res.stdout)
    assert "ann@example.org" not in res.output and "<EMAIL>" in ans["query"]
    assert ans["intent"] and isinstance(ans["escalate"], bool) and len(ans["passages"]) == 3
    for bad, msg in (("", "empty text"), ("x" * 1_000_000, "too long"), ("a\x00b", "control character")):
        res = _cli(["ask", bad, "--artifact", art, "--no-ner"])
        assert res.exit_code == 1 and msg in res.output


def test_cli_kb_update_and_feedback(demo_run, tmp_path: Path) -> None:  # noqa: ANN001
    import shutil

    report, _ = demo_run
    art = tmp_path / "artifact"
    shutil.copytree(report.artifact.path, art)
    doc = tmp_path / "pets.jsonl"
    doc.write_text(json.dumps({"id": "kb-pets", "title": "Pet insurance", "text": "Our pet insurance covers vet bills."}) + "\n", encoding="utf-8")
    res = _cli(["kb", "add", str(doc), "--artifact", str(art), "--no-ner"])
    assert res.exit_code == 0 and "15 documents" in res.output, res.output
    res = _cli(["kb", "add", str(doc), "--artifact", str(art), "--no-ner"])
    assert res.exit_code == 1 and "already indexed" in res.output
    res = _cli(["kb", "delete", "kb-pets", "kb-contact", "--artifact", str(art), "--no-ner"])
    assert res.exit_code == 0 and "13 documents" in res.output
    db = tmp_path / "fb.sqlite"
    res = _cli(["feedback", "my pin is blocked", "--down", "--intent", "reset_pin", "--feedback-db", str(db), "--artifact", str(art), "--no-ner"])
    assert res.exit_code == 0 and "'corrections': 1" in res.output, res.output
    res = _cli(["feedback", "my pin is blocked", "--intent", "not_an_intent", "--feedback-db", str(db), "--artifact", str(art), "--no-ner"])
    assert res.exit_code == 1 and "not one of the model's intents" in res.output


def test_feedback_joins_the_next_training_split(tiny: Path, tmp_path: Path) -> None:
    from domainfm.config import build_config
    from domainfm.runner import Runner
    from domainfm_customer_service.feedback import FeedbackStore

    db = tmp_path / "fb.sqlite"
    FeedbackStore(db).add("the card reader ate my card", thumbs=-1, predicted_intent="atm_cash_wrong", corrected_intent="card_lost")
    runner = Runner(PluginManager().load(), build_config(overrides=[f"output_dir={tmp_path}", f"options.feedback_db={db}", "options.use_ner=false"]))
    ctx = runner.context(DOMAIN)
    data = runner.load_data(ctx)
    assert "the card reader ate my card" in data.tables["train"]["text"]
    assert "the card reader ate my card" not in data.tables["test"]["text"]
    assert data.meta["feedback_rows"] == 1


def test_cli_chat_session(demo_run, tmp_path: Path) -> None:  # noqa: ANN001
    from domainfm_customer_service.cli import cs

    report, _ = demo_run
    db = tmp_path / "fb.sqlite"
    session = "/up\nwhere is my new card\n\x00bin\n/up\n/intent card_not_arrived\n/quit\n"
    res = CliRunner().invoke(cs, ["chat", "--artifact", str(report.artifact.path), "--no-ner", "--feedback-db", str(db)], input=session)
    assert res.exit_code == 0, res.output
    assert "nothing to give feedback on yet" in res.output and "error:" in res.output
    assert res.output.count("thanks, noted") == 2


def test_http_ask_route(demo_run) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from domainfm.config import build_config
    from domainfm.serve.app import create_app

    report, _ = demo_run
    app = create_app(PluginManager().load(), build_config(overrides=["options.use_ner=false"]),
                     artifacts={DOMAIN: Path(report.artifact.path)})
    with TestClient(app) as client:
        ok = client.post(f"/{DOMAIN}/ask", json={"text": "how do I change my address?"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["intent"] and "escalate" in ok.json()
        bad = client.post(f"/{DOMAIN}/ask", json={"text": "   "})
        assert bad.status_code == 422 and "empty text" in bad.text


def test_intent_only_source_routes_without_knowledge_base(tiny: Path, tmp_path: Path) -> None:
    import shutil

    from domainfm_customer_service.readers import demo_dir

    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(demo_dir() / "utterances.csv", folder / "utterances.csv")
    report = check_plugin_contract(
        PluginManager().load(), DOMAIN, source=str(folder), output_dir=tmp_path / "runs",
        overrides=[f"model.base={tiny}", "options.use_ner=false", f"options.feedback_db={tmp_path}/none.sqlite"],
    )
    assert set(report.data.tables) == {"train", "validation", "test"}
    assert "recall_at_5" not in report.evaluation.metrics
    assert not (Path(report.artifact.path) / "kb_index").exists()
    for pred in report.predictions:
        assert pred.extra["answer_source"] == "intent_only"
        assert "no answer" not in (pred.extra["escalation_reason"] or "")


def test_optional_generator_phrases_from_passages(demo_run, tiny: Path, tmp_path: Path) -> None:  # noqa: ANN001
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from domainfm_customer_service.assistant import CustomerServiceAssistant

    report, _ = demo_run
    tok = AutoTokenizer.from_pretrained(str(tiny))
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=512)).save_pretrained(str(tmp_path / "lm"))
    tok.save_pretrained(str(tmp_path / "lm"))
    assistant = CustomerServiceAssistant.load(report.artifact.path, "cpu", use_ner=False, generator=str(tmp_path / "lm"))
    assistant.threshold, assistant.oos_label = 0.0, "no-such-label"  # answer everything so the generator runs
    ans = assistant.answer("how do I close my account")
    assert ans["answer"] and isinstance(ans["generated_answer"], str)


def test_http_ask_returns_the_escalation_decision(demo_run) -> None:  # noqa: ANN001
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from domainfm.config import RunConfig
    from domainfm.serve.app import create_app

    report, out = demo_run
    app = create_app(PluginManager().load(), RunConfig(device="cpu", output_dir=out), {DOMAIN: Path(report.artifact.path)})
    with TestClient(app) as client:
        res = client.post(f"/{DOMAIN}/ask", json={"text": "What's a good recipe for lasagne?"})
    assert res.status_code == 200, res.text
    body = res.json()
    assert isinstance(body["escalate"], bool) and body["escalate"] == bool(body["escalation_reasons"])
    scores = body["escalation_scores"]
    assert {"confidence", "confidence_threshold", "out_of_scope_score", "out_of_scope_threshold", "out_of_scope_method"} <= set(scores)
