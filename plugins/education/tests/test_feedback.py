"""Feedback: closest reference, missing terms, the text shown to the student."""

from __future__ import annotations

from domainfm_education.feedback import closest_reference, content_terms, feedback_text, missing_terms, overlap, stem


def test_stemming_matches_inflections() -> None:
    assert stem("moves") == stem("move") == stem("moving") == stem("moved")
    assert stem("batteries") == "battery" and stem("boxes") == "box"


def test_closest_reference_and_missing_terms() -> None:
    refs = ["The heart pumps blood around the body.", "Plants need light for photosynthesis."]
    answer = "Light lets plants make food"
    assert closest_reference(refs, answer) == 1
    assert missing_terms(refs[1], answer) == ["need", "photosynthesis"]
    assert overlap(refs[1], answer) == 0.5
    assert "the" not in content_terms(refs[0])


def test_feedback_names_what_is_missing() -> None:
    text = feedback_text("incorrect", "Water, warmth and air.", "It needs water")
    assert "warmth" in text and "air" in text and "Not yet correct" in text
    assert feedback_text("correct", "Water and air.", "water and air").startswith("Correct:")
    contra = feedback_text("contradictory", "The circuit is not closed.", "The circuit is closed.")
    assert "contradicts" in contra and "negation" in contra
