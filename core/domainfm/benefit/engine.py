"""The benefit engine: maximise R_T + lambda * R_S subject to privacy, fairness and resource constraints.

For every model variant (one :class:`~domainfm.types.Evaluation` each) the engine asks all plugins for
benefit terms and constraints, then sweeps confidence thresholds: at threshold ``t`` the items with
``confidence >= t`` are automated and the rest go to a human. Each (variant, threshold) is an operating
point where every term gives a value (sum of per-item utility x scale) and every constraint a check.

Normalisation (what makes R_T and R_S addable): each objective's raw sum is divided by its *oracle
reference*, the value the same terms give when a perfect model (quality 1 on every item) automates every
item. R_T = 0.6 therefore reads "60 % of the business value a perfect, fully automated model would
deliver", a unitless number, and lambda weighs fractions of attainable social value against fractions of
attainable business value. When the oracle value is not positive (e.g. only cost terms), the reference is
the largest absolute raw value over the sweep (``max_abs``); with no terms it is 1 (``none``). The method
used is stated in the report.

The decision: the constrained optimum is the operating point with the largest objective among those where
no measured constraint fails. A constraint that cannot be measured is reported "not measurable" and makes
the report's verdict "unverified"; it never counts as passed. A constraint's cost is the optimum without
it minus the optimum with all constraints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from domainfm.benefit.model import (
    AssumptionReport,
    BenefitReport,
    ConstraintCheck,
    ConstraintReport,
    ExcludedPlugin,
    GroupStats,
    LambdaPoint,
    Normalisation,
    OperatingPoint,
    TermReport,
    Verdict,
)
from domainfm.benefit.candidates import candidate_rows
from domainfm.benefit.pareto import argmax_objective, objective_values, pareto_front
from domainfm.errors import DomainfmError, PluginContractError, PluginError
from domainfm.types import BenefitTerm, Constraint, Evaluation, ItemBatch, ResourceUsage, RunContext

Objective = Literal["business", "social"]
DEFAULT_LAMBDAS: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
DEFAULT_GRID: tuple[float, ...] = tuple(round(i / 20, 4) for i in range(21))
DEFAULT_COVERAGES: tuple[float, ...] = tuple(round(i / 20, 4) for i in range(1, 21))
STATE_DETAILS = "benefit_details"
"""``ctx.state`` key: constraint name -> JSON-able details a contributor wants shown in the report."""
KNOWN_ASSUMPTIONS = frozenset({"fairness_min_group_size"})
"""Assumption overrides read by the engine's built-in constraints rather than by a term."""


@dataclass
class _Variant:
    name: str
    evaluation: Evaluation
    terms: list[BenefitTerm]
    constraints: list[Constraint]
    resources: ResourceUsage
    confidence: np.ndarray
    quality: np.ndarray
    groups: dict[str, np.ndarray]
    extra: dict[str, np.ndarray]
    thresholds: list[float] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ public


