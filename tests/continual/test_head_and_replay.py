"""Head growth keeps the old label ids and the old classes' logits; replay sampling is seeded and uniform."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from domainfm.continual.head import grow_classifier, grown_labels, prepare_parent_base
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
    assert replay_indices(1000, 40, 1.5, seed=4) == replay_indices(1000, 40, 1.5, seed=4)
    with pytest.raises(ValueError):
        replay_indices(10, 10, -1, seed=0)
