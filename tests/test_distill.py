"""Distillation (``model.mode=distill``) on tiny random-init models: the loss, the student moving toward the
teacher's soft labels, teacher reuse, unlabelled text, text pairs, the artifact layout and calibration, and the
teacher and student as two candidates of the benefit report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from domainfm.config import build_config
from domainfm.errors import ConfigError, DataError
from domainfm.manager import PluginManager
from domainfm.runner import Runner
from domainfm.testing import build_tiny_model
from domainfm.types import Artifact, DataBundle, RunContext

COMMON = ["train.batch_size=8", "model.max_length=32", "benefit.energy_tracking=false", "train.early_stopping_patience=5"]


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smaller random-init student than the teacher (``tiny_model_dir``: hidden 32, 2 layers)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-student"), hidden_size=16, layers=1)


def _run(tmp_path: Path, overrides: list[str]):  # type: ignore[no-untyped-def]
    pm = PluginManager(autoload=False).load()
    cfg = build_config(None, [f"output_dir={tmp_path}", *COMMON, *overrides])
    return Runner(pm, cfg).run("text_classification")


# ------------------------------------------------------------------------------------------ the loss


def test_the_loss_is_zero_kl_when_the_student_matches_and_t_squared_scaled() -> None:
    import torch

    from domainfm.engine.distill import distillation_loss

    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    unlabelled = torch.tensor([-100, -100])
    assert float(distillation_loss(teacher.clone(), unlabelled, teacher, 2.0, 0.5)) == pytest.approx(0.0, abs=1e-6)
    student = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    kl_t1 = float(distillation_loss(student, unlabelled, teacher, 1.0, 0.5))
    kl_t3 = float(distillation_loss(student, unlabelled, teacher, 3.0, 0.5))
    p_t = torch.softmax(teacher / 3, -1)
    expected = float((p_t * (torch.log_softmax(teacher / 3, -1) - torch.log_softmax(student / 3, -1))).sum(-1).mean() * 9)
    assert kl_t3 == pytest.approx(expected, rel=1e-5)
    assert kl_t1 > 0


def test_labelled_rows_mix_kl_and_gold_cross_entropy_by_alpha() -> None:
    import torch
    import torch.nn.functional as F

    from domainfm.engine.distill import distillation_loss

    teacher = torch.tensor([[3.0, 0.0, 0.0]])
    student = torch.tensor([[0.0, 2.0, 0.0]])
    gold = torch.tensor([1])
    kl = float(distillation_loss(student, torch.tensor([-100]), teacher, 1.0, 0.3))
    ce = float(F.cross_entropy(student, gold))
    assert float(distillation_loss(student, gold, teacher, 1.0, 0.3)) == pytest.approx(0.7 * kl + 0.3 * ce, rel=1e-5)
    assert float(distillation_loss(student, gold, teacher, 1.0, 1.0)) == pytest.approx(ce, rel=1e-5)


def test_gradient_steps_on_the_loss_move_logits_toward_the_teacher() -> None:
    import torch

    from domainfm.engine.distill import distillation_loss

    teacher = torch.tensor([[2.0, -1.0, 0.5], [-0.5, 1.5, 0.0]])
    student = torch.zeros_like(teacher, requires_grad=True)
    opt = torch.optim.SGD([student], lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        distillation_loss(student, torch.tensor([-100, -100]), teacher, 2.0, 0.5).backward()
        opt.step()
    assert np.allclose(torch.softmax(student, -1).detach().numpy(), torch.softmax(teacher, -1).numpy(), atol=0.02)


# ------------------------------------------------------------------------------------------ the engine


def test_a_distill_run_trains_teacher_then_student_and_reports_both(tmp_path: Path, tiny_model_dir: Path,
                                                                    student_dir: Path) -> None:
    unlabelled = tmp_path / "more.txt"
    unlabelled.write_text("the refund came quickly\n\nstaff were rude on the phone\nwhere is my order\n", encoding="utf-8")
    result = _run(tmp_path, ["model.mode=distill", f"model.base={student_dir}", f"model.teacher={tiny_model_dir}",
                             "train.epochs=1", f"options.unlabelled={unlabelled}"])
    run_dir = result.ctx.run_dir
    student = Artifact.load(run_dir / "artifact")
    teacher_dir = run_dir / "variants" / "teacher" / "artifact"
    teacher = Artifact.load(teacher_dir)
    # layout: the student is the run's artifact, a plain HF model; the teacher sits in its variant folder
    assert (run_dir / "artifact" / "model.safetensors").is_file() and student.kind == "hf-sequence-classification"
    assert student.metadata["mode"] == "distill" and teacher.metadata["mode"] == "full"
    assert Path(student.metadata["teacher_artifact"]) == teacher_dir.resolve()
    # calibrated like any artifact
    assert student.metadata["temperature"] > 0 and "validation_ece" in student.metadata
    info = student.metadata["distillation"]
    assert info["teacher_trained_by_this_run"] is True
    assert info["unlabelled_examples"] == 3 and info["labelled_examples"] == result.ctx.state["data_sizes"]["train"]
    assert info["student_parameters"] < info["teacher_parameters"]
    for role in ("teacher", "student"):
        assert 0 <= info[f"{role}_validation"]["accuracy_ci95_low"] <= info[f"{role}_validation"]["accuracy"] <= 1
        assert info["speed"][f"{role}_texts_per_s"] > 0
    assert info["speed"]["speedup"] == pytest.approx(info["speed"]["student_texts_per_s"] / info["speed"]["teacher_texts_per_s"], rel=0.02)
    # both candidates evaluated and scored; the report names the one the objective picks
    assert set(result.evaluations) == {"distill", "teacher"}
    assert result.evaluations["teacher"].extra["inference"]["role"] == "teacher"
    assert (run_dir / "evaluations" / "teacher.json").is_file()
    candidates = {c["variant"]: c for c in result.report.candidates}
    assert set(candidates) == {"distill", "teacher"}
    assert candidates["teacher"]["role"] == "teacher" and candidates["distill"]["role"] == "student"
    assert candidates["distill"]["texts_per_s"] == info["speed"]["student_texts_per_s"]
    assert sum(c["chosen"] for c in candidates.values()) == (1 if result.report.best is not None else 0)
    assert "Teacher and student" in (run_dir / "report.html").read_text(encoding="utf-8")


def test_the_student_moves_toward_the_teachers_soft_labels(tmp_path: Path, tiny_model_dir: Path, student_dir: Path) -> None:
    """Pure distillation (alpha 0): after training, the student's probabilities on the training texts are closer
    (KL) to the teacher's than those of the same student before training. A given teacher artifact is reused."""
    import torch
    from transformers import set_seed

    from domainfm.builtin import text_classification
    from domainfm.engine.classifier_predictor import TextClassifierPredictor
    from domainfm.engine.hf_trainer import load_sequence_classifier
    from domainfm.engine.text_classifier import fine_tune_text_classifier

    tctx = _ctx(tmp_path / "t", ["model.mode=full", f"model.base={tiny_model_dir}", "train.epochs=3",
                                 "train.learning_rate=1e-3"])
    data = text_classification.domainfm_load_data(tctx, "text_classification", "demo")
    labels = list(data.label_names or [])
    teacher_artifact = fine_tune_text_classifier(tctx, data, label_names=labels)
    sctx = _ctx(tmp_path / "s", ["model.mode=distill", f"model.base={student_dir}", f"model.teacher={teacher_artifact.path}",
                                 "model.distill_alpha=0", "model.distill_temperature=1", "train.epochs=8",
                                 "train.learning_rate=3e-3", "train.seed=7"])
    student_artifact = fine_tune_text_classifier(sctx, data, label_names=labels)
    assert student_artifact.metadata["distillation"]["teacher_trained_by_this_run"] is False
    assert not (tmp_path / "s" / "variants").exists()  # a given artifact is reused, not retrained or copied

    texts = list(data.tables["train"]["text"])
    teacher = TextClassifierPredictor.load(teacher_artifact, precision="float32")
    student = TextClassifierPredictor.load(student_artifact, precision="float32")
    p_teacher = _softmax(teacher.predict_logits(texts))
    set_seed(7)  # the student's initial weights: the same seed and base as its training
    model, tokenizer = load_sequence_classifier(student_dir, labels, trust_remote_code=False)
    with torch.inference_mode():
        enc = tokenizer(texts, truncation=True, max_length=32, padding=True, return_tensors="pt")
        before = _softmax(model(**enc).logits.numpy())
    after = _softmax(student.predict_logits(texts))
    assert _kl(p_teacher, after) < 0.5 * _kl(p_teacher, before)


