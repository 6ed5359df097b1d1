"""train.augment: seeded rewrites of training rows only (issue 28.1/28.3)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from domainfm.config import AugmentConfig, build_config
from domainfm.engine.augment import (
    augment_training_rows,
    char_noise,
    delete_words,
    insert_words,
    keyboard_typos,
    swap_words,
)
from domainfm.errors import ConfigError
from domainfm.testing import TINY_CORPUS


def test_word_operations_keep_what_they_promise() -> None:
    words = "the bank raised its outlook for the year".split()
    rng = random.Random(0)
    swapped = swap_words(words, 0.25, rng)
    assert sorted(swapped) == sorted(words) and swapped != words
    deleted = delete_words(words, 0.3, random.Random(1))
    assert 1 <= len(deleted) < len(words) and all(w in words for w in deleted)
    inserted = insert_words(words, 0.25, random.Random(2), ["zebra"])
    assert len(inserted) == len(words) + 2 and inserted.count("zebra") == 2
    assert delete_words(["alone"], 0.9, rng) == ["alone"]  # one word always stays


def test_character_noise_is_seeded_and_changes_letters_only() -> None:
    text = "Profits fell sharply, and shares dropped 5%."
    a, b = char_noise(text, 0.2, random.Random(3)), char_noise(text, 0.2, random.Random(3))
    assert a == b and a != text
    assert all(ch in a for ch in ",.%5")  # punctuation and digits untouched
    typo = keyboard_typos("hello", 0.2, random.Random(0))
    assert len(typo) == 5 and sum(x != y for x, y in zip(typo, "hello", strict=True)) == 1


def test_augmented_rows_follow_the_originals_with_their_labels_and_pairs() -> None:
    texts = TINY_CORPUS[:6]
    pairs = [f"reference {i}" for i in range(6)]
    labels = [0, 1, 2, 0, 1, 2]
    config = AugmentConfig(methods=["swap", "insert", "keyboard", "mixup"], copies=2, rate=0.2)
    x, p, y = augment_training_rows(texts, pairs, labels, config, seed=5)
    assert x[:6] == texts and p is not None and p[:6] == pairs and y[:6] == labels
    assert len(x) == len(p) == len(y) > 6 * 4  # 2 copies x 3 text methods, minus the rare unchanged rewrite
    for text, pair, label in zip(x[6:], p[6:], y[6:], strict=True):
        i = pairs.index(pair)  # the pair is kept as it is and identifies the source row
        assert label == labels[i] and text != texts[i]
    assert augment_training_rows(texts, pairs, labels, config, seed=5) == (x, p, y)
    assert augment_training_rows(texts, pairs, labels, config, seed=6)[0] != x
    assert augment_training_rows(texts, None, labels, AugmentConfig(methods=["cutoff"]), 5) == (texts, None, labels)


def test_augment_config_reads_a_comma_list_and_refuses_unknown_methods() -> None:
    assert build_config(None, ["train.augment.methods=swap,cutoff"]).train.augment.methods == ["swap", "cutoff"]
    assert build_config(None, ["train.augment.methods=none"]).train.augment.methods == []
    with pytest.raises(ConfigError, match="train.augment.methods"):
        build_config(None, ["train.augment.methods=synonym"])


def test_augmentation_never_reaches_validation_or_test(tmp_path: Path, tiny_model_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Every text the training tokenises: the training split grows, validation is tokenised exactly as given;
    the runner's test evaluation then scores the test split's own texts."""
    from datasets import Dataset

    from domainfm.engine import text_classifier
    from domainfm.types import DataBundle, RunContext

    seen: list[list[str]] = []
    real = text_classifier.tokenized_dataset

    def spy(tokenizer: Any, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        seen.append(list(texts))
        return real(tokenizer, texts, *args, **kwargs)

    monkeypatch.setattr(text_classifier, "tokenized_dataset", spy)
    train_x = TINY_CORPUS * 2
    valid_x = ["the store opens at nine", "my card was declined twice", "the market fell"]
    data = DataBundle(tables={
        "train": Dataset.from_dict({"text": train_x, "label": ["a", "b"] * 10}),
        "validation": Dataset.from_dict({"text": valid_x, "label": ["a", "b", "a"]}),
    }, source="t", label_names=["a", "b"])
    cfg = build_config(None, [f"model.base={tiny_model_dir}", "model.mode=full", "train.epochs=1",
                              "train.batch_size=8", "model.max_length=32",
                              "train.augment.methods=swap,delete,insert,ocr,cutoff"])
    ctx = RunContext(run_id="aug", domain="d", config=cfg, run_dir=tmp_path / "run", device="cpu")
    artifact = text_classifier.fine_tune_text_classifier(ctx, data, label_names=["a", "b"])
    assert seen[1] == valid_x
    assert seen[0][: len(train_x)] == train_x and len(seen[0]) > len(train_x)
    assert not set(seen[0][len(train_x):]) & set(valid_x)
    meta = artifact.metadata["augment"]
    assert meta["training_rows"] == len(train_x) and meta["rows_after_augmentation"] == len(seen[0])
    assert artifact.metadata["train_examples"] == len(train_x)
    assert artifact.metadata["loss_terms"] == ["cutoff"]


@pytest.mark.parametrize(("mode", "setting", "message"), [
    ("head", "train.adversarial.method=fgm", "train.adversarial: model.mode=head"),
    ("contrastive", "train.regularisation.rdrop=1", "train.regularisation: model.mode=contrastive"),
    ("distill", "train.augment.methods=swap", "not applied to a distilled student"),
    ("lpft", "train.augment.methods=mixup", "mixup and train.adversarial need a sequence classifier"),
])
def test_a_technique_a_mode_cannot_use_is_refused_in_one_line(tmp_path: Path, tiny_model_dir: Path, mode: str,
                                                              setting: str, message: str) -> None:
    from datasets import Dataset

    from domainfm.engine.text_classifier import fine_tune_text_classifier
    from domainfm.types import DataBundle, RunContext

    cfg = build_config(None, [f"model.base={tiny_model_dir}", f"model.mode={mode}", setting, "model.teacher=x"])
    ctx = RunContext(run_id="r", domain="d", config=cfg, run_dir=tmp_path / "run", device="cpu")
    data = DataBundle(tables={"train": Dataset.from_dict({"text": TINY_CORPUS, "label": ["a", "b"] * 5})},
                      source="t", label_names=["a", "b"])
    with pytest.raises(ConfigError, match=message):
        fine_tune_text_classifier(ctx, data, label_names=["a", "b"])
