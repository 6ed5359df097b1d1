"""Post-hoc calibrators: vector scaling, top-label isotonic, metadata round trip, cross-validated choice."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from domainfm.engine.calibration import (
    Calibrator,
    choose_calibrator,
    ece_noise_floor,
    expected_calibration_error,
    fit_calibrator,
    fit_top_isotonic,
    softmax,
)


def class_biased_logits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(true logits); the model reports them with a per-class scale and shift,
    a miscalibration one temperature cannot undo."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0, 2.0, size=(n, 4))
    y = np.array([rng.choice(4, p=p) for p in softmax(true)])
    reported = true * np.array([2.5, 0.6, 1.0, 1.8]) + np.array([1.0, -0.5, 0.0, 0.4])
    return reported, y


def held_out_ece(make: Any, kinds: tuple[str, ...]) -> dict[str, float]:
    """Each kind fitted on one draw of ``make`` (3,000 items, seed 1) and scored on another (seed 2)."""
    (fit_z, fit_y), (test_z, test_y) = make(3000, seed=1), make(3000, seed=2)
    return {kind: expected_calibration_error(fit_calibrator(kind, fit_z, fit_y).apply(test_z), test_y) for kind in kinds}


def test_vector_scaling_fixes_class_wise_miscalibration_that_temperature_cannot() -> None:
    fit_z, fit_y = class_biased_logits(3000, seed=1)
    ece = held_out_ece(class_biased_logits, ("none", "temperature", "vector"))
    assert ece["vector"] < 0.03 < ece["temperature"] <= ece["none"] + 0.02
    vector = fit_calibrator("vector", fit_z, fit_y)
    assert vector.scale is not None and np.allclose(np.asarray(vector.scale) * [2.5, 0.6, 1.0, 1.8], 1.0, atol=0.2)


def test_choose_calibrator_picks_by_out_of_fold_ece_and_refits_on_everything() -> None:
    z, y = class_biased_logits(1500, seed=3)
    calibrator, report = choose_calibrator(z, y, ("none", "temperature", "vector"))
    assert report["chosen"] == "vector" == calibrator.kind
    assert report["cv_ece"]["vector"] == min(report["cv_ece"].values())
    assert set(report["cv_nll"]) == {"none", "temperature", "vector"}
    # already calibrated logits: nothing beats leaving them alone by much
    rng = np.random.default_rng(4)
    true = rng.normal(0, 2.0, size=(1500, 4))
    y_true = np.array([rng.choice(4, p=p) for p in softmax(true)])
    _, plain = choose_calibrator(true, y_true)
    assert plain["cv_ece"][plain["chosen"]] <= plain["cv_ece"]["none"] < 0.05


def test_too_few_items_fall_back_to_temperature() -> None:
    z, y = class_biased_logits(6, seed=5)
    calibrator, report = choose_calibrator(z, y)
    assert calibrator.kind == "temperature" and "too few" in report["reason"]


def test_metadata_round_trip_and_legacy_temperature() -> None:
    z, y = class_biased_logits(500, seed=6)
    vector = fit_calibrator("vector", z, y)
    again = Calibrator.from_metadata({"calibrator": vector.to_metadata(), "temperature": 3.0})
    assert again == vector
    np.testing.assert_allclose(again.apply(z), vector.apply(z))
    legacy = Calibrator.from_metadata({"temperature": 2.0})
    assert legacy.kind == "temperature" and legacy.temperature == 2.0
    np.testing.assert_allclose(legacy.apply(z), softmax(z, 2.0))
    with pytest.raises(ValueError, match="kind 'isotonic'"):
        Calibrator.from_metadata({"calibrator": {"kind": "isotonic"}})
    with pytest.raises(ValueError, match="scale and a bias"):
        Calibrator("vector", scale=(1.0, 2.0), bias=(0.0,))
    with pytest.raises(ValueError, match="3 classes, the logits 4"):
        Calibrator("vector", scale=(1.0,) * 3, bias=(0.0,) * 3).apply(z)


@settings(max_examples=60, deadline=None)
@given(
    logits=arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(2, 5)),
                  elements=st.floats(-50, 50, allow_nan=False)),
    kind=st.sampled_from(["none", "temperature", "vector", "top_isotonic"]),
)
def test_calibrated_rows_are_probability_distributions(logits: np.ndarray, kind: str) -> None:
    k = logits.shape[1]
    calibrator = {
        "none": Calibrator("none"),
        "temperature": Calibrator("temperature", 0.3),
        "vector": Calibrator("vector", scale=tuple(np.linspace(0.2, 3, k)), bias=tuple(np.linspace(-2, 2, k))),
        # a curve that lowers some confidences below the runner-up's rescaled share
        "top_isotonic": Calibrator("top_isotonic", knots_x=(0.0, 0.5, 0.9, 1.0), knots_y=(0.0, 0.2, 0.3, 0.95)),
    }[kind]
    probs = calibrator.apply(logits)
    assert probs.shape == logits.shape and np.all(probs >= 0) and np.allclose(probs.sum(1), 1.0)
    if kind in ("none", "temperature", "top_isotonic"):  # these never change the predicted label
        assert np.array_equal(probs.argmax(1), softmax(logits).argmax(1)) or np.any(
            np.isclose(np.sort(softmax(logits), 1)[:, -1], np.sort(softmax(logits), 1)[:, -2])
        )


def bent_confidence_logits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A model whose top-1 is right with probability 0.35 + 0.6 * (confidence - 0.2) ** 0.5 (clipped): too
    unsure at low confidence, too sure at high confidence, a shape no single temperature fixes."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, 5))
    conf = softmax(z).max(1)
    p_right = np.clip(0.35 + 0.6 * np.sqrt(np.clip(conf - 0.2, 0, None)), 0, 1)
    top = z.argmax(1)
    others = (top + rng.integers(1, 5, size=n)) % 5
    y = np.where(rng.random(n) < p_right, top, others)
    return z, y


def test_top_isotonic_fixes_a_bent_confidence_curve_and_keeps_labels_and_order() -> None:
    ece = held_out_ece(bent_confidence_logits, ("none", "temperature", "top_isotonic"))
    fit_z, fit_y = bent_confidence_logits(3000, seed=1)
    test_z = bent_confidence_logits(3000, seed=2)[0]
    assert ece["top_isotonic"] < 0.03 < min(ece["temperature"], ece["none"])
    calibrated = fit_calibrator("top_isotonic", fit_z, fit_y).apply(test_z)
    raw = softmax(test_z)
    assert np.array_equal(calibrated.argmax(1), raw.argmax(1))
    # the confidence order (what abstention thresholds rank by) stays the uncalibrated one, flat stretches of
    # the curve included; only rows lifted so that the runner-up stays below the top can swap places
    from scipy.stats import kendalltau

    assert kendalltau(calibrated.max(1), raw.max(1)).statistic > 0.99
    assert calibrated.max(1).min() >= 1 / 5


def test_top_isotonic_blocks_are_shrunk_towards_the_models_confidence() -> None:
    # five items: the three most confident are right. Plain isotonic regression would call them certain (1.0)
    logits = np.log(np.array([[0.5, 0.3, 0.2], [0.55, 0.25, 0.2], [0.7, 0.2, 0.1], [0.75, 0.15, 0.1], [0.8, 0.1, 0.1]]))
    labels = [1, 2, 0, 0, 0]
    knots_x, knots_y = fit_top_isotonic(logits, labels)
    assert np.all(np.diff(knots_y) >= 0) and knots_y.max() < 1.0
    # the top block: 3 right of 3 at mean confidence 0.75, shrunk with a prior of 2 items
    assert knots_y[-1] == pytest.approx((3 + 2 * 0.75) / 5)
    probs = Calibrator("top_isotonic", knots_x=tuple(knots_x), knots_y=tuple(knots_y)).apply(logits)
    assert np.all(probs > 0)  # no label is ruled out
    assert np.array_equal(np.argsort(-probs, 1), np.argsort(-softmax(logits), 1))  # every label keeps its rank


def test_top_isotonic_round_trips_and_rejects_bad_knots() -> None:
    z, y = bent_confidence_logits(400, seed=13)
    fitted = fit_calibrator("top_isotonic", z, y)
    again = Calibrator.from_metadata({"calibrator": fitted.to_metadata()})
    assert again == fitted
    np.testing.assert_allclose(again.apply(z), fitted.apply(z))
    with pytest.raises(ValueError, match="knots_x"):
        Calibrator("top_isotonic", knots_x=(0.5, 0.2), knots_y=(0.3, 0.4))
    with pytest.raises(ValueError, match="knots_x"):
        Calibrator("top_isotonic")


def test_repeated_cross_validation_averages_fold_draws() -> None:
    z, y = bent_confidence_logits(600, seed=14)
    kinds = ("none", "top_isotonic")
    _, once = choose_calibrator(z, y, kinds, seed=3)
    _, twice = choose_calibrator(z, y, kinds, seed=4)
    _, both = choose_calibrator(z, y, kinds, seed=3, repeats=2)
    assert both["repeats"] == 2
    assert both["cv_ece"]["top_isotonic"] == pytest.approx((once["cv_ece"]["top_isotonic"] + twice["cv_ece"]["top_isotonic"]) / 2)
    assert both["chosen"] == "top_isotonic"


def test_ece_noise_floor_shrinks_with_the_sample_and_is_seeded() -> None:
    conf = np.full(30, 0.9)
    small, large = ece_noise_floor(conf), ece_noise_floor(np.full(3000, 0.9))
    assert small == ece_noise_floor(conf) and small["n"] == 30
    # |mean of 30 Bernoulli(0.9) - 0.9| has a standard deviation of 0.055
    assert 0.03 < small["mean"] < 0.06 < small["p90"] and large["p90"] < 0.015
    assert ece_noise_floor([])["n"] == 0
