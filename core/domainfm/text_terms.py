"""Content terms of short texts: which key words of a reference text another text contains.

Words are compared after lower-casing, dropping stop words and a light suffix stemming, so that
"moves"/"moving"/"move" match. Enough to pick the reference closest to an answer, measure overlap, or say what an
answer leaves out (feedback on a short answer, a checklist of points a reply should cover); no model involved::

    closest_reference(["The heart pumps blood.", "Plants need light."], "light lets plants grow")   # 1
    missing_terms("Plants need light for photosynthesis.", "light lets plants grow")          # ['need', 'photosynthesis']
"""

from __future__ import annotations

import re
from collections.abc import Sequence

STOP_WORDS = frozenset(
    """a an the and or but if then so because as of to in on at by for with from into onto over under
    is are was were be been being am do does did done has have had having it its this that these those
    there their they them he she his her we our you your i me my not no nor can could would should will
    shall may might must also than too very just only more most less such which who whom what when where
    why how all any each both some other same own up down out off again further once here about against
    between through during before after above below same one two get gets got make makes made""".split()
)
WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
NEGATIONS = frozenset({"not", "no", "never", "cannot", "nothing", "none", "neither", "nor"})


def stem(word: str) -> str:
    """A light, deterministic suffix stripper (enough for matching inflections in short answers)."""
    for suffix in ("ing", "edly", "ed", "ies", "es", "s", "ly"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            if suffix == "es" and not word[:-2].endswith(("s", "x", "z", "ch", "sh")):
                continue  # "moves" -> "move" (then "mov"), but "boxes" -> "box"
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def content_terms(text: str) -> list[str]:
    """Content words of ``text`` in order of first appearance (original spelling, lower case)."""
    seen: set[str] = set()
    out = []
    for word in WORD.findall(text.lower().replace("n't", " not")):
        if word in STOP_WORDS or len(word) < 2:
            continue
        key = stem(word)
        if key not in seen:
            seen.add(key)
            out.append(word)
    return out


def overlap(reference: str, answer: str) -> float:
    """Share of the reference's content terms (stemmed) that the answer contains, in [0, 1]."""
    ref = {stem(w) for w in content_terms(reference)}
    if not ref:
        return 0.0
    ans = {stem(w) for w in content_terms(answer)}
    return len(ref & ans) / len(ref)


def closest_reference(references: Sequence[str], answer: str) -> int:
    """Index of the reference with the highest term overlap with ``answer`` (ties: the first)."""
    scores = [overlap(r, answer) for r in references]
    return max(range(len(references)), key=lambda i: (scores[i], -i))


def missing_terms(reference: str, answer: str, limit: int = 5) -> list[str]:
    """The reference's content terms the answer lacks, in reference order, at most ``limit``."""
    ans = {stem(w) for w in content_terms(answer)}
    return [w for w in content_terms(reference) if stem(w) not in ans][:limit]




def has_negation(text: str) -> bool:
    """Whether ``text`` says "not" (or another negation word, ``n't`` included)."""
    return any(w in NEGATIONS for w in WORD.findall(text.lower().replace("n't", " not")))
