"""The terminal summary of a benefit report (a rich table)."""

from __future__ import annotations

from typing import Any

from domainfm.benefit.model import BenefitReport
from domainfm.benefit.verdict import verdict_reason

_STYLE = {"pass": "green", "fail": "red", "not_measurable": "yellow", "unverified": "yellow"}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summary_table(report: BenefitReport) -> Any:
    """A ``rich.table.Table``: the chosen operating point, R_T, R_S, objective, every term and constraint."""
    from rich.table import Table

    table = Table(title=f"benefit: {report.domain} run {report.run_id} (λ={report.lambda_:g}, device {report.device})")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_column("limit / unit")
    table.add_column("status")
    table.add_column("note")
    best = report.best
    verdict = f"[{_STYLE[report.verdict]}]{report.verdict}[/]"
    reason = verdict_reason(report) or ""
    if best is None:
        table.add_row("operating point", "none feasible", "", verdict, reason)
    else:
        table.add_row(
            "operating point", f"{best.variant} @ {best.threshold:.3g}", f"coverage {best.coverage:.1%}", verdict, reason
        )
        nb, ns = report.normalisation["business"], report.normalisation["social"]
        table.add_row("R_T (business)", _fmt(best.r_t), f"raw {_fmt(best.r_t_raw)} {nb.unit}", "", nb.method)
        table.add_row("R_S (social)", _fmt(best.r_s), f"raw {_fmt(best.r_s_raw)} {ns.unit}", "", ns.method)
        table.add_row("objective", _fmt(best.objective), "R_T + λ·R_S", "", "")
    for t in report.terms:
        table.add_row(f"  {t.objective} term {t.name}", _fmt(t.value_at_optimum), t.unit, "", t.contributed_by or "")
    for c in report.constraints:
        check = c.at_optimum
        status = check.status if check else "not_measurable"
        sign = "≤" if c.direction == "max" else "≥"
        note = f"cost {_fmt(c.cost)}" if c.cost else (c.cost_note or "")
        if check is not None and check.status == "not_measurable" and (check.note or c.details.get("reason")):
            note = str(check.note or c.details.get("reason"))
        table.add_row(
            f"  {c.kind} {c.name}",
            _fmt(check.value if check else None),
            f"{sign} {_fmt(c.limit)} {c.unit}",
            f"[{_STYLE[status]}]{status.replace('_', ' ')}[/]",
            note,
        )
    for e in report.excluded_plugins:  # raised outside its own domain: took no further part
        table.add_row(f"  plugin {e.plugin}", "", "", "[yellow]excluded[/]", f"{e.hook} raised: {e.error}")
    return table
