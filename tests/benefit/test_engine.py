"""The benefit engine on small fixed predictions whose objectives are computed by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from domainfm.benefit import score
from domainfm.benefit.pareto import argmax_objective, pareto_front
from domainfm.errors import DomainfmError, PluginContractError
from domainfm.types import BenefitTerm, Constraint

from .conftest import THRESHOLDS, ToyPlugin, make_evaluation


def point_at(report: Any, threshold: float, variant: str = "model") -> Any:
    return next(p for p in report.points if p.variant == variant and p.threshold == threshold)


def test_hand_computed_objectives(make_ctx: Any) -> None:
    # automated sets: t=0 {0,1,2,3}, t=.5 {0,1,2}, t=.7 {0,1}, t=.85 {0}; item 2 is wrong
    # business raw (+1 right, -3 wrong): 0, -1, 2, 1; oracle (all automated, all right) = 4
    # social raw (right ones): 3, 2, 2, 1; oracle = 4
    report = score(make_ctx(), {"model": make_evaluation()})
    assert [p.threshold for p in report.points] == THRESHOLDS
    assert [p.r_t_raw for p in report.points] == [0.0, -1.0, 2.0, 1.0]
    assert [p.r_s_raw for p in report.points] == [3.0, 2.0, 2.0, 1.0]
    assert report.normalisation["business"].method == "oracle"
    assert report.normalisation["business"].reference == 4.0
    assert report.normalisation["social"].reference == 4.0
    assert [p.r_t for p in report.points] == [0.0, -0.25, 0.5, 0.25]
    assert [p.r_s for p in report.points] == [0.75, 0.5, 0.5, 0.25]
    # lambda = 1: objective 0.75, 0.25, 1.0, 0.5 -> threshold 0.7
    assert [p.objective for p in report.points] == [0.75, 0.25, 1.0, 0.5]
    assert report.best is not None and report.best.threshold == 0.7
    assert report.best.coverage == 0.5 and report.best.quality_automated == 1.0
    assert report.term("net_value").value_at_optimum == 2.0
    assert report.term("people_helped").value_at_optimum == 2.0
    # Pareto: (0, .75) and (.5, .5) are not dominated
    assert [report.points[i].threshold for i in report.pareto] == [0.0, 0.7]
    assert report.verdict == "pass"  # no constraints at all


def test_lambda_moves_the_optimum_and_lambda_zero_is_the_business_optimum(make_ctx: Any) -> None:
    report = score(make_ctx(lambdas=[0.0, 4.0]), {"model": make_evaluation()})
    by_lambda = {lp.lambda_: report.points[lp.optimum].threshold for lp in report.lambda_sweep if lp.optimum is not None}
    # lambda 4: objective 3.0, 1.75, 2.5, 1.25 -> threshold 0
    assert by_lambda == {0.0: 0.7, 1.0: 0.7, 4.0: 0.0}
    lp4 = next(lp for lp in report.lambda_sweep if lp.lambda_ == 4.0)
    assert lp4.objective == pytest.approx(3.0)
    zero = score(make_ctx(**{"lambda": 0.0}), {"model": make_evaluation()})
    assert zero.best is not None
    assert zero.best.r_t == max(p.r_t for p in zero.points)
    assert zero.best.objective == zero.best.r_t


def test_failing_constraint_flips_the_operating_point_and_has_a_cost(make_ctx: Any) -> None:
    ev = make_evaluation()
    free = score(make_ctx(**{"lambda": 4.0}), {"model": ev})
    assert free.best is not None and free.best.threshold == 0.0
    # error rate among automated: .25, .33, 0, 0 with limit .2 -> thresholds 0 and .5 fail
    bound = score(make_ctx(ToyPlugin(with_error_rate=True), **{"lambda": 4.0}), {"model": ev})
    assert bound.best is not None and bound.best.threshold == 0.7
    assert bound.unconstrained_optimum is not None and bound.points[bound.unconstrained_optimum].threshold == 0.0
    assert [p.feasible for p in bound.points] == [False, False, True, True]
    c = bound.constraint("error_rate")
    assert c.at_optimum is not None and c.at_optimum.status == "pass" and c.at_optimum.margin == pytest.approx(0.2)
    assert point_at(bound, 0.0).constraints["error_rate"].margin == pytest.approx(-0.05)
    assert c.cost == pytest.approx(3.0 - 2.5)  # optimum without it minus optimum with it
    assert [bound.points[i].threshold for i in bound.pareto] == [0.7]
    # a limit override relaxes it: 0.25 <= 0.3, so threshold 0 is feasible again and the constraint costs nothing
    relaxed = score(make_ctx(ToyPlugin(with_error_rate=True), limits={"error_rate": 0.3}, **{"lambda": 4.0}), {"model": ev})
    assert relaxed.best is not None and relaxed.best.threshold == 0.0
    assert relaxed.constraint("error_rate").limit_overridden and relaxed.constraint("error_rate").cost == 0.0


def test_no_feasible_point_is_reported_not_hidden(make_ctx: Any) -> None:
    never = Constraint(name="impossible", kind="safety", unit="x", description="always violated", limit=0.0,
                       measure=lambda b: 1.0, depends_on_operating_point=False)
    report = score(make_ctx(ToyPlugin(extra=[never])), {"model": make_evaluation()})
    assert report.optimum is None and report.best is None and report.verdict == "fail"
    assert report.unconstrained_optimum is not None
    c = report.constraint("impossible")
    assert c.cost is None and "binding" in (c.cost_note or "")
    assert c.at_optimum is not None and c.at_optimum.status == "fail"
    assert any("no operating point" in w for w in report.warnings)


def test_unmeasurable_constraint_is_never_a_pass(make_ctx: Any) -> None:
    blind = Constraint(name="blind", kind="safety", unit="x", description="cannot be measured", limit=1.0,
                       measure=lambda b: None)
    nan = Constraint(name="nan", kind="safety", unit="x", description="NaN", limit=1.0, measure=lambda b: float("nan"))
    report = score(make_ctx(ToyPlugin(extra=[blind, nan])), {"model": make_evaluation()})
    assert report.best is not None and report.best.threshold == 0.7  # does not block the decision...
    assert report.verdict == "unverified"  # ...but the verdict is not "pass"
    for name in ("blind", "nan"):
        c = report.constraint(name)
        assert c.at_optimum is not None and c.at_optimum.status == "not_measurable" and c.at_optimum.value is None
        assert c.cost is None and "not measurable" in (c.cost_note or "")


def test_missing_group_data_makes_fairness_not_measurable(make_ctx: Any) -> None:
    report = score(make_ctx(builtins=True), {"model": make_evaluation()})
    fair = report.constraint("fairness_gap")
    assert fair.kind == "fairness" and fair.at_optimum is not None
    assert fair.at_optimum.status == "not_measurable"
    assert "no group columns" in (fair.at_optimum.note or "")
    assert report.verdict == "unverified"
    assert report.group_metrics == {}


def test_fairness_gap_is_measured_among_automated_items(make_ctx: Any) -> None:
    groups = {"region": ["north", "north", "south", "south"]}
    ev = make_evaluation(groups=groups, extra={"label": ["a", "b", "a", "b"], "predicted": ["a", "b", "b", "b"]})
    report = score(make_ctx(builtins=True, assumptions={"fairness_min_group_size": 1}), {"model": ev})
    # t=0: north accuracy 1.0, south 0.5 -> gap 0.5; t=.5: south has one automated item (wrong) -> gap 1.0
    assert point_at(report, 0.0).constraints["fairness_gap_region"].value == pytest.approx(0.5)
    assert point_at(report, 0.5).constraints["fairness_gap_region"].value == pytest.approx(1.0)
    # t=.7 automates only north: one group -> not measurable
    assert point_at(report, 0.7).constraints["fairness_gap_region"].status == "not_measurable"
    assert report.best is not None and report.best.threshold == 0.7
    stats = report.group_metrics["region"]
    assert stats["north"].n_automated == 2 and stats["south"].n_automated == 0 and stats["south"].key_metric is None
    # with the default minimum group size (10) nothing is measurable on four items
    default = score(make_ctx(builtins=True), {"model": ev})
    assert all(p.constraints["fairness_gap_region"].status == "not_measurable" for p in default.points)


def test_variants_are_operating_points_too(make_ctx: Any) -> None:
    better = make_evaluation(quality=[1.0, 1.0, 1.0, 1.0])
    report = score(make_ctx(), {"base": make_evaluation(), "tuned": better})
    assert report.variants == ["base", "tuned"]
    assert len(report.points) == 2 * len(THRESHOLDS)
    assert report.best is not None and report.best.variant == "tuned" and report.best.threshold == 0.0
    assert report.best.objective == pytest.approx(2.0)  # r_t = 4/4, r_s = 4/4


def test_assumption_overrides_reach_terms_and_typos_are_reported(make_ctx: Any) -> None:
    report = score(make_ctx(assumptions={"error_penalty": 1.0, "eror_penalty": 2.0}), {"model": make_evaluation()})
    assert [p.r_t_raw for p in report.points] == [2.0, 1.0, 2.0, 1.0]
    a = report.term("net_value").assumptions[0]
    assert a.value == 1.0 and a.overridden
    assert report.assumption_overrides_unused == ["eror_penalty"]


def test_only_cost_terms_fall_back_to_max_abs_normalisation(make_ctx: Any) -> None:
    cost = BenefitTerm(name="review_cost", objective="business", unit="EUR", description="cost of wrong answers",
                       utility=lambda b: -2.0 * b.automated * (1 - b.quality))

    class OnlyCost(ToyPlugin):
        def domainfm_benefit_terms(self, ctx: Any, domain: str, evaluation: Any) -> list[Any]:
            return [cost]

    from domainfm import hookimpl

    OnlyCost.domainfm_benefit_terms = hookimpl(OnlyCost.domainfm_benefit_terms)  # type: ignore[method-assign]
    report = score(make_ctx(OnlyCost()), {"model": make_evaluation()})
    norm = report.normalisation["business"]
    assert norm.method == "max_abs" and norm.reference == 2.0
    assert [p.r_t for p in report.points] == [-1.0, -1.0, 0.0, 0.0]
    assert report.normalisation["social"].method == "none"
    assert report.best is not None and report.best.threshold == 0.7  # tie at 0: the first of the best


def test_bad_terms_are_named(make_ctx: Any) -> None:
    bad = BenefitTerm(name="scalar", objective="business", unit="x", description="", utility=lambda b: 1.0)
    with pytest.raises(PluginContractError, match="scalar.*shape"):
        score(make_ctx(ToyPlugin(extra=[bad])), {"model": make_evaluation()})
    dup = BenefitTerm(name="net_value", objective="social", unit="x", description="", utility=lambda b: b.quality)
    with pytest.raises(PluginContractError, match="net_value.*already contributed"):
        score(make_ctx(ToyPlugin(extra=[dup])), {"model": make_evaluation()})
    nan = BenefitTerm(name="nan", objective="social", unit="x", description="", utility=lambda b: b.quality * np.nan)
    with pytest.raises(PluginContractError, match="NaN"):
        score(make_ctx(ToyPlugin(extra=[nan])), {"model": make_evaluation()})


def test_evaluations_without_outcomes_cannot_be_scored(make_ctx: Any) -> None:
    ev = make_evaluation().model_copy(update={"outcomes": None})
    with pytest.raises(DomainfmError, match="no variant .* per-item outcomes"):
        score(make_ctx(), {"model": ev})
    report = score(make_ctx(), {"model": make_evaluation(), "blank": ev})
    assert report.variants == ["model"] and any("blank" in w for w in report.warnings)


def test_default_thresholds_cover_the_confidence_quantiles(make_ctx: Any) -> None:
    ctx = make_ctx()
    ctx.config.benefit.thresholds = None
    report = score(ctx, {"model": make_evaluation()})
    thresholds = {p.threshold for p in report.points}
    assert {0.0, 0.05, 0.5, 1.0} <= thresholds and {0.9, 0.8, 0.6, 0.3} <= thresholds
    assert {p.coverage for p in report.points} >= {0.25, 0.5, 0.75, 1.0}


# ------------------------------------------------------------------------------- decision rules


def test_pareto_front_and_argmax_by_hand() -> None:
    r_t = [0.0, -0.25, 0.5, 0.25, 0.5]
    r_s = [0.75, 0.5, 0.5, 0.25, 0.5]  # index 4 duplicates index 2
    assert pareto_front(r_t, r_s) == [0, 2]
    assert pareto_front(r_t, r_s, [1, 3]) == [1, 3]  # neither dominates the other
    assert pareto_front(r_t, r_s, [2, 3]) == [2]
    assert argmax_objective(r_t, r_s, 1.0, [True] * 5) == 2
    assert argmax_objective(r_t, r_s, 1.0, [True, True, False, True, True]) == 4
    assert argmax_objective(r_t, r_s, 1.0, [False] * 5) is None


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(st.tuples(st.floats(-5, 5), st.floats(-5, 5), st.booleans()), min_size=1, max_size=30),
    lam=st.floats(0, 10),
)
@example(points=[(-7.586449218503937e-29, 0.0, True), (0.0, 0.0, True)], lam=0.0)  # a tie within 1e-12 (found in CI)
@example(points=[(-3.1985713774558956e-51, 0.0, True), (1e-12, 0.0, True)], lam=0.0)  # a tie at exactly 1e-12 (CI)
def test_constrained_optimum_properties(points: list[tuple[float, float, bool]], lam: float) -> None:
    r_t = [p[0] for p in points]
    r_s = [p[1] for p in points]
    feasible = [p[2] for p in points]
    best = argmax_objective(r_t, r_s, lam, feasible)
    if not any(feasible):
        assert best is None
        return
    assert best is not None and feasible[best]
    j = [t + lam * s for t, s in zip(r_t, r_s)]
    assert all(j[best] >= j[i] - 1e-9 for i in range(len(j)) if feasible[i])
    if lam == 0:  # the highest R_T, up to the documented tie tolerance (1e-12: ties go to the lower index),
        # in the implementation's own arithmetic (x > best + tol): "best >= max - tol" rounds differently at 1e-12
        assert not any(t > r_t[best] + 1e-12 for t, f in zip(r_t, feasible, strict=True) if f)
    front = pareto_front(r_t, r_s, [i for i, f in enumerate(feasible) if f])
    # the optimum of a weighted sum is never dominated: some front point is at least as good on both axes
    assert any(r_t[i] >= r_t[best] - 1e-9 and r_s[i] >= r_s[best] - 1e-9 for i in front)
    for i in front:
        assert not any(
            r_t[k] >= r_t[i] and r_s[k] >= r_s[i] and (r_t[k] > r_t[i] or r_s[k] > r_s[i])
            for k in range(len(points)) if feasible[k]
        )


def test_a_third_party_plugin_adds_terms_to_any_domain(make_ctx: Any) -> None:
    from domainfm import hookimpl
    from domainfm.types import Assumption

    class CarbonPricing:
        """Charges the run's CO2 at a carbon price, spread over the automated items."""

        @hookimpl
        def domainfm_benefit_terms(self, ctx: Any, domain: str, evaluation: Any) -> list[Any]:
            price = float(ctx.config.benefit.assumptions.get("carbon_price_eur_per_t", 80.0))
            return [
                BenefitTerm(
                    name="carbon_cost", objective="business", unit="EUR", description="CO2 at the carbon price",
                    assumptions=[Assumption(name="carbon_price_eur_per_t", value=price, unit="EUR/t", source="EU ETS")],
                    utility=lambda b: -(b.resources.co2_kg or 0.0) / 1000 * price * b.automated / max(b.automated.sum(), 1),
                )
            ]

    ctx = make_ctx()
    ctx.pm.register(CarbonPricing(), name="carbon")
    ctx.resources.co2_kg = 12.5  # 12.5 kg at 80 EUR/t = 1 EUR
    report = score(ctx, {"model": make_evaluation()})
    term = report.term("carbon_cost")
    assert term.contributed_by == "carbon" and report.term("net_value").contributed_by == "toy"
    # business raw at t=.7: 2 - 1 EUR; the oracle reference becomes 4 - 1 = 3
    assert point_at(report, 0.7).r_t_raw == pytest.approx(1.0)
    assert report.normalisation["business"].reference == pytest.approx(3.0)


def test_optimum_ties_within_tolerance_go_to_the_lower_index() -> None:
    assert argmax_objective([-7.586449218503937e-29, 0.0], [0.0, 0.0], 0.0, [True, True]) == 0
    assert argmax_objective([-1e-6, 0.0], [0.0, 0.0], 0.0, [True, True]) == 1  # a real difference still wins
