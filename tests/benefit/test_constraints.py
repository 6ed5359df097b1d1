"""The core's cross-cutting constraints (privacy, resources) and the resource measurements."""

from __future__ import annotations

import builtins
import time
from typing import Any

import pytest

from domainfm.benefit import score
from domainfm.benefit.resources import EnergyTracker, measure_latency

from .conftest import make_evaluation


def test_privacy_scans_training_data_outputs_and_artifacts(make_ctx: Any) -> None:
    ctx = make_ctx(builtins=True)
    ctx.state["privacy_texts"] = {
        "training_data": ["refund to DE89 3704 0044 0532 0130 00", "call +44 20 7946 0958", "fine", "ok"],
        "outputs": ['{"label": "billing"}', '{"label": "card 4111 1111 1111 1111", "score": 0.9}', "plain a@b.org"],
    }
    ctx.artifact_dir.mkdir()
    (ctx.artifact_dir / "config.json").write_text('{"id2label": {"0": "billing"}}')
    (ctx.artifact_dir / "notes.txt").write_text("trained by jane.doe@example.com\n")
    report = score(ctx, {"model": make_evaluation()})
    training = report.constraint("privacy_identifiers_training_data")
    assert training.at_optimum.value == pytest.approx(0.5) and training.at_optimum.status == "fail"
    assert training.details["by_kind"] == {"IBAN": 1, "PHONE": 1} and training.limit == 0.0
    outputs = report.constraint("privacy_identifiers_outputs")
    assert outputs.at_optimum.value == pytest.approx(2 / 3) and outputs.details["by_kind"] == {"CARD": 1, "EMAIL": 1}
    assert "<CARD>" in outputs.details["examples"][0]
    # NER is off in these tests (options.privacy_ner=false): names cannot be measured, and say why
    names = report.constraint("privacy_names_training_data")
    assert names.at_optimum.status == "not_measurable" and "NER disabled" in names.at_optimum.note
    artifacts = report.constraint("privacy_pii_artifacts")
    assert artifacts.at_optimum.value == 1.0 and artifacts.details["files"] == {"config.json": 0, "notes.txt": 1}
    assert report.optimum is None  # privacy constraints hold at every operating point or at none
    assert training.cost is None and "binding" not in (training.cost_note or "")  # others fail as well
    assert "privacy_dp_epsilon" not in {c.name for c in report.constraints}


def test_dp_training_relaxes_the_training_data_limit(make_ctx: Any) -> None:
    ctx = make_ctx(builtins=True)
    ctx.state["privacy_texts"] = {"training_data": ["mail a@b.org"], "outputs": ["x"]}
    ctx.state["dp_epsilon"] = 3.0
    report = score(ctx, {"model": make_evaluation()})
    assert report.constraint("privacy_identifiers_training_data").at_optimum.status == "pass"
    assert "differentially private" in report.constraint("privacy_identifiers_training_data").details["note"]
    dp = report.constraint("privacy_dp_epsilon")
    assert dp.at_optimum.value == 3.0 and dp.at_optimum.margin == pytest.approx(7.0)
    ctx2 = make_ctx(builtins=True, limits={"privacy_dp_epsilon": 1.0})
    ctx2.state["dp_epsilon"] = 3.0
    assert score(ctx2, {"model": make_evaluation()}).constraint("privacy_dp_epsilon").at_optimum.status == "fail"


def test_nothing_to_scan_is_not_measurable(make_ctx: Any) -> None:
    report = score(make_ctx(builtins=True), {"model": make_evaluation()})
    for name in ("privacy_identifiers_training_data", "privacy_names_outputs", "privacy_pii_artifacts"):
        c = report.constraint(name)
        assert c.at_optimum.status == "not_measurable" and "nothing to scan" in c.at_optimum.note


