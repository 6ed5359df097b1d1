"""Why a benefit report's verdict is not "pass", in one line: what the terminal, the HTML badge and ``run`` show."""

from __future__ import annotations

from domainfm.benefit.model import BenefitReport, ConstraintCheck, ConstraintReport, OperatingPoint

MAX_LISTED = 3  # constraints named in the line; the rest are counted


def verdict_reason(report: BenefitReport) -> str | None:
    """None for "pass"; otherwise one line naming the constraints behind the verdict and why."""
    if report.verdict == "pass":
        return None
    best = report.best
    if best is None:
        return _infeasible(report)
    failing = [c for c in report.constraints if c.at_optimum is not None and c.at_optimum.status == "fail"]
    if failing:
        return "fails at the chosen operating point: " + _listed([_failure(c.name, c, c.at_optimum) for c in failing])
    unmeasured = [c for c in report.constraints if c.at_optimum is None or c.at_optimum.status == "not_measurable"]
    if not unmeasured:
        return None
    if best.n_automated == 0:  # nothing automated, nothing to measure: say what automating would break
        line = "the chosen operating point automates nothing, so " + ", ".join(c.name for c in unmeasured[:MAX_LISTED])
        line += f"{' and more' if len(unmeasured) > MAX_LISTED else ''} cannot be measured"
        return line + _why_nothing_automated(report, best.objective)
    return "not measurable at the chosen operating point: " + _listed(
        [f"{c.name} ({_why_unmeasurable(report, c, best)})" for c in unmeasured]
    )


def verdict_line(report: BenefitReport) -> str:
    """``verdict: pass`` or ``verdict: unverified: <reason>``: the last line of a run."""
    reason = verdict_reason(report)
    return f"verdict: {report.verdict}" + (f": {reason}" if reason else "")


def _infeasible(report: BenefitReport) -> str:
    line = "no operating point satisfies every measured constraint"
    blocked = _failures_at(report, report.unconstrained_optimum)
    return f"{line}; the best point without them fails {blocked}" if blocked else line


def _why_nothing_automated(report: BenefitReport, objective: float) -> str:
    automating = [i for i, p in enumerate(report.points) if p.n_automated > 0]
    if not automating:
        return ""
    index = max(automating, key=lambda i: report.points[i].objective)
    blocked = _failures_at(report, index)
    if blocked:
        return f"; the best point that automates fails {blocked}"
    point = report.points[index]
    return (f"; the best point that automates ({point.variant} @ {point.threshold:.3g}) has a lower objective "
            f"({point.objective:.3g} < {objective:.3g})")


def _failures_at(report: BenefitReport, index: int | None) -> str:
    """``head @ 0.15: a 0.077 > limit 0.05; ...``: the constraints failing at point ``index`` (empty if none)."""
    if index is None:
        return ""
    point = report.points[index]
    by_name = {c.name: c for c in report.constraints}
    failing = [
        _failure(name, by_name.get(name), check) for name, check in point.constraints.items() if check.status == "fail"
    ]
    return f"({point.variant} @ {point.threshold:.3g}): " + _listed(failing) if failing else ""


def _failure(name: str, constraint: ConstraintReport | None, check: ConstraintCheck | None) -> str:
    if constraint is None or check is None or check.value is None:
        return name
    sign = ">" if constraint.direction == "max" else "<"
    return f"{name} {check.value:.3g} {sign} limit {constraint.limit:g}"


def _why_unmeasurable(report: BenefitReport, constraint: ConstraintReport, best: OperatingPoint) -> str:
    check = constraint.at_optimum
    if check is not None and check.note:
        return check.note.rstrip(".")
    reason = constraint.details.get("reason")
    if reason:
        return str(reason).rstrip(".")
    column = constraint.details.get("group_column")
    stats = report.group_metrics.get(str(column)) if column else None
    if stats:
        minimum = constraint.details.get("min_group_size")
        sizes = ", ".join(f"{group} {s.n_automated}" for group, s in stats.items())
        need = f"fewer than 2 groups with >= {minimum} automated items" if minimum else "too few automated items per group"
        return f"{need}: {sizes}"
    return "no value at that point"


def _listed(items: list[str]) -> str:
    shown = "; ".join(items[:MAX_LISTED])
    return shown + (f"; and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")
