"""Write a benefit report: ``benefit.json`` (every term and check) and a self-contained ``report.html``.

The HTML has no external resources at all (no scripts, stylesheets, fonts or images fetched): styles are
inline and plots are inline SVG with glyphs drawn as paths, so it renders offline in any browser.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from domainfm.benefit.model import BenefitReport, ConstraintCheck, OperatingPoint
from domainfm.io import atomic_write_json, atomic_write_text

BENEFIT_JSON = "benefit.json"
REPORT_HTML = "report.html"

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem;background:#fff}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem;width:100%}.tw{overflow-x:auto}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f4f6f8} td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:.8rem;color:#fff;font-weight:600}
.pass{background:#2ca02c}.fail{background:#d62728}.unverified,.not_measurable{background:#ff7f0e}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:.5rem;padding:.6rem 1rem;min-width:150px;background:#fafbfc}
.card .v{font-size:1.4rem;font-weight:600}.card .l{font-size:.8rem;color:#555}
.plots{display:flex;flex-wrap:wrap;gap:1rem}.plot{flex:1 1 480px}.plot svg{width:100%;height:auto}
.muted{color:#666;font-size:.85rem} ul.warn li{color:#8a4b00}
code{background:#f4f6f8;padding:0 .2rem}
.card .v .reason{display:block;font-size:.85rem;font-weight:400;color:#8a4b00;max-width:40rem}
"""


def write_report(report: BenefitReport, run_dir: str | Path) -> dict[str, Path]:
    """Write ``benefit.json`` and ``report.html`` into ``run_dir`` (atomically); return their paths."""
    run_dir = Path(run_dir)
    payload = json.loads(report.model_dump_json(by_alias=True))
    json_path = atomic_write_json(run_dir / BENEFIT_JSON, payload)
    html_path = atomic_write_text(run_dir / REPORT_HTML, render_html(report, training_logs(report, run_dir)))
    return {"benefit": json_path, "report": html_path}


def load_report(path: str | Path) -> BenefitReport:
    """Read a ``benefit.json`` (or the run directory holding one)."""
    from domainfm.errors import DataError

    path = Path(path)
    if path.is_dir():
        path = path / BENEFIT_JSON
    if not path.is_file():
        raise DataError(f"{path}: no benefit report (run `domainfm score` on the run directory first)")
    try:
        return BenefitReport.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{path}: not a valid benefit report: {str(exc).splitlines()[0]}") from exc


# ------------------------------------------------------------------------------------------ HTML


def training_logs(report: BenefitReport, run_dir: Path) -> dict[str, dict[str, Any]]:
    """The training curves of every fine-tuned model of the run (``training_log.json`` in its artifact), by
    model name; the run's own ``artifact/`` takes the name of the one variant no other folder is named after."""
    from domainfm.training_log import find_training_logs, read_training_log

    found = find_training_logs(run_dir)
    others = [v for v in report.variants if v not in found]
    rename = others[0] if "model" in found and len(others) == 1 else "model"
    return {(rename if name == "model" else name): read_training_log(path) for name, path in found.items()}