def test_an_lpft_student_starts_from_a_probe_and_saves_as_a_head_artifact(tmp_path: Path, tiny_model_dir: Path,
                                                                           student_dir: Path) -> None:
    """``model.distill_student=lpft``: the student is the sentence encoder under a probe fitted on its frozen
    embeddings, trained on the teacher's soft labels, saved as a head artifact with its own encoder, and it
    moves toward the teacher like the sequence-classifier student."""
    from domainfm.builtin import text_classification
    from domainfm.engine import lpft
    from domainfm.engine.classifier_predictor import KIND_HEAD, TextClassifierPredictor
    from domainfm.engine.text_classifier import fine_tune_text_classifier

    tctx = _ctx(tmp_path / "t", ["model.mode=full", f"model.base={tiny_model_dir}", "train.epochs=3",
                                 "train.learning_rate=1e-3"])
    data = text_classification.domainfm_load_data(tctx, "text_classification", "demo")
    labels = list(data.label_names or [])
    teacher_artifact = fine_tune_text_classifier(tctx, data, label_names=labels)
    common = ["model.mode=distill", f"model.base={student_dir}", f"model.teacher={teacher_artifact.path}",
              "model.distill_alpha=0", "model.distill_temperature=1", "train.learning_rate=3e-3", "train.seed=7"]
    untrained = fine_tune_text_classifier(_ctx(tmp_path / "s0", [*common, "model.distill_student=lpft",
                                                                 "train.max_steps=1", "train.learning_rate=1e-9"]),
                                          data, label_names=labels)
    student = fine_tune_text_classifier(_ctx(tmp_path / "s", [*common, "model.distill_student=lpft", "train.epochs=8"]),
                                        data, label_names=labels)
    assert student.kind == KIND_HEAD and (Path(student.path) / lpft.ENCODER_DIR).is_dir()
    assert student.metadata["distill_student"] == "lpft" and student.metadata["probe_C"] > 0
    assert student.metadata["temperature"] > 0 and "distillation" in student.metadata

    texts = list(data.tables["train"]["text"])
    p_teacher = _softmax(TextClassifierPredictor.load(teacher_artifact, precision="float32").predict_logits(texts))
    before = _softmax(TextClassifierPredictor.load(untrained, precision="float32").predict_logits(texts))
    after = _softmax(TextClassifierPredictor.load(student, precision="float32").predict_logits(texts))
    assert _kl(p_teacher, after) < _kl(p_teacher, before)


