"""Head growth keeps the old label ids and the old classes' logits; imprinting points a new row at its examples'
features; replay sampling is seeded and uniform."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from domainfm.continual.head import (
    grow_classifier,
    grown_labels,
    head_features,
    imprint_new_rows,
    prepare_parent_base,
    silence_new_rows,
)
from domainfm.continual.replay import replay_indices, reservoir_sample
from domainfm.errors import DataError

OLD = ["billing", "delivery", "refund"]


def classifier(model_dir: Path, labels: list[str]) -> tuple[object, object]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)})
    return model.eval(), AutoTokenizer.from_pretrained(str(model_dir))


def logits(model: object, tokenizer: object, texts: list[str]) -> object:
    import torch

    with torch.no_grad():
        return model(**tokenizer(texts, return_tensors="pt", padding=True)).logits  # type: ignore[operator]


TEXTS = ["my parcel arrived late and damaged", "please reset my password and unlock my account"]


def test_grown_labels_append_new_ones_after_the_old_ids() -> None:
    assert grown_labels(OLD, ["refund", "card", "billing", "atm"]) == [*OLD, "atm", "card"]
    assert grown_labels(OLD, OLD) == OLD


def test_growing_keeps_old_ids_and_old_logits(tiny_model_dir: Path) -> None:
    import torch

    model, tokenizer = classifier(tiny_model_dir, OLD)
    before = logits(model, tokenizer, TEXTS)
    labels = grown_labels(OLD, ["card", "atm"])
    grow_classifier(model, labels, seed=0)
    after = logits(model, tokenizer, TEXTS)
    assert after.shape == (2, 5)
    # every old class's logit as the parent gave it (a wider matmul may round differently in the last bit)
    assert torch.allclose(after[:, :3], before, atol=1e-6, rtol=0)
    assert model.config.id2label == {0: "billing", 1: "delivery", 2: "refund", 3: "atm", 4: "card"}
    assert model.config.label2id["refund"] == 2 and model.config.num_labels == 5


def test_growing_must_keep_the_old_order(tiny_model_dir: Path) -> None:
    model, _ = classifier(tiny_model_dir, OLD)
    with pytest.raises(DataError, match="start with the old labels"):
        grow_classifier(model, ["delivery", "billing", "refund", "atm"])


def test_the_grown_parent_saves_and_loads_as_a_plain_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch

    parent_dir = tmp_path / "parent"
    model, tokenizer = classifier(tiny_model_dir, OLD)
    model.save_pretrained(str(parent_dir))  # type: ignore[attr-defined]
    tokenizer.save_pretrained(str(parent_dir))  # type: ignore[attr-defined]
    before = logits(model, tokenizer, TEXTS)
    out = prepare_parent_base(parent_dir, [*OLD, "card"], tmp_path / "grown", seed=3)
    grown, grown_tok = classifier(out, [*OLD, "card"])  # what the engine does with model.base=<out>
    after = logits(grown, grown_tok, TEXTS)
    assert torch.allclose(after[:, :3], before, atol=1e-6)
    assert grown.config.id2label[3] == "card"  # type: ignore[attr-defined]


CARD = ["my card was swallowed by the machine", "the card machine kept my card", "card stuck in the machine"]
OLD_TEXTS = ["my parcel arrived late", "refund my last payment please", "why was my bill so high"]


def test_imprinting_points_the_new_row_from_the_old_examples_to_the_new_ones(tiny_model_dir: Path) -> None:
    import torch

    model, tokenizer = classifier(tiny_model_dir, OLD)
    grow_classifier(model, [*OLD, "card"], seed=0)
    old_rows = model.classifier.weight[:3].detach().clone()  # type: ignore[attr-defined]
    old_bias = model.classifier.bias[:3].detach().clone()  # type: ignore[attr-defined]
    assert imprint_new_rows(model, tokenizer, {"card": CARD}, OLD_TEXTS, max_length=16) == ["card"]
    feats_new = head_features(model, tokenizer, CARD, max_length=16)
    feats_ref = head_features(model, tokenizer, OLD_TEXTS, max_length=16)
    direction = feats_new.mean(0) - feats_ref.mean(0)
    row = model.classifier.weight[3].detach()  # type: ignore[attr-defined]
    assert torch.allclose(row / row.norm(), direction / direction.norm(), atol=1e-5)
    assert row.norm().item() == pytest.approx(old_rows.norm(dim=1).mean().item(), rel=1e-5)
    assert model.classifier.bias[3].item() == pytest.approx(old_bias.mean().item())  # type: ignore[attr-defined]
    assert torch.equal(model.classifier.weight[:3], old_rows)  # type: ignore[attr-defined]  # old rows untouched
    # the new class's logit now rises on its own examples relative to the old examples
    new_logit = logits(model, tokenizer, CARD)[:, 3].mean() - logits(model, tokenizer, OLD_TEXTS)[:, 3].mean()
    assert new_logit.item() > 0


def test_features_are_the_classification_layers_inputs(tiny_model_dir: Path) -> None:
    import torch

    model, tokenizer = classifier(tiny_model_dir, OLD)
    feats = head_features(model, tokenizer, TEXTS, max_length=16, batch_size=1)
    layer = model.classifier  # type: ignore[attr-defined]
    expected = logits(model, tokenizer, TEXTS[:1])[0]
    assert feats.shape == (2, layer.in_features)
    assert torch.allclose(layer(feats[:1])[0], expected, atol=1e-5)  # same padding-free text: same logits


def test_imprinting_refuses_labels_the_head_lacks(tiny_model_dir: Path) -> None:
    model, tokenizer = classifier(tiny_model_dir, OLD)
    with pytest.raises(DataError, match="not in the model's head"):
        imprint_new_rows(model, tokenizer, {"card": CARD}, OLD_TEXTS, max_length=16)
    assert imprint_new_rows(model, tokenizer, {"card": []}, OLD_TEXTS, max_length=16) == []


def test_silenced_rows_never_win_and_the_old_logits_stay(tiny_model_dir: Path) -> None:
    import torch

    model, tokenizer = classifier(tiny_model_dir, OLD)
    before = logits(model, tokenizer, CARD + TEXTS)
    grow_classifier(model, [*OLD, "atm", "card"], seed=0)
    silence_new_rows(model, 3)
    after = logits(model, tokenizer, CARD + TEXTS)
    assert torch.allclose(after[:, :3], before, atol=1e-6)
    assert (after.argmax(1) < 3).all() and (after[:, 3:] <= -1e3).all()


def test_prepare_imprints_the_base_and_saves_the_served_parent(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch

    parent_dir = tmp_path / "parent"
    model, tokenizer = classifier(tiny_model_dir, OLD)
    model.save_pretrained(str(parent_dir))  # type: ignore[attr-defined]
    tokenizer.save_pretrained(str(parent_dir))  # type: ignore[attr-defined]
    labels = [*OLD, "card"]
    base = prepare_parent_base(parent_dir, labels, tmp_path / "grown", imprint={"card": CARD}, reference=OLD_TEXTS,
                               max_length=16, served_dir=tmp_path / "served")
    random_base = prepare_parent_base(parent_dir, labels, tmp_path / "random", seed=0)
    imprinted, tok = classifier(base, labels)
    served, _ = classifier(tmp_path / "served", labels)
    plain, _ = classifier(random_base, labels)
    lift = {name: (logits(m, tok, CARD)[:, 3].mean() - logits(m, tok, OLD_TEXTS)[:, 3].mean()).item()
            for name, m in (("imprinted", imprinted), ("random", plain))}
    assert lift["imprinted"] > lift["random"]
    assert (logits(served, tok, CARD).argmax(1) < 3).all()
    assert torch.allclose(logits(served, tok, TEXTS)[:, :3], logits(imprinted, tok, TEXTS)[:, :3], atol=1e-6)


def test_reservoir_sampling_is_deterministic_for_a_seed() -> None:
    items = list(range(1000))
    first = reservoir_sample(items, 50, seed=7)
    assert first == reservoir_sample(iter(items), 50, seed=7)  # a stream gives the same rows as a list
    assert first == sorted(first) and len(set(first)) == 50
    assert first != reservoir_sample(items, 50, seed=8)
    assert reservoir_sample(range(5), 10, seed=1) == [0, 1, 2, 3, 4]


def test_reservoir_sampling_gives_every_row_the_same_chance() -> None:
    counts = Counter(i for seed in range(2000) for i in reservoir_sample(range(20), 5, seed))
    # each of 20 rows is drawn with probability 1/4: 500 of 2000 draws, within sampling noise
    assert all(400 < counts[i] < 600 for i in range(20)), counts


def test_replay_size_follows_the_ratio() -> None:
    assert len(replay_indices(1000, 40, 2.0, seed=0)) == 80
    assert replay_indices(1000, 40, 0.0, seed=0) == []
    assert len(replay_indices(30, 40, 2.0, seed=0)) == 30
    assert len(replay_indices(1000, 40, 1.0, seed=0, at_least=570)) == 570  # many parent labels: a floor
    assert len(replay_indices(1000, 40, 1.0, seed=0, at_least=10)) == 40
    assert replay_indices(1000, 40, 0.0, seed=0, at_least=570) == []  # ratio 0 is naive fine-tuning
    assert len(replay_indices(300, 40, 1.0, seed=0, at_least=570)) == 300
    assert replay_indices(1000, 40, 1.5, seed=4) == replay_indices(1000, 40, 1.5, seed=4)
    with pytest.raises(ValueError):
        replay_indices(10, 10, -1, seed=0)
