"""The promotion gate's decisions on constructed benefit reports."""

from __future__ import annotations

from typing import Any

from domainfm.benefit.model import BenefitReport
from domainfm.continual.gate import decide, standing


def check(status: str) -> dict[str, Any]:
    return {"value": 0.1, "status": status}


def report(objective: float | None, constraint_status: str = "pass") -> BenefitReport:
    """A report with one operating point (feasible when ``objective`` is given) and one privacy constraint."""
    feasible = objective is not None
    point = {"variant": "full", "threshold": 0.5, "coverage": 0.8, "n_automated": 8, "quality_automated": 0.9,
             "r_t_raw": 1.0, "r_s_raw": 0.0, "r_t": 1.0, "r_s": 0.0, "objective": objective if feasible else -1.0,
             "constraints": {"privacy_pii": check(constraint_status)}, "feasible": feasible,
             "verdict": "pass" if feasible else "fail"}
    constraint = {"name": "privacy_pii", "kind": "privacy", "unit": "findings", "description": "", "limit": 0.0,
                  "direction": "max", "depends_on_operating_point": False, "contributed_by": "core",
                  "at_optimum": check(constraint_status)}
    return BenefitReport.model_validate({
        "run_id": "r", "domain": "text_classification", "device": "cpu", "lambda": 1.0, "variants": ["full"],
        "normalisation": {}, "terms": [], "constraints": [constraint], "points": [point],
        "optimum": 0 if feasible else None, "verdict": "pass" if feasible else "fail"})


def test_promoted_when_the_objective_improves_and_constraints_hold() -> None:
    d = decide(standing(report(0.40)), standing(report(0.55)))
    assert d.promoted and d.gate_passed and not d.forced
    assert d.parent_objective == 0.40 and d.child_objective == 0.55
    assert any("objective improves" in r for r in d.reasons) and "every constraint holds" in d.reasons


def test_refused_when_the_objective_does_not_improve() -> None:
    d = decide(standing(report(0.55)), standing(report(0.55)))
    assert not d.promoted and not d.gate_passed
    assert any("does not improve" in r for r in d.reasons)
    assert not decide(standing(report(0.40)), standing(report(0.45)), min_gain=0.1).promoted


def test_refused_when_a_constraint_fails() -> None:
    child = standing(report(0.9, constraint_status="fail"))
    assert child.failed_constraints == ["privacy_pii"]
    d = decide(standing(report(0.4)), child)
    assert not d.promoted and "constraint privacy_pii fails for the child" in d.reasons


def test_refused_when_the_child_has_no_feasible_point() -> None:
    d = decide(standing(report(0.4)), standing(report(None, constraint_status="fail")))
    assert not d.promoted and d.child_objective is None
    assert any("no operating point" in r for r in d.reasons)


def test_a_feasible_child_beats_a_parent_with_no_feasible_point() -> None:
    assert decide(standing(report(None, constraint_status="fail")), standing(report(0.1))).promoted


def test_forgetting_limit_is_a_constraint_of_its_own() -> None:
    d = decide(standing(report(0.4)), standing(report(0.6)), forgetting=0.05, max_forgetting=0.02)
    assert not d.promoted and any("forgetting" in r for r in d.reasons)
    assert decide(standing(report(0.4)), standing(report(0.6)), forgetting=0.01, max_forgetting=0.02).promoted


def test_force_overrides_and_is_recorded() -> None:
    d = decide(standing(report(0.55)), standing(report(0.40)), force=True)
    assert d.promoted and d.forced and not d.gate_passed
    assert d.reasons[-1] == "promoted by --force despite the gate"
    passing = decide(standing(report(0.40)), standing(report(0.55)), force=True)
    assert passing.promoted and not passing.forced  # --force on a child the gate passes changes nothing
