"""The few-shot helpers (seeded per-class sampling) and how the training stage picks the classifier mode."""

from __future__ import annotations

from pathlib import Path

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


class _SmallBundle(_Bundle):
    def split(self, name: str) -> list[int]:
        return list(range(120))


@pytest.mark.parametrize(("mode", "switched"), [("full", True), ("lora", True), ("head", False), ("contrastive", False)])
def test_small_data_switches_to_head_only_except_the_few_shot_mode(tmp_path: Path, mode: str, switched: bool) -> None:
    from domainfm.config import build_config
    from domainfm.types import RunContext

    from domainfm_customer_service.training import _small_data_mode

    ctx = RunContext(run_id="t", domain="customer_service", config=build_config(overrides=[f"model.mode={mode}"]),
                     run_dir=tmp_path, device="cpu")
    reason = _small_data_mode(ctx, _SmallBundle())
    assert (reason is not None) == switched
    if switched:
        assert "120 training rows" in reason
