"""domainfm.engine.drift: thresholds hold their false-alarm rate on fresh in-distribution windows, shifts are seen,
the reference round-trips, and the tracker's cadence and episodes. Synthetic, seeded, numpy only."""

from __future__ import annotations

import numpy as np
import pytest

from domainfm.engine.drift import DriftConfig, DriftReference, DriftTracker, fit_reference

P = [0.15, 0.6, 0.25]
NAMES = ["negative", "neutral", "positive"]


def sample(rng: np.random.Generator, n: int, shift: float = 0.0, p: list[float] = P) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(n, 24))
    x[:, 0] += shift
    return rng.choice(3, size=n, p=p), x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def reference() -> DriftReference:
    y, x = sample(np.random.default_rng(0), 3000)
    return fit_reference(y, x, NAMES, DriftConfig(window=100, false_alarm_rate=0.02, n_windows=1000))


def test_false_alarm_rate_holds_on_fresh_windows_and_shifts_are_seen(reference: DriftReference) -> None:
    rng = np.random.default_rng(1)
    quiet = [bool(reference.test(*sample(rng, 100))["exceeded"]) for _ in range(300)]
    assert np.mean(quiet) <= 2 * 0.02  # the stated rate, with room for sampling noise over 300 windows
    moved = [reference.test(*sample(rng, 100, shift=0.8))["exceeded"] for _ in range(20)]
    assert all("embedding" in e for e in moved)
    relabelled = [reference.test(*sample(rng, 100, p=[0.45, 0.4, 0.15]))["exceeded"] for _ in range(20)]
    assert all("label_mix" in e for e in relabelled)


def test_reference_round_trips_and_is_seeded(reference: DriftReference) -> None:
    params, arrays = reference.to_state()
    again = DriftReference.from_state(params, arrays)
    y, x = sample(np.random.default_rng(2), 100, shift=0.3)
    assert again.test(y, x) == reference.test(y, x)
    y0, x0 = sample(np.random.default_rng(0), 3000)
    assert fit_reference(y0, x0, NAMES, reference.config).thresholds == reference.thresholds


def test_tracker_tests_every_step_and_opens_one_episode_per_shift(reference: DriftReference) -> None:
    tracker = DriftTracker(reference)
    rng = np.random.default_rng(3)
    opened = []
    for shift in (0.0, 1.0, 0.0, 1.0):
        y, x = sample(rng, 400, shift=shift)
        for label, emb in zip(y, x, strict=True):
            if (found := tracker.observe(int(label), emb)) is not None:
                opened.append(found["last_item"])
    assert tracker.tests == (1600 - 100) // 25 + 1
    assert len(opened) == 2 and 400 < opened[0] <= 500 and 1200 < opened[1] <= 1300
    restored = DriftTracker.restore(reference, tracker.state(), tracker.window_items())
    assert restored.state() == tracker.state() and len(restored.items) == 100


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"window": 5}, "window must be >= 10"),
    ({"step": 500}, "step must be in"),
    ({"false_alarm_rate": 0.0}, "false_alarm_rate"),
    ({"false_alarm_rate": 0.001, "n_windows": 100}, "too few"),
])
def test_bad_settings_say_which(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriftConfig(**kwargs)  # type: ignore[arg-type]


def test_too_small_reference_is_refused() -> None:
    y, x = sample(np.random.default_rng(4), 300)
    with pytest.raises(ValueError, match="needs at least 400"):
        fit_reference(y, x, NAMES, DriftConfig(window=100))


def test_label_reference_sets_the_mix_the_label_test_expects() -> None:
    rng = np.random.default_rng(5)
    y, x = sample(rng, 3000)
    heldout_mix = [0.3, 0.45, 0.25]  # what a model predicts on new data, unlike its own training labels
    cfg = DriftConfig(window=100, false_alarm_rate=0.02, n_windows=1000)
    own = fit_reference(y, x, NAMES, cfg)
    held = fit_reference(y, x, NAMES, cfg, label_reference=rng.choice(3, size=600, p=heldout_mix))
    assert np.allclose(held.label_shares, heldout_mix, atol=0.06) and held.thresholds["embedding"] == own.thresholds["embedding"]
    windows = [sample(rng, 100, p=heldout_mix) for _ in range(30)]
    assert np.mean(["label_mix" in held.test(*w)["exceeded"] for w in windows]) <= 0.1
    assert np.mean(["label_mix" in own.test(*w)["exceeded"] for w in windows]) >= 0.5
    with pytest.raises(ValueError, match="at least 100"):
        fit_reference(y, x, NAMES, cfg, label_reference=[0, 1] * 20)