def test_an_lpft_student_refuses_text_pairs(tmp_path: Path, tiny_model_dir: Path, student_dir: Path) -> None:
    from domainfm.engine.text_classifier import fine_tune_text_classifier

    ctx = _ctx(tmp_path, ["model.mode=distill", f"model.base={student_dir}", f"model.teacher={tiny_model_dir}",
                          "model.distill_student=lpft", "train.epochs=1"])
    with pytest.raises(ConfigError, match="distill_student=full"):
        fine_tune_text_classifier(ctx, _pair_bundle(), label_names=["wrong", "partial", "right"], text_pair_column="pair")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.mean(np.sum(p * (np.log(p + 1e-12) - np.log(q + 1e-12)), axis=1)))


def _pair_bundle() -> DataBundle:
    from domainfm.data import records_to_dataset

    rng = np.random.default_rng(0)
    words = ["market", "profits", "bank", "card", "parcel", "fever", "students", "movie", "revenue", "password"]
    tables = {}
    for split, n in (("train", 24), ("validation", 9), ("test", 9)):
        rows = []
        for i in range(n):
            a, b = rng.choice(words, 2)
            same = i % 3
            rows.append({"text": f"the {a} answer", "pair": f"the {a if same else b} reference",
                         "label": ["wrong", "partial", "right"][same]})
        tables[split] = records_to_dataset(rows)
    return DataBundle(tables=tables, source="pairs", label_names=["wrong", "partial", "right"])


def _ctx(tmp_path: Path, overrides: list[str]) -> RunContext:
    cfg = build_config(None, [*COMMON, *overrides])
    return RunContext(run_id="t", domain="text_classification", config=cfg, run_dir=tmp_path, device="cpu")


def test_text_pairs_distil_without_a_plugin_manager(tmp_path: Path, tiny_model_dir: Path, student_dir: Path) -> None:
    from domainfm.engine.classifier_predictor import TextClassifierPredictor
    from domainfm.engine.text_classifier import fine_tune_text_classifier

    table = tmp_path / "unlabelled.jsonl"
    table.write_text("\n".join(json.dumps({"text": f"an answer {i}", "pair": f"a reference {i}"}) for i in range(5)),
                     encoding="utf-8")
    ctx = _ctx(tmp_path / "run", ["model.mode=distill", f"model.base={student_dir}", f"model.teacher={tiny_model_dir}",
                                  "train.epochs=1", f"options.unlabelled={table}"])
    artifact = fine_tune_text_classifier(ctx, _pair_bundle(), label_names=["wrong", "partial", "right"],
                                         text_pair_column="pair")
    assert artifact.metadata["text_pair_column"] == "pair"
    assert artifact.metadata["distillation"]["unlabelled_examples"] == 5
    teacher = Artifact.load(artifact.metadata["teacher_artifact"])
    assert teacher.metadata["text_pair_column"] == "pair"  # the teacher was trained on the pairs too
    probs = TextClassifierPredictor.load(artifact).predict_proba(["the bank answer"], ["the bank reference"])
    assert probs.shape == (1, 3) and np.isclose(probs.sum(), 1.0)

    from domainfm.engine.distill import obtain_teacher

    def no_training(_ctx: RunContext) -> Artifact:
        raise AssertionError("a re-run must reuse the teacher this run already trained")

    again, trained = obtain_teacher(ctx, _pair_bundle(), ["wrong", "partial", "right"], no_training)
    assert trained is True and again.path == teacher.path  # resumed: the calibrated teacher is found again


