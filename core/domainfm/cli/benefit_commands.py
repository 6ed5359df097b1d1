"""``domainfm score`` and ``domainfm runs list|compare``: the benefit report after (and across) runs.

Heavy imports (matplotlib, fairlearn, presidio) happen inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _console() -> Any:
    from domainfm.cli.console import make_console

    return make_console()


@click.command("score")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--lambda", "lambda_", type=float, help="Weight of social benefit R_S in the objective.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. benefit.assumptions.hourly_cost=40 or benefit.limits.resource_co2=1.")
@click.option("--json", "as_json", is_flag=True, help="Print benefit.json's decision summary as JSON instead of a table.")
def score_command(run_dir: str, lambda_: float | None, overrides: tuple[str, ...], as_json: bool) -> None:
    """Recompute the benefit report (benefit.json, report.html) of a run directory with other weights.

    It always scores the evaluations the run recorded when it trained (never a later `domainfm evaluate`); the
    run's own report is kept as evaluations/history/benefit-at-training.json and each rescore is recorded there.
    """
    from domainfm.benefit import score, summary_table, write_report
    from domainfm.benefit.model import ReportSource
    from domainfm.benefit.overrides import check_override_names
    from domainfm.benefit.report import BENEFIT_JSON
    from domainfm.benefit.runs import context_from_run, read_evaluations, read_run_json
    from domainfm.run_history import check_training_splits, keep_training_report, save_score, score_changes

    ctx = context_from_run(run_dir, overrides, lambda_)
    run = read_run_json(ctx.run_dir)
    evaluations = read_evaluations(ctx.run_dir)
    check_override_names(  # a mistyped --set benefit.assumptions/limits name fails here, with the nearest name
        ctx, sorted({g for ev in evaluations.values() if ev.outcomes for g in ev.outcomes.groups}),
        only=[o.split("=", 1)[0] for o in overrides],
    )
    check_training_splits(ctx.run_dir, evaluations, run)
    report = score(ctx, evaluations)
    splits = {name: ev.split for name, ev in evaluations.items()}
    changes = score_changes(run, lambda_, overrides)
    best = report.best
    summary = {
        "lambda": report.lambda_, "verdict": report.verdict,
        "optimum": None if best is None else best.model_dump(mode="json", include={
            "variant", "threshold", "coverage", "r_t", "r_s", "objective"}),
    }
    keep_training_report(ctx.run_dir, ctx.run_dir / BENEFIT_JSON)
    history = save_score(ctx.run_dir, run, splits, changes, summary)
    report.source = ReportSource(splits=splits, scored_by="score", changes=changes,
                                 history=str(history.relative_to(ctx.run_dir)))
    paths = write_report(report, ctx.run_dir)
    if as_json:
        click.echo(json.dumps({
            "run_id": report.run_id, "domain": report.domain, **summary, "source": report.source.describe(),
            "paths": {**{k: str(v) for k, v in paths.items()}, "history": str(history)},
        }, indent=2))
        return
    console = _console()
    console.print(summary_table(report))
    console.print(f"this report {report.source.describe()}")
    for name, path in {**paths, "history": history}.items():
        console.print(f"{name}: {path}")


@click.group("runs")
def runs_group() -> None:
    """List earlier runs, compare two of them (which benefit terms moved), reclaim their disk."""


@runs_group.command("list")
@click.option("--domain", help="Only runs of this domain.")
@click.option("--output-dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Where run directories are.")
def runs_list(domain: str | None, output_dir: str) -> None:
    """Runs under OUTPUT_DIR, oldest first, with their verdict and objective."""
    from rich.table import Table

    from domainfm.benefit.runs import list_runs

    runs = list_runs(output_dir, domain)
    if not runs:
        click.echo(f"no runs under {output_dir}" + (f" for domain {domain!r}" if domain else ""))
        return
    table = Table(title=f"runs in {output_dir}")
    for col in ("domain", "run id", "status", "started", "device", "key metric", "record", "verdict", "objective"):
        table.add_column(col, justify="right" if col in ("key metric", "objective") else "left",
                         # the id is what `runs compare` takes: never cut, never wrapped
                         no_wrap=col == "run id", min_width=max(len(r.run_id) for r in runs) if col == "run id" else None)
    for r in runs:
        key = "-" if r.key_value is None else f"{r.key_metric}={r.key_value:.4f}"
        table.add_row(r.domain, r.run_id, r.status, r.started_at[:19], r.device, key, r.record or "-", r.verdict or "-",
                      "-" if r.objective is None else f"{r.objective:.4g}")
    _console().print(table)
    if any(r.record for r in runs):
        click.echo("record: the evaluation split the figures come from, and whether the report is the run's own "
                   "(training) or a later `domainfm score` (rescored)")


@runs_group.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--output-dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Where to look up run ids.")
@click.option("--all", "show_all", is_flag=True, help="Also show figures that did not move.")
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
def runs_compare(run_a: str, run_b: str, output_dir: str, show_all: bool, as_json: bool) -> None:
    """Compare the benefit reports of RUN_A (before) and RUN_B (after): paths or run ids."""
    from rich.table import Table

    from domainfm.benefit import load_report
    from domainfm.benefit.runs import compare_reports, resolve_run

    a = load_report(resolve_run(run_a, output_dir))
    b = load_report(resolve_run(run_b, output_dir))
    changes = compare_reports(a, b)
    if as_json:
        click.echo(json.dumps([c.__dict__ for c in changes], indent=2, default=str))
        return
    shown = [c for c in changes if c.moved or show_all]
    for label, report in (("before", a), ("after", b)):
        source = report.source.describe() if report.source else "was written before reports recorded their source"
        click.echo(f"{label}: {report.run_id}: the report {source}")
    table = Table(title=f"{a.domain}: {a.run_id} → {b.run_id} ({sum(c.moved for c in changes)} moved)")
    for col in ("what", "name", a.run_id, b.run_id, "Δ"):
        table.add_column(col, justify="right" if col in (a.run_id, b.run_id, "Δ") else "left")

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    for c in shown:
        delta = "" if c.delta is None else (f"[green]+{c.delta:.4g}[/]" if c.delta > 0 else f"[red]{c.delta:.4g}[/]"
                                            if c.delta < 0 else "0")
        table.add_row(c.section, c.name, fmt(c.before), fmt(c.after), delta)
    _console().print(table)
    if not shown:
        click.echo("nothing moved")


@runs_group.command("gc")
@click.option("--output-dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Where run directories are.")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--tmp-age", "tmp_age_h", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Hours after which a running run's temporary files count as stale.")
def runs_gc(output_dir: str, dry_run: bool, tmp_age_h: float) -> None:
    """Reclaim disk: checkpoints of finished runs (failed or killed runs keep theirs to resume) and stale
    temporary files."""
    from domainfm.run_gc import collect

    if not Path(output_dir).is_dir():
        click.echo(f"no runs under {output_dir}")
        return
    items = collect(output_dir, dry_run=dry_run, tmp_age_s=tmp_age_h * 3600)
    for item in items:
        click.echo(f"{'would remove' if dry_run else 'removed'} {_bytes(item.bytes):>10}  {item.path}  ({item.why})")
    total = sum(i.bytes for i in items)
    runs = len({i.path.relative_to(output_dir).parts[:2] for i in items})
    click.echo(f"{'would reclaim' if dry_run else 'reclaimed'} {total} bytes ({_bytes(total)}) from {runs} run(s)")


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
