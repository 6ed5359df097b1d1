"""domainfm.engine.label_evaluation: an Evaluation from calibrated probabilities (metrics, outcomes, curve)."""

from __future__ import annotations

import numpy as np
import pytest

from domainfm.engine.label_evaluation import (
    binary_auc,
    label_metrics,
    probability_evaluation,
    quadratic_weighted_kappa,
    risk_coverage,
)


def test_ordinal_metrics_add_the_weighted_kappa() -> None:
    probs = np.eye(3)[[0, 1, 2, 2]]
    m = label_metrics(["0", "1", "2"], np.array([0, 1, 2, 1]), probs, ordinal=True)["metrics"]
    assert m["accuracy"] == 0.75 and 0 < m["qwk"] < 1
    assert "qwk" not in label_metrics(["a", "b", "c"], np.array([0, 1, 2, 1]), probs)["metrics"]
    assert quadratic_weighted_kappa([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)
    assert quadratic_weighted_kappa([1, 1], [1, 1]) == 0.0


def test_binary_auc_is_nan_with_one_class() -> None:
    assert binary_auc(np.array([0, 1, 1]), np.array([0.1, 0.8, 0.7])) == 1.0
    assert np.isnan(binary_auc(np.array([1, 1]), np.array([0.1, 0.8])))


def test_risk_coverage_thins_to_max_points_keeping_the_ends() -> None:
    conf = np.linspace(1.0, 0.0, 1000)
    quality = (np.arange(1000) % 2).astype(float)
    full = risk_coverage(conf, quality)
    thin = risk_coverage(conf, quality, max_points=50, x_label="automation rate", y_label="answer accuracy")
    assert len(full.x) == 1000 and len(thin.x) == 50
    assert thin.x[0] == full.x[0] and thin.x[-1] == 1.0 and thin.y[-1] == pytest.approx(0.5)
    assert thin.x_label == "automation rate"


def test_probability_evaluation_outcomes_and_partial_credit() -> None:
    labels = ["0", "1", "2"]
    y = [0, 1, 2, 2]
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.6, 0.3], [0.0, 0.1, 0.9]])
    quality = np.array([1.0, 1.0, 0.5, 1.0])
    ev = probability_evaluation("d", "test", labels, y, probs, ids=["a", "b", "c", "d"], groups={"g": [1, 1, 2, 2]},
                                quality=quality, ordinal=True, seconds=2.0, extra={"note": "x"})
    assert ev.n_items == 4 and ev.metrics["accuracy"] == 0.75 and "ece" in ev.metrics and "qwk" in ev.metrics
    assert ev.outcomes is not None and ev.outcomes.quality == [1.0, 1.0, 0.5, 1.0]
    assert ev.outcomes.confidence == pytest.approx([0.8, 0.7, 0.6, 0.9])
    assert ev.outcomes.groups == {"g": ["1", "1", "2", "2"]}
    assert ev.outcomes.extra["predicted"] == ["0", "1", "1", "2"]
    assert ev.curves["risk_coverage"].y[-1] == 0.75  # the curve is over correctness, not partial credit
    assert ev.extra == {"items_per_second": 2.0, "note": "x"}
