"""The promotion gate: does a child replace its parent as the model served by default?

The child is promoted only when its benefit objective (at its constrained optimum) beats the parent's, both
scored on the same items (the parent's test split plus the held-out feedback) under the same assumptions, and
every constraint of the child's report holds there (a constraint that fails, or no feasible operating point,
blocks it). ``options.max_forgetting`` (accuracy points on the parent's test split, off by default) adds a
constraint of its own. ``--force`` promotes anyway; the decision records that it was forced and what the gate
said.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Standing:
    """What the gate reads of one benefit report."""

    objective: float | None
    failed_constraints: list[str] = field(default_factory=list)
    verdict: str | None = None


def standing(report: Any) -> Standing:
    """The objective at the constrained optimum (None: no feasible point) and the constraints that fail there."""
    best = report.best
    failed: list[str] = []
    for c in report.constraints:
        check = c.at_optimum
        if check is not None and check.status == "fail":
            failed.append(c.name)
    if best is None:  # no operating point satisfies every measured constraint: name those failing everywhere
        failed = failed or sorted({name for p in report.points for name, ch in p.constraints.items() if ch.status == "fail"})
    return Standing(objective=None if best is None else float(best.objective), failed_constraints=failed,
                    verdict=str(report.verdict))


@dataclass(frozen=True)
class Decision:
    promoted: bool
    forced: bool
    gate_passed: bool
    reasons: list[str]
    parent_objective: float | None
    child_objective: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(parent: Standing, child: Standing, *, force: bool = False, min_gain: float = 0.0,
           forgetting: float | None = None, max_forgetting: float | None = None) -> Decision:
    """The gate's decision and every reason for it (``forgetting`` in accuracy on the parent's test split)."""
    reasons: list[str] = []
    passed = True
    if child.objective is None:
        passed = False
        reasons.append("the child has no operating point that satisfies every constraint")
    elif parent.objective is not None and not child.objective > parent.objective + min_gain:
        passed = False
        reasons.append(f"objective does not improve: child {child.objective:.4g} vs parent {parent.objective:.4g}"
                       + (f" (+{min_gain:g} required)" if min_gain else ""))
    else:
        was = "none feasible" if parent.objective is None else f"{parent.objective:.4g}"
        reasons.append(f"objective improves: child {child.objective:.4g} vs parent {was}")
    for name in child.failed_constraints:
        passed = False
        reasons.append(f"constraint {name} fails for the child")
    if max_forgetting is not None and forgetting is not None:
        if forgetting > max_forgetting:
            passed = False
            reasons.append(f"forgetting on the parent's test split {forgetting:.4f} > options.max_forgetting {max_forgetting:g}")
        else:
            reasons.append(f"forgetting {forgetting:.4f} within options.max_forgetting {max_forgetting:g}")
    if passed:
        reasons.append("every constraint holds")
    if force and not passed:
        reasons.append("promoted by --force despite the gate")
    return Decision(promoted=passed or force, forced=force and not passed, gate_passed=passed, reasons=reasons,
                    parent_objective=parent.objective, child_objective=child.objective)
