"""PII recognisers: fixed cases, validators, property-based tests, masking and directory scans."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domainfm.privacy import (
    PiiScanner,
    iban_valid,
    load_ner_analyzer,
    luhn_valid,
    mask_spans,
    public_phrases,
    ssn_valid,
    within_public_name,
)


@pytest.fixture(scope="module")
def regex() -> PiiScanner:
    return PiiScanner(use_ner=False)


def kinds(scanner: PiiScanner, text: str) -> list[str]:
    return [s.kind for s in scanner.find(text)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("write to ann.lee+x@mail.example.co.uk today", "EMAIL", "ann.lee+x@mail.example.co.uk"),
        ("call +1 415-555-0132 now", "PHONE", "+1 415-555-0132"),
        ("call (415) 555-0132 now", "PHONE", "(415) 555-0132"),
        ("call 415.555.0132", "PHONE", "415.555.0132"),
        ("ring +44 20 7946 0958", "PHONE", "+44 20 7946 0958"),
        ("ring 07700 900123", "PHONE", "07700 900123"),
        ("appel +33 1 23 45 67 89", "PHONE", "+33 1 23 45 67 89"),
        ("Anruf 0049 30 1234567", "PHONE", "0049 30 1234567"),
        ("card 4111 1111 1111 1111 expired", "CARD", "4111 1111 1111 1111"),
        ("amex 3782-822463-10005", "CARD", "3782-822463-10005"),
        ("IBAN DE89 3704 0044 0532 0130 00.", "IBAN", "DE89 3704 0044 0532 0130 00"),
        ("to GB82WEST12345698765432", "IBAN", "GB82WEST12345698765432"),
        ("ssn 123-45-6789", "SSN", "123-45-6789"),
        ("from 192.168.10.254 at", "IP", "192.168.10.254"),
        ("from 2001:db8::8a2e:370:7334 at", "IP", "2001:db8::8a2e:370:7334"),
        ("Account number: 12345678 please", "ACCOUNT", "12345678"),
        ("acct # 9876-5432-10", "ACCOUNT", "9876-5432-10"),
    ],
)
def test_recogniser_finds(regex: PiiScanner, text: str, kind: str, value: str) -> None:
    spans = regex.find(text)
    assert [(s.kind, s.text) for s in spans] == [(kind, value)]
    assert text[spans[0].start : spans[0].end] == value


@pytest.mark.parametrize(
    "text",
    [
        "order 12345 costs 300 EUR",
        "card 4111 1111 1111 1112",  # fails Luhn
        "IBAN DE89 3704 0044 0532 0130 01",  # fails mod-97
        "ssn 000-12-3456 and 666-12-3456 and 912-12-3456",
        "ip 999.1.1.1",
        "call 000-000-0000",
        "version 2 of the model, 3 epochs, loss 0.4512",
        "",
    ],
)
def test_recogniser_rejects(regex: PiiScanner, text: str) -> None:
    assert regex.find(text) == []


def test_card_beats_phone_and_us_phone_is_phone(regex: PiiScanner) -> None:
    # the small spaCy model labels US numbers UK_NHS: our PHONE recogniser must not depend on it
    assert kinds(regex, "call 212-555-0187 or pay with 5555 5555 5555 4444") == ["PHONE", "CARD"]


def test_mask_replaces_with_typed_placeholders(regex: PiiScanner) -> None:
    text = "mail a@b.org, card 4111111111111111, phone +49 30 1234567"
    assert regex.mask(text) == "mail <EMAIL>, card <CARD>, phone <PHONE>"


def test_dates_are_optional() -> None:
    text = "born 1990-04-12 in the spring"
    assert PiiScanner(use_ner=False).find(text) == []
    assert [s.kind for s in PiiScanner(use_ner=False, dates=True).find(text)] == ["DATE"]


def test_validators() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert not luhn_valid("41x1")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")
    assert not iban_valid("GB82WEST123456987654")  # wrong length for GB
    assert ssn_valid("123-45-6789") and not ssn_valid("123-00-6789") and not ssn_valid("123-45-0000")


# ------------------------------------------------------------------------------- property-based


def _luhn_complete(body: str) -> str:
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


_words = st.text(alphabet=string.ascii_lowercase + " ", min_size=0, max_size=30)


@settings(max_examples=80, deadline=None)
@given(body=st.text(alphabet=string.digits, min_size=14, max_size=14), sep=st.sampled_from(["", " ", "-"]),
       before=_words, after=_words)
def test_any_luhn_valid_card_is_found_and_masked(body: str, sep: str, before: str, after: str) -> None:
    number = _luhn_complete("4" + body)
    shown = sep.join(number[i : i + 4] for i in range(0, 16, 4))
    text = f"{before} {shown} {after}"
    scanner = PiiScanner(use_ner=False, kinds={"CARD"})
    spans = scanner.find(text)
    assert [s.text for s in spans] == [shown]
    assert shown not in scanner.mask(text)


@settings(max_examples=80, deadline=None)
@given(body=st.text(alphabet=string.digits, min_size=14, max_size=14))
def test_luhn_invalid_numbers_are_not_cards(body: str) -> None:
    valid = _luhn_complete("5" + body)
    invalid = valid[:-1] + str((int(valid[-1]) + 1) % 10)
    assert PiiScanner(use_ner=False, kinds={"CARD"}).find(f"ref {invalid}") == []


@settings(max_examples=80, deadline=None)
@given(
    local=st.text(alphabet=string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20).filter(
        lambda s: s[0].isalnum()
    ),
    host=st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=15),
    tld=st.sampled_from(["com", "org", "de", "co.uk", "museum"]),
    before=_words,
)
def test_any_email_is_found(local: str, host: str, tld: str, before: str) -> None:
    email = f"{local}@{host}.{tld}"
    spans = PiiScanner(use_ner=False).find(f"{before} {email} thanks")
    assert [(s.kind, s.text) for s in spans] == [("EMAIL", email)]


@settings(max_examples=80, deadline=None)
@given(octets=st.lists(st.integers(0, 255), min_size=4, max_size=4))
def test_any_ipv4_is_found(octets: list[int]) -> None:
    ip = ".".join(map(str, octets))
    assert [s.text for s in PiiScanner(use_ner=False, kinds={"IP"}).find(f"host {ip} down")] == [ip]


@settings(max_examples=80, deadline=None)
@given(text=st.text(max_size=200))
def test_mask_never_crashes_and_spans_are_disjoint(text: str) -> None:
    scanner = PiiScanner(use_ner=False, dates=True)
    spans = scanner.find(text)
    for a, b in zip(spans, spans[1:]):
        assert a.end <= b.start
    for s in spans:
        assert text[s.start : s.end] == s.text
    assert isinstance(mask_spans(text, spans), str)


@settings(max_examples=50, deadline=None)
@given(area=st.integers(1, 899).filter(lambda a: a != 666), group=st.integers(1, 99), serial=st.integers(1, 9999))
def test_any_valid_ssn_is_found(area: int, group: int, serial: int) -> None:
    ssn = f"{area:03d}-{group:02d}-{serial:04d}"
    assert [s.kind for s in PiiScanner(use_ner=False).find(f"SSN: {ssn}.")] == ["SSN"]


# ------------------------------------------------------------------------------- reports


def test_scan_texts_counts_and_masks_examples(regex: PiiScanner) -> None:
    report = regex.scan_texts(["no pii here", "mail a@b.org or c@d.org", None, 42, "card 4111111111111111"])
    assert report.n_texts == 4 and report.n_with_pii == 2 and report.count == 3
    assert report.by_kind == {"CARD": 1, "EMAIL": 2}
    assert all("@" not in e and "4111" not in e for e in report.examples)
    assert report.rate == pytest.approx(0.5)
    assert report.ner_used is False and "disabled" in (report.ner_reason or "")


def test_scan_directory_skips_binaries_and_vocab(tmp_path: Path, regex: PiiScanner) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "config.json").write_text('{"label": "ok"}\n')
    (tmp_path / "sub" / "samples.jsonl").write_text('{"text": "reach me at x@y.com"}\n{"text": "fine"}\n')
    (tmp_path / "vocab.txt").write_text("a@b.com\n")
    (tmp_path / "model.safetensors").write_bytes(b"\x00\x01a@b.com")
    (tmp_path / "weird.txt").write_bytes(b"ab\x00cd a@b.com")
    report = regex.scan_directory(tmp_path)
    assert report.count == 1 and report.by_kind == {"EMAIL": 1}
    assert report.files == {"config.json": 0, "sub/samples.jsonl": 1}
    assert set(report.skipped) == {"vocab.txt", "model.safetensors", "weird.txt"}
    assert regex.scan_directory(tmp_path / "missing").skipped


# ------------------------------------------------------------------------------- NER


@pytest.fixture(scope="module")
def ner() -> PiiScanner:
    analyzer, reason = load_ner_analyzer()
    if analyzer is None:
        pytest.skip(reason or "NER unavailable")
    return PiiScanner(use_ner=True)


def test_ner_finds_people_and_places_and_keeps_regex_kinds(ner: PiiScanner) -> None:
    text = "Maria Gonzalez moved to Madrid; her number is 212-555-0187 and mail maria@example.com."
    found = {(s.kind, s.text) for s in ner.find(text)}
    assert ("PERSON", "Maria Gonzalez") in found
    assert ("LOCATION", "Madrid") in found
    assert ("PHONE", "212-555-0187") in found  # not UK_NHS
    assert ("EMAIL", "maria@example.com") in found
    assert ner.ner_used and ner.ner_reason is None
    assert "Maria" not in ner.mask(text)


def test_ner_unavailable_degrades_with_reason() -> None:
    scanner = PiiScanner(ner_model="no_such_spacy_model_xyz")
    assert not scanner.ner_used and "not installed" in (scanner.ner_reason or "")
    assert [s.kind for s in scanner.find("a@b.org")] == ["EMAIL"]
    from domainfm.errors import ConfigError

    with pytest.raises(ConfigError, match="not installed"):
        PiiScanner(use_ner=True, ner_model="no_such_spacy_model_xyz")


def test_ner_in_artifacts_ignores_identifiers_and_literals(ner: PiiScanner, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        '{"model_type": "bert", "ben": null, "path": "/tmp/ben/tiny", "labels": ["billing", "Jordan"],'
        ' "note": "trained by Maria Gonzalez in Madrid"}'
    )
    (tmp_path / "log.txt").write_text("null\nstep 10 loss 0.5\n")
    report = ner.scan_directory(tmp_path)
    assert report.by_kind == {"LOCATION": 1, "PERSON": 1}
    assert report.files == {"config.json": 2, "log.txt": 0}
    assert ner.find("null") == [] and ner.find('"x": null') == []


def test_public_phrases_keep_whole_names_and_word_runs_but_not_lone_words() -> None:
    phrases = public_phrases(["Toy Story 2 (1999)", "Nokia", "  ", "John Wick"])
    assert {"toy story 2 1999", "toy story", "story 2", "nokia", "john wick"} <= phrases
    assert "toy" not in phrases and "john" not in phrases and "wick" not in phrases
    assert "" not in phrases


@pytest.mark.parametrize(
    ("text", "span", "public"),
    [
        ("liked together with 'Map and Compass Navigation' (item w40)", "Map", True),
        ("John Wick is back", "John", True),
        ("John called yesterday", "John", False),
        ("Nokia shares fell", "Nokia", True),
        ("Map the route", "Map", False),
        ("watched Toy Story 2 again", "Toy Story", True),
    ],
)
def test_a_span_is_public_only_inside_a_public_name_in_its_text(text: str, span: str, public: bool) -> None:
    phrases = public_phrases(["Map and Compass Navigation", "John Wick", "Nokia", "Toy Story 2 (1999)"])
    start = text.index(span)
    assert within_public_name(text, start, start + len(span), phrases) is public


def test_public_names_are_not_counted_as_people_but_other_names_are(ner: PiiScanner) -> None:
    text = "Review: Forrest Gump was moving. Maria Gonzalez wrote it."
    plain = {s.text for s in ner.find(text) if s.kind == "PERSON"}
    assert {"Forrest Gump", "Maria Gonzalez"} <= plain, plain
    catalogue = PiiScanner(use_ner=True, public_names=["Forrest Gump (1994)"])
    people = {s.text for s in catalogue.find(text) if s.kind == "PERSON"}
    assert "Forrest Gump" not in people and "Maria Gonzalez" in people
    # identifiers are never excused by a public name
    card = PiiScanner(use_ner=True, public_names=["maria@example.com"])
    assert [s.kind for s in card.find("write to maria@example.com")] == ["EMAIL"]


# ------------------------------------------------------------------------------- real data


def _shared_data() -> Path:
    import os

    env = os.environ.get("DOMAINFM_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.mark.shared_data
def test_validated_recognisers_do_not_fire_on_banking77(regex: PiiScanner) -> None:
    """BANKING77's customer queries hold no identifiers: the regex recognisers must stay silent on them."""
    import csv

    folder = _shared_data() / "customer_service"
    files = [folder / "banking77_train.csv", folder / "banking77_test.csv"]
    if not all(f.is_file() for f in files):
        pytest.skip(f"shared data not found under {folder} (set DOMAINFM_SHARED_DATA)")
    texts = [row["text"] for f in files for row in csv.DictReader(f.open(encoding="utf-8"))]
    assert len(texts) > 13000
    report = regex.scan_texts(texts)
    assert report.n_with_pii <= len(texts) * 0.0005, report.examples
