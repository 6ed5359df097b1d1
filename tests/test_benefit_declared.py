"""DomainSpec.benefit_terms derived from the terms a plugin returns (domainfm.benefit.declared): declared once, in
domainfm_benefit_terms; a hand-written declaration that disagrees (another unit, a missing term) is caught."""

from __future__ import annotations

import numpy as np
import pytest

from domainfm.benefit.declared import declaration_mismatches, domain_terms, term_info, with_derived_terms
from domainfm.manager import PluginManager
from domainfm.types import BenefitTerm, BenefitTermInfo, Constraint

TERM = BenefitTerm(name="minutes_saved", objective="business", unit="min", description="x",
                   utility=lambda b: np.zeros(len(b)))
LIMIT = Constraint(name="miss_rate", kind="safety", unit="fraction of negative items", description="x", limit=0.2,
                   measure=lambda b: None)


def test_a_unit_mismatch_is_caught() -> None:
    declared = [BenefitTermInfo(name="minutes_saved", objective="business", unit="min"),
                BenefitTermInfo(name="miss_rate", objective="constraint", unit="fraction")]
    (message,) = declaration_mismatches(declared, [TERM, LIMIT])
    assert message == "miss_rate: declared as constraint in 'fraction', returned as constraint in 'fraction of negative items'"


def test_missing_and_undeclared_terms_are_named_and_an_empty_declaration_is_derived() -> None:
    missing = declaration_mismatches([BenefitTermInfo(name="hours", objective="business", unit="h")], [TERM])
    assert "declares 'hours' but domainfm_benefit_terms does not return it" in missing[0]
    assert "does not declare: ['minutes_saved']" in missing[1]
    assert declaration_mismatches([], [TERM, LIMIT]) == []
    assert term_info(LIMIT) == BenefitTermInfo(name="miss_rate", objective="constraint",
                                               unit="fraction of negative items", description="x")


@pytest.fixture(scope="module")
def pm() -> PluginManager:
    return PluginManager().load()


@pytest.mark.parametrize(("domain", "term", "objective", "unit"), [
    ("customer_service", "agent_time_saved", "business", "agent hours"),
    ("customer_service", "out_of_scope_answered_rate", "constraint", "fraction"),
    ("education", "teacher_hours_saved", "business", "h"),
    ("knowledge_tracing", "remediation_reach", "social", "weak spots"),
])
def test_plugins_that_declare_nothing_get_their_returned_terms(pm: PluginManager, domain: str, term: str,
                                                               objective: str, unit: str) -> None:
    if domain not in pm.domains:
        pytest.skip(f"plugin of {domain} not installed")
    spec = pm.domain(domain)
    assert spec.benefit_terms == []  # declared once: in domainfm_benefit_terms
    derived = {info.name: info for info in with_derived_terms(pm, spec).benefit_terms}
    assert (derived[term].objective, derived[term].unit) == (objective, unit)
    assert "resource_latency_p95" not in derived  # the core's constraints for every domain are not the plugin's


def test_every_term_name_has_one_unit_across_installed_domains(pm: PluginManager) -> None:
    units: dict[str, set[str]] = {}
    for name in pm.domains:
        for info in domain_terms(pm, name):
            units.setdefault(info.name, set()).add(info.unit)
    assert {n: u for n, u in units.items() if len(u) > 1} == {}