def score(ctx: RunContext, evaluations: Mapping[str, Evaluation]) -> BenefitReport:
    """Compute the benefit report of a run from its evaluations (one per model variant).

    Calls ``domainfm_benefit_terms`` on every plugin for each variant, sweeps thresholds, variants and
    lambda, and returns the Pareto front, the constrained optimum and what each constraint costs.
    """
    if ctx.pm is None:
        raise DomainfmError("benefit.score: ctx.pm is None (the run context has no plugin manager)")
    cfg = ctx.config.benefit
    lam = float(cfg.lambda_)
    warnings: list[str] = []
    variants: list[_Variant] = []
    for name, ev in evaluations.items():
        if ev.outcomes is None or len(ev.outcomes) == 0:
            warnings.append(f"variant {name!r}: evaluation has no per-item outcomes; it cannot be scored")
            continue
        terms, constraints = collect_contributions(ctx, ev)
        variants.append(_build_variant(name, ev, terms, constraints, ctx.resources, cfg.thresholds))
    if not variants:
        raise DomainfmError(
            f"benefit.score: no variant of run {ctx.run_id!r} has per-item outcomes to score "
            f"(variants: {sorted(evaluations)})"
        )

    limits = dict(cfg.limits)
    rows = _sweep_isolated(ctx, variants, limits)

    norms = {
        "business": _normalisation("business", variants, [r["r_t_raw"] for r in rows]),
        "social": _normalisation("social", variants, [r["r_s_raw"] for r in rows]),
    }
    points = [_point(r, norms, lam) for r in rows]
    r_t = [p.r_t for p in points]
    r_s = [p.r_s for p in points]
    feasible = [p.feasible for p in points]
    optimum = argmax_objective(r_t, r_s, lam, feasible)
    unconstrained = argmax_objective(r_t, r_s, lam, [True] * len(points))
    shown = optimum if optimum is not None else unconstrained
    if optimum is None:
        warnings.append("no operating point satisfies every measured constraint; see the constraints' costs")

    lambdas = sorted({*(cfg.lambdas if cfg.lambdas is not None else DEFAULT_LAMBDAS), lam})
    sweep = []
    for value in lambdas:
        best = argmax_objective(r_t, r_s, value, feasible)
        sweep.append(
            LambdaPoint(
                lambda_=value,
                optimum=best,
                objective=None if best is None else float(objective_values(r_t, r_s, value)[best]),
                r_t=None if best is None else r_t[best],
                r_s=None if best is None else r_s[best],
            )
        )

    details = ctx.state.get(STATE_DETAILS, {})
    term_reports = _term_reports(variants, points[shown] if shown is not None else None, cfg.assumptions)
    constraint_reports = _constraint_reports(variants, points, shown, optimum, r_t, r_s, lam, limits, details)
    shown_variant = next(v for v in variants if v.name == points[shown].variant) if shown is not None else None
    declared_assumptions = {a.name for t in term_reports for a in t.assumptions} | KNOWN_ASSUMPTIONS
    declared_limits = {c.name for c in constraint_reports}
    return BenefitReport(
        run_id=ctx.run_id,
        domain=ctx.domain,
        device=ctx.device,
        lambda_=lam,
        key_metric=variants[0].evaluation.key_metric,
        variants=[v.name for v in variants],
        metrics={name: dict(ev.metrics) for name, ev in evaluations.items()},
        normalisation=norms,
        terms=term_reports,
        constraints=constraint_reports,
        points=points,
        pareto=pareto_front(r_t, r_s, [i for i, f in enumerate(feasible) if f]),
        pareto_all=pareto_front(r_t, r_s),
        optimum=optimum,
        unconstrained_optimum=unconstrained,
        verdict=points[optimum].verdict if optimum is not None else "fail",
        lambda_sweep=sweep,
        group_metrics=_group_metrics(shown_variant, points[shown].threshold) if shown_variant and shown is not None else {},
        curves={
            name: {k: c.model_dump(mode="json") for k, c in ev.curves.items()} for name, ev in evaluations.items()
        },
        resources=ctx.resources.as_dict(),
        assumption_overrides_unused=sorted(set(cfg.assumptions) - declared_assumptions),
        limit_overrides_unused=sorted(set(limits) - declared_limits),
        warnings=warnings,
        candidates=candidate_rows(evaluations, [v.name for v in variants], points, optimum),
        excluded_plugins=[ExcludedPlugin(**e.as_dict()) for e in ctx.pm.exclusions],
    )


def collect_contributions(ctx: RunContext, evaluation: Evaluation) -> tuple[list[BenefitTerm], list[Constraint]]:
    """Ask every plugin for terms and constraints for ``evaluation``; names must be unique."""
    assert ctx.pm is not None
    terms: list[BenefitTerm] = []
    constraints: list[Constraint] = []
    seen: dict[str, str | None] = {}
    for item in ctx.pm.hooks.benefit_terms(ctx, ctx.domain, evaluation):
        if item.name in seen:
            raise PluginContractError(
                item.contributed_by or "?",
                "domainfm_benefit_terms",
                f"name {item.name!r} is already contributed by {seen[item.name]!r}",
            )
        seen[item.name] = item.contributed_by
        if isinstance(item, BenefitTerm):
            terms.append(item)
        else:
            constraints.append(item)
    return terms, constraints


