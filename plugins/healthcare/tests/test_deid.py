"""De-identification: typed placeholders, no over-redaction, measured recall on the probe set."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domainfm_healthcare.deid import Deidentifier, redact_for_message
from domainfm_healthcare.deid_eval import evaluate_deidentifier, load_probe

PATTERNS = Deidentifier(use_ner=False)


@pytest.fixture(scope="module")
def ner() -> Deidentifier:
    return Deidentifier()


@pytest.mark.parametrize(
    ("text", "secret", "placeholder"),
    [
        ("Call me on (555) 123-4567 tonight.", "(555) 123-4567", "<PHONE>"),
        ("Mobile +44 20 7946 0958 please.", "+44 20 7946 0958", "<PHONE>"),
        ("Write to jo.bloggs@example.org about it.", "jo.bloggs@example.org", "<EMAIL>"),
        ("Seen on 12/03/2024 in clinic.", "12/03/2024", "<DATE>"),
        ("Admitted 3 March 2024 with fever.", "3 March 2024", "<DATE>"),
        ("MRN 00482913, recurrent cough.", "00482913", "<ID>"),
        ("NHS number 943 476 5919.", "943 476 5919", "<ID>"),
        ("SSN 123-45-6789 on file.", "123-45-6789", "<ID>"),
        ("I live at 221B Baker Street.", "221B Baker Street", "<ADDRESS>"),
        ("Referred by Dr. Okonkwo for review.", "Okonkwo", "<PERSON>"),
        ("See https://portal.example.com/p/77 for results.", "https://portal.example.com/p/77", "<URL>"),
    ],
)
def test_pattern_identifiers_become_typed_placeholders(text: str, secret: str, placeholder: str) -> None:
    result = PATTERNS.deidentify(text)
    assert secret not in result.text
    assert placeholder in result.text


@pytest.mark.parametrize(
    "text",
    [
        "I have had a fever for the past three days and pain behind my eyes since last week.",
        "Blood pressure 150/95 mmHg, temperature 38.9 C, 500 mg twice daily for 7 days.",
        "Parkinson's disease and Crohn disease were excluded; Hodgkin lymphoma in 12 of 40 patients.",
    ],
)
def test_clinical_text_without_identifiers_is_unchanged(ner: Deidentifier, text: str) -> None:
    assert ner.deidentify(text).text == text


def test_ner_finds_free_standing_names_patterns_alone_do_not(ner: Deidentifier) -> None:
    text = "Yesterday Amara Okonkwo felt dizzy at work."
    assert "Okonkwo" in PATTERNS.deidentify(text).text
    result = ner.deidentify(text)
    assert "Okonkwo" not in result.text and "<PERSON>" in result.text
    assert result.counts == {"PERSON": 1}


def test_probe_set_recall_and_precision(ner: Deidentifier) -> None:
    rows = load_probe()
    assert len(rows) >= 100 and sum(len(r["identifiers"]) for r in rows) >= 200
    report = evaluate_deidentifier(ner, rows)
    assert report["deid_recall"] >= 0.95, report
    assert report["deid_precision"] >= 0.9, report
    assert set(report["recall_by_kind"]) == {"PERSON", "DATE", "PHONE", "EMAIL", "ADDRESS", "ID"}


def test_probe_name_recall_drops_without_ner(ner: Deidentifier) -> None:
    rows = load_probe()
    with_patterns = evaluate_deidentifier(PATTERNS, rows)
    with_ner = evaluate_deidentifier(ner, rows)
    assert with_patterns["recall_by_kind"]["PERSON"] < with_ner["recall_by_kind"]["PERSON"]
    assert with_patterns["recall_by_kind"]["EMAIL"] == 1.0


def test_unknown_kind_rejected() -> None:
    with pytest.raises(ValueError, match="unknown identifier kinds"):
        Deidentifier(use_ner=False, kinds=["PERSON", "BLOOD_TYPE"])


def test_error_messages_are_redacted() -> None:
    assert "x@example.com" not in redact_for_message("contact x@example.com")


_words = st.lists(st.sampled_from(["pain", "cough", "rash", "fever", "tired", "since", "my", "knee", "and"]), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    before=_words,
    after=_words,
    user=st.from_regex(r"[a-z]{2,8}(\.[a-z]{2,6})?", fullmatch=True),
    domain=st.from_regex(r"[a-z]{3,10}\.(com|org|net|co\.uk)", fullmatch=True),
    area=st.integers(200, 999),
    number=st.integers(1000000, 9999999),
)
def test_planted_emails_and_phones_never_survive(
    before: list[str], after: list[str], user: str, domain: str, area: int, number: int
) -> None:
    email = f"{user}@{domain}"
    phone = f"({area}) {str(number)[:3]}-{str(number)[3:]}"
    text = " ".join(before) + f" {email} " + " ".join(after) + f" call {phone}."
    out = PATTERNS.deidentify(text).text
    assert email not in out and phone not in out
    assert "<EMAIL>" in out and "<PHONE>" in out
    assert out.startswith(" ".join(before))  # surrounding words are untouched