def test_resources_against_limits(make_ctx: Any) -> None:
    ctx = make_ctx(builtins=True, limits={"resource_latency_p95": 5.0})
    ctx.resources.parameters = 22_713_216
    ctx.resources.latency_ms_p50, ctx.resources.latency_ms_p95 = 3.0, 7.5
    ctx.state["energy_tracking_error"] = "energy tracking failed (RuntimeError: no RAPL)"
    report = score(ctx, {"model": make_evaluation()})
    params = report.constraint("resource_parameters")
    assert params.at_optimum.status == "pass" and params.at_optimum.margin == pytest.approx(1e9 - 22_713_216)
    latency = report.constraint("resource_latency_p95")
    assert latency.limit == 5.0 and latency.limit_overridden and latency.at_optimum.status == "fail"
    assert latency.details["latency_ms_p50"] == 3.0
    energy = report.constraint("resource_energy")
    assert energy.at_optimum.status == "not_measurable" and "no RAPL" in energy.at_optimum.note
    assert report.optimum is None and report.verdict == "fail"


def test_a_variant_can_carry_its_own_resources(make_ctx: Any) -> None:
    ctx = make_ctx(builtins=True)
    ctx.resources.latency_ms_p95 = 2000.0
    fast = make_evaluation().model_copy(update={"extra": {"resources": {"latency_ms_p95": 50.0}}})
    report = score(ctx, {"slow": make_evaluation(), "fast": fast})
    assert report.best is not None and report.best.variant == "fast"
    assert report.points[0].constraints["resource_latency_p95"].status == "fail"


def test_energy_tracker_fills_resources(make_ctx: Any) -> None:
    ctx = make_ctx()
    with EnergyTracker(ctx, measure_power_secs=1) as tracker:
        sum(i * i for i in range(200_000))
    if tracker.error:
        pytest.skip(f"codecarbon cannot measure here: {tracker.error}")
    assert ctx.resources.energy_kwh is not None and ctx.resources.energy_kwh >= 0
    assert ctx.resources.co2_kg is not None and ctx.resources.co2_kg >= 0
    assert ctx.state["energy_country"] == "DEU"


def test_energy_tracker_degrades_without_codecarbon(make_ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_codecarbon(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("codecarbon"):
            raise ImportError("No module named 'codecarbon'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_codecarbon)
    ctx = make_ctx()
    ran = []
    with EnergyTracker(ctx) as tracker:
        ran.append(True)
    assert ran and ctx.resources.energy_kwh is None and ctx.resources.co2_kg is None
    assert tracker.error and "codecarbon" in ctx.state["energy_tracking_error"]


def test_measure_latency_percentiles() -> None:
    delays = [0.0, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.02]
    p50, p95 = measure_latency(lambda d: time.sleep(d), delays, warmup=1)
    assert 1.0 <= p50 < 15.0 and p95 >= p50
    with pytest.raises(ValueError):
        measure_latency(lambda d: None, [])


def test_training_text_kept_for_the_privacy_scan_is_the_text_column(make_ctx: Any) -> None:
    from datasets import Dataset

    from domainfm.runner import _remember_training_texts
    from domainfm.types import DataBundle

    train = Dataset.from_dict(
        {"text": ["mail a@b.org", "fine"], "label": ["Jordan Smith", "x"], "agent": ["Ann Lee", "Bo Chan"]}
    )
    ctx = make_ctx(builtins=True)
    _remember_training_texts(ctx, DataBundle(tables={"train": train}, source="t", public_names=["Nokia"]))
    assert ctx.state["privacy_texts"]["training_data"] == ["mail a@b.org", "fine"]
    assert ctx.state["privacy_public_names"] == ["Nokia"]
    # without a text column every string column but the label is scanned
    _remember_training_texts(ctx, DataBundle(tables={"train": train}, source="t", text_column=None))
    assert ctx.state["privacy_texts"]["training_data"] == ["mail a@b.org", "fine", "Ann Lee", "Bo Chan"]


def test_time_serving_excludes_warm_up_and_says_what_it_timed() -> None:
    from domainfm.benefit.resources import serving_path, time_serving

    delays = [0.3, 0.001, 0.002, 0.001, 0.002]  # the first call pays a one-off load
    latency = time_serving(lambda d: time.sleep(d) or d, delays, path="the toy path", split="test")
    assert latency.p95_ms < 100 and latency.n == 4 and latency.warmup == 1
    assert latency.outputs == delays  # every call's result, the warm-up's included
    assert latency.timed == "the toy path; 4 records of the test split one per call, after 1 untimed warm-up call"
    assert "predict hook" in serving_path(object())
    with pytest.raises(ValueError):
        time_serving(lambda d: d, [], path="p", split="test")
