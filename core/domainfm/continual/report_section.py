"""The benefit report's "Improvement from feedback" section of a ``domainfm improve`` child (HTML)."""

from __future__ import annotations

from html import escape
from typing import Any

COLUMNS = (("old", "old (parent test)"), ("new", "new (held-out feedback)"), ("overall", "overall"),
           ("gain_on_new", "gain on new"), ("forgetting_on_old", "forgetting on old"), ("train_seconds", "training s"))
NAMES = {"parent": "parent (as served)", "replay": "this child (replay)", "naive": "naive fine-tuning",
         "full_retrain": "full retraining from the base"}


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else escape(str(value))


def continual_html(continual: dict[str, Any] | None) -> str:
    """The section, or "" for a run that is not a child."""
    if not continual:
        return ""
    lineage = continual.get("lineage") or {}
    promotion = continual.get("promotion") or {}
    verdict = ("promoted (forced)" if promotion.get("forced") else "promoted") if promotion.get("promoted") else "not promoted"
    head = "".join(f"<th>{escape(title)}</th>" for _, title in COLUMNS)
    rows = "".join(
        f"<tr><td>{escape(NAMES.get(name, name))}</td>" + "".join(f"<td>{_cell(figures.get(key))}</td>" for key, _ in COLUMNS) + "</tr>"
        for name, figures in (continual.get("models") or {}).items()
    )
    reasons = "".join(f"<li>{escape(r)}</li>" for r in promotion.get("reasons") or [])
    new = ", ".join(continual.get("new_labels") or []) or "none"
    return (
        "<h2>Improvement from feedback</h2>"
        f"<p>Child of run <code>{escape(str(lineage.get('parent_run_id')))}</code> (generation "
        f"{escape(str(lineage.get('generation')))}, feedback <code>{escape(str(lineage.get('feedback')))}</code>, "
        f"replay ratio {escape(str(lineage.get('replay_ratio')))}, regulariser {escape(str(lineage.get('regulariser')))}); "
        f"new labels: {escape(new)}.</p>"
        f"<p class='muted'>Accuracy on {escape(str((continual.get('measured_on') or {}).get('old')))} and "
        f"{escape(str((continual.get('measured_on') or {}).get('new')))}.</p>"
        f"<table><tr><th>model</th>{head}</tr>{rows}</table>"
        f"<p><b>Promotion: {escape(verdict)}</b></p><ul>{reasons}</ul>"
    )
