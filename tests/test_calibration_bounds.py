"""A temperature fitted at its bound is detected; the calibrator falls back and the artifact says why (issue 22.3)."""

from __future__ import annotations

import numpy as np

from domainfm.engine.calibration import (
    TEMPERATURE_BOUNDS,
    Calibrator,
    fit_calibrator,
    fit_temperature,
    fit_temperature_calibrator,
    temperature_at_bound,
)


def separated_logits(n: int = 60, k: int = 14, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Small logits (a head trained for a few steps) whose argmax is right for every item: the customer_service
    demo's validation split, where the NLL-optimal temperature runs to the lower bound."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    z = rng.normal(0.0, 0.05, size=(n, k))
    z[np.arange(n), y] += 1.0
    return z, y


def test_separated_validation_drives_temperature_to_its_lower_bound() -> None:
    z, y = separated_logits()
    t = fit_temperature(z, y)
    assert temperature_at_bound(t) == "lower"
    # what the demo showed: every answered item at confidence 1.000
    assert Calibrator("temperature", t).apply(z).max(1).min() > 0.999


def test_bound_temperature_falls_back_with_a_reason() -> None:
    z, y = separated_logits()
    calibrator = fit_temperature_calibrator(z, y)
    assert calibrator.kind in ("none", "top_isotonic")
    assert calibrator.note is not None and "lower bound 0.05" in calibrator.note
    assert calibrator.rejected_temperature is not None and calibrator.rejected_temperature < 0.051
    confidence = calibrator.apply(z).max(1)
    assert confidence.max() < 0.999  # no longer claims certainty
    # fit_calibrator("temperature") (what choose_calibrator compares) falls back the same way
    assert fit_calibrator("temperature", z, y).kind == calibrator.kind


def test_fallback_note_round_trips_through_artifact_metadata() -> None:
    z, y = separated_logits()
    calibrator = fit_temperature_calibrator(z, y)
    metadata = {"calibrator": calibrator.to_metadata(), "temperature": calibrator.temperature}
    assert "bound" in metadata["calibrator"]["note"]
    loaded = Calibrator.from_metadata(metadata)
    assert loaded == calibrator
    np.testing.assert_allclose(loaded.apply(z), calibrator.apply(z))


def test_few_items_fall_back_to_no_scaling() -> None:
    z, y = separated_logits(n=6)
    calibrator = fit_temperature_calibrator(z, y)
    assert calibrator.kind == "none"
    assert calibrator.note is not None and "too few" in calibrator.note


def test_uninformative_logits_hit_the_upper_bound() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=300)
    z = np.zeros((300, 3))
    z[np.arange(300), (y + 1) % 3] = 5.0  # confidently wrong every time
    calibrator = fit_temperature_calibrator(z, y)
    assert calibrator.kind != "temperature"
    assert calibrator.note is not None and f"upper bound {TEMPERATURE_BOUNDS[1]:g}" in calibrator.note


def test_an_interior_temperature_is_kept() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=2000)
    z = rng.normal(size=(2000, 3))
    z[np.arange(2000), y] += 1.0
    z *= 6.0  # overconfident, but not separated
    calibrator = fit_temperature_calibrator(z, y)
    assert calibrator.kind == "temperature" and calibrator.note is None
    assert temperature_at_bound(calibrator.temperature) is None
    assert "note" not in calibrator.to_metadata()


def test_choose_calibrator_serves_the_fallback_and_says_so() -> None:
    from domainfm.engine.calibration import choose_calibrator

    z, y = separated_logits(n=80)
    calibrator, report = choose_calibrator(z, y, ("temperature",))
    assert calibrator.kind == report["chosen"] != "temperature"
    assert report["fallback"]["from"] == "temperature" and "lower bound" in report["fallback"]["note"]
