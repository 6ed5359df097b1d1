"""The request checks and error-body rules of :mod:`domainfm.serve.validation` on their own."""

from __future__ import annotations

from pathlib import Path

from domainfm.serve.validation import MAX_ERRORS, PathRedactor, check_strings, public_errors, surrogate_position


def test_redactor_names_known_roots_and_hides_other_paths(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    redact = PathRedactor({"<runs_dir>": runs, "<x artifact>": tmp_path / "elsewhere" / "artifact"})
    assert redact(f"no run under {runs}/text_classification") == "no run under <runs_dir>/text_classification"
    assert redact(f"{runs}/tc/2026-01/artifact is damaged") == "<runs_dir>/tc/2026-01/artifact is damaged"
    assert redact(f"cannot read {tmp_path}/elsewhere/artifact/config.json") == "cannot read <x artifact>/config.json"
    assert redact("open('/srv/models/v1/weights.bin') failed") == "open('<path>') failed"
    # not paths: URLs, options, fractions, a single component
    for text in ("see https://example.org/a/b", "pass --artifact tc=PATH", "rate 3/4 and/or 1/2", "GET /health"):
        assert redact(text) == text


def test_check_strings_walks_nested_values_and_keys() -> None:
    record = {"text": "ok", "meta": {"note": "x" * 11, "tags": ["fine", "bad\ud800"]}, "k\udc00": 1}
    errors = check_strings(record, ("body", "records", 2), max_chars=10)
    found = {tuple(e["loc"]): e["type"] for e in errors}
    assert found == {
        ("body", "records", 2, "meta", "note"): "string_too_long",
        ("body", "records", 2, "meta", "tags", 1): "string_unicode",
        ("body", "records", 2, "<key>"): "string_unicode",
    }
    assert check_strings({"text": "x" * 10, "n": 5, "ok": None}, ("body",), max_chars=10) == []
    assert surrogate_position("ab\ud83d") == 2 and surrogate_position("emoji \U0001f600") is None


def test_public_errors_never_echo_input_and_are_capped() -> None:
    raw = [{"type": "string_type", "loc": ("body", "records", i, "text"), "msg": "Input should be a valid string",
            "input": {"secret": "s3cret"}, "ctx": {"error": ValueError("x"), "max_length": 5}} for i in range(50)]
    out = public_errors(raw)
    assert len(out) == MAX_ERRORS + 1 and out[-1]["msg"] == f"{50 - MAX_ERRORS} more errors not listed"
    assert "s3cret" not in repr(out) and "ValueError" not in repr(out)
    assert out[0] == {"type": "string_type", "loc": ["body", "records", 0, "text"],
                      "msg": "Input should be a valid string", "ctx": {"max_length": 5}}
