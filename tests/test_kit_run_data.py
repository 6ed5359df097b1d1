"""domainfm.kit.run_training_data / split_texts: the data a run was trained on, read again as training pinned it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domainfm.errors import DataError
from domainfm.kit import run_training_data, split_texts


def test_run_training_data_reads_the_run_json_beside_the_artifact(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "artifact").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"config": {"data": "demo", "options": {"split_seed": 3}}}))
    assert run_training_data(run / "artifact") == ("demo", {"split_seed": 3})
    assert run_training_data(tmp_path) == (None, {})
    assert run_training_data(None) == (None, {})


def test_split_texts_are_the_pinned_split_and_the_rest_is_held_out() -> None:
    texts, labels, heldout, origin = split_texts("text_classification", "demo", "train")
    everything, _, nothing, _ = split_texts("text_classification", "demo", "all")
    assert len(texts) == len(labels) > 0 and nothing == []
    assert not set(texts) & set(heldout) and sorted(texts + heldout) == sorted(everything)
    assert origin.endswith("(train)")


def test_split_texts_names_a_missing_split() -> None:
    with pytest.raises(DataError, match="no split 'nope'"):
        split_texts("text_classification", "demo", "nope")
