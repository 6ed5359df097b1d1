"""The report's plots as inline SVG (matplotlib's object API, no pyplot state, glyphs drawn as paths)."""

from __future__ import annotations

import io
from typing import Any

from domainfm.benefit.model import BenefitReport

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def _figure(width: float = 6.4, height: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype so it can sit inside HTML


def pareto_svg(report: BenefitReport) -> str:
    """R_T vs R_S of every operating point; feasible Pareto front; the constrained optimum."""
    fig = _figure()
    ax = fig.add_subplot()
    for k, variant in enumerate(report.variants):
        pts = [p for p in report.points if p.variant == variant]
        colour = _COLOURS[k % len(_COLOURS)]
        ok = [p for p in pts if p.feasible]
        bad = [p for p in pts if not p.feasible]
        ax.scatter([p.r_t for p in ok], [p.r_s for p in ok], s=18, color=colour, label=f"{variant} (feasible)")
        if bad:
            ax.scatter([p.r_t for p in bad], [p.r_s for p in bad], s=18, color=colour, marker="x", alpha=0.5,
                       label=f"{variant} (violates a constraint)")
    if report.pareto:
        front = [report.points[i] for i in report.pareto]
        ax.plot([p.r_t for p in front], [p.r_s for p in front], color="black", lw=1, label="Pareto front (feasible)")
    if report.optimum is not None:
        best = report.points[report.optimum]
        ax.scatter([best.r_t], [best.r_s], s=180, marker="*", color="red", zorder=5,
                   label=f"optimum (λ={report.lambda_:g})")
    ax.set_xlabel("R_T (business, normalised)")
    ax.set_ylabel("R_S (social, normalised)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _svg(fig)


def threshold_svg(report: BenefitReport) -> str:
    """Objective, R_T, R_S and coverage against the confidence threshold, per variant."""
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    ax2 = ax.twinx()
    for k, variant in enumerate(report.variants):
        pts = sorted((p for p in report.points if p.variant == variant), key=lambda p: p.threshold)
        colour = _COLOURS[k % len(_COLOURS)]
        xs = [p.threshold for p in pts]
        ax.plot(xs, [p.objective for p in pts], color=colour, lw=2, label=f"{variant}: objective")
        ax.plot(xs, [p.r_t for p in pts], color=colour, lw=1, ls="--", label=f"{variant}: R_T")
        ax.plot(xs, [p.r_s for p in pts], color=colour, lw=1, ls=":", label=f"{variant}: R_S")
        ax2.plot(xs, [p.coverage for p in pts], color="grey", lw=1, alpha=0.6)
    ax.set_xlabel("confidence threshold (automate at or above)")
    ax.set_ylabel("normalised benefit")
    ax2.set_ylabel("coverage (grey)")
    ax2.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _svg(fig)


def risk_coverage_svgs(report: BenefitReport) -> list[tuple[str, str]]:
    """Quality of automated items against coverage (from the sweep), plus each evaluation curve by name."""
    out: list[tuple[str, str]] = []
    fig = _figure()
    ax = fig.add_subplot()
    for k, variant in enumerate(report.variants):
        pts = sorted(
            (p for p in report.points if p.variant == variant and p.quality_automated is not None),
            key=lambda p: p.coverage,
        )
        ax.plot([p.coverage for p in pts], [p.quality_automated for p in pts], marker="o", ms=3,
                color=_COLOURS[k % len(_COLOURS)], label=variant)
    ax.set_xlabel("coverage (fraction automated)")
    ax.set_ylabel("mean quality of automated items")
    ax.set_xlim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    out.append(("Risk-coverage from the threshold sweep", _svg(fig)))
    names = sorted({name for curves in report.curves.values() for name in curves})
    for name in names:
        fig = _figure()
        ax = fig.add_subplot()
        labels: tuple[str, str] = ("x", "y")
        for k, (variant, curves) in enumerate(report.curves.items()):
            curve = curves.get(name)
            if not curve:
                continue
            labels = (curve.get("x_label", "x"), curve.get("y_label", "y"))
            ax.plot(curve["x"], curve["y"], color=_COLOURS[k % len(_COLOURS)], label=variant)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        out.append((f"Evaluation curve: {name}", _svg(fig)))
    return out


def group_svgs(report: BenefitReport) -> list[tuple[str, str]]:
    """Key metric (or mean quality) per group at the chosen operating point, one chart per group column."""
    out = []
    for column, stats in report.group_metrics.items():
        names = list(stats)
        values = [s.key_metric if s.key_metric is not None else 0.0 for s in stats.values()]
        fig = _figure(6.4, max(2.2, 0.35 * len(names) + 1.2))
        ax = fig.add_subplot()
        bars = ax.barh(names, values, color=_COLOURS[0])
        for bar, s in zip(bars, stats.values(), strict=True):
            label = "n/a" if s.key_metric is None else f"{s.key_metric:.3f}"
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                    f" {label} (n={s.n_automated}/{s.n})", va="center", fontsize=7)
        ax.set_xlim(0, 1.25)
        ax.set_xlabel(f"{report.key_metric or 'quality'} among automated items")
        ax.invert_yaxis()
        out.append((f"{report.key_metric or 'quality'} by {column}", _svg(fig)))
    return out


def resource_svg(report: BenefitReport) -> str | None:
    """Each measured resource as a fraction of its limit (log scale; red when over the limit)."""
    rows = [
        (c.name, c.at_optimum.value / c.limit, c.at_optimum.value, c.limit, c.unit)
        for c in report.constraints
        if c.kind == "resource" and c.at_optimum is not None and c.at_optimum.value is not None and c.limit > 0
    ]
    if not rows:
        return None
    fig = _figure(6.4, 0.45 * len(rows) + 1.4)
    ax = fig.add_subplot()
    fractions = [max(r[1], 1e-9) for r in rows]
    colours = ["#d62728" if f > 1 else _COLOURS[2] for f in fractions]
    bars = ax.barh([r[0] for r in rows], fractions, color=colours)
    for bar, (_name, _f, value, limit, unit) in zip(bars, rows, strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:.4g} / {limit:.4g} {unit}",
                va="center", fontsize=7)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(min(fractions) / 3, max(10.0, max(fractions) * 30))
    ax.set_xlabel("fraction of the limit (log scale; 1 = at the limit)")
    ax.invert_yaxis()
    return _svg(fig)


