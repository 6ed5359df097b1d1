"""What a domain's benefit terms are, read from the terms its plugin returns (``DomainSpec.benefit_terms``).

A plugin states each term once, in ``domainfm_benefit_terms`` (name, objective or constraint kind, unit); the
domain's declaration is derived from it by asking the plugin for its terms on an evaluation with no items
(:func:`domain_terms`), so the two can no longer drift apart. A plugin may still declare
``DomainSpec.benefit_terms`` by hand; then :func:`declaration_mismatches` lists every difference (a declared term
not returned, a returned term not declared, another objective or unit), and the contract check
(:func:`domainfm.testing.check_plugin_contract`) fails on the first.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domainfm.types import BenefitTerm, BenefitTermInfo, Constraint, DomainSpec, Evaluation, Outcomes, RunContext


def probe_evaluation(spec: DomainSpec) -> Evaluation:
    """An evaluation of ``spec``'s domain with no items: enough for a plugin to build its terms."""
    return Evaluation(domain=spec.name, split="(terms probe)", metrics=dict.fromkeys(spec.metrics, 0.0),
                      key_metric=spec.key_metric, n_items=0, outcomes=Outcomes(ids=[], confidence=[], quality=[]))


def term_info(item: BenefitTerm | Constraint) -> BenefitTermInfo:
    """The declaration of one returned term or constraint."""
    objective = "constraint" if isinstance(item, Constraint) else item.objective
    return BenefitTermInfo(name=item.name, objective=objective, unit=item.unit, description=item.description)


def own_contributions(pm: Any, spec: DomainSpec, ctx: RunContext | None = None) -> list[BenefitTerm | Constraint]:
    """The terms and constraints ``spec``'s own plugin returns for a probe evaluation (the core's built-in
    constraints, which every domain gets, and other plugins' terms are left out)."""
    def collect(run_ctx: RunContext) -> list[BenefitTerm | Constraint]:
        items = pm.hooks.benefit_terms(run_ctx, spec.name, probe_evaluation(spec))
        return [item for item in items if item.contributed_by == spec.plugin]

    if ctx is not None:
        return collect(ctx)
    from domainfm.config import build_config

    with tempfile.TemporaryDirectory(prefix="domainfm-terms-") as tmp:
        return collect(RunContext(run_id="terms-probe", domain=spec.name, config=build_config(None, []),
                                  run_dir=Path(tmp), device="cpu", pm=pm))


def domain_terms(pm: Any, domain: str, ctx: RunContext | None = None) -> list[BenefitTermInfo]:
    """``DomainSpec.benefit_terms`` of ``domain`` as its plugin returns them (constraints included)."""
    return [term_info(item) for item in own_contributions(pm, pm.domain(domain), ctx)]


def with_derived_terms(pm: Any, spec: DomainSpec) -> DomainSpec:
    """``spec`` with ``benefit_terms`` derived from its plugin's terms when it declares none."""
    if spec.benefit_terms:
        return spec
    return spec.model_copy(update={"benefit_terms": domain_terms(pm, spec.name)})


def declaration_mismatches(declared: Sequence[BenefitTermInfo], returned: Sequence[BenefitTerm | Constraint]) -> list[str]:
    """Every difference between a hand-written declaration and the terms a plugin returns, one line each."""
    by_name = {item.name: term_info(item) for item in returned}
    out = []
    for info in declared:
        got = by_name.get(info.name)
        if got is None:
            out.append(f"DomainSpec.benefit_terms declares {info.name!r} but domainfm_benefit_terms does not return it; "
                       f"returned: {sorted(by_name)}")
        elif (got.objective, got.unit) != (info.objective, info.unit):
            out.append(f"{info.name}: declared as {info.objective} in {info.unit!r}, returned as {got.objective} "
                       f"in {got.unit!r}")
    names = {info.name for info in declared}
    undeclared = sorted(n for n, item in by_name.items() if item.objective != "constraint" and n not in names)
    if declared and undeclared:
        out.append(f"domainfm_benefit_terms returns terms DomainSpec.benefit_terms does not declare: {undeclared}")
    return out
