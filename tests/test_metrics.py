"""Classification metrics and their bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix, f1_score

from domainfm.metrics import INTERVAL_KEYS, classification_metrics, confusion_bootstrap


def noisy_predictions(n: int, k: int, accuracy: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    return y, np.where(rng.random(n) < accuracy, y, rng.integers(0, k, n))


def test_intervals_match_resampling_the_items() -> None:
    y, p = noisy_predictions(600, 5, 0.8, seed=1)
    got = confusion_bootstrap(confusion_matrix(y, p), n_resamples=2000)
    rng = np.random.default_rng(7)
    acc, f1 = [], []
    for _ in range(2000):
        i = rng.integers(0, len(y), len(y))
        acc.append(float((y[i] == p[i]).mean()))
        f1.append(f1_score(y[i], p[i], labels=list(range(5)), average="macro", zero_division=0))
    for name, values in (("accuracy", acc), ("macro_f1", f1)):
        expected = np.percentile(values, [2.5, 97.5])
        assert got[name] == pytest.approx(tuple(expected), abs=0.01), name


def test_interval_holds_the_estimate_and_narrows_with_more_items() -> None:
    y, p = noisy_predictions(400, 3, 0.85, seed=2)
    small = classification_metrics(y, p, [0, 1, 2])
    assert small["accuracy_ci95_low"] < small["accuracy"] < small["accuracy_ci95_high"]
    assert small["macro_f1_ci95_low"] < small["macro_f1"] < small["macro_f1_ci95_high"]
    large = confusion_bootstrap(np.asarray(small["confusion"]) * 16)  # same rates, 16x the items
    width = small["accuracy_ci95_high"] - small["accuracy_ci95_low"]
    assert large["accuracy"][1] - large["accuracy"][0] == pytest.approx(width / 4, rel=0.25)


def test_report_carries_flat_interval_keys() -> None:
    y, p = noisy_predictions(200, 4, 0.7, seed=3)
    report = classification_metrics(y, p, [0, 1, 2, 3])
    assert all(isinstance(report[key], float) for key in INTERVAL_KEYS)


def test_perfect_predictions_and_edge_cases() -> None:
    y = np.array([0, 1, 2, 2, 1, 0])
    assert confusion_bootstrap(confusion_matrix(y, y))["accuracy"] == (1.0, 1.0)
    assert confusion_bootstrap(np.zeros((3, 3), dtype=int)) == {}
    one_label = confusion_bootstrap(np.array([[5, 0], [0, 0]]))  # the other label never occurs: its F1 counts 0
    assert one_label["macro_f1"] == (0.5, 0.5)


def test_same_matrix_same_intervals() -> None:
    y, p = noisy_predictions(300, 6, 0.6, seed=4)
    matrix = confusion_matrix(y, p)
    assert confusion_bootstrap(matrix) == confusion_bootstrap(matrix)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), min_size=3, max_size=3), min_size=3, max_size=3))
def test_bounds_are_ordered_rates(rows: list[list[int]]) -> None:
    matrix = np.asarray(rows)
    got = confusion_bootstrap(matrix, n_resamples=200)
    if matrix.sum() == 0:
        assert got == {}
        return
    for low, high in got.values():
        assert 0.0 <= low <= high <= 1.0


def test_html_report_puts_the_interval_beside_its_metric() -> None:
    from types import SimpleNamespace

    from domainfm.benefit.report import _metrics_table

    metrics = {"accuracy": 0.85, "accuracy_ci95_low": 0.82, "accuracy_ci95_high": 0.88, "ece": 0.03}
    html = _metrics_table(SimpleNamespace(metrics={"full": metrics}))
    assert "0.85 [0.82, 0.88]" in html and "<th>ece</th>" in html and "ci95" not in html


def test_metric_interval_reads_the_flat_keys() -> None:
    from domainfm.metrics import metric_interval

    assert metric_interval({"macro_f1_ci95_low": 0.71234, "macro_f1_ci95_high": 0.8}, "macro_f1", digits=3) == (0.712, 0.8)
    assert metric_interval({"accuracy": 0.9}, "accuracy") is None