def training_curve_svgs(logs: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """Per fine-tuned model: training loss and validation loss per step (left), each validation metric per
    evaluation step (right), the best checkpoint's step marked; from its ``training_log.json``."""
    from domainfm.training_log import curves, series_name

    out: list[tuple[str, str]] = []
    for name, log in logs.items():
        series = curves(log)
        if not series:
            continue
        fig = _figure(6.4, 3.8)
        ax = fig.add_subplot()
        ax2 = ax.twinx()
        greys: dict[str, str] = {}
        for key in sorted(k for k in series if series_name(k) in ("loss", "eval_loss")):
            xs, ys = zip(*series[key], strict=True)
            shade = greys.setdefault(key.removeprefix("eval_"), ("black", "dimgrey", "darkgrey")[len(greys) % 3])
            validation = series_name(key) == "eval_loss"
            ax.plot(xs, ys, color=shade, ls="--" if validation else "-", lw=1.2, marker="o" if validation else None,
                    ms=3, label=("validation " if validation else "training ") + key.removeprefix("eval_"))
        metrics = sorted(k for k in series if k.startswith("eval_") and series_name(k) != "eval_loss")
        for k, key in enumerate(metrics):
            xs, ys = zip(*series[key], strict=True)
            ax2.plot(xs, ys, color=_COLOURS[k % len(_COLOURS)], marker="o", ms=3, lw=1.5,
                     label=f"validation {key.removeprefix('eval_')}")
        best, target = log.get("best_metric"), log.get("metric_for_best_model")
        best_steps = [s for key in metrics if series_name(key) == f"eval_{target}" for s, v in series[key] if v == best]
        if isinstance(best, (int, float)) and best_steps:
            ax2.axvline(best_steps[0], color="grey", ls=":", lw=1)
        ax.set_xlabel("training step")
        ax.set_ylabel("loss")
        ax2.set_ylabel("validation metric")
        ax.grid(alpha=0.3)
        handles = ax.get_legend_handles_labels()
        handles2 = ax2.get_legend_handles_labels()
        ax.legend(handles[0] + handles2[0], handles[1] + handles2[1], fontsize=7, loc="best")
        title = f"Training curve: {name}"
        if isinstance(best, (int, float)) and target:
            title += f" (best validation {target} {best:.4f}, dotted line)"
        out.append((title, _svg(fig)))
    return out
