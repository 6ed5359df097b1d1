"""model.mode adalora / ia3 / prompt / ptuning (and lora): trained, saved, reloaded, same predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from domainfm.config import build_config
from domainfm.testing import TINY_CORPUS

PEFT = ["lora", "adalora", "ia3", "prompt", "ptuning"]
TEXTS = ["the parcel arrived broken", "profits rose", "please unlock my account"]
PAIRS = ["a broken parcel", "revenue", "account locked"]


def _bundle() -> Any:
    from datasets import Dataset

    from domainfm.types import DataBundle

    n = len(TINY_CORPUS)
    return DataBundle(tables={
        "train": Dataset.from_dict({"text": TINY_CORPUS * 2, "pair": TINY_CORPUS[::-1] * 2, "label": ["a", "b"] * n}),
        "validation": Dataset.from_dict({"text": TINY_CORPUS[:4], "pair": TINY_CORPUS[:4], "label": ["a", "b"] * 2}),
    }, source="t", label_names=["a", "b"])


@pytest.mark.parametrize("mode", PEFT)
def test_each_peft_mode_saves_reloads_and_predicts_identically(tmp_path: Path, tiny_model_dir: Path, mode: str) -> None:
    """The model as trained (in memory, adapters active) and the artifact loaded from disk give the same logits,
    for text pairs; merged modes save a plain model, prompt modes an adapter next to the base."""
    import torch

    from domainfm.engine import peft_modes
    from domainfm.engine.classifier_predictor import TextClassifierPredictor
    from domainfm.engine.hf_trainer import count_parameters
    from domainfm.engine.text_classifier import fine_tune_text_classifier
    from domainfm.types import RunContext

    kept: dict[str, Any] = {}
    real_finish = peft_modes.finish

    def keep(model: Any, m: str) -> Any:  # the trained peft model, before merging, and its own logits
        tok = kept["tokenizer"]
        model.eval()
        with torch.no_grad():
            enc = tok(TEXTS, PAIRS, padding=True, truncation=True, max_length=32, return_tensors="pt")
            kept["logits"] = model(**enc).logits.float().numpy()
        kept["trainable"] = count_parameters(model)[1]
        return real_finish(model, m)

    from transformers import AutoTokenizer

    kept["tokenizer"] = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    mp = pytest.MonkeyPatch()
    mp.setattr(peft_modes, "finish", keep)
    try:
        cfg = build_config(None, [f"model.base={tiny_model_dir}", f"model.mode={mode}", "train.epochs=2",
                                  "train.batch_size=8", "model.max_length=32", "model.prompt_tokens=4"])
        ctx = RunContext(run_id=mode, domain="d", config=cfg, run_dir=tmp_path / "run", device="cpu")
        artifact = fine_tune_text_classifier(ctx, _bundle(), label_names=["a", "b"], text_pair_column="pair")
    finally:
        mp.undo()
    meta = artifact.metadata
    assert 0 < meta["trainable_parameters"] < meta["parameters"] / 2
    assert meta["trainable_parameters"] == kept["trainable"]
    merged = mode in ("lora", "adalora", "ia3")
    assert meta["adapters_merged"] is merged
    files = {p.name for p in Path(artifact.path).iterdir()}
    if merged:
        assert "model.safetensors" in files and "adapter" not in files and "peft_adapter" not in meta
    else:
        assert meta["peft_adapter"] == "adapter" and "model.safetensors" not in files
        assert (Path(artifact.path) / "adapter" / "adapter_model.safetensors").is_file()
    loaded = TextClassifierPredictor.load(artifact.path, "cpu", precision="float32")
    again = TextClassifierPredictor.load(artifact.path, "cpu", precision="float32")
    logits = loaded.predict_logits(TEXTS, PAIRS)
    assert np.allclose(logits, kept["logits"], atol=1e-5)
    assert np.allclose(logits, again.predict_logits(TEXTS, PAIRS), atol=0)
    assert loaded.predict([{"text": t, "text_pair": p} for t, p in zip(TEXTS, PAIRS, strict=True)])[0].label in ("a", "b")


def test_modes_differ_in_what_they_train(tmp_path: Path, tiny_model_dir: Path) -> None:
    """IA3 trains fewer weights than LoRA; prompt tuning adds its virtual tokens' embeddings to the head."""
    from domainfm.engine import peft_modes
    from domainfm.engine.hf_trainer import count_parameters, load_sequence_classifier

    counts = {}
    for mode in PEFT:
        model, _ = load_sequence_classifier(tiny_model_dir, ["a", "b"], trust_remote_code=False)
        cfg = build_config(None, [f"model.mode={mode}", "model.prompt_tokens=4"])
        counts[mode] = count_parameters(peft_modes.add_adapters(model, cfg.model, total_steps=20))[1]
    head = 32 * 2 + 2
    assert counts["ia3"] < counts["lora"] < counts["adalora"]
    assert counts["prompt"] == 4 * 32 + head


def test_prefix_tuning_is_not_a_mode() -> None:
    from domainfm.errors import ConfigError

    with pytest.raises(ConfigError, match="model.mode"):
        build_config(None, ["model.mode=prefix"])
