"""domainfm.text_terms: stemming, content terms, overlap, the closest reference and what a text leaves out."""

from __future__ import annotations

from domainfm.text_terms import closest_reference, content_terms, has_negation, missing_terms, overlap, stem


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



def test_negation_is_found_in_contractions() -> None:
    assert has_negation("The circuit isn't closed.") and has_negation("no current flows")
    assert not has_negation("The circuit is closed.")
