"""RunContext's typed fields and the old ``ctx.state`` keys that still read and write them."""

from __future__ import annotations

from pathlib import Path

from domainfm.config import RunConfig
from domainfm.types import Artifact, RunContext, dp_epsilon_of


def _ctx(tmp_path: Path, **kw: object) -> RunContext:
    return RunContext(run_id="r1", domain="d", config=RunConfig(), run_dir=tmp_path, device="cpu", **kw)  # type: ignore[arg-type]


def test_old_state_keys_read_and_write_the_typed_fields(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    assert "dp_epsilon" not in ctx.state and ctx.state.get("dp_epsilon") is None
    ctx.state["dp_epsilon"] = "3.5"  # run.json or a plugin may hand over a string
    assert ctx.dp_epsilon == 3.5 and ctx.state["dp_epsilon"] == 3.5
    ctx.resumed_from = "checkpoint-40"
    assert ctx.state["resumed_from"] == "checkpoint-40"
    ctx.state.setdefault("variant_resources", {})["lora"] = {"train_seconds": 1.0}
    ctx.state.setdefault("variant_resources", {})["full"] = {"train_seconds": 2.0}
    assert ctx.variant_resources == {"lora": {"train_seconds": 1.0}, "full": {"train_seconds": 2.0}}
    ctx.state["my_plugin_key"] = [1, 2]
    assert dict(ctx.state) == {
        "dp_epsilon": 3.5, "resumed_from": "checkpoint-40", "variant_resources": ctx.variant_resources,
        "my_plugin_key": [1, 2],
    }
    del ctx.state["dp_epsilon"]
    assert ctx.dp_epsilon is None and len(ctx.state) == 3
    ctx.state.setdefault("privacy_texts", {})["outputs"] = ["a prediction"]
    ctx.state.setdefault("benefit_details", {})["privacy_pii_artifacts"] = {"reason": "no artifact"}
    assert ctx.privacy_texts == {"outputs": ["a prediction"]}
    assert ctx.benefit_details == {"privacy_pii_artifacts": {"reason": "no artifact"}}


def test_a_state_mapping_given_at_construction_and_variants_keep_the_fields(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, state={"dp_epsilon": 2, "other": "x"})
    assert ctx.dp_epsilon == 2.0 and ctx.state["other"] == "x"
    variant = ctx.for_variant("lora", **{"model.mode": "lora"})
    assert variant.dp_epsilon == 2.0 and variant.state["other"] == "x"
    variant.state["dp_epsilon"] = 1.0
    assert variant.dp_epsilon == 1.0 and ctx.dp_epsilon == 2.0  # a variant's own value


def test_dp_epsilon_of_reads_the_artifact_convention(tmp_path: Path) -> None:
    plain = Artifact(path=tmp_path, domain="d", kind="k", base_model="m")
    private = plain.model_copy(update={"metadata": {"dp": {"epsilon": 4, "delta": 1e-5}}})
    assert dp_epsilon_of(plain) is None and dp_epsilon_of(private) == 4.0
