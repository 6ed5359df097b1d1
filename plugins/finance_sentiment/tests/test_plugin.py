"""The domain's hooks: declaration, data split, topics, benefit terms, CLI registration, full contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from domainfm.config import build_config
from domainfm.errors import DataError
from domainfm.types import Evaluation, ItemBatch, Outcomes, ResourceUsage, RunContext
from domainfm_finance_sentiment import DOMAIN, LABELS, plugin
from domainfm_finance_sentiment.benefit import group_accuracy_gap, negative_miss_rate, terms
from domainfm_finance_sentiment.topics import TopicModel, fit_topics


def make_ctx(tmp_path: Path, *overrides: str) -> RunContext:
    return RunContext(run_id="t", domain=DOMAIN, config=build_config(None, list(overrides)), run_dir=tmp_path,
                      device="cpu")


def test_plugin_import_is_light() -> None:
    code = ("import sys, domainfm_finance_sentiment.plugin as p; p.domainfm_domains(); "
            "import domainfm_finance_sentiment.cli; "
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'faiss') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_domain_spec() -> None:
    (spec,) = plugin.domainfm_domains()
    assert spec.name == DOMAIN and spec.default_data == "demo" and spec.cli_group == "finance"
    assert spec.key_metric == "macro_f1"


def test_demo_split_is_pinned_and_stratified(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    a = plugin.domainfm_load_data(ctx, DOMAIN, "demo")
    b = plugin.domainfm_load_data(make_ctx(tmp_path, "train.seed=7"), DOMAIN, "demo")  # train seed: same split
    assert a is not None and b is not None
    sizes = a.sizes()
    total = sum(sizes.values())
    assert abs(sizes["train"] / total - 0.8) < 0.02 and abs(sizes["test"] / total - 0.1) < 0.02
    assert a.tables["test"]["id"] == b.tables["test"]["id"]
    assert not set(a.tables["train"]["text"]) & set(a.tables["test"]["text"])
    for split in ("train", "validation", "test"):
        assert set(a.tables[split]["label"]) == set(LABELS)
    assert a.group_columns[0] == "source" and a.label_names == list(LABELS)
    assert plugin.domainfm_load_data(ctx, "other", "demo") is None


def test_too_little_data_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tiny.csv"
    path.write_text("text,label\nup,positive\ndown,negative\nflat,neutral\n", encoding="utf-8")
    with pytest.raises(DataError, match="fewer than 3 rows"):
        plugin.domainfm_load_data(make_ctx(tmp_path), DOMAIN, str(path))


def test_cluster_topics_get_readable_and_pinnable_names(tmp_path: Path) -> None:
    texts = [f"bank loan default credit {i}" for i in range(10)] + [f"factory strike workers union {i}" for i in range(10)]
    emb = np.zeros((20, 4), np.float32)
    emb[:10, 0] = 1.0
    emb[10:, 1] = 1.0
    model = fit_topics(texts, emb + 0.01 * np.random.default_rng(0).normal(size=emb.shape), n_topics=2)
    assert model.kind == "clusters"
    by_text = dict(zip(texts, model.assign(emb), strict=True))
    credit = by_text[texts[0]]
    assert any(term in credit for term in ("bank", "loan", "default", "credit"))
    assert by_text[texts[-1]] != credit
    pinned = fit_topics(texts, emb, n_topics=2, pinned_names={"0": "pinned"})
    assert "pinned" in pinned.names
    with pytest.raises(ValueError, match="cluster 5"):
        fit_topics(texts, emb, n_topics=2, pinned_names={"5": "x"})
    model.save(tmp_path)
    again = TopicModel.load(tmp_path)
    assert again is not None and again.assign(emb) == model.assign(emb)


def test_labelled_topics_are_learned(tmp_path: Path) -> None:
    emb = np.eye(3, dtype=np.float32).repeat(5, axis=0)
    topics = ["credit"] * 5 + ["labour"] * 5 + ["deals"] * 5
    model = fit_topics(["t"] * 15, emb, topics)
    assert model.kind == "labelled" and model.assign(emb) == topics
    two = fit_topics(["t"] * 10, emb[:10], topics[:10])
    assert two.assign(emb[:10]) == topics[:10]


def test_labelled_topics_survive_save_and_load(tmp_path: Path) -> None:
    # scikit-learn's coef_ is Fortran-ordered; saved as it lay in memory it loaded back scrambled
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 24))
    emb = np.vstack([c + 0.3 * rng.normal(size=(30, 24)) for c in centers]).astype(np.float32)
    topics = [name for name in ("credit", "deals", "earnings", "labour") for _ in range(30)]
    model = fit_topics(["t"] * len(topics), emb, topics)
    assert np.mean(np.asarray(model.assign(emb)) == np.asarray(topics)) > 0.95
    model.save(tmp_path)
    again = TopicModel.load(tmp_path)
    assert again is not None
    np.testing.assert_array_equal(again.weight, model.weight)
    assert again.assign(emb) == model.assign(emb)


def _evaluation(quality: list[float], labels: list[str], sources: list[str]) -> Evaluation:
    n = len(quality)
    return Evaluation(
        domain=DOMAIN, split="test", metrics={"macro_f1": 0.5, "ece": 0.02}, key_metric="macro_f1", n_items=n,
        outcomes=Outcomes(ids=[str(i) for i in range(n)], confidence=[0.9] * n, quality=quality,
                          groups={"source": sources}, extra={"label": labels}),
    )


def test_benefit_terms_hand_computed(tmp_path: Path) -> None:
    quality = [1.0] * 10 + [0.0] * 10 + [1.0] * 10
    labels = ["negative"] * 20 + ["neutral"] * 10
    sources = ["wire"] * 10 + ["blog"] * 10 + ["wire"] * 10
    ev = _evaluation(quality, labels, sources)
    ctx = make_ctx(tmp_path, "benefit.assumptions.analyst_hourly_cost=36")
    automated = np.array([True] * 25 + [False] * 5)
    batch = ItemBatch(confidence=np.full(30, 0.9), quality=np.array(quality), automated=automated,
                      groups={"source": np.array(sources)}, extra={"label": np.array(labels, dtype=object)},
                      threshold=0.5, evaluation=ev, resources=ResourceUsage(train_seconds=100.0))
    by_name = {t.name: t for t in terms(ctx, ev)}
    # 25 automated x 30 s x 36 EUR/h = 7.5 EUR, less 10 automated errors x 1 EUR
    assert np.isclose(by_name["analyst_hours_saved"].utility(batch).sum(), 7.5 - 10.0)
    # 10 correct automated negatives x 4 h x 2 EUR/h
    assert np.isclose(by_name["alert_lead_time"].utility(batch).sum(), 80.0)
    assert np.isclose(by_name["retail_early_warning"].utility(batch).sum(), 10 * 50 * 4.0)
    assert group_accuracy_gap(batch) == pytest.approx(1.0)  # wire 15/15 automated correct, blog 0/10
    assert negative_miss_rate(batch) == pytest.approx(10 / 20)
    assert by_name["train_seconds"].measure(batch) == 100.0
    # 30 items cannot check ECE <= 0.05: a perfectly calibrated model would exceed it too often at this size
    assert by_name["calibration_ece"].measure(batch) is None
    assert "Not measurable on 30 items" in by_name["calibration_ece"].description
    big = _evaluation([1.0] * 2700 + [0.0] * 300, ["neutral"] * 3000, ["wire"] * 3000)
    ece = {t.name: t for t in terms(ctx, big)}["calibration_ece"]
    assert ece.measure(batch) == 0.02 and "Measured on 3000 items" in ece.description
    no_groups = ItemBatch(confidence=batch.confidence, quality=batch.quality, automated=automated, groups={},
                          extra={}, threshold=0.5, evaluation=ev, resources=ResourceUsage())
    assert group_accuracy_gap(no_groups) is None and negative_miss_rate(no_groups) is None
    assert plugin.domainfm_benefit_terms(ctx, "other", ev) == []


def test_cli_group_registers_and_monitors_demo(tmp_path: Path) -> None:
    root = click.Group("domainfm")
    plugin.domainfm_register_commands(root)
    assert "finance" in root.commands
    alerts = tmp_path / "alerts.jsonl"
    result = CliRunner().invoke(root, ["finance", "monitor", "demo", "--state", str(tmp_path / "s.sqlite"),
                                       "--alerts", str(alerts), "--bucket", "6h"])
    assert result.exit_code == 0, result.output
    keys = {json.loads(line)["key"] for line in alerts.read_text().splitlines()}
    assert "entity:Norvale Bank" in keys
    status = CliRunner().invoke(root, ["finance", "status", "--state", str(tmp_path / "s.sqlite")])
    from domainfm_finance_sentiment.readers import demo_path

    demo_events = sum(1 for line in demo_path().read_text(encoding="utf-8").splitlines() if line.strip())
    assert status.exit_code == 0 and json.loads(status.output)["events"] == demo_events
    bad = CliRunner().invoke(root, ["finance", "monitor", "demo", "--state", str(tmp_path / "s.sqlite"),
                                    "--bucket", "1h"])
    assert bad.exit_code != 0 and "settings" in bad.output
    assert CliRunner().invoke(root, ["finance", "monitor", "demo", "--bucket", "soon"]).exit_code != 0


def test_full_contract_with_tiny_model(tmp_path: Path, tiny_model_dir: Path, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    from domainfm.testing import check_plugin_contract

    report = check_plugin_contract(
        plugin_manager, DOMAIN, source="demo", output_dir=tmp_path,
        overrides=[f"model.base={tiny_model_dir}", "model.mode=full", "train.max_steps=3", "train.batch_size=16",
                   "model.max_length=32", "benefit.energy_tracking=false"],
    )
    assert report.artifact.metadata["topics"]["kind"] == "labelled"
    assert all(p.label in LABELS and "topic" in p.extra for p in report.predictions)
    assert {"accuracy", "macro_f1", "ece", "topic_accuracy"} <= set(report.evaluation.metrics)
    assert report.evaluation.confusion is not None and report.evaluation.per_class is not None
    names = {c.name for c in report.contributions}
    assert {"analyst_hours_saved", "retail_early_warning", "source_accuracy_gap"} <= names
    probs = report.predictions[0].scores
    assert probs is not None and abs(sum(probs.values()) - 1.0) < 1e-6

    # the monitor labels (and topics) unlabelled events with the trained artifact
    from domainfm_finance_sentiment.model import FinancePredictor
    from domainfm_finance_sentiment.monitor.detector import DetectorConfig
    from domainfm_finance_sentiment.monitor.engine import Monitor
    from domainfm_finance_sentiment.monitor.store import MonitorStore
    from domainfm_finance_sentiment.monitor.surge_eval import ListSource
    from domainfm_finance_sentiment.readers import demo_path

    predictor = FinancePredictor.load(report.artifact, "cpu")
    events = [json.loads(line) for line in demo_path().read_text(encoding="utf-8").splitlines()][:120]
    for event in events:
        del event["label"], event["topic"]
    mon = Monitor(MonitorStore(tmp_path / "m.sqlite"), DetectorConfig(), classifier=predictor.predict_proba,
                  topic_fn=predictor.assign_topics)
    result = mon.run(ListSource(events), batch_size=50)
    assert result["events"] == 120 and result["skipped"] == 0
    assert any(k.startswith("topic:") for k in mon.keys)


@pytest.mark.slow
def test_head_mode_on_minilm_learns_the_demo(tmp_path: Path, plugin_manager) -> None:  # type: ignore[no-untyped-def]
    from domainfm.testing import check_plugin_contract

    report = check_plugin_contract(
        plugin_manager, DOMAIN, source="demo", output_dir=tmp_path,
        overrides=["model.mode=head", "model.max_length=64", "benefit.energy_tracking=false"],
    )
    assert report.evaluation.metrics["accuracy"] >= 0.8
    assert report.evaluation.metrics["topic_accuracy"] >= 0.8  # the labelled topic model, saved and loaded
    assert report.artifact.metadata["abstain_threshold"] is not None
