"""The few-shot helpers: seeded per-class sampling and the in-batch-negative contrastive recipe (tiny model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domainfm_customer_service.fewshot import sample_per_class

WORDS = {
    "card": ["my card is lost", "lost card help", "card stolen today", "where is my card"],
    "transfer": ["transfer failed", "money transfer pending", "send money abroad", "transfer not arrived"],
    "pin": ["forgot my pin", "pin blocked", "change pin please", "reset my pin"],
}


def test_sample_per_class_is_seeded_and_capped() -> None:
    texts = [t for items in WORDS.values() for t in items] + ["only one"]
    labels = [lab for lab, items in WORDS.items() for _ in items] + ["rare"]
    a = sample_per_class(texts, labels, 2, seed=7)
    b = sample_per_class(texts, labels, 2, seed=7)
    assert a == b
    assert sorted(a[1]).count("card") == 2 and a[1].count("rare") == 1


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted({w for items in WORDS.values() for t in items for w in t.split()})
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(str(folder))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(str(folder), safe_serialization=True)
    return folder


def test_contrastive_finetune_trains_and_predicts(tiny_model: Path) -> None:
    from domainfm_customer_service.fewshot import contrastive_finetune

    texts = [t for items in WORDS.values() for t in items]
    labels = [lab for lab, items in WORDS.items() for _ in items]
    seen: list[int] = []
    before = {}

    def callback(step: int, model) -> None:  # noqa: ANN001
        seen.append(step)
        before.setdefault(step, model.encode(texts))

    model = contrastive_finetune(tiny_model, texts, labels, steps=4, learning_rate=1e-3, classes_per_batch=8,
                                 warmup_steps=1, seed=1, callback=callback, callback_steps=(0, 4))
    assert seen == [0, 4]
    emb = model.encode(texts)
    assert emb.shape == (len(texts), 32)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(before[0], before[4])  # the encoder moved
    model.fit_head(texts, labels, c=10.0)
    pred = model.predict(texts)
    assert set(pred) <= set(labels) and len(pred) == len(texts)
    assert model.predict_proba(texts[:2]).shape == (2, 3)


def test_contrastive_finetune_needs_two_labels(tiny_model: Path) -> None:
    from domainfm_customer_service.fewshot import contrastive_finetune

    with pytest.raises(ValueError, match="two labels"):
        contrastive_finetune(tiny_model, ["a card", "the card"], ["card", "card"], steps=1)


class _Stop(Exception):
    pass


class _Bundle:
    label_names = ["a", "b"]

    def split(self, name: str) -> list[int]:
        return list(range(600))


@pytest.mark.parametrize(("overrides", "expected"), [
    (["model.mode=full"], 3e-3),
    (["model.mode=full", "train.head_learning_rate=0.01"], 0.01),
    (["model.mode=lora"], None),
])
def test_full_fine_tuning_gets_a_head_learning_rate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, overrides, expected) -> None:  # noqa: ANN001
    import domainfm.engine.text_classifier as tc
    from domainfm.config import build_config
    from domainfm.types import RunContext

    from domainfm_customer_service.training import train_customer_service

    seen = {}

    def fake(ctx, data, label_names):  # noqa: ANN001
        seen["head_lr"] = ctx.config.train.head_learning_rate
        raise _Stop

    monkeypatch.setattr(tc, "fine_tune_text_classifier", fake)
    ctx = RunContext(run_id="t", domain="customer_service", config=build_config(overrides=overrides), run_dir=tmp_path, device="cpu")
    with pytest.raises(_Stop):
        train_customer_service(ctx, _Bundle())
    assert seen["head_lr"] == expected
    assert ctx.config.train.head_learning_rate == (0.01 if expected == 0.01 else None)  # the caller's config is untouched
