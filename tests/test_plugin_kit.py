"""Helpers plugins share instead of rewriting them: the reader kit, the shared data folder, benefit settings and
measures, keyed pseudonyms, dependency graphs, torch module artifacts and parameter counts."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from domainfm.benefit.assumptions import BenefitSettings
from domainfm.benefit.measures import group_quality_gap
from domainfm.config import build_config
from domainfm.data import read_table
from domainfm.errors import DataError
from domainfm.graphs import check_acyclic
from domainfm.pseudonyms import count_identifiers_in_files, pseudonymise
from domainfm.readers import (
    Vocabulary,
    check_suffix,
    find_file,
    optional_text,
    parse_binary,
    parse_timestamp,
    pick_column,
    read_json_object,
    read_text_document,
    require_columns,
    row_where,
    text_field,
)
from domainfm.shared_data import shared_data_dir, shared_data_path
from domainfm.testing import item_batch
from domainfm.types import Evaluation, Outcomes

# ------------------------------------------------------------------------------------------------ reader kit


def test_reader_kit_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("Text,Done\nhello   world,yes\n,no\nthird,maybe\n", encoding="utf-8")
    rows = read_table(path)
    header = require_columns(rows, path, ("Text",))
    assert header == ["Text", "Done"] and pick_column(header, ("text", "body")) == "Text"
    assert text_field(rows[0]["Text"], row_where(path, rows[0]), "Text") == "hello world"
    with pytest.raises(DataError, match=rf"^{path}:3: field 'Text' is"):
        text_field(rows[1]["Text"], row_where(path, rows[1]), "Text")
    assert [parse_binary(r["Done"], "w", "Done") for r in rows[:2]] == [1, 0]
    with pytest.raises(DataError, match=rf"{path}:4: field 'Done': 'maybe' is not 0/1"):
        parse_binary(rows[2]["Done"], row_where(path, rows[2]), "Done")
    with pytest.raises(DataError, match=r"missing column 'label'; found \['Done', 'Text'\]"):
        require_columns(rows, path, ("label",))
    with pytest.raises(DataError, match="no rows"):
        require_columns([], path, ())


def test_reader_kit_values_files_and_vocabulary(tmp_path: Path) -> None:
    assert optional_text(float("nan")) is None and optional_text("  x ") == "x" and optional_text(" ") is None
    assert parse_timestamp("2026-01-01T00:00:00Z", "w") == pytest.approx(1767225600.0)
    assert parse_timestamp("12.5", "w") == 12.5 and math.isnan(parse_timestamp("", "w"))
    with pytest.raises(DataError, match="w: field 'timestamp': 'soon' is neither"):
        parse_timestamp("soon", "w")
    with pytest.raises(DataError, match=r"unknown table format '\.docx'"):
        check_suffix(tmp_path / "a.docx", (".csv",), "table")
    (tmp_path / "train.jsonl").write_text("{}", encoding="utf-8")
    assert find_file(tmp_path, ("utterances", "train")) == tmp_path / "train.jsonl"
    assert find_file(tmp_path, ("test",)) is None
    (tmp_path / "b.txt").write_bytes(b"ab\x00c")
    with pytest.raises(DataError, match="binary content"):
        read_text_document(tmp_path / "b.txt")
    (tmp_path / "big.txt").write_text("x" * 20, encoding="utf-8")
    with pytest.raises(DataError, match="larger than the 10-byte limit"):
        read_text_document(tmp_path / "big.txt", max_bytes=10)
    (tmp_path / "t.json").write_text("[1]", encoding="utf-8")
    with pytest.raises(DataError, match="expected a JSON object of templates"):
        read_json_object(tmp_path / "t.json", "templates")
    grow, fixed = Vocabulary(), Vocabulary({"a": 0})
    assert [grow.get(n) for n in ("b", "a", "b")] == [0, 1, 0] and grow.names() == ["b", "a"]
    assert fixed.get("a") == 0 and fixed.get("z") is None and fixed.names() == ["a"]


# ------------------------------------------------------------------------------------------------ shared data


def test_shared_data_follows_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "x.csv").write_text("a\n1\n", encoding="utf-8")
    monkeypatch.setenv("DOMAINFM_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path
    assert shared_data_path("demo/x.csv", "X") == tmp_path / "demo" / "x.csv"
    assert shared_data_path("demo", "X", folder=True) == tmp_path / "demo"
    with pytest.raises(DataError, match=r"demo/y\.csv: Y not found \(looked under \$DOMAINFM_SHARED_DATA"):
        shared_data_path("demo/y.csv", "Y")
    monkeypatch.setenv("DOMAINFM_SHARED_DATA", str(tmp_path / "absent"))
    assert shared_data_dir() is None
    with pytest.raises(DataError, match="set DOMAINFM_SHARED_DATA"):
        shared_data_path("demo/x.csv", "X")


# ------------------------------------------------------------------------------------------------ benefit


def _ctx(*overrides: str) -> SimpleNamespace:
    return SimpleNamespace(config=build_config(None, list(overrides)))


def test_benefit_settings_read_overrides_and_name_their_source() -> None:
    defaults = {"minutes": (8.0, "min", "a stated guess"), "cost": (40.0, "EUR/h", "payroll")}
    s = BenefitSettings(_ctx("benefit.assumptions.minutes=6", "benefit.limits.latency=300"), defaults,
                        {"latency": 500.0, "gap": 0.1})
    assert s.value("minutes") == 6.0 and s.value("cost") == 40.0 and s.values() == {"minutes": 6.0, "cost": 40.0}
    overridden, default = s.assumptions()
    assert overridden.value == 6.0 and overridden.unit == "min" and overridden.source.startswith("user override")
    assert "default 8 min" in overridden.source and default.source == "payroll"
    assert s.limit("latency") == 300.0 and s.limit("gap") == 0.1
    with pytest.raises(KeyError):
        s.value("unknown")


def test_group_quality_gap_counts_large_enough_groups_only() -> None:
    ev = Evaluation(domain="d", split="s", metrics={"m": 0.0}, key_metric="m", n_items=12,
                    outcomes=Outcomes(ids=[str(i) for i in range(12)], confidence=[0.9] * 11 + [0.1],
                                      quality=[1.0] * 5 + [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0],
                                      groups={"g": ["a"] * 5 + ["b"] * 5 + ["c"] * 2}))
    batch = item_batch(ev, threshold=0.5)
    assert group_quality_gap(batch, "g", 5) == pytest.approx(0.2)  # a: 1.0, b: 0.8; c is too small
    assert group_quality_gap(batch, "g", 6) is None and group_quality_gap(batch, "missing", 1) is None
    assert group_quality_gap(batch, "g", 1) == pytest.approx(1.0)  # c's one automated item is wrong
    assert group_quality_gap(batch, "g", 2, automated_only=False) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------ privacy, graphs


def test_pseudonyms_are_keyed_and_the_file_check_finds_raw_ids(tmp_path: Path) -> None:
    a = pseudonymise("ann", "k1")
    assert a == pseudonymise("ann", "k1") and a != pseudonymise("ann", "k2") and a.startswith("s_") and len(a) == 18
    (tmp_path / "config.json").write_text('{"students": ["s_x", "bob-42"]}', encoding="utf-8")
    (tmp_path / "weights.bin").write_bytes(b"ann-7")
    assert count_identifiers_in_files(tmp_path, ["bob-42", "ann-7", "zz"]) == 1  # .bin is not text; "zz" too short


def test_check_acyclic_names_the_cycle() -> None:
    check_acyclic({1: [0], 2: [0, 1]}, ["a", "b", "c"], "cat.csv")
    with pytest.raises(DataError, match="cat.csv: prerequisites form a cycle: a -> c -> b -> a"):
        check_acyclic({0: [2], 2: [1], 1: [0]}, ["a", "b", "c"], "cat.csv")


# ------------------------------------------------------------------------------------------------ torch models


def test_module_store_round_trip_and_parameter_count(tmp_path: Path) -> None:
    import torch

    from domainfm.engine.module_store import load_module, save_module
    from domainfm.model_size import record_parameters

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    model[0].weight.requires_grad_(False)
    save_module(tmp_path / "m", model, {"hidden": 2})
    loaded, config = load_module(tmp_path / "m", lambda c: torch.nn.Sequential(torch.nn.Linear(3, c["hidden"]),
                                                                               torch.nn.Linear(c["hidden"], 1)))
    x = torch.ones(1, 3)
    assert config == {"hidden": 2} and torch.equal(loaded(x), model(x)) and not loaded.training
    ctx = SimpleNamespace(resources=SimpleNamespace(parameters=None, trainable_parameters=None))
    assert record_parameters(ctx, model) == {"parameters": 11, "trainable_parameters": 5}
    assert ctx.resources.parameters == 11
    with pytest.raises(DataError, match="cannot read the saved model"):
        load_module(tmp_path / "nowhere", lambda c: model)
