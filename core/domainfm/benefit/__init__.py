"""The benefit engine: what a model deployment is worth to the business (R_T) and to society (R_S).

maximise R_T + λ·R_S subject to privacy, fairness and resource constraints, over operating points
(model variant × confidence threshold), with the Pareto front, the constrained optimum, the cost of each
constraint, a JSON of every term and a self-contained HTML report. See :mod:`domainfm.benefit.engine`
for the normalisation and decision rules.

Nothing here imports torch; matplotlib, fairlearn, presidio and codecarbon are imported when used.
"""

from __future__ import annotations

from domainfm.benefit.engine import check_constraint, make_batch, score, term_value
from domainfm.benefit.model import BenefitReport, ConstraintCheck, OperatingPoint
from domainfm.benefit.report import load_report, render_html, write_report
from domainfm.benefit.summary import summary_table
from domainfm.benefit.verdict import verdict_line, verdict_reason

__all__ = [
    "BenefitReport",
    "ConstraintCheck",
    "OperatingPoint",
    "check_constraint",
    "load_report",
    "make_batch",
    "render_html",
    "score",
    "summary_table",
    "term_value",
    "verdict_line",
    "verdict_reason",
    "write_report",
]