def test_text_pairs_refuse_a_plain_text_file_of_unlabelled_text(tmp_path: Path, tiny_model_dir: Path) -> None:
    from domainfm.engine.distill import read_unlabelled

    lines = tmp_path / "u.txt"
    lines.write_text("one\ntwo\n", encoding="utf-8")
    with pytest.raises(DataError, match="text pairs need a table"):
        read_unlabelled(lines, "text", "pair")
    with pytest.raises(DataError, match="options.unlabelled: .*no such file"):
        read_unlabelled(tmp_path / "missing.txt", "text", None)
    assert read_unlabelled(lines, "text", None) == (["one", "two"], None)


def test_unlabelled_text_can_be_a_source_the_domain_reads_less_the_tasks_own_texts(tmp_path: Path) -> None:
    from domainfm.builtin.text_classification import demo_path
    from domainfm.data import read_table, records_to_dataset
    from domainfm.engine.distill import unlabelled_texts

    demo = [str(r["text"]) for r in read_table(demo_path(), required=("text",))]
    first = demo[0]
    task = DataBundle(tables={
        "train": records_to_dataset([{"text": "  " + first.upper() + " ", "label": "a"}, {"text": "unrelated", "label": "b"}]),
        "test": records_to_dataset([{"text": demo[1], "label": "a"}]),
    }, source="task", label_names=["a", "b"])
    columns = {"text_column": "text", "text_pair_column": None}
    ctx = RunContext(run_id="t", domain="text_classification", config=build_config(None, COMMON), run_dir=tmp_path,
                     device="cpu", pm=PluginManager(autoload=False).load())
    texts, pairs = unlabelled_texts(ctx, "demo", task, columns)
    # every split of the source, labels dropped; the task's texts (any case or spacing, test split too) and repeats left out
    assert pairs is None and len(texts) == len(set(texts)) == len({" ".join(t.split()).casefold() for t in demo}) - 2
    assert first not in texts and demo[1] not in texts and demo[2] in texts
    # a file is read as a file, as before
    lines = tmp_path / "u.txt"
    lines.write_text("one\ntwo\n", encoding="utf-8")
    assert unlabelled_texts(ctx, str(lines), task, columns) == (["one", "two"], None)
    # neither a file nor a source: one line naming the option
    with pytest.raises(DataError, match=r"options.unlabelled='nowhere.csv': not a file, and domain text_classification"):
        unlabelled_texts(ctx, "nowhere.csv", task, columns)
    whole = DataBundle(tables={"train": records_to_dataset([{"text": t, "label": "a"} for t in demo])}, source="demo", label_names=["a"])
    with pytest.raises(DataError, match="every one of its texts is in the task's own data"):
        unlabelled_texts(ctx, "demo", whole, columns)


def test_distill_needs_a_teacher_with_the_same_labels(tmp_path: Path, tiny_model_dir: Path, student_dir: Path) -> None:
    from domainfm.engine.text_classifier import fine_tune_text_classifier

    ctx = _ctx(tmp_path / "a", ["model.mode=distill", f"model.base={student_dir}"])
    with pytest.raises(ConfigError, match="model.teacher: required"):
        fine_tune_text_classifier(ctx, _pair_bundle(), label_names=["wrong", "partial", "right"], text_pair_column="pair")
    other = Artifact(path=tmp_path / "other", domain="x", kind="hf-sequence-classification", base_model="m",
                     label_names=["a", "b"])
    other.path.mkdir()
    other.save_metadata()
    ctx = _ctx(tmp_path / "b", ["model.mode=distill", f"model.base={student_dir}", f"model.teacher={other.path}"])
    with pytest.raises(ConfigError, match=r"model.teacher: .* predicts labels \['a', 'b'\]"):
        fine_tune_text_classifier(ctx, _pair_bundle(), label_names=["wrong", "partial", "right"], text_pair_column="pair")
    with pytest.raises(ConfigError, match="ensemble_size"):
        fine_tune_text_classifier(_ctx(tmp_path / "c", ["model.mode=distill", "train.ensemble_size=2",
                                                        f"model.teacher={other.path}"]),
                                  _pair_bundle(), label_names=["wrong", "partial", "right"], text_pair_column="pair")
