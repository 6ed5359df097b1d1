"""Masking personal data before anything is indexed, logged or stored (a retrieval index, feedback, training text).

Uses :class:`domainfm.privacy.PiiScanner` (regex recognisers with validation, plus presidio NER for names when
the offline spaCy model is installed); one scanner per setting is shared by the process, since loading NER
takes seconds::

    masker = Masker(use_ner=None)        # None: NER when installed
    masker.mask_many(["mail ann@example.org"])   # ['mail <EMAIL>']
    masker.count(texts)                  # findings left (0 after masking)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any


@functools.lru_cache(maxsize=2)
def get_scanner(use_ner: bool | None = None) -> Any:
    """A process-wide PII scanner (NER is loaded once; it takes a few seconds)."""
    from domainfm.privacy import PiiScanner

    return PiiScanner(use_ner=use_ner)


class Masker:
    """Replace personal data by typed placeholders such as ``<EMAIL>``, ``<CARD>`` or ``<PERSON>``."""

    def __init__(self, use_ner: bool | None = None) -> None:
        self.scanner = get_scanner(use_ner)

    @property
    def ner_used(self) -> bool:
        return bool(self.scanner.ner_used)

    def mask(self, text: str) -> str:
        return str(self.scanner.mask(text))

    def mask_many(self, texts: Sequence[str]) -> list[str]:
        from domainfm.privacy import mask_spans

        spans = self.scanner.find_many(list(texts))
        return [mask_spans(t, s) for t, s in zip(texts, spans, strict=True)]

    def count(self, texts: Sequence[str]) -> int:
        """How many PII findings remain in ``texts`` (0 after masking is what the privacy constraint checks)."""
        return int(self.scanner.scan_texts(list(texts)).count)
