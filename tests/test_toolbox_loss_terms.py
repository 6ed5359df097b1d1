"""The composable loss (engine.loss_terms) and adversarial training (engine.adversarial) on a tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from domainfm.config import build_config  # noqa: E402
from domainfm.engine.adversarial import EmbeddingAdversary, _project  # noqa: E402
from domainfm.engine.loss_terms import (  # noqa: E402
    EmbeddingMixup,
    LossTerm,
    RDrop,
    Step,
    TokenCutoff,
    composed_loss,
    cross_entropy_criterion,
    logits_of,
    symmetric_kl,
    terms_from_config,
)
from domainfm.testing import TINY_CORPUS  # noqa: E402


@pytest.fixture()
def batch(tiny_model_dir: Path) -> tuple[Any, dict[str, Any], Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir), num_labels=3)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    inputs = dict(tokenizer(TINY_CORPUS[:6], padding=True, return_tensors="pt"))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    return model, inputs, labels


def step_of(model: Any, inputs: dict[str, Any], labels: Any, smoothing: float = 0.0) -> Step:
    return Step(model=model, inputs=dict(inputs), targets={"labels": labels},
                criterion=cross_entropy_criterion(None, smoothing))


def clean_loss(model: Any, inputs: dict[str, Any], labels: Any) -> float:
    return float(torch.nn.functional.cross_entropy(model(**inputs).logits, labels).detach())


@pytest.mark.parametrize("method", ["fgm", "pgd", "freelb"])
def test_an_adversarial_step_raises_the_loss_and_a_tiny_epsilon_does_not(batch: Any, method: str) -> None:
    model, inputs, labels = batch
    model.eval()  # no dropout: the only difference between the passes is the perturbation
    clean = clean_loss(model, inputs, labels)
    adversary = EmbeddingAdversary(method, epsilon=2.0, steps=3)
    step = step_of(model, inputs, labels)
    adversary.prepare(step)
    loss = step.loss(logits_of(step.forward()))
    assert float(loss) == pytest.approx(clean, abs=1e-5)  # the embeddings route gives the same clean loss
    adversarial = float(adversary.adversarial_loss(step, loss))
    assert adversarial > clean + 1e-4
    tiny = EmbeddingAdversary(method, epsilon=1e-6, steps=3)
    step = step_of(model, inputs, labels)
    tiny.prepare(step)
    assert float(tiny.adversarial_loss(step, step.loss(logits_of(step.forward())))) == pytest.approx(clean, abs=1e-4)


def test_pgd_ascends_further_than_a_random_perturbation_of_the_same_size(batch: Any) -> None:
    model, inputs, labels = batch
    model.eval()
    step = step_of(model, inputs, labels)
    adversary = EmbeddingAdversary("pgd", epsilon=2.0, steps=3)
    adversary.prepare(step)
    adversarial = float(adversary.adversarial_loss(step, step.loss(logits_of(step.forward()))))
    embeds = step.embeds.detach()
    noise = _project(torch.randn_like(embeds) * 100, 2.0)
    random_loss = float(step.loss(logits_of(step.forward(inputs_embeds=embeds + noise))))
    assert adversarial > random_loss


def test_projection_keeps_each_row_inside_the_ball() -> None:
    delta = torch.randn(4, 5, 8) * 10
    norms = _project(delta, 1.5).flatten(1).norm(dim=1)
    assert torch.all(norms <= 1.5 + 1e-5)
    small = torch.full((2, 3, 4), 1e-3)
    assert torch.equal(_project(small, 1.5), small)


def test_adversarial_training_changes_the_gradient_it_adds_its_loss_to(batch: Any) -> None:
    model, inputs, labels = batch
    model.eval()
    grads = []
    for terms in ([], [EmbeddingAdversary("fgm", epsilon=1.0)]):
        model.zero_grad()
        loss, _, parts = composed_loss(step_of(model, inputs, labels), terms, training=True)
        loss.backward()
        grads.append(model.classifier.weight.grad.clone())
        if terms:
            assert set(parts) == {"criterion", "fgm"} and float(loss) == pytest.approx(parts["criterion"] + parts["fgm"], rel=1e-5)
            assert parts["fgm"] > parts["criterion"]
    assert not torch.allclose(grads[0], grads[1])
    # the word embedding matrix trains through the adversarial pass too
    assert model.get_input_embeddings().weight.grad is not None


def test_terms_are_off_in_evaluation(batch: Any) -> None:
    model, inputs, labels = batch
    model.eval()
    terms = [TokenCutoff(0.5), EmbeddingMixup(0.4), RDrop(1.0), EmbeddingAdversary("pgd", 1.0, 2)]
    loss, _, parts = composed_loss(step_of(model, inputs, labels), terms, training=False)
    assert set(parts) == {"criterion"} and float(loss) == pytest.approx(clean_loss(model, inputs, labels), abs=1e-5)


def test_rdrop_adds_a_second_pass_and_its_kl(batch: Any) -> None:
    model, inputs, labels = batch
    model.eval()  # same dropout-free pass twice: KL 0, the extra loss is the second pass's cross-entropy
    step = step_of(model, inputs, labels)
    outputs = step.forward()
    loss = step.loss(logits_of(outputs))
    assert float(RDrop(4.0).extra(step, outputs, loss)) == pytest.approx(float(loss), abs=1e-5)
    model.train()
    torch.manual_seed(1)
    step = step_of(model, inputs, labels)
    outputs = step.forward()
    second = RDrop(4.0).extra(step, outputs, step.loss(logits_of(outputs)))
    assert float(second) > 0
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    assert float(symmetric_kl(a, b)) == pytest.approx(float(symmetric_kl(b, a))) and float(symmetric_kl(a, a)) == 0


def test_label_smoothing_and_class_weights_reach_the_criterion(batch: Any) -> None:
    _, _, labels = batch
    logits = torch.randn(6, 3)
    smoothed = cross_entropy_criterion(None, 0.2)(logits, {"labels": labels})
    assert float(smoothed) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.2)))
    weighted = cross_entropy_criterion([1.0, 2.0, 3.0])(logits, {"labels": labels})
    assert float(weighted) == pytest.approx(float(torch.nn.functional.cross_entropy(
        logits, labels, weight=torch.tensor([1.0, 2.0, 3.0]))))


def test_mixup_mixes_embeddings_and_targets_alike(batch: Any) -> None:
    model, inputs, labels = batch
    model.eval()
    torch.manual_seed(3)
    step = step_of(model, inputs, labels)
    EmbeddingMixup(0.4).prepare(step)
    lam = step.state["mixup_lambda"]
    assert 0.5 <= lam <= 1.0 and "input_ids" not in step.inputs
    logits = torch.randn(6, 3)
    mixed = float(step.loss(logits))
    # lam * CE(y) + (1 - lam) * CE(y[perm]) lies between the two extremes of one permutation
    own = float(torch.nn.functional.cross_entropy(logits, labels))
    assert mixed != pytest.approx(own) or lam == pytest.approx(1.0)


def test_cutoff_removes_attention_but_keeps_cls_and_sep(batch: Any) -> None:
    model, inputs, labels = batch
    torch.manual_seed(0)
    step = step_of(model, inputs, labels)
    TokenCutoff(0.5).prepare(step)
    before, after = inputs["attention_mask"], step.inputs["attention_mask"]
    assert int(after.sum()) < int(before.sum())
    lengths = before.sum(1)
    for row, n in enumerate(lengths.tolist()):
        assert after[row, 0] == 1 and after[row, n - 1] == 1
    assert torch.equal(inputs["attention_mask"], before)  # the batch itself is not modified in place


def test_config_builds_the_terms_in_order() -> None:
    cfg = build_config(None, ["train.augment.methods=mixup,cutoff,swap", "train.regularisation.rdrop=2",
                              "train.adversarial.method=pgd", "train.adversarial.steps=4"])
    terms = terms_from_config(cfg.train)
    assert [t.name for t in terms] == ["cutoff", "mixup", "rdrop", "pgd"]
    # the default radius (0.2, benchmarks/techniques) split over the steps
    assert terms[-1].epsilon == pytest.approx(0.2)
    assert terms[-1].steps == 4 and terms[-1].step_size == pytest.approx(0.05)
    assert terms_from_config(build_config(None, []).train) == []


def test_a_custom_term_plugs_into_the_trainer(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The extension point other regularisers use (e.g. L2-SP): a LossTerm adds a weight penalty to training."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, TrainingArguments

    from domainfm.engine.loss_terms import loss_trainer_class

    calls: list[float] = []

    class Penalty(LossTerm):
        name = "penalty"

        def extra(self, step: Step, outputs: Any, loss: Any) -> Any:
            value = 1e-3 * sum(p.pow(2).sum() for p in step.model.classifier.parameters())
            calls.append(float(value))
            return value

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_model_dir), num_labels=2)
    ds = Dataset.from_dict({"text": TINY_CORPUS, "labels": [0, 1] * 5}).map(
        lambda b: tokenizer(b["text"], truncation=True), batched=True, remove_columns=["text"])
    trainer = loss_trainer_class([Penalty()])(
        model=model, args=TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=4,
                                            use_cpu=True, report_to=[], save_strategy="no", logging_strategy="no"),
        train_dataset=ds, eval_dataset=ds, data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    assert len(calls) == 3  # one per training step
    trainer.evaluate()
    assert len(calls) == 3  # not in evaluation


def test_distillation_runs_on_the_same_composable_loss(tmp_path: Path, tiny_model_dir: Path) -> None:
    """distill's trainer is the composable one with distillation as its criterion: a term runs beside it, and the
    step's loss is distillation_loss on the teacher logits of the batch."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

    from domainfm.engine.distill import TEACHER_COLUMN, TeacherLogitsCollator, distillation_loss, distillation_trainer_class

    seen: list[str] = []

    class Spy(LossTerm):
        name = "spy"

        def prepare(self, step: Step) -> None:
            seen.append(",".join(sorted(step.targets)))

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    labels = [0, 1] * 5
    soft = [[3.0, -1.0] if i % 3 else [-2.0, 2.5] for i in range(10)]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(tiny_model_dir), num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model.eval()
    with torch.no_grad():
        enc = tokenizer(TINY_CORPUS, padding=True, return_tensors="pt")
        expected = float(distillation_loss(model(**enc).logits, torch.tensor(labels), torch.tensor(soft), 2.0, 0.5))
    ds = Dataset.from_dict({"text": TINY_CORPUS, "labels": labels, TEACHER_COLUMN: soft}).map(
        lambda b: tokenizer(b["text"], truncation=True), batched=True, remove_columns=["text"])
    trainer = distillation_trainer_class(2.0, 0.5, None, [Spy()])(
        model=model, args=TrainingArguments(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=10,
                                            use_cpu=True, report_to=[], save_strategy="no", logging_strategy="no",
                                            train_sampling_strategy="sequential"),
        train_dataset=ds, data_collator=TeacherLogitsCollator(tokenizer))
    assert trainer.train().training_loss == pytest.approx(expected, rel=1e-4)
    assert seen == [f"labels,{TEACHER_COLUMN}"]


