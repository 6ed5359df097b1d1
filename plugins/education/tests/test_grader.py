"""The grader on a tiny random-init BERT: best match over references, review queue, bad requests, metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domainfm.config import build_config
from domainfm.runner import Runner
from domainfm.testing import check_plugin_contract
from domainfm_education.grader import (
    GraderPredictor,
    first_segment,
    label_values,
    pair_table,
)
from domainfm_education.grading_sources import load_grading_source


def _overrides(tiny: Path, out: Path) -> list[str]:
    return [f"model.base={tiny}", "train.max_steps=4", "train.batch_size=8", "train.eval_batch_size=32",
            "model.max_length=48", f"output_dir={out}", "device=cpu", "benefit.energy_tracking=false"]


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from domainfm.manager import PluginManager

    out = tmp_path_factory.mktemp("edu-runs")
    pm = PluginManager().load()
    report = check_plugin_contract(pm, "education", overrides=_overrides(tiny_model_dir, out), output_dir=out)
    return report


def test_contract_and_artifact(trained) -> None:  # type: ignore[no-untyped-def]
    meta = trained.artifact.metadata
    assert trained.artifact.label_names == ["correct", "contradictory", "incorrect"]
    assert meta["text_pair_column"] == "student_answer" and meta["grading_mode"] == "labels"
    assert 0.0 <= meta["review_threshold"] <= 1.01  # chosen on validation
    assert meta["question_separator"] is None  # reference + answer only by default
    ev = trained.evaluation
    assert {"accuracy", "macro_f1", "weighted_f1", "ece"} <= set(ev.metrics)
    assert set(ev.outcomes.groups) == {"question", "corpus"}
    assert {"teacher_hours_saved", "feedback_latency_days_saved", "grading_accuracy_gap_corpus"} <= {
        c.name for c in trained.contributions}


def test_best_match_over_references_and_bad_requests(trained) -> None:  # type: ignore[no-untyped-def]
    predictor = GraderPredictor.load(trained.artifact, "cpu")
    records = [
        {"id": "a", "reference_answers": ["Plants use light for photosynthesis.", "Light makes food."],
         "student_answer": "light makes food"},
        {"id": "b", "reference_answers": [], "student_answer": "something"},
        {"id": "c", "reference_answers": "x || y", "student_answer": "   "},
    ]
    a, b, c = predictor.predict(records)
    assert a.label in predictor.labels and 0.0 <= a.value <= 1.0
    assert abs(sum(a.scores.values()) - 1.0) < 1e-5
    assert a.explanation["closest_reference"] in records[0]["reference_answers"]
    assert a.abstained == (a.confidence < predictor.threshold)
    assert predictor.reference_rule == trained.artifact.metadata["reference_rule"]
    scores = trained.artifact.metadata["validation_macro_f1_by_reference_rule"]
    assert set(scores) == {"closest", "best_match", "mean"}
    assert scores[predictor.reference_rule] == max(scores.values())
    refs = records[0]["reference_answers"]
    singles = [predictor.grade([[r]], ["light makes food"]) for r in refs]
    # best match: the reference with the highest expected grade decides
    predictor.reference_rule = "best_match"
    graded = predictor.grade([refs], ["light makes food"])
    assert graded["value"][0] == pytest.approx(max(g["value"][0] for g in singles), abs=1e-6)
    # closest: the reference with the most shared terms ("light makes food" is the second one), as in training
    predictor.reference_rule = "closest"
    graded = predictor.grade([refs], ["light makes food"])
    assert graded["best"][0] == 1 and np.allclose(graded["probs"][0], singles[1]["probs"][0], atol=1e-6)
    # mean: the probabilities averaged over the references
    predictor.reference_rule = "mean"
    graded = predictor.grade([refs], ["light makes food"])
    assert np.allclose(graded["probs"][0], (singles[0]["probs"][0] + singles[1]["probs"][0]) / 2, atol=1e-6)
    assert b.abstained and b.label is None and "routed to human review" in b.extra["reason"]
    assert c.label == "incorrect" and c.value == 0.0 and c.extra["rule"].startswith("blank answer")


def test_pair_table_uses_the_closest_reference() -> None:
    bundle = load_grading_source("demo", seed=0)
    pairs = pair_table(bundle.tables["train"])
    assert pairs.column_names == ["reference", "student_answer", "label"]
    assert len(pairs) == len(bundle.tables["train"])


def test_label_values() -> None:
    assert label_values(["correct", "contradictory", "incorrect"]).tolist() == [1.0, 0.0, 0.0]
    assert label_values(["0", "1", "2", "4"]).tolist() == [0.0, 0.25, 0.5, 1.0]


def test_evaluation_rejects_labels_outside_the_model(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from datasets import Dataset

    from domainfm.errors import DataError
    from domainfm.types import DataBundle
    from domainfm_education.grader import evaluate_grader

    predictor = GraderPredictor.load(trained.artifact, "cpu")
    table = Dataset.from_dict({"id": ["1"], "question_id": ["q"], "question": ["q"], "reference_answers": [["r"]],
                               "student_answer": ["a"], "label": ["partially_correct"], "corpus": ["c"]})
    with pytest.raises(DataError, match="not in the model's label set"):
        evaluate_grader(predictor, DataBundle(tables={"test": table}, source="t"), "test")


def test_runner_names_the_device(tiny_model_dir: Path, tmp_path: Path) -> None:
    from domainfm.manager import PluginManager

    cfg = build_config(overrides=_overrides(tiny_model_dir, tmp_path))
    ctx = Runner(PluginManager().load(), cfg).context("education")
    assert ctx.device == "cpu"


def test_small_data_defaults_respect_what_the_user_set(tmp_path: Path) -> None:
    from domainfm.manager import PluginManager
    from domainfm_education.grader import SMALL_DATA_EPOCHS, apply_small_data_defaults

    runner = Runner(PluginManager().load(), build_config(overrides=[f"output_dir={tmp_path}"]))
    ctx = runner.context("education")
    apply_small_data_defaults(ctx, 72)
    assert ctx.config.train.epochs == SMALL_DATA_EPOCHS and ctx.config.train.batch_size == 16
    ctx = Runner(PluginManager().load(), build_config(overrides=[f"output_dir={tmp_path}", "train.epochs=2"])).context("education")
    apply_small_data_defaults(ctx, 72)
    assert ctx.config.train.epochs == 2 and ctx.config.train.batch_size == 16
    ctx = runner.context("education")
    apply_small_data_defaults(ctx, 5000)
    assert ctx.config.train.epochs == 3.0 and ctx.config.train.batch_size == 32


def test_first_segment_adds_the_question_after_the_reference() -> None:
    assert first_segment("ref", "What is it?", "[SEP]") == "ref [SEP] What is it?"
    assert first_segment("ref", "  ", "[SEP]") == "ref"  # no question: the reference alone
    assert first_segment("ref", "What?", None) == "ref"  # option off


def test_int8_inference_grades_like_the_float_model(trained) -> None:  # type: ignore[no-untyped-def]
    from domainfm.types import Artifact

    artifact = Artifact.load(trained.artifact.path)
    records = [{"reference_answers": ["Light makes food.", "Plants use light."], "student_answer": "light makes food"}]
    ref = GraderPredictor.load(artifact, "cpu").predict(records)[0]
    artifact.metadata["int8_inference"] = True
    quant = GraderPredictor.load(artifact, "cpu")
    assert "quantized" in type(quant.inner.torch_model.classifier).__module__ and quant.inner.precision == "int8"
    got = quant.predict(records)[0]
    assert got.label in quant.labels and abs(got.value - ref.value) < 0.2


def test_answer_memory_choice_is_recorded_and_a_memory_decides_known_questions(trained) -> None:  # type: ignore[no-untyped-def]
    from domainfm.engine.label_memory import LabelMemory

    meta = trained.artifact.metadata
    choice = meta["answer_memory"]
    assert ("review_threshold_memory" in meta) == choice["used"]
    assert choice["answers"] > 0 and 0.0 <= choice["weight"] <= 1.0
    assert choice["used"] == (choice["weight"] > 0)
    assert choice["validation_macro_f1"] >= choice["validation_macro_f1_without"]
    predictor = GraderPredictor.load(trained.artifact, "cpu")
    graded = [{"question_id": "q-memory", "question": "Why is the sky blue?", "student_answer": "because of scattering",
               "label": "contradictory"}]
    memory = LabelMemory.build(predictor_encoder(trained), "tiny", [g["student_answer"] for g in graded],
                               [g["label"] for g in graded], [g["question_id"] for g in graded],
                               [g["question"] for g in graded], predictor.labels)
    memory.weight, memory.k = 1.0, 1
    predictor.attach_memory(memory, predictor_encoder(trained))
    known, unknown = predictor.predict([
        {"id": "k", "question_id": "q-memory", "reference_answers": ["light is scattered"],
         "student_answer": "scattering of light"},
        {"id": "u", "question_id": "other", "reference_answers": ["light is scattered"],
         "student_answer": "scattering of light"},
    ])
    assert known.label == "contradictory" and known.scores["contradictory"] == pytest.approx(1.0)
    assert known.extra["graded_answers_used"] and not unknown.extra["graded_answers_used"]
    predictor.threshold_memory = 1.0 + 1e-9  # answers graded with the memory use their own threshold
    again = predictor.predict([{"question_id": "q-memory", "reference_answers": ["light is scattered"],
                                "student_answer": "scattering of light"}])[0]
    assert again.abstained
    assert unknown.scores != known.scores  # a question the memory does not know: the cross-encoder alone
    by_text = predictor.grade([["light is scattered"]], ["scattering of light"], ["why is the SKY blue?"])
    assert by_text["memory_weight"][0] == 1.0


def predictor_encoder(trained):  # type: ignore[no-untyped-def]
    from domainfm.engine.encoder import TextEncoder

    return TextEncoder(trained.artifact.base_model or "", device="cpu")
