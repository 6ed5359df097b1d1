"""Feedback text: what a student answer misses relative to the closest reference answer.

The feedback names the reference's key terms the answer does not contain (:mod:`domainfm.text_terms`); it is a
study hint next to the grade, not the grade itself.
"""

from __future__ import annotations

from domainfm.text_terms import has_negation, missing_terms


def feedback_text(label: str | None, reference: str, answer: str) -> str:
    """One or two sentences of feedback for ``answer`` graded ``label`` against its closest ``reference``."""
    missing = missing_terms(reference, answer)
    if label == "correct":
        if missing:
            return f"Correct. To be complete you could also mention: {', '.join(missing)}."
        return "Correct: your answer covers the key points of the reference answer."
    lead = "Your answer contradicts the reference answer" if label == "contradictory" else "Not yet correct"
    if label == "contradictory" and has_negation(reference) != has_negation(answer):
        lead += " (check the negation: one says 'not' where the other does not)"
    if missing:
        return f"{lead}. It does not mention: {', '.join(missing)}. Compare with: \"{reference}\""
    return f"{lead}. It uses the right words but not the right relation. Compare with: \"{reference}\""
