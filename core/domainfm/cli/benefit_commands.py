"""``domainfm score`` and ``domainfm runs list|compare``: the benefit report after (and across) runs.

Heavy imports (matplotlib, fairlearn, presidio) happen inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _console() -> Any:
    from rich.console import Console

    return Console()


@click.command("score")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--lambda", "lambda_", type=float, help="Weight of social benefit R_S in the objective.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. benefit.assumptions.hourly_cost=40 or benefit.limits.resource_co2=1.")
@click.option("--json", "as_json", is_flag=True, help="Print benefit.json's decision summary as JSON instead of a table.")
def score_command(run_dir: str, lambda_: float | None, overrides: tuple[str, ...], as_json: bool) -> None:
    """Recompute the benefit report (benefit.json, report.html) of a run directory."""
    from domainfm.benefit import score, summary_table, write_report
    from domainfm.benefit.runs import context_from_run, read_evaluations

    ctx = context_from_run(run_dir, overrides, lambda_)
    evaluations = read_evaluations(Path(run_dir))
    report = score(ctx, evaluations)
    paths = write_report(report, ctx.run_dir)
    if as_json:
        best = report.best
        click.echo(json.dumps({
            "run_id": report.run_id, "domain": report.domain, "lambda": report.lambda_, "verdict": report.verdict,
            "optimum": None if best is None else best.model_dump(mode="json", include={
                "variant", "threshold", "coverage", "r_t", "r_s", "objective"}),
            "paths": {k: str(v) for k, v in paths.items()},
        }, indent=2))
        return
    console = _console()
    console.print(summary_table(report))
    for name, path in paths.items():
        console.print(f"{name}: {path}")


@click.group("runs")
def runs_group() -> None:
    """List earlier runs and compare two of them (which benefit terms moved)."""


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
    for col in ("domain", "run id", "status", "started", "device", "key metric", "verdict", "objective"):
        table.add_column(col, justify="right" if col in ("key metric", "objective") else "left")
    for r in runs:
        key = "-" if r.key_value is None else f"{r.key_metric}={r.key_value:.4f}"
        table.add_row(r.domain, r.run_id, r.status, r.started_at[:19], r.device, key, r.verdict or "-",
                      "-" if r.objective is None else f"{r.objective:.4g}")
    _console().print(table)


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
