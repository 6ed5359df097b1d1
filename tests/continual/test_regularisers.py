"""L2-SP and EWC as loss terms: zero at the anchor, the right penalty away from it, the head left free."""

from __future__ import annotations

from pathlib import Path

import pytest

from domainfm.config import RegularisationConfig, TrainConfig
from domainfm.continual.regularisers import (
    FISHER_PREFIX,
    WeightAnchor,
    plain_name,
    weight_anchor_terms,
    write_parent_anchor,
)
from domainfm.engine.loss_terms import Step, terms_from_config
from domainfm.errors import ConfigError


def tiny_classifier(model_dir: Path) -> object:
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=3)


def step(model: object) -> Step:
    return Step(model=model, inputs={}, targets={}, criterion=lambda logits, targets: logits)


def shift(model: object, name: str, delta: float) -> None:
    import torch

    with torch.no_grad():
        dict(model.named_parameters())[name].add_(delta)  # type: ignore[attr-defined]


def test_config_switches_the_terms_on() -> None:
    names = [t.name for t in terms_from_config(TrainConfig.model_validate({"regularisation": {"l2sp": 0.1}}))]
    assert names == ["l2sp"]
    assert terms_from_config(TrainConfig()) == []
    with pytest.raises(ConfigError, match="anchor"):
        weight_anchor_terms(RegularisationConfig(ewc=1.0))
    with pytest.raises(ConfigError, match="no such file"):
        weight_anchor_terms(RegularisationConfig(ewc=1.0, anchor="/nonexistent/anchor.safetensors"))


def test_l2sp_pulls_toward_the_starting_weights_and_leaves_the_head_free(tiny_model_dir: Path) -> None:
    model = tiny_classifier(tiny_model_dir)
    term = WeightAnchor("l2sp", 2.0, None, use_fisher=False)
    assert float(term.extra(step(model), None, None)) == 0.0  # anchored at the first step's weights
    name = "bert.encoder.layer.0.output.dense.bias"
    size = dict(model.named_parameters())[name].numel()  # type: ignore[attr-defined]
    shift(model, name, 0.1)
    shift(model, "classifier.weight", 5.0)  # the head is never anchored
    assert float(term.extra(step(model), None, None)) == pytest.approx(0.5 * 2.0 * size * 0.01, rel=1e-4)


def test_ewc_weights_the_distance_by_the_parents_fisher(tiny_model_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    model = tiny_classifier(tiny_model_dir)
    model.save_pretrained(str(tmp_path / "parent"))  # type: ignore[attr-defined]
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(tmp_path / "parent"))
    texts = ["the market rallied after strong earnings", "my parcel arrived late and damaged",
             "please reset my password and unlock my account", "revenue was flat compared with last quarter"]
    anchor = write_parent_anchor(tmp_path / "parent", texts, [0, 1, 2, 1], tmp_path / "anchor.safetensors",
                                 with_fisher=True, max_length=16, batch_size=2)
    stored = load_file(str(anchor))
    fisher = {k[len(FISHER_PREFIX):]: v for k, v in stored.items() if k.startswith(FISHER_PREFIX)}
    assert fisher and not any(k.startswith("classifier") for k in fisher)
    assert float(sum(v.sum() for v in fisher.values()) / sum(v.numel() for v in fisher.values())) == pytest.approx(1.0, rel=1e-4)
    (term,) = weight_anchor_terms(RegularisationConfig(ewc=3.0, anchor=str(anchor)))
    assert float(term.extra(step(model), None, None)) == pytest.approx(0.0, abs=1e-6)
    name = "bert.encoder.layer.1.output.dense.bias"
    shift(model, name, 0.2)
    expected = 0.5 * 3.0 * float((fisher[plain_name(name)] * 0.04).sum())
    assert float(term.extra(step(model), None, None)) == pytest.approx(expected, rel=1e-3)


def test_a_model_whose_trained_weights_have_no_anchor_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    from domainfm.continual.regularisers import save_anchor

    model = tiny_classifier(tiny_model_dir)
    anchor = save_anchor(model, tmp_path / "a.safetensors")
    for p in model.parameters():  # type: ignore[attr-defined]
        p.requires_grad_(False)
    term = WeightAnchor("l2sp", 1.0, str(anchor), use_fisher=False)
    with pytest.raises(ConfigError, match="no trained weight has an anchor"):
        term.extra(step(model), None, None)
