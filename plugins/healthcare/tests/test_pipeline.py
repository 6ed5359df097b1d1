"""Every stage on tiny random-init models: contract, outputs, abstention, privacy on disk, DP, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from domainfm.errors import DataError
from domainfm.manager import PluginManager
from domainfm.testing import check_plugin_contract, item_batch
from domainfm.types import Artifact, Constraint, Evaluation, Outcomes
from domainfm_healthcare import NOTICE

BASE_OVERRIDES = ["train.epochs=1", "model.max_length=32", "options.ig_steps=4", "benefit.energy_tracking=false"]
PLANTED = ["Ana Lima", "(555) 123-4567", "ana.lima@example.com", "MRN 00482913", "00482913"]


@pytest.fixture(scope="module")
def pm() -> PluginManager:
    return PluginManager(select=["healthcare"]).load()


@pytest.fixture(scope="module")
def head_report(pm: PluginManager, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("runs-head")
    return check_plugin_contract(
        pm, "healthcare", source="demo", output_dir=out,
        overrides=[f"model.base={tiny_model_dir}", "model.mode=head", "options.explain=always", *BASE_OVERRIDES],
    )


def test_contract_on_demo_with_head_mode(head_report: Any) -> None:
    assert head_report.stages[:5] == ["data", "train", "load", "predict", "evaluate"]
    metrics = head_report.evaluation.metrics
    for key in ("accuracy", "macro_f1", "top3_accuracy", "ece", "precision_at_80_coverage", "deid_recall", "deid_precision"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["top3_accuracy"] >= metrics["accuracy"]
    curve = head_report.evaluation.curves["risk_coverage"]
    assert curve.x[-1] == pytest.approx(1.0) and curve.y[-1] == pytest.approx(metrics["accuracy"])
    assert head_report.evaluation.outcomes.groups["age_band"]  # fairness is measurable on the demo
    meta = head_report.artifact.metadata
    assert meta["threshold_chosen_on"] == "validation" and 0.0 <= meta["abstain_threshold"] <= 1.000001


def test_every_prediction_has_notice_top_k_and_attributions(head_report: Any) -> None:
    for pred in head_report.predictions:
        assert pred.extra["notice"] == NOTICE
        probs = [s["probability"] for s in pred.extra["top_k"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)
        assert pred.label == pred.extra["top_k"][0]["label"]
        assert sum(pred.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert set(pred.explanation["attributions"]) == {s["label"] for s in pred.extra["top_k"]}
        words = next(iter(pred.explanation["attributions"].values()))
        assert words and all({"token", "score"} <= set(w) for w in words)
        assert (pred.extra["referral"] is not None) == pred.abstained


def test_benefit_terms_and_constraints(head_report: Any) -> None:
    names = {c.name for c in head_report.contributions}
    assert {"triage_minutes_saved", "faster_access_to_care", "uncertain_cases_referred",
            "precision_at_operating_point", "identifiers_in_artifacts", "group_accuracy_gap", "latency_p95"} <= names
    by_name = {c.name: c for c in head_report.contributions}
    batch = item_batch(head_report.evaluation, threshold=1.1)  # nothing automated
    assert by_name["precision_at_operating_point"].measure(batch) is None
    assert np.all(by_name["triage_minutes_saved"].utility(batch) == 0)
    assert by_name["identifiers_in_artifacts"].measure(batch) == 0.0


def _evaluation(conf: list[float], quality: list[float], groups: list[str]) -> Evaluation:
    n = len(conf)
    return Evaluation(
        domain="healthcare", split="test", metrics={"macro_f1": 0.5}, key_metric="macro_f1", n_items=n,
        outcomes=Outcomes(ids=[str(i) for i in range(n)], confidence=conf, quality=quality, groups={"age_band": groups}),
        extra={"identifiers_in_artifacts": 2},
    )


def test_benefit_values_follow_the_stated_assumptions(head_report: Any) -> None:
    from domainfm.config import build_config
    from domainfm.types import RunContext
    from domainfm_healthcare.benefit import benefit_terms

    ev = _evaluation([0.9, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9], [1, 1, 0, 0, 1, 1, 1], ["a", "a", "a", "a", "b", "b", "b"])
    cfg = build_config(None, ["benefit.assumptions.triage_minutes_per_case=5", "benefit.assumptions.misroute_minutes=20"])
    ctx = RunContext(run_id="t", domain="healthcare", config=cfg, run_dir=Path("."), device="cpu")
    terms = {t.name: t for t in benefit_terms(ctx, ev)}
    batch = item_batch(ev, threshold=0.5)
    # 5 correct automated cases x 5 min - 1 wrong automated case x 20 min
    assert terms["triage_minutes_saved"].utility(batch).sum() == pytest.approx(5 * 5 - 20)
    assert terms["uncertain_cases_referred"].utility(batch).sum() == pytest.approx(1.0)
    assert terms["precision_at_operating_point"].measure(batch) == pytest.approx(5 / 6)
    assert terms["group_accuracy_gap"].measure(batch) == pytest.approx(1.0 - 2 / 3)
    assert isinstance(terms["identifiers_in_artifacts"], Constraint)
    assert terms["identifiers_in_artifacts"].measure(batch) == 2.0


def _predictor(report: Any, **kwargs: Any) -> Any:
    from domainfm.engine.text_classifier import TextClassifierPredictor
    from domainfm_healthcare.deid import Deidentifier
    from domainfm_healthcare.predictor import HealthcarePredictor

    inner = TextClassifierPredictor.load(Artifact.load(report.artifact.path), "cpu")
    return HealthcarePredictor(inner, Deidentifier(use_ner=False), **kwargs)


def test_abstention_bad_input_and_flags(head_report: Any) -> None:
    predictor = _predictor(head_report, explain=False)
    predictor.inner.threshold = 1.000001
    preds = predictor.predict([{"id": "a", "text": "My son has had a runny nose and a low fever for two days."}])
    assert preds[0].abstained and preds[0].extra["referral"]
    predictor.inner.threshold = 0.0
    records = [
        {"text": "I have had a cough for three days, call me on (555) 123-4567"},
        {"text": "Tengo fiebre y dolor de cabeza desde hace tres días y no puedo dormir"},
        {"text": "wheezing " * 60},
    ]
    preds = predictor.predict(records)
    assert not preds[0].abstained and preds[0].extra["identifiers_removed"] == {"PHONE": 1}
    assert "123-4567" not in json.dumps([p.model_dump(mode="json") for p in preds])
    assert preds[1].abstained and "non_english" in preds[1].extra["flags"]
    assert "truncated" in preds[2].extra["flags"]
    redacted = predictor.predict([{"id": "MRN 00482913", "text": "sore throat and fever"}, {"id": "r-7", "text": "cough"}])
    assert redacted[0].id.startswith("redacted-") and "id_redacted" in redacted[0].extra["flags"]
    assert redacted[1].id == "r-7"
    with pytest.raises(DataError, match="record 1: field 'text' is missing or empty"):
        predictor.predict([{"text": "cough"}, {"text": "  "}])
    with pytest.raises(DataError, match="record 0: field 'text' has"):
        predictor.predict([{"text": "x" * 20_001}])


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_identifiers_never_reach_disk(pm: PluginManager, tiny_model_dir: Path, tmp_path: Path, mode: str) -> None:
    rows = []
    labels = ["flu", "sprain", "reflux"]
    for i in range(30):
        text = f"My name is Ana Lima, MRN 00482913, call (555) 123-4567: case {i} of {labels[i % 3]} symptoms"
        rows.append({"text": text, "label": labels[i % 3], "email": "ana.lima@example.com"})
    data = tmp_path / "planted.csv"
    with data.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label", "email"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "runs"
    report = check_plugin_contract(
        pm, "healthcare", source=str(data), output_dir=out,
        overrides=[f"model.base={tiny_model_dir}", f"model.mode={mode}", "train.max_steps=2", *BASE_OVERRIDES],
    )
    assert report.data.meta["identifier_columns"] == {"email": 30}
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written
    for path in written:
        blob = path.read_bytes()
        for secret in PLANTED + ["ana.lima@example.com"]:
            assert secret.encode() not in blob, f"{secret!r} found in {path}"
    assert report.evaluation.extra["identifiers_in_artifacts"] == 0


def test_calibration_split_fits_temperature_and_threshold(pm: PluginManager, tiny_model_dir: Path, tmp_path: Path) -> None:
    labels = ["flu", "sprain", "reflux"]
    phrases = {"flu": "fever and aching muscles", "sprain": "swollen ankle after a fall", "reflux": "heartburn at night"}
    folder = tmp_path / "splits"
    folder.mkdir()
    for name, n in (("train", 24), ("validation", 9), ("calibration", 12), ("test", 9)):
        with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["text", "label"])
            writer.writeheader()
            for i in range(n):
                label = labels[i % 3]
                writer.writerow({"text": f"{phrases[label]} for {i + 1} days", "label": label})
    report = check_plugin_contract(
        pm, "healthcare", source=str(folder), output_dir=tmp_path / "runs",
        overrides=[f"model.base={tiny_model_dir}", "model.mode=head", "options.explain=false", *BASE_OVERRIDES],
    )
    meta = report.artifact.metadata
    pooled = "validation+calibration"
    assert meta["temperature_fitted_on"] == pooled and meta["threshold_chosen_on"] == pooled
    assert meta[f"{pooled}_items"] == 9 + 12 and meta["temperature_validation"] is not None
    assert report.evaluation.extra["temperature"] == pytest.approx(meta["temperature"])
    # the calibrator is chosen among the kinds by repeated cross-validated ECE on the pooled held-out rows, and served
    choice = meta["calibrator_choice"]
    assert meta["calibrator_fitted_on"] == pooled and choice["items"] == 21 and choice["repeats"] == 50
    assert set(choice["cv_ece"]) == {"none", "temperature", "vector", "top_isotonic"}
    assert choice["chosen"] == meta["calibrator"]["kind"] == report.evaluation.extra["calibrator"]
    # (a temperature fitted at its bound on all the rows is replaced by its fallback, which says so)
    winner = choice["fallback"]["from"] if "fallback" in choice else choice["chosen"]
    assert choice["cv_ece"][winner] == min(choice["cv_ece"].values())
    # the threshold, chosen on the calibrating pass's own probabilities, is the one a fresh pass of the served
    # predictor over the same pooled rows gives
    from datasets import Dataset

    from domainfm.engine.text_classifier import TextClassifierPredictor, choose_abstain_threshold

    pooled = Dataset.from_dict({
        "text": [f"{phrases[labels[i % 3]]} for {i + 1} days" for n in (9, 12) for i in range(n)],
        "label": [labels[i % 3] for n in (9, 12) for i in range(n)],
    })
    served = TextClassifierPredictor.load(report.artifact, "cpu")
    again = choose_abstain_threshold(served, pooled, target_precision=meta["target_precision"])
    assert np.isfinite(again) and meta["abstain_threshold"] == pytest.approx(again)
    # the calibration split alone, on request
    alone = check_plugin_contract(
        pm, "healthcare", source=str(folder), output_dir=tmp_path / "runs-alone",
        overrides=[f"model.base={tiny_model_dir}", "model.mode=head", "options.explain=false",
                   "options.calibrate_on=calibration", "options.calibrators=none,temperature", *BASE_OVERRIDES],
    )
    meta = alone.artifact.metadata
    assert meta["calibrator_fitted_on"] == "calibration" == meta["threshold_chosen_on"]
    assert meta["calibration_items"] == 12 and set(meta["calibrator_choice"]["cv_ece"]) == {"none", "temperature"}


def test_a_deep_ensemble_runs_every_stage_and_is_explained_through_its_first_member(
    pm: PluginManager, tiny_model_dir: Path, tmp_path: Path
) -> None:
    report = check_plugin_contract(
        pm, "healthcare", source="demo", output_dir=tmp_path / "runs",
        overrides=[f"model.base={tiny_model_dir}", "model.mode=full", "train.ensemble_size=2", "options.explain=always",
                   *BASE_OVERRIDES],
    )
    meta = report.artifact.metadata
    assert report.artifact.kind == "text-classifier-ensemble" and meta["ensemble_size"] == 2
    assert meta["calibrator_fitted_on"] == "validation" and 0.0 <= meta["abstain_threshold"] <= 1.000001
    for pred in report.predictions:
        assert sum(pred.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert set(pred.explanation["attributions"]) == {s["label"] for s in pred.extra["top_k"]}


def test_calibrator_kinds_option() -> None:
    from domainfm.errors import ConfigError
    from domainfm_healthcare.training import CALIBRATORS, calibrator_kinds

    assert calibrator_kinds(None) == CALIBRATORS
    assert calibrator_kinds("temperature, vector") == ("temperature", "vector")
    assert calibrator_kinds(["none"]) == ("none",)
    for bad in ("isotonic", "", []):
        with pytest.raises(ConfigError, match="options.calibrators"):
            calibrator_kinds(bad)


def test_calibrate_on_option_names_the_held_out_rows() -> None:
    from datasets import Dataset

    from domainfm.errors import ConfigError
    from domainfm.types import DataBundle
    from domainfm_healthcare.training import calibration_split, held_out_table

    def table(n: int, tag: str) -> Dataset:
        return Dataset.from_dict({"text": [f"{tag} {i}" for i in range(n)], "label": ["a"] * n})

    both = DataBundle(tables={"train": table(4, "t"), "validation": table(3, "v"), "calibration": table(5, "c")}, source="t")
    plain = DataBundle(tables={"train": table(4, "t"), "validation": table(3, "v")}, source="t")
    assert calibration_split(both) == "validation+calibration" and calibration_split(plain) == "validation"
    assert calibration_split(both, "calibration") == "calibration"
    assert list(held_out_table(both, "validation+calibration")["text"]) == ["v 0", "v 1", "v 2", "c 0", "c 1", "c 2", "c 3", "c 4"]
    with pytest.raises(ConfigError, match="no \\(non-empty\\) calibration split"):
        calibration_split(plain, "calibration")
    with pytest.raises(ConfigError, match="options.calibrate_on: 'test'"):
        calibration_split(both, "test")


def test_dp_training_reports_epsilon(pm: PluginManager, tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("opacus")
    report = check_plugin_contract(
        pm, "healthcare", source="demo", output_dir=tmp_path,
        overrides=[f"model.base={tiny_model_dir}", "options.dp=true", "options.dp_epsilon=4", "options.explain=false",
                   *BASE_OVERRIDES],
    )
    dp = report.artifact.metadata["dp"]
    assert 0 < dp["epsilon"] <= 4.0 + 1e-6
    assert dp["noise_multiplier"] > 0
    assert report.evaluation.extra["dp"]["epsilon"] == dp["epsilon"]


def test_cli_deid_and_triage(head_report: Any, tmp_path: Path) -> None:
    from domainfm_healthcare.cli import health

    src = tmp_path / "notes.csv"
    src.write_text("note,ward\n\"Seen 12/03/2024, call (555) 123-4567\",B\n", encoding="utf-8")
    dst = tmp_path / "clean.jsonl"
    runner = CliRunner()
    result = runner.invoke(health, ["deid", str(src), str(dst), "--no-ner"])
    assert result.exit_code == 0, result.output
    row = json.loads(dst.read_text(encoding="utf-8").splitlines()[0])
    assert row == {"note": "Seen <DATE>, call <PHONE>", "ward": "B"}
    bad = runner.invoke(health, ["deid", str(src), str(dst), "--column", "nope"])
    assert bad.exit_code != 0 and "not found" in bad.output
    result = runner.invoke(health, ["triage", str(head_report.artifact.path), "--no-explain", "--device", "cpu",
                                    "I have itchy watery eyes and sneezing fits outdoors"])
    assert result.exit_code == 0, result.output
    start = result.output.index('{"id"')  # progress bars on stderr may be mixed into the captured output
    pred = json.loads(result.output[start:].splitlines()[0])
    assert pred["extra"]["notice"] == NOTICE and len(pred["extra"]["top_k"]) == 3
