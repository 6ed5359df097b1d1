"""Regex recognisers for structured identifiers, each with its validator.

Validation (Luhn for payment cards, ISO 7064 mod-97 for IBANs, SSA rules for US SSNs, octet ranges for IPv4)
keeps these results independent of any statistical model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PiiSpan:
    """One piece of personal data found in a text: its kind, character offsets, the text and a score."""

    kind: str
    start: int
    end: int
    text: str
    score: float


# --------------------------------------------------------------------------------------- validators


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum used by payment card numbers (``digits`` holds digits only)."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# ISO 13616 IBAN lengths per country (the common ones; other countries get the 15-34 generic range).
_IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20,
    "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25,
    "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26, "AE": 23, "SA": 24, "IL": 23,
}


def iban_valid(iban: str) -> bool:
    """ISO 7064 mod-97 check of an IBAN (spaces allowed), with the country's length when known."""
    s = re.sub(r"\s+", "", iban).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", s):
        return False
    expected = _IBAN_LENGTHS.get(s[:2])
    if expected is not None and len(s) != expected:
        return False
    rearranged = s[4:] + s[:4]
    numeric = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(numeric) % 97 == 1


def ssn_valid(ssn: str) -> bool:
    """US SSN structure rules: area not 000/666/9xx, group not 00, serial not 0000."""
    m = re.fullmatch(r"(\d{3})[- ]?(\d{2})[- ]?(\d{4})", ssn)
    if not m:
        return False
    area, group, serial = m.groups()
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _ipv4_valid(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) <= 255 and (p == "0" or not p.startswith("0")) for p in parts)


def _card_grouping_ok(text: str) -> bool:
    """13-19 digits, written solid or in the groups cards are printed in (4-4-4-4[-3], Amex 4-6-5)."""
    groups = [len(g) for g in re.split(r"[ -]", text)]
    if not 13 <= sum(groups) <= 19:
        return False
    if len(groups) == 1:
        return True
    if groups in ([4, 6, 5], [4, 6, 4]):
        return True
    return all(g == 4 for g in groups[:-1]) and 3 <= groups[-1] <= 4


def _phone_valid(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    if not 9 <= len(digits) <= 15:
        return False
    return len(set(digits)) > 2  # 000-000-0000 and the like are placeholders, not numbers


# --------------------------------------------------------------------------------------- recognisers


@dataclass(frozen=True)
class Recognizer:
    """A regex with an optional validator; ``priority`` decides which of two overlapping spans wins."""

    kind: str
    pattern: re.Pattern[str]
    score: float
    priority: int
    validate: Callable[[str], bool] | None = None
    group: int | str = 0  # the group holding the identifier (the rest of the match is context that introduces it)


_B = r"(?<![\w@.+-])"  # left boundary: not inside a word, an email or a longer number
_E = r"(?![\w@]|[.-]\w)"  # right boundary

RECOGNIZERS: tuple[Recognizer, ...] = (
    Recognizer(
        "EMAIL",
        re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?![\w-])"),
        0.95,
        100,
    ),
    Recognizer(
        "IBAN",
        re.compile(_B + r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?" + _E),
        0.95,
        90,
        iban_valid,
    ),
    Recognizer(
        "CARD",
        # not glued to a longer digit run ("DE89 3704 ..." is an IBAN's tail, not a card)
        re.compile(_B + r"(?<!\d[ -])(?:\d[ -]?){12,18}\d" + r"(?![\w@]|[.-]\w|[ -]\d)"),
        0.9,
        80,
        lambda s: _card_grouping_ok(s) and luhn_valid(re.sub(r"\D", "", s)),
    ),
    Recognizer("SSN", re.compile(_B + r"\d{3}-\d{2}-\d{4}" + _E), 0.85, 70, ssn_valid),
    Recognizer(
        "IP",
        re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)"),
        0.9,
        60,
        _ipv4_valid,
    ),
    Recognizer(
        "IP",
        re.compile(
            r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])"
            r"|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4}(?![\w:])"
        ),
        0.85,
        60,
    ),
    Recognizer(
        "ACCOUNT",
        re.compile(
            r"(?i)\b(?:account|acct|a/c|acc)(?:\s*(?:number|no\.?|num|#))?\s*[:#]?\s*"
            r"(\d(?:[ -]?\d){5,16})(?!\d)"
        ),
        0.8,
        55,
        group=1,
    ),
    Recognizer(
        "PHONE",
        re.compile(
            _B
            + r"(?<!\d[ -])(?:"
            + r"(?:\+|00)[1-9]\d{0,2}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]?\d{2,5}){1,4}"  # international
            + r"|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}"  # (415) 555-0132
            + r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 415-555-0132, 415.555.0132
            + r"|0\d{2,4}[ -]?\d{3,4}[ -]?\d{3,4}"  # national trunk prefix: 020 7946 0958, 07700 900123
            + r")"
            + _E
        ),
        0.75,
        50,
        _phone_valid,
    ),
)

DATE_RECOGNIZER = Recognizer(
    "DATE",
    re.compile(
        r"(?i)\b(?:\d{4}-\d{2}-\d{2}|\d{1,2}[/.]\d{1,2}[/.](?:\d{4}|\d{2})"
        r"|\d{1,2} (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]* \d{4}"
        r"|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]* \d{1,2},? \d{4})\b"
    ),
    0.6,
    40,
)


# --------------------------------------------------------------------------------------- NER engine