def _sweep_isolated(ctx: RunContext, variants: list[_Variant], limits: Mapping[str, float]) -> list[dict[str, Any]]:
    """Every variant's operating points. A term or constraint of another domain's plugin that raises while it is
    measured excludes that plugin (as a raising hook does) and the sweep starts again without its contributions."""
    assert ctx.pm is not None
    while True:
        try:
            return [row for v in variants for row in _sweep_variant(v, limits)]
        except PluginError as exc:
            if not ctx.pm.isolates(exc.plugin, ctx.domain) or ctx.pm.is_excluded(exc.plugin):
                raise
            ctx.pm.exclude(exc.plugin, exc.hook, exc, ctx.domain)
            for v in variants:
                v.terms = [t for t in v.terms if t.contributed_by != exc.plugin]
                v.constraints = [c for c in v.constraints if c.contributed_by != exc.plugin]


def default_thresholds(confidence: np.ndarray) -> list[float]:
    """A fixed grid 0, 0.05, ..., 1 plus the confidences at which 5 %, 10 %, ..., 100 % are automated."""
    values = set(DEFAULT_GRID)
    if confidence.size:
        ordered = np.sort(confidence)[::-1]
        for cov in DEFAULT_COVERAGES:
            k = max(1, math.ceil(cov * confidence.size))
            values.add(math.floor(float(ordered[k - 1]) * 1e6) / 1e6)  # floor: never automate fewer than k
    return sorted(values)


def make_batch(
    evaluation: Evaluation,
    resources: ResourceUsage,
    threshold: float,
    *,
    confidence: np.ndarray | None = None,
    quality: np.ndarray | None = None,
    automated: np.ndarray | None = None,
) -> ItemBatch:
    """The :class:`ItemBatch` of ``evaluation`` at ``threshold`` (arrays may be overridden, e.g. an oracle)."""
    if evaluation.outcomes is None:
        raise DomainfmError(f"evaluation of {evaluation.domain!r} has no outcomes")
    conf, qual = evaluation.outcomes.arrays()
    conf = conf if confidence is None else confidence
    qual = qual if quality is None else quality
    auto = conf >= threshold if automated is None else np.asarray(automated, dtype=bool)
    return ItemBatch(
        confidence=conf,
        quality=qual,
        automated=auto,
        groups={k: np.asarray(v) for k, v in evaluation.outcomes.groups.items()},
        extra={k: np.asarray(v) for k, v in evaluation.outcomes.extra.items()},
        threshold=float(threshold),
        evaluation=evaluation,
        resources=resources,
    )


def term_value(term: BenefitTerm, batch: ItemBatch) -> float:
    """Sum of ``term.utility(batch)`` times ``term.scale``; a wrong shape or NaN names the term."""
    who = term.contributed_by or "?"
    try:
        out = term.utility(batch)
    except DomainfmError:
        raise
    except Exception as exc:
        raise PluginError(who, f"benefit term {term.name!r}", f"{type(exc).__name__}: {exc}") from exc
    arr = np.asarray(out, dtype=float)
    if arr.shape != (len(batch),):
        raise PluginContractError(
            who, f"benefit term {term.name!r}", f"utility returned shape {arr.shape}, expected ({len(batch)},)"
        )
    if not np.isfinite(arr).all():
        raise PluginContractError(who, f"benefit term {term.name!r}", "utility returned NaN or infinite values")
    return float(arr.sum() * term.scale)


def check_constraint(constraint: Constraint, limit: float, batch: ItemBatch) -> ConstraintCheck:
    """Measure ``constraint`` on ``batch``: pass/fail with margin, or not measurable (None or NaN)."""
    try:
        value = constraint.measure(batch)
    except DomainfmError:
        raise
    except Exception as exc:
        raise PluginError(
            constraint.contributed_by or "?", f"constraint {constraint.name!r}", f"{type(exc).__name__}: {exc}"
        ) from exc
    if value is None or not math.isfinite(float(value)):
        return ConstraintCheck(value=None, status="not_measurable")
    value = float(value)
    margin = limit - value if constraint.direction == "max" else value - limit
    return ConstraintCheck(value=value, status="pass" if margin >= -1e-12 else "fail", margin=margin)


