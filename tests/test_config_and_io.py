"""Config parsing and overrides, table readers and atomic writes (property-based where it pays)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domainfm.config import apply_override, build_config, parse_config, parse_flag
from domainfm.errors import ConfigError, DataError
from domainfm.io import atomic_write_text, read_records, save_arrays


def test_yaml_and_toml_configs_with_overrides(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("model:\n  mode: lora\ntrain:\n  epochs: 2\nbenefit:\n  lambda: 0.5\n")
    (tmp_path / "c.toml").write_text('[model]\nmode = "lora"\n[train]\nepochs = 2\n[benefit]\nlambda = 0.5\n')
    for name in ("c.yaml", "c.toml"):
        cfg = build_config(tmp_path / name, ["train.epochs=4", "options.topics=[rates, earnings]"], device="cpu")
        assert cfg.model.mode == "lora" and cfg.train.epochs == 4.0 and cfg.device == "cpu"
        assert cfg.benefit.lambda_ == 0.5 and cfg.options["topics"] == ["rates", "earnings"]


def test_bad_values_name_the_field_and_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"device: Input should be 'auto', 'cpu' or 'cuda' \(got 'tpu'\)"):
        parse_config({"device": "tpu"})
    with pytest.raises(ConfigError, match=r"train.batch_size: Input should be greater than or equal to 1"):
        parse_config({"train": {"batch_size": 0}})


def test_unsupported_config_file(tmp_path: Path) -> None:
    (tmp_path / "c.ini").write_text("[x]")
    with pytest.raises(ConfigError, match="unsupported config format"):
        build_config(tmp_path / "c.ini")
    with pytest.raises(ConfigError, match="no such config file"):
        build_config(tmp_path / "missing.yaml")


@settings(deadline=None)  # pydantic validation of a whole config: slow on a loaded machine, never wrong
@given(
    keys=st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=1, max_size=4),
    value=st.one_of(st.integers(-1000, 1000), st.booleans(), st.from_regex(r"[a-z]{1,10}", fullmatch=True)),
)
def test_override_round_trips_scalars(keys: list[str], value: object) -> None:
    data: dict = {}
    rendered = str(value).lower() if isinstance(value, bool) else str(value)
    apply_override(data, ".".join(keys) + "=" + rendered)
    node = data
    for key in keys[:-1]:
        node = node[key]
    parsed = node[keys[-1]]
    if isinstance(value, str) and value in ("true", "false", "yes", "no", "on", "off", "null", "y", "n"):
        return  # YAML gives these their YAML meaning, as documented
    assert parsed == value


def test_csv_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,label\nok,positive\ntoo,many,fields\n")
    with pytest.raises(DataError, match=rf"{path}:3: more fields"):
        read_records(path)
    path.write_bytes(b"text,label\n\xff\xfe,positive\n")
    with pytest.raises(DataError, match="not valid UTF-8"):
        read_records(path)
    path.write_text("body,label\nx,y\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['text'\]"):
        read_records(path, required=("text", "label"))


def test_jsonl_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": \n')
    with pytest.raises(DataError, match=rf"{path}:3: invalid JSON"):
        read_records(path)
    path.write_text('["not", "an", "object"]\n')
    with pytest.raises(DataError, match=rf"{path}:1: expected a JSON object"):
        read_records(path)


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({"text": st.text(min_size=1, max_size=40), "label": st.sampled_from(["a", "b"])}), max_size=20))
def test_jsonl_reader_round_trips(tmp_path_factory: pytest.TempPathFactory, rows: list[dict]) -> None:
    path = tmp_path_factory.mktemp("rt") / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    got = read_records(path)
    assert [{k: v for k, v in r.items() if k != "_line"} for r in got] == rows


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    target = tmp_path / "state.json"
    atomic_write_text(target, "old")

    def fail(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left behind


def test_model_resolution_lists_what_it_tried(tmp_path: Path) -> None:
    from domainfm.errors import ModelNotFoundError
    from domainfm.models import resolve_model

    with pytest.raises(ModelNotFoundError, match="tried: local HF cache.*hub download: skipped"):
        resolve_model("some-org/some-model-that-is-not-here", allow_download=False)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))
    resolved = resolve_model("sentence-transformers/all-MiniLM-L6-v2", allow_download=False)
    assert resolved.source in {"packaged", "hf-cache"} and (resolved.path / "config.json").is_file()


def test_atomic_writes_get_ordinary_permissions(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        target = atomic_write_text(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 6), fortran=st.booleans(), dtype=st.sampled_from(["float32", "float64", "int64"]))
def test_saved_arrays_load_back_equal_whatever_their_memory_order(
    tmp_path_factory: pytest.TempPathFactory, rows: int, cols: int, fortran: bool, dtype: str
) -> None:
    import numpy as np
    from safetensors.numpy import load_file

    array = np.arange(rows * cols, dtype=dtype).reshape(rows, cols)
    if fortran:
        array = np.asfortranarray(array)
    path = save_arrays(tmp_path_factory.mktemp("arrays") / "a.safetensors", {"w": array, "v": array[0]})
    loaded = load_file(str(path))
    np.testing.assert_array_equal(loaded["w"], array)
    np.testing.assert_array_equal(loaded["v"], array[0])


@given(value=st.sampled_from(["true", "Yes", " ON ", "1", 1, True]))
def test_flags_read_yes(value: object) -> None:
    assert parse_flag(value, "options.x") is True


@given(value=st.sampled_from(["false", "No", "off", "0", "", "none", 0, False]))
def test_flags_read_no(value: object) -> None:
    assert parse_flag(value, "options.x") is False


@given(value=st.one_of(st.text().filter(lambda t: t.strip().lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off", "none", "")),
                       st.integers().filter(lambda i: i not in (0, 1)), st.floats(allow_nan=False)))
def test_anything_else_is_not_a_flag_and_the_error_names_the_option(value: object) -> None:
    with pytest.raises(ConfigError, match="options.use_ner"):
        parse_flag(value, "options.use_ner")


def test_run_context_flag_reads_options(tmp_path: Path) -> None:
    from domainfm.types import RunContext

    ctx = RunContext(run_id="t", domain="d", config=build_config(None, ["options.dp=yes", "options.typo=ture"]), run_dir=tmp_path, device="cpu")
    assert ctx.flag("dp") is True and ctx.flag("missing") is False and ctx.flag("missing", True) is True
    with pytest.raises(ConfigError, match="options.typo: 'ture'"):
        ctx.flag("typo")
