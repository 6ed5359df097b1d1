"""Feedback text: what a student answer misses relative to the closest reference answer.

Content words are compared after lower-casing, dropping stop words and a light suffix stemming, so that
"moves"/"moving"/"move" match. The feedback names the reference's key terms the answer does not contain;
it is a study hint next to the grade, not the grade itself.
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
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_NEGATIONS = frozenset({"not", "no", "never", "cannot", "nothing", "none", "neither", "nor"})


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
    for word in _WORD.findall(text.lower().replace("n't", " not")):
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


def _negation_mismatch(reference: str, answer: str) -> bool:
    ref_neg = any(w in _NEGATIONS for w in _WORD.findall(reference.lower().replace("n't", " not")))
    ans_neg = any(w in _NEGATIONS for w in _WORD.findall(answer.lower().replace("n't", " not")))
    return ref_neg != ans_neg


def feedback_text(label: str | None, reference: str, answer: str) -> str:
    """One or two sentences of feedback for ``answer`` graded ``label`` against its closest ``reference``."""
    missing = missing_terms(reference, answer)
    if label == "correct":
        if missing:
            return f"Correct. To be complete you could also mention: {', '.join(missing)}."
        return "Correct: your answer covers the key points of the reference answer."
    lead = "Your answer contradicts the reference answer" if label == "contradictory" else "Not yet correct"
    if label == "contradictory" and _negation_mismatch(reference, answer):
        lead += " (check the negation: one says 'not' where the other does not)"
    if missing:
        return f"{lead}. It does not mention: {', '.join(missing)}. Compare with: \"{reference}\""
    return f"{lead}. It uses the right words but not the right relation. Compare with: \"{reference}\""
