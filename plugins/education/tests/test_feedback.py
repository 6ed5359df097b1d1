"""Feedback: the text shown to the student."""

from __future__ import annotations

from domainfm_education.feedback import feedback_text


def test_feedback_names_what_is_missing() -> None:
    text = feedback_text("incorrect", "Water, warmth and air.", "It needs water")
    assert "warmth" in text and "air" in text and "Not yet correct" in text
    assert feedback_text("correct", "Water and air.", "water and air").startswith("Correct:")
    contra = feedback_text("contradictory", "The circuit is not closed.", "The circuit is closed.")
    assert "contradicts" in contra and "negation" in contra
