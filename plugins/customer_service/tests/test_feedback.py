from __future__ import annotations

from pathlib import Path

import pytest

from domainfm.errors import DataError
from domainfm_customer_service.feedback import FeedbackStore
from domainfm_customer_service.query import QueryError


def test_feedback_roundtrip_and_training_rows(tmp_path: Path, regex_masker) -> None:  # noqa: ANN001
    store = FeedbackStore(tmp_path / "fb.sqlite")
    labels = ["card_lost", "reset_pin"]
    store.add("lost my card, mail me at joe@example.com", thumbs=1, predicted_intent="card_lost", masker=regex_masker)
    store.add("pin is blocked", thumbs=-1, predicted_intent="card_lost", corrected_intent="reset_pin", label_names=labels)
    store.add("something vague", thumbs=-1, predicted_intent="card_lost")
    recs = FeedbackStore(tmp_path / "fb.sqlite").records()
    assert len(recs) == 3
    assert "joe@example.com" not in recs[0].query and "<EMAIL>" in recs[0].query
    rows = store.training_rows(labels)
    assert {(r["text"], r["intent"]) for r in rows} == {
        ("lost my card, mail me at <EMAIL>", "card_lost"),
        ("pin is blocked", "reset_pin"),
    }
    assert store.summary() == {"records": 3, "thumbs_up": 1, "thumbs_down": 2, "corrections": 1}


def test_invalid_feedback_is_rejected_and_nothing_written(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.sqlite")
    with pytest.raises(DataError, match="thumbs must be"):
        store.add("q", thumbs=5)
    with pytest.raises(DataError, match="not one of the model's intents"):
        store.add("q", corrected_intent="nope", label_names=["a"])
    with pytest.raises(QueryError):
        store.add("\x00\x01")
    assert store.records() == []


def test_corrupted_feedback_file(tmp_path: Path) -> None:
    path = tmp_path / "fb.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataError, match="not a usable feedback database"):
        FeedbackStore(path)


def _ctx(tmp_path: Path) -> "RunContext":  # noqa: F821
    from domainfm.config import build_config
    from domainfm.types import RunContext

    config = build_config(overrides=[f"output_dir={tmp_path}", "options.mask_training_text=false"])
    return RunContext(run_id="t", domain="customer_service", config=config, run_dir=tmp_path, device="cpu")


def test_a_feedback_store_is_the_feedback_source_of_improve(tmp_path: Path) -> None:
    from domainfm.data import reading_feedback
    from domainfm_customer_service.plugin import domainfm_load_data

    store = FeedbackStore(tmp_path / "fb.sqlite")
    for i in range(6):  # one intent the model does not know yet: a whole feedback file
        store.add(f"the machine kept my card {i}", thumbs=-1, predicted_intent="card_lost", corrected_intent="card_swallowed")
    store.add("no label in a bare thumbs-down", thumbs=-1, predicted_intent="card_lost")
    with reading_feedback():
        bundle = domainfm_load_data(_ctx(tmp_path), "customer_service", str(store.path))
    assert bundle is not None and bundle.label_names == ["card_swallowed"]
    assert len(bundle.tables["train"]) == 6 and len(bundle.tables["test"]) == 0
    assert set(bundle.tables["train"]["channel"]) == {"feedback"}
    with pytest.raises(DataError, match="only the label 'card_swallowed'"):  # as training data: one label measures nothing
        domainfm_load_data(_ctx(tmp_path), "customer_service", str(store.path))


def test_a_feedback_store_as_training_data_is_split_like_any_source(tmp_path: Path) -> None:
    """`domainfm run customer_service --data feedback.sqlite`: train / validation / test, 60/20/20 stratified."""
    from domainfm_customer_service.plugin import domainfm_load_data

    store = FeedbackStore(tmp_path / "fb.sqlite")
    for intent in ("card_swallowed", "refund"):
        for i in range(10):
            store.add(f"{intent} question {i}", thumbs=-1, predicted_intent="other", corrected_intent=intent)
    bundle = domainfm_load_data(_ctx(tmp_path), "customer_service", str(store.path))
    assert bundle is not None and bundle.label_names == ["card_swallowed", "refund"]
    sizes = {name: len(bundle.tables[name]) for name in ("train", "validation", "test")}
    assert sizes == {"train": 12, "validation": 4, "test": 4}
    assert bundle.meta["protocol"] == "60/20/20 stratified"
    for name in ("validation", "test"):
        assert sorted(set(bundle.tables[name]["label"])) == ["card_swallowed", "refund"]


def test_an_empty_feedback_store_names_itself(tmp_path: Path) -> None:
    from domainfm.data import reading_feedback
    from domainfm_customer_service.plugin import domainfm_load_data

    store = FeedbackStore(tmp_path / "fb.sqlite")
    store.add("vague", thumbs=-1, predicted_intent="card_lost")
    with reading_feedback(), pytest.raises(DataError, match=r"fb\.sqlite: no labelled feedback"):
        domainfm_load_data(_ctx(tmp_path), "customer_service", str(store.path))


def test_improving_from_the_default_store_keeps_its_rows_out_of_the_parent_data(tmp_path: Path) -> None:
    """Otherwise held-out feedback would also be replayed and retrained on as parent rows (leakage)."""
    from domainfm_customer_service.plugin import domainfm_load_data, feedback_path

    ctx = _ctx(tmp_path)
    intent = domainfm_load_data(ctx, "customer_service", "demo").label_names[0]
    store = FeedbackStore(feedback_path(ctx))
    for i in range(3):
        store.add(f"a question about {intent} {i}", thumbs=-1, corrected_intent=intent)
    assert domainfm_load_data(ctx, "customer_service", "demo").meta["feedback_rows"] == 3
    ctx.state["lineage"] = {"feedback": str(store.path)}
    assert domainfm_load_data(ctx, "customer_service", "demo").meta["feedback_rows"] == 0
    ctx.state["lineage"] = {"feedback": str(tmp_path / "other.csv")}
    assert domainfm_load_data(ctx, "customer_service", "demo").meta["feedback_rows"] == 3