def render_html(report: BenefitReport, training_logs: dict[str, dict[str, Any]] | None = None) -> str:
    """The whole report as one HTML string (with each fine-tuned model's training curves when given)."""
    from domainfm.benefit import plots

    best = report.best
    shown = best or (report.points[report.unconstrained_optimum] if report.unconstrained_optimum is not None else None)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>domainfm benefit report: {escape(report.domain)} {escape(report.run_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Benefit report: {escape(report.domain)}</h1>",
        f"<div class='muted'>run {escape(report.run_id)} · device {escape(report.device)} · "
        f"{escape(report.created_at.isoformat(timespec='seconds'))} · variants {escape(', '.join(report.variants))}</div>",
        f"<div class='muted'>this report {escape(report.source.describe())}</div>" if report.source else "",
        _summary_cards(report, best, shown),
        _objective_text(report),
        _continual_section(report),
    ]
    if report.warnings or report.assumption_overrides_unused or report.limit_overrides_unused:
        items = [escape(w) for w in report.warnings]
        items += [f"assumption override <code>{escape(k)}</code> matches no term's assumption"
                  for k in report.assumption_overrides_unused]
        items += [f"limit override <code>{escape(k)}</code> matches no constraint" for k in report.limit_overrides_unused]
        parts.append("<h2>Warnings</h2><ul class='warn'>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")

    if report.excluded_plugins:
        rows = [f"<li><code>{escape(e.plugin)}</code> excluded: {escape(e.hook)} raised"
                f"{escape(f' (domain {e.domain})' if e.domain else '')}: {escape(e.error)}</li>" for e in report.excluded_plugins]
        parts.append("<h2>Excluded plugins</h2><p class='muted'>These plugins raised outside their own domain; they took "
                     "no further part in this run (or this process).</p><ul class='warn'>" + "".join(rows) + "</ul>")

    parts.append("<h2>Trade-off</h2><div class='plots'>")
    parts.append(_plot("Pareto front of R_T vs R_S", plots.pareto_svg(report)))
    parts.append(_plot("Benefit against the confidence threshold", plots.threshold_svg(report)))
    parts.append("</div>")
    parts.append(_lambda_table(report))
    parts.append(_pareto_table(report))

    parts.append("<h2>Constraints</h2>")
    parts.append(_constraints_table(report))
    resource = plots.resource_svg(report)
    parts.append("<div class='plots'>")
    if resource:
        parts.append(_plot("Resources against their limits", resource))
    for title, svg in plots.group_svgs(report):
        parts.append(_plot(title, svg))
    parts.append("</div>")
    if not report.group_metrics:
        parts.append("<p class='muted'>No group columns: fairness is not measurable for this data.</p>")
    parts.append(_group_tables(report))
    parts.append(_privacy_details(report))

    parts.append("<h2>Benefit terms and their assumptions</h2>")
    parts.append(_terms_table(report))

    parts.append("<h2>Quality curves</h2><div class='plots'>")
    for title, svg in plots.risk_coverage_svgs(report):
        parts.append(_plot(title, svg))
    parts.append("</div>")
    training = plots.training_curve_svgs(training_logs or {})
    if training:
        parts.append("<h2>Training curves</h2><p class='muted'>Loss and validation metrics per step of every fine-tuned "
                     "model of the run, from its <code>training_log.json</code>.</p><div class='plots'>")
        parts.extend(_plot(title, svg) for title, svg in training)
        parts.append("</div>")
    parts.append(_candidates_table(report))
    parts.append(_metrics_table(report))
    parts.append(_resources_table(report))
    parts.append(
        "<p class='muted'>Every number here is in <code>benefit.json</code> next to this file. "
        "Recompute with <code>domainfm score RUN_DIR [--lambda X] [--set benefit.assumptions.NAME=V]</code>.</p>"
    )
    parts.append("</body></html>")
    # wide tables scroll inside their own box instead of widening the page
    return "\n".join(parts).replace("<table>", "<div class='tw'><table>").replace("</table>", "</table></div>")


def _plot(title: str, svg: str) -> str:
    return f"<figure class='plot'><figcaption><b>{escape(title)}</b></figcaption>{svg}</figure>"


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return escape(str(value))


def _badge(status: str) -> str:
    return f"<span class='badge {escape(status)}'>{escape(status.replace('_', ' '))}</span>"


def _summary_cards(report: BenefitReport, best: OperatingPoint | None, shown: OperatingPoint | None) -> str:
    from domainfm.benefit.verdict import verdict_reason

    reason = verdict_reason(report)
    verdict = _badge(report.verdict) + (f" <span class='reason'>{escape(reason)}</span>" if reason else "")
    cards = [("verdict", verdict)]
    if best is None:
        cards.append(("chosen operating point", "none feasible"))
    else:
        cards.append(("chosen operating point", f"{escape(best.variant)} @ {best.threshold:.3g}"))
    if shown is not None:
        cards += [
            ("coverage (automated)", f"{shown.coverage:.1%}"),
            ("objective R_T + λ·R_S", _fmt(shown.objective)),
            (f"R_T ({escape(report.normalisation['business'].unit)})", f"{_fmt(shown.r_t)} <span class='l'>raw {_fmt(shown.r_t_raw)}</span>"),
            (f"R_S ({escape(report.normalisation['social'].unit)})", f"{_fmt(shown.r_s)} <span class='l'>raw {_fmt(shown.r_s_raw)}</span>"),
        ]
    cards.append(("λ (weight of R_S)", _fmt(report.lambda_)))
    body = "".join(f"<div class='card'><div class='l'>{label}</div><div class='v'>{value}</div></div>" for label, value in cards)
    note = ""
    if best is None and shown is not None:
        note = (f"<p>No operating point satisfies every measured constraint. Shown: the unconstrained optimum "
                f"{escape(shown.variant)} @ {shown.threshold:.3g}.</p>")
    return f"<div class='cards'>{body}</div>{note}"


def _objective_text(report: BenefitReport) -> str:
    items = "".join(f"<li><b>{escape(n.objective)}</b> ({escape(n.method)}): {escape(n.explanation)}</li>"
                    for n in report.normalisation.values())
    return (
        "<p>Objective: maximise <b>R_T + λ·R_S</b> subject to the privacy, fairness and resource constraints, "
        "over the swept operating points (model variant × confidence threshold: items at or above the threshold "
        "are automated, the rest go to a person). A constraint that cannot be measured is shown as such and "
        f"never counts as passed.</p><p>Normalisation:</p><ul>{items}</ul>"
    )


def _lambda_table(report: BenefitReport) -> str:
    rows = []
    for lp in report.lambda_sweep:
        p = report.points[lp.optimum] if lp.optimum is not None else None
        where = f"{escape(p.variant)} @ {p.threshold:.3g} (coverage {p.coverage:.1%})" if p else "none feasible"
        rows.append(f"<tr><td class='num'>{lp.lambda_:g}</td><td>{where}</td><td class='num'>{_fmt(lp.objective)}</td>"
                    f"<td class='num'>{_fmt(lp.r_t)}</td><td class='num'>{_fmt(lp.r_s)}</td></tr>")
    return ("<h3>Constrained optimum by λ</h3><table><tr><th>λ</th><th>operating point</th><th>objective</th>"
            "<th>R_T</th><th>R_S</th></tr>" + "".join(rows) + "</table>")


def _pareto_table(report: BenefitReport) -> str:
    rows = []
    for i in report.pareto:
        p = report.points[i]
        mark = " ★" if i == report.optimum else ""
        rows.append(f"<tr><td>{escape(p.variant)}{mark}</td><td class='num'>{p.threshold:.4g}</td>"
                    f"<td class='num'>{p.coverage:.1%}</td><td class='num'>{_fmt(p.quality_automated)}</td>"
                    f"<td class='num'>{_fmt(p.r_t)}</td><td class='num'>{_fmt(p.r_s)}</td>"
                    f"<td class='num'>{_fmt(p.objective)}</td></tr>")
    if not rows:
        return "<p>No feasible operating point, so no feasible Pareto front.</p>"
    return ("<h3>Feasible Pareto front</h3><table><tr><th>variant</th><th>threshold</th><th>coverage</th>"
            "<th>quality (automated)</th><th>R_T</th><th>R_S</th><th>objective</th></tr>" + "".join(rows) + "</table>")


def _check_cells(check: ConstraintCheck | None) -> str:
    if check is None:
        return "<td>–</td><td>–</td><td>–</td>"
    return (f"<td class='num'>{_fmt(check.value)}</td><td>{_badge(check.status)}</td>"
            f"<td class='num'>{_fmt(check.margin)}</td>")


def _constraints_table(report: BenefitReport) -> str:
    rows = []
    for c in report.constraints:
        limit = f"{'≤' if c.direction == 'max' else '≥'} {_fmt(c.limit)}" + (" (overridden)" if c.limit_overridden else "")
        cost = _fmt(c.cost) if c.cost is not None else ""
        parts = (c.cost_note, c.at_optimum.note if c.at_optimum else None, c.details.get("reason"), c.details.get("note"))
        note = "; ".join(dict.fromkeys(str(x) for x in parts if x))  # each distinct remark once
        rows.append(
            f"<tr><td><b>{escape(c.name)}</b><div class='muted'>{escape(c.description)} "
            f"(from {escape(c.contributed_by or '?')})</div></td><td>{escape(c.kind)}</td>"
            f"<td>{escape(c.unit)}</td><td>{escape(limit)}</td>{_check_cells(c.at_optimum)}"
            f"<td class='num'>{cost}</td><td>{escape(note)}</td></tr>"
        )
    return ("<table><tr><th>constraint</th><th>kind</th><th>unit</th><th>limit</th><th>value</th><th>status</th>"
            "<th>margin</th><th>cost in objective</th><th>note</th></tr>" + "".join(rows) + "</table>"
            "<p class='muted'>Cost = optimum of the objective without the constraint minus the optimum with all "
            "constraints (0 = it does not bind).</p>")


def _group_tables(report: BenefitReport) -> str:
    out = []
    for column, stats in report.group_metrics.items():
        rows = "".join(
            f"<tr><td>{escape(g)}</td><td class='num'>{s.n}</td><td class='num'>{s.n_automated}</td>"
            f"<td class='num'>{s.coverage:.1%}</td><td class='num'>{_fmt(s.quality)}</td><td class='num'>{_fmt(s.key_metric)}</td></tr>"
            for g, s in stats.items()
        )
        out.append(f"<h3>By {escape(column)} at the chosen operating point</h3><table><tr><th>group</th><th>items</th>"
                   f"<th>automated</th><th>coverage</th><th>mean quality</th><th>{escape(report.key_metric or 'key metric')}</th></tr>"
                   f"{rows}</table>")
    return "".join(out)


def _privacy_details(report: BenefitReport) -> str:
    rows = []
    for c in report.constraints:
        if c.kind != "privacy" or not c.details:
            continue
        d = c.details
        kinds = ", ".join(f"{k}: {v}" for k, v in (d.get("by_kind") or {}).items()) or "none"
        examples = "<br>".join(escape(str(e)) for e in d.get("examples") or [])
        scanned = d.get("n_texts")
        ner = "with NER" if d.get("ner_used") else escape(str(d.get("ner_reason") or ""))
        rows.append(f"<tr><td>{escape(c.name)}</td><td class='num'>{_fmt(scanned)}</td><td>{escape(kinds)}</td>"
                    f"<td>{ner}</td><td>{escape(str(d.get('origin') or d.get('reason') or d.get('source') or ''))}</td>"
                    f"<td>{examples}</td></tr>")
    if not rows:
        return ""
    return ("<h3>Personal data scans</h3><table><tr><th>constraint</th><th>texts scanned</th><th>found by kind</th>"
            "<th>recognisers</th><th>origin</th><th>examples (masked)</th></tr>" + "".join(rows) + "</table>")


def _terms_table(report: BenefitReport) -> str:
    if not report.terms:
        return "<p>No benefit terms were contributed for this domain.</p>"
    rows = []
    for t in report.terms:
        assumptions = "<br>".join(
            f"<code>{escape(a.name)}</code> = {_fmt(a.value)} {escape(a.unit)}{' (overridden)' if a.overridden else ''}"
            f" <span class='muted'>source: {escape(a.source)}</span>"
            for a in t.assumptions
        ) or "–"
        rows.append(
            f"<tr><td><b>{escape(t.name)}</b><div class='muted'>{escape(t.description)}</div></td>"
            f"<td>{escape(t.objective)}</td><td>{escape(t.unit)}</td><td class='num'>{_fmt(t.scale)}</td>"
            f"<td class='num'>{_fmt(t.value_at_optimum)}</td><td>{assumptions}</td><td>{escape(t.contributed_by or '')}</td></tr>"
        )
    return ("<table><tr><th>term</th><th>objective</th><th>unit</th><th>scale</th><th>value at optimum</th>"
            "<th>assumptions</th><th>from</th></tr>" + "".join(rows) + "</table>")


def _metric_cell(metrics: dict[str, float], name: str) -> str:
    """The metric, with its 95 % interval when the evaluation measured one."""
    from domainfm.metrics import metric_interval

    bounds = metric_interval(metrics, name)
    interval = f" [{_fmt(bounds[0])}, {_fmt(bounds[1])}]" if bounds else ""
    return f"<td class='num'>{_fmt(metrics.get(name))}{interval}</td>"


def _metrics_table(report: BenefitReport) -> str:
    from domainfm.metrics import INTERVAL_SUFFIXES

    names: list[str] = []
    for m in report.metrics.values():
        names += [k for k in m if k not in names and not k.endswith(INTERVAL_SUFFIXES)]
    if not names:
        return ""
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = "".join(
        f"<tr><td>{escape(v)}</td>" + "".join(_metric_cell(m, n) for n in names) + "</tr>"
        for v, m in report.metrics.items()
    )
    return (f"<h3>Evaluation metrics</h3><p>Brackets: 95 % bootstrap interval over the test items.</p>"
            f"<table><tr><th>variant</th>{head}</tr>{rows}</table>")


def _candidates_table(report: BenefitReport) -> str:
    """The candidate models side by side (teacher and student when the run distilled) and the one chosen."""
    if len(report.candidates) < 2:
        return ""
    roles = any(c.get("role") for c in report.candidates)
    title = "Teacher and student" if roles else "Candidates"

    def quality(c: dict[str, Any], key: str) -> str:
        ci = c.get(f"{key}_ci95")
        return _fmt(c.get(key)) + (f" <span class='l'>[{ci[0]:.3f}, {ci[1]:.3f}]</span>" if ci else "")

    def energy(c: dict[str, Any]) -> str:
        kwh = c.get("energy_kwh_per_1000_predictions")
        return "–" if kwh is None else f"{kwh * 1000:.3g} Wh"

    rows = "".join(
        f"<tr><td>{escape(c['variant'])}{' ★' if c.get('chosen') else ''}</td><td>{escape(str(c.get('role') or ''))}</td>"
        f"<td class='num'>{quality(c, 'accuracy')}</td><td class='num'>{quality(c, 'macro_f1')}</td>"
        f"<td class='num'>{_fmt(c.get('latency_ms_p50'))} / {_fmt(c.get('latency_ms_p95'))}</td>"
        f"<td class='num'>{_fmt(c.get('texts_per_s'))}</td><td class='num'>{energy(c)}</td>"
        f"<td class='num'>{_fmt(c.get('best_feasible_objective'))}</td></tr>"
        for c in report.candidates
    )
    chosen = next((c["variant"] for c in report.candidates if c.get("chosen")), None)
    verdict = (f"The objective picks <b>{escape(chosen)}</b> under the constraints." if chosen
               else "No candidate satisfies every measured constraint.")
    return (f"<h3>{title}</h3><p>{verdict} Quality on the evaluated split with its 95 % interval; latency of one "
            "request (p50 / p95); texts/s and energy per 1,000 predictions measured side by side by the trainer.</p>"
            "<table><tr><th>candidate</th><th>role</th><th>accuracy</th><th>macro-F1</th><th>latency ms</th>"
            "<th>texts/s</th><th>energy / 1,000</th><th>best feasible objective</th></tr>" + rows + "</table>")


def _continual_section(report: BenefitReport) -> str:
    from domainfm.continual.report_section import continual_html

    return continual_html(report.continual)


def _resources_table(report: BenefitReport) -> str:
    rows = "".join(
        f"<tr><td>{escape(k)}</td><td class='num'>{_fmt(v) if not isinstance(v, dict) else escape(json.dumps(v))}</td></tr>"
        for k, v in report.resources.items()
    )
    return f"<h3>Resources measured</h3><table><tr><th>resource</th><th>value</th></tr>{rows}</table>"
