"""Recognisers that need context words or free-text layout: dates in prose, record numbers introduced by a
keyword, street addresses and postcodes, URLs, names after a title or an introduction, long digit runs.

They complement :data:`~domainfm.privacy.recognizers.RECOGNIZERS` (structured identifiers with validators) for
free text written by people (clinical notes, support tickets), where an identifier is often recognisable only
by the words around it. :class:`~domainfm.privacy.scanner.PiiScanner` adds them with ``dates=True`` (the date
recognisers) and ``context=True`` (the others).

Durations ("for three days", "since last week") are not dates: they carry a symptom or incident timeline,
not a person.
"""

from __future__ import annotations

import re

from domainfm.privacy.recognizers import Recognizer

_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_TITLE = r"(?:dr|mr|mrs|ms|miss|mx|prof|nurse|sister)\.?"
_NAME_WORD = r"(?!(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Nurse|Sister|The|My|I)\b)(?-i:[A-Z][a-z'’\-]+)"
_STREET = (
    r"(?:street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|blvd|court|ct|place|pl|way|close|"
    r"terrace|crescent|square|sq|parkway|highway|hwy)"
)


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


DATE_RECOGNIZERS: tuple[Recognizer, ...] = (
    # one separator throughout (12/03/2024, 12.03.24), so that 5.0/10 is not a date
    Recognizer("DATE", _rx(r"\b\d{1,2}([/.\-])\d{1,2}\1(?:\d{4}|\d{2})\b"), 0.9, 44),
    Recognizer("DATE", _rx(r"\b\d{4}-\d{2}-\d{2}\b"), 0.95, 44),
    Recognizer("DATE", _rx(rf"\b\d{{1,2}}(?:st|nd|rd|th)?(?:\s+of)?\s+{_MONTHS}\.?,?(?:\s+\d{{4}})?\b"), 0.85, 44),
    Recognizer("DATE", _rx(rf"\b{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b"), 0.85, 44),
    Recognizer("DATE", _rx(rf"\b{_MONTHS}\.?\s+\d{{4}}\b"), 0.8, 44),
    Recognizer(
        "DATE", _rx(r"\b(?:born|dob|d\.o\.b\.?|date of birth)(?:\s*(?:is|was|on|in|[:=]))?\s{0,3}(?P<v>\d{4})\b"),
        0.9, 44, group="v",
    ),
)
"""Dates in prose: numeric, ISO, with month names, and birth years after "born"/"DOB"."""

CONTEXT_RECOGNIZERS: tuple[Recognizer, ...] = (
    Recognizer("URL", _rx(r"\b(?:https?://|www\.)\S+?(?=[.,;:)]?(?:\s|$))"), 0.8, 95),
    # record / ID numbers introduced by a keyword: "MRN 00123456", "patient ID: AB-1234", "NHS no. 943 476 5919"
    Recognizer(
        "ID",
        _rx(
            r"\b(?:mrn|mr#|medical record(?: number| no\.?)?|record (?:number|no\.?|#)|patient id|"
            r"hospital (?:number|no\.?)|nhs(?: number| no\.?)?|ssn|social security(?: number| no\.?)?|"
            r"insurance (?:number|no\.?|id)|policy (?:number|no\.?)|member id|id(?: number| no\.?)?|"
            r"passport (?:number|no\.?)|licen[cs]e (?:number|no\.?)|case (?:number|no\.?|#)|"
            r"customer (?:number|no\.?|id)|order (?:number|no\.?|#)|ticket (?:number|no\.?|#))"
            r"(?:\s*(?:is|was|[:#=]))?\s{0,3}(?P<v>[A-Z]{0,4}[\-/]?\d[\dA-Z]*(?:[\-/ ]\d[\dA-Z]*){0,3})\b"
        ),
        0.95, 75, group="v",
    ),
    Recognizer("ID", re.compile(r"\b[A-Z]{1,4}[-/]?\d{5,12}\b"), 0.7, 72),  # record-like codes: AB123456, HX-55812
    # street addresses: 221B Baker Street, 1600 Pennsylvania Ave NW, Flat 3, 12 High St
    Recognizer(
        "ADDRESS",
        _rx(
            rf"\b(?:(?:flat|apt|apartment|unit|suite)\s*\d+[a-z]?,?\s+)?\d{{1,5}}[a-z]?\s+(?:{_NAME_WORD}\s+){{1,3}}"
            rf"{_STREET}\b\.?(?:\s*(?:NW|NE|SW|SE|N|S|E|W)\b)?"
        ),
        0.9, 43,
    ),
    Recognizer("ADDRESS", re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b"), 0.8, 43),  # UK postcode: SW1A 1AA
    Recognizer("ADDRESS", re.compile(r"\b[A-Z]{2}\s(?P<v>\d{5}(?:-\d{4})?)\b"), 0.6, 43, group="v"),  # NY 10001
    # names after a title or an introduction: "Dr. Okafor", "Mrs Jane Doe", "my name is Ana Lima"
    Recognizer("PERSON", _rx(rf"\b{_TITLE}\s+(?P<v>{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})"), 0.9, 35, group="v"),
    Recognizer(
        "PERSON",
        _rx(
            r"\b(?:my name is|name:|patient:?|patient name:|i am|i'm|this is|signed|regards,|seen by|referred by)\s+"
            rf"(?P<v>{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})"
        ),
        0.75, 35, group="v",
    ),
    Recognizer("ID", re.compile(r"(?<![\w.])\d{7,}(?![\w.])"), 0.6, 20),  # a long digit run nothing else claimed
)
"""Identifiers recognisable by the words around them (priorities place them among the structured ones: a
keyword-introduced record number beats a phone pattern inside it, a validated IBAN or card beats both)."""