# ------------------------------------------------------------------------------------------ internals


def _build_variant(
    name: str,
    ev: Evaluation,
    terms: list[BenefitTerm],
    constraints: list[Constraint],
    resources: ResourceUsage,
    thresholds: list[float] | None,
) -> _Variant:
    assert ev.outcomes is not None
    conf, qual = ev.outcomes.arrays()
    own = ev.extra.get("resources")
    if isinstance(own, Mapping):  # a variant may carry its own measurements (e.g. a quantised copy)
        known = {k: v for k, v in own.items() if k in ResourceUsage.__dataclass_fields__}
        resources = replace(resources, **known)
    return _Variant(
        name=name,
        evaluation=ev,
        terms=terms,
        constraints=constraints,
        resources=resources,
        confidence=conf,
        quality=qual,
        groups={k: np.asarray(v) for k, v in ev.outcomes.groups.items()},
        extra={k: np.asarray(v) for k, v in ev.outcomes.extra.items()},
        thresholds=sorted({float(t) for t in thresholds}) if thresholds else default_thresholds(conf),
    )


def _sweep_variant(v: _Variant, limits: Mapping[str, float]) -> list[dict[str, Any]]:
    fixed: dict[str, ConstraintCheck] = {}
    base = make_batch(v.evaluation, v.resources, 0.0)
    for c in v.constraints:
        if not c.depends_on_operating_point:
            fixed[c.name] = check_constraint(c, limits.get(c.name, c.limit), base)
    rows = []
    for thr in v.thresholds:
        batch = make_batch(v.evaluation, v.resources, thr)
        term_values = {term.name: term_value(term, batch) for term in v.terms}
        checks = {
            c.name: fixed[c.name] if c.name in fixed else check_constraint(c, limits.get(c.name, c.limit), batch)
            for c in v.constraints
        }
        auto = batch.automated
        rows.append(
            {
                "variant": v.name,
                "threshold": float(thr),
                "coverage": float(auto.mean()) if auto.size else 0.0,
                "n_automated": int(auto.sum()),
                "quality_automated": float(v.quality[auto].mean()) if auto.any() else None,
                "r_t_raw": sum(term_values[t.name] for t in v.terms if t.objective == "business"),
                "r_s_raw": sum(term_values[t.name] for t in v.terms if t.objective == "social"),
                "terms": term_values,
                "constraints": checks,
            }
        )
    return rows


def _normalisation(objective: Objective, variants: list[_Variant], raw: list[float]) -> Normalisation:
    terms = [t for v in variants for t in v.terms if t.objective == objective]
    units = {t.unit for t in terms}
    unit = units.pop() if len(units) == 1 and all(t.scale == 1.0 for t in terms) else "scaled term units"
    if not terms:
        return Normalisation(
            objective=objective, method="none", reference=1.0, unit="-",
            explanation=f"no {objective} terms were contributed; the normalised value is 0",
        )
    oracle = 0.0
    for v in variants:
        n = v.confidence.size
        batch = make_batch(
            v.evaluation, v.resources, 0.0, confidence=np.ones(n), quality=np.ones(n), automated=np.ones(n, bool)
        )
        oracle = max(oracle, sum(term_value(t, batch) for t in v.terms if t.objective == objective))
    if oracle > 0:
        return Normalisation(
            objective=objective, method="oracle", reference=oracle, unit=unit,
            explanation=(
                f"{objective} value divided by {oracle:.6g} {unit}, the value of the same terms when a perfect "
                "model (quality 1) automates every item"
            ),
        )
    peak = max((abs(x) for x in raw), default=0.0)
    if peak > 0:
        return Normalisation(
            objective=objective, method="max_abs", reference=peak, unit=unit,
            explanation=(
                f"the perfect-model value is not positive ({oracle:.6g}); {objective} value divided by "
                f"{peak:.6g} {unit}, the largest absolute value over the swept operating points"
            ),
        )
    return Normalisation(
        objective=objective, method="none", reference=1.0, unit=unit,
        explanation=f"every {objective} value is 0; no normalisation",
    )