def test_a_run_with_adversarial_training_and_regularisation_records_them(tmp_path: Path, tiny_model_dir: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Through fine_tune_text_classifier on text pairs: the Trainer is the composed one, its arguments carry the
    label smoothing, and the artifact records the terms that ran."""
    from datasets import Dataset

    from domainfm.engine import text_classifier
    from domainfm.types import DataBundle, RunContext

    built: dict[str, Any] = {}
    real = text_classifier.build_trainer

    def spy(*args: Any, **kwargs: Any) -> Any:
        built["trainer"] = trainer = real(*args, **kwargs)
        return trainer

    monkeypatch.setattr(text_classifier, "build_trainer", spy)
    data = DataBundle(tables={
        "train": Dataset.from_dict({"text": TINY_CORPUS, "pair": TINY_CORPUS[::-1], "label": ["a", "b"] * 5}),
        "validation": Dataset.from_dict({"text": TINY_CORPUS[:4], "pair": TINY_CORPUS[:4], "label": ["a", "b"] * 2}),
    }, source="t", label_names=["a", "b"])
    cfg = build_config(None, [f"model.base={tiny_model_dir}", "model.mode=lora", "train.epochs=1", "train.batch_size=4",
                              "model.max_length=32", "train.adversarial.method=fgm", "train.regularisation.rdrop=1",
                              "train.regularisation.label_smoothing=0.1", "train.augment.methods=mixup",
                              "train.class_weights=balanced"])
    ctx = RunContext(run_id="t", domain="d", config=cfg, run_dir=tmp_path / "run", device="cpu")
    artifact = text_classifier.fine_tune_text_classifier(ctx, data, label_names=["a", "b"], text_pair_column="pair")
    trainer = built["trainer"]
    assert [t.name for t in trainer.loss_terms] == ["mixup", "rdrop", "fgm"]
    assert trainer.args.label_smoothing_factor == pytest.approx(0.1)
    assert trainer.compute_loss_func is None  # the composed criterion weights the classes itself
    meta = artifact.metadata
    assert meta["loss_terms"] == ["mixup", "rdrop", "fgm"] and meta["adversarial"]["method"] == "fgm"
    assert meta["regularisation"] == {"rdrop": 1.0, "label_smoothing": 0.1, "l2sp": 0.0, "ewc": 0.0, "anchor": None}
    assert meta["adapters_merged"] is True
    # the plain path is untouched: class weights alone need no composed trainer
    cfg_plain = build_config(None, ["train.class_weights=balanced"])
    from domainfm.engine.loss_terms import needs_loss_trainer, terms_from_config

    assert not needs_loss_trainer(cfg_plain.train, terms_from_config(cfg_plain.train))
