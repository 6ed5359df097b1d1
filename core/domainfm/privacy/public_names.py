"""Public names (catalogue titles, company names) that a small NER model mistakes for people or places."""

from __future__ import annotations

import re
from collections.abc import Iterable

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