def _point(row: dict[str, Any], norms: Mapping[str, Normalisation], lam: float) -> OperatingPoint:
    r_t = row["r_t_raw"] / norms["business"].reference
    r_s = row["r_s_raw"] / norms["social"].reference
    checks: dict[str, ConstraintCheck] = row["constraints"]
    statuses = {c.status for c in checks.values()}
    verdict: Verdict = "fail" if "fail" in statuses else "unverified" if "not_measurable" in statuses else "pass"
    return OperatingPoint(
        **row,
        r_t=r_t,
        r_s=r_s,
        objective=r_t + lam * r_s,
        feasible="fail" not in statuses,
        verdict=verdict,
    )


def _term_reports(
    variants: list[_Variant], shown: OperatingPoint | None, overrides: Mapping[str, float]
) -> list[TermReport]:
    reports: dict[str, TermReport] = {}
    for v in variants:
        for t in v.terms:
            if t.name in reports:
                reports[t.name].variants.append(v.name)
                continue
            reports[t.name] = TermReport(
                name=t.name,
                objective=t.objective,
                unit=t.unit,
                description=t.description,
                scale=t.scale,
                contributed_by=t.contributed_by,
                assumptions=[
                    AssumptionReport(
                        name=a.name, value=a.value, unit=a.unit, source=a.source, overridden=a.name in overrides
                    )
                    for a in t.assumptions
                ],
                variants=[v.name],
            )
    if shown is not None:
        for name, value in shown.terms.items():
            reports[name].value_at_optimum = value
    return list(reports.values())


def _constraint_reports(
    variants: list[_Variant],
    points: list[OperatingPoint],
    shown: int | None,
    optimum: int | None,
    r_t: list[float],
    r_s: list[float],
    lam: float,
    limits: Mapping[str, float],
    details: Mapping[str, Any],
) -> list[ConstraintReport]:
    objective = objective_values(r_t, r_s, lam)
    reports: dict[str, ConstraintReport] = {}
    for v in variants:
        for c in v.constraints:
            if c.name in reports:
                continue
            reports[c.name] = ConstraintReport(
                name=c.name,
                kind=c.kind,
                unit=c.unit,
                description=c.description,
                limit=float(limits.get(c.name, c.limit)),
                limit_overridden=c.name in limits,
                direction=c.direction,
                depends_on_operating_point=c.depends_on_operating_point,
                contributed_by=c.contributed_by,
                details=dict(details.get(c.name, {})),
            )
    for name, report in reports.items():
        if shown is not None and name in points[shown].constraints:
            check = points[shown].constraints[name]
            if check.status == "not_measurable" and report.details.get("reason"):
                check = check.model_copy(update={"note": str(report.details["reason"])})
            report.at_optimum = check
        measured = [p.constraints[name] for p in points if name in p.constraints]
        if all(c.status == "not_measurable" for c in measured):
            report.cost_note = "not measurable: it cannot bind, and its cost is unknown"
            continue
        if not any(c.status == "fail" for c in measured):
            if optimum is not None:
                report.cost = 0.0
            else:
                report.cost_note = "never violated; other constraints leave no feasible point"
            continue
        without = [
            all(c.status != "fail" for other, c in p.constraints.items() if other != name) for p in points
        ]
        relaxed = argmax_objective(r_t, r_s, lam, without)
        if relaxed is None:
            report.cost_note = "no operating point is feasible even without this constraint"
        elif optimum is None:
            report.cost_note = (
                f"binding: without it the optimum is {objective[relaxed]:.6g}; with it no point is feasible"
            )
        else:
            report.cost = max(0.0, float(objective[relaxed] - objective[optimum]))
    return list(reports.values())


def _group_metrics(v: _Variant, threshold: float) -> dict[str, dict[str, GroupStats]]:
    from domainfm.benefit.fairness import group_table

    automated = v.confidence >= threshold
    return {
        column: {
            g: GroupStats(**stats)
            for g, stats in group_table(
                v.quality, automated, values, key_metric=v.evaluation.key_metric, extra=v.extra
            ).items()
        }
        for column, values in v.groups.items()
    }
