"""The scanner: regex recognisers plus NER over texts and directories, masking, and the scan report."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domainfm.privacy.files import MAX_FILE_BYTES, file_texts, skip_reason
from domainfm.privacy.ner import NER_ENTITIES, NER_MIN_SCORE, NER_MODEL, load_ner_analyzer
from domainfm.privacy.public_names import public_phrases, within_public_name
from domainfm.privacy.context import CONTEXT_RECOGNIZERS, DATE_RECOGNIZERS
from domainfm.privacy.recognizers import DATE_RECOGNIZER, RECOGNIZERS, PiiSpan, Recognizer

NerFilter = Callable[[str, int, int], bool]
"""``(text, start, end) -> True`` to drop a NER span (e.g. an eponymous disease name tagged as a person)."""


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


class PiiScanner:
    """Regex recognisers for structured identifiers plus presidio NER for names and places.

    :param use_ner: True requires NER (raises if unavailable), False never uses it, None (default) uses it
        when installed and records why not otherwise in :attr:`ner_reason`.
    :param dates: also report dates (off by default: most dates in business text are not personal data);
        with ``context`` the prose date formats of :data:`~domainfm.privacy.context.DATE_RECOGNIZERS` too.
    :param context: also the recognisers that need context words or free-text layout
        (:data:`~domainfm.privacy.context.CONTEXT_RECOGNIZERS`: keyword-introduced record numbers, street
        addresses, URLs, names after a title): what de-identifying free text written by people needs.
    :param ner_filter: drops NER spans it returns True for (domain knowledge such as eponymous disease names).
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
        context: bool = False,
        ner_filter: NerFilter | None = None,
    ) -> None:
        self.public_phrases = public_phrases(public_names)
        self.recognizers: list[Recognizer] = list(RECOGNIZERS)
        if dates:
            self.recognizers += [DATE_RECOGNIZER, *DATE_RECOGNIZERS] if context else [DATE_RECOGNIZER]
        if context:
            self.recognizers += CONTEXT_RECOGNIZERS
        self.ner_filter = ner_filter
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
                if not value or (rec.validate is not None and not rec.validate(value)):
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
                    and not (self.ner_filter is not None and self.ner_filter(text, r.start, r.end))
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
            why = skip_reason(file, max_file_bytes)
            if why:
                report.skipped[rel] = why
                continue
            try:
                texts = file_texts(file)
            except UnicodeDecodeError:
                report.skipped[rel] = "not UTF-8 text"
                continue
            # names only occur in prose: single tokens in configs ("bert", a path) are identifiers
            part = self.scan_texts(texts, max_examples=max_examples, label=rel, ner_if=_is_prose)
            part.files = {rel: part.count}
            report = report.merge(part, max_examples=max_examples)
        return report


def placeholder(kind: str) -> str:
    """The product's one mask vocabulary: what replaces a span of ``kind`` (``<EMAIL>``, ``<PERSON>``...)."""
    return f"<{kind}>"


def mask_spans(text: str, spans: Iterable[PiiSpan]) -> str:
    """Replace ``spans`` (non-overlapping) in ``text`` by their :func:`placeholder`."""
    out = text
    for s in sorted(spans, key=lambda s: s.start, reverse=True):
        out = out[: s.start] + placeholder(s.kind) + out[s.end :]
    return out


def _resolve_overlaps(candidates: list[tuple[PiiSpan, int]]) -> list[PiiSpan]:
    # Higher priority first, then longer spans: a card number beats the phone pattern inside it.
    ordered = sorted(candidates, key=lambda c: (-c[1], -(c[0].end - c[0].start), c[0].start))
    kept: list[PiiSpan] = []
    for span, _ in ordered:
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


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
