from __future__ import annotations

import numpy as np
import pytest

from domainfm.config import build_config
from domainfm.testing import item_batch
from domainfm.types import Evaluation, Outcomes, ResourceUsage, RunContext
from domainfm_customer_service import OUT_OF_SCOPE
from domainfm_customer_service.assistant import choose_threshold, in_scope_confidence
from domainfm_customer_service.benefit import benefit_terms, error_rate_gap
from domainfm_customer_service.evaluation import automation_curve, escalation_metrics, retrieval_metrics


def test_retrieval_metrics_known_values() -> None:
    rankings = [["a", "b", "c"], ["x", "y", "a"], ["q", "r", "s"]]
    relevant = [{"a"}, {"a"}, set()]  # the third query has nothing relevant and is not counted
    m = retrieval_metrics(rankings, relevant, ks=(1, 3))
    assert m["recall_at_1"] == pytest.approx(0.5)
    assert m["recall_at_3"] == pytest.approx(1.0)
    assert m["mrr"] == pytest.approx((1 + 1 / 3) / 2)
    assert m["retrieval_queries"] == 2


def test_escalation_metrics_known_values() -> None:
    escalated = np.array([1, 1, 0, 0, 1], dtype=bool)
    needs = np.array([1, 0, 1, 0, 1], dtype=bool)
    m = escalation_metrics(escalated, needs)
    assert m["escalation_precision"] == pytest.approx(2 / 3)
    assert m["escalation_recall"] == pytest.approx(2 / 3)
    assert m["escalation_rate"] == pytest.approx(0.6)


def test_in_scope_confidence_ignores_out_of_scope_probability() -> None:
    labels = ["a", OUT_OF_SCOPE, "b"]
    probs = np.array([[0.2, 0.7, 0.1], [0.6, 0.1, 0.3]])
    best, conf, oos = in_scope_confidence(probs, labels)
    assert best.tolist() == [0, 0]
    assert conf.tolist() == pytest.approx([0.2, 0.6])
    assert oos.tolist() == [True, False]


def test_threshold_is_chosen_for_the_target_precision() -> None:
    conf = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([1, 1, 1, 0, 1, 0], dtype=float)
    assert choose_threshold(conf, correct, 1.0) == pytest.approx(0.8)
    assert choose_threshold(conf, correct, 0.8) == pytest.approx(0.6)
    assert not np.isfinite(choose_threshold(conf, np.zeros(6), 0.9))


def test_automation_curve_is_monotone_in_automation() -> None:
    rng = np.random.default_rng(0)
    curve = automation_curve(rng.random(500), (rng.random(500) > 0.3).astype(float))
    assert len(curve.x) <= 200 and curve.x == sorted(curve.x) and curve.x[-1] == pytest.approx(1.0)


def _evaluation(n: int = 40) -> Evaluation:
    rng = np.random.default_rng(1)
    intents = ["card_lost"] * (n - 10) + [OUT_OF_SCOPE] * 10
    quality = [1.0 if i < n // 2 else 0.0 for i in range(n)]
    return Evaluation(
        domain="customer_service", split="test", metrics={"macro_f1": 0.5}, key_metric="macro_f1", n_items=n,
        outcomes=Outcomes(
            ids=[str(i) for i in range(n)], confidence=rng.random(n).tolist(), quality=quality,
            groups={"channel": ["app" if i % 2 else "web" for i in range(n)]}, extra={"intent": intents},
        ),
        extra={"pii_findings_in_index_and_logs": 0},
    )


def test_benefit_terms_evaluate_per_item(tmp_path) -> None:  # noqa: ANN001
    ctx = RunContext(run_id="t", domain="customer_service", config=build_config(overrides=["benefit.assumptions.agent_hourly_cost=60"]),
                     run_dir=tmp_path, device="cpu", resources=ResourceUsage(latency_ms_p50=20.0, latency_ms_p95=50.0))
    evaluation = _evaluation()
    terms = {t.name: t for t in benefit_terms(ctx, evaluation)}
    batch = item_batch(evaluation, threshold=0.0, resources=ctx.resources)
    saved = terms["agent_time_saved"].utility(batch)
    assert saved.shape == (40,) and saved.sum() == pytest.approx(20 * 8 / 60)
    assert terms["agent_time_saved"].scale == 60.0
    # 20 wrong answers: 10 to in-scope questions (a repeat contact, 9 EUR) and 10 to out-of-scope ones (a misled
    # customer, 25 EUR): each counted once
    assert terms["wrong_answer_cost"].utility(batch).sum() == pytest.approx(-10 * 9.0)
    assert terms["misled_customer_cost"].utility(batch).sum() == pytest.approx(-10 * 25.0)
    assert terms["pii_in_index_and_logs"].measure(batch) == 0.0
    assert terms["latency_p95_ms"].measure(batch) == 50.0
    assert terms["out_of_scope_answered_rate"].measure(batch) == 1.0
    nobody = item_batch(evaluation, threshold=2.0, resources=ctx.resources)
    assert terms["out_of_scope_answered_rate"].measure(nobody) == 0.0
    assert terms["agent_time_saved"].utility(nobody).sum() == 0.0


def test_error_rate_gap_needs_groups(tmp_path) -> None:  # noqa: ANN001
    evaluation = _evaluation()
    batch = item_batch(evaluation, threshold=0.0)
    gap = error_rate_gap(batch)
    assert gap is not None and 0.0 <= gap <= 1.0
    no_groups = evaluation.model_copy(update={"outcomes": evaluation.outcomes.model_copy(update={"groups": {}})})
    assert error_rate_gap(item_batch(no_groups, threshold=0.0)) is None
