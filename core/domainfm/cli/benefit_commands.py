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
@click.argument("run_ref", metavar="RUN")
@click.option("--lambda", "lambda_", type=float, help="Weight of social benefit R_S in the objective.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. benefit.assumptions.hourly_cost=40 or benefit.limits.resource_co2=1.")
@click.option("--json", "as_json", is_flag=True, help="Print benefit.json's decision summary as JSON instead of a table.")
@click.option("--output-dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Where a domain name's runs are looked up.")
def score_command(run_ref: str, lambda_: float | None, overrides: tuple[str, ...], as_json: bool, output_dir: str) -> None:
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

    ctx = context_from_run(_run_dir(run_ref, output_dir), overrides, lambda_)
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


def _run_dir(ref: str, output_dir: str) -> Path:
    """RUN as a run directory: a folder with run.json as it is (it may have no model), anything else through the
    model resolver (an artifact directory, a domain name or folder: its newest trained run)."""
    from domainfm.errors import DataError
    from domainfm.run_layout import resolve_model

    if (Path(ref) / "run.json").is_file():
        return Path(ref)
    layout = resolve_model(ref, output_dir=output_dir)
    if layout.run_dir is None:
        raise DataError(f"{ref}: an artifact outside any run; score needs a run directory (runs/<domain>/<run id>)")
    if layout.source == "domain":
        click.echo(f"using the newest run of {ref}: {layout.run_dir}", err=True)
    return layout.run_dir


@click.group("runs")
def runs_group() -> None:
    """List earlier runs, compare them (configuration, data, metrics with significance, benefit), reclaim disk."""


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
    lineage = any(r.parent for r in runs)
    columns = ("domain", "run id", "status", "started", "device", "key metric", "record", "verdict", "objective")
    for col in columns + (("parent",) if lineage else ()):
        table.add_column(col, justify="right" if col in ("key metric", "objective") else "left",
                         # the id is what `runs compare` takes: never cut, never wrapped
                         no_wrap=col == "run id", min_width=max(len(r.run_id) for r in runs) if col == "run id" else None)
    for r in runs:
        key = "-" if r.key_value is None else f"{r.key_metric}={r.key_value:.4f}"
        table.add_row(r.domain, r.run_id, r.status, r.started_at[:19], r.device, key, r.record or "-", r.verdict or "-",
                      "-" if r.objective is None else f"{r.objective:.4g}", *((r.parent or "-",) if lineage else ()))
    _console().print(table)
    if any(r.record for r in runs):
        click.echo("record: the evaluation split the figures come from, and whether the report is the run's own "
                   "(training) or a later `domainfm score` (rescored)")


@runs_group.command("compare")
@click.argument("run_refs", nargs=-1, required=True, metavar="RUN_A RUN_B [RUN_C...]")
@click.option("--output-dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Where to look up run ids.")
@click.option("--all", "show_all", is_flag=True, help="Also show benefit figures that did not move.")
@click.option("--resamples", default=2000, show_default=True, type=click.IntRange(min=100),
              help="Bootstrap resamples of the paired metric differences.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap resamples.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole comparison as JSON.")
def runs_compare(run_refs: tuple[str, ...], output_dir: str, show_all: bool, resamples: int, seed: int,
                 as_json: bool) -> None:
    """Compare runs (paths or run ids), each against RUN_A: configuration differences, data fingerprints, metric
    deltas with a paired bootstrap over the test items both runs share (refused when their splits differ), and
    which benefit terms moved. Every figure comes from the runs' training-time records."""
    from domainfm.benefit.runs import compare_runs, resolve_run
    from domainfm.errors import DomainfmError

    if len(run_refs) < 2:
        raise DomainfmError("runs compare needs at least two runs: RUN_A RUN_B [RUN_C...]")
    result = compare_runs([resolve_run(ref, output_dir) for ref in run_refs], resamples=resamples, seed=seed)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    console = _console()
    ids = [r["run_id"] for r in result["runs"]]
    click.echo(f"{result['domain']}: {ids[0]} (baseline) vs {', '.join(ids[1:])}")
    _print_config(console, result["config"], ids)
    _print_fingerprints(console, result["fingerprints"], ids)
    _print_significance(console, result["significance"], resamples)
    for pair in result["benefit"]:
        _print_benefit(console, pair, show_all)


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _print_config(console: Any, rows: list[dict[str, Any]], ids: list[str]) -> None:
    from rich.table import Table

    if not rows:
        click.echo("configuration: identical")
        return
    table = Table(title=f"configuration differences ({len(rows)})")
    table.add_column("field")
    for run_id in ids:
        table.add_column(run_id, no_wrap=True)
    for row in rows:
        table.add_row(row["field"], *(json.dumps(v) if not isinstance(v, str) else v for v in row["values"]))
    console.print(table)


def _print_fingerprints(console: Any, rows: list[dict[str, Any]], ids: list[str]) -> None:
    from rich.table import Table

    if not rows:
        click.echo("data fingerprints: none recorded (runs written before fingerprints were kept)")
        return
    table = Table(title="data fingerprints (sha256 of each split's ids)")
    table.add_column("split")
    for run_id in ids:
        table.add_column(run_id, no_wrap=True)
    table.add_column("same")
    for row in rows:
        cells = ["-" if h is None else f"{h[:12]} (n={n})" for h, n in zip(row["sha256"], row["n"], strict=True)]
        table.add_row(row["split"], *cells, "yes" if row["same"] else "[red]no[/]")
    console.print(table)


def _print_significance(console: Any, rows: list[dict[str, Any]], resamples: int) -> None:
    from rich.table import Table

    if not rows:
        click.echo("metrics: no evaluation records to pair")
        return
    table = Table(title=f"metric deltas, paired bootstrap ({resamples} resamples) over the items both runs share")
    for col in ("run", "variant", "split", "metric", "baseline", "run value", "Δ", "95 % interval of Δ", "p", "items"):
        table.add_column(col, justify="right" if col not in ("run", "variant", "split", "metric") else "left")
    refused = []
    for row in rows:
        variant = row["variant_a"] if row["variant_a"] == row["variant_b"] else f"{row['variant_a']} → {row['variant_b']}"
        if row.get("refused"):
            refused.append(f"{row['run']} ({variant}): paired comparison refused: {row['refused']}")
            continue
        for m in row.get("metrics", []):
            table.add_row(row["run"], variant, row["split"], m["metric"], f"{m['a']:.4f}", f"{m['b']:.4f}",
                          f"{m['delta']:+.4f}", f"[{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]", f"{m['p_value']:.4f}",
                          str(m["n_items"]))
    if table.row_count:
        console.print(table)
    for line in refused:
        click.echo(line)
    for row in rows:
        if row.get("note"):
            click.echo(f"{row['run']}: {row['note']}")


def _print_benefit(console: Any, pair: dict[str, Any], show_all: bool) -> None:
    from rich.table import Table

    if "changes" not in pair:
        click.echo(f"benefit {pair['baseline']} → {pair['run']}: {pair['note']}")
        return
    for label, run_id, source in zip(("before", "after"), (pair["baseline"], pair["run"]), pair["sources"], strict=True):
        click.echo(f"{label}: {run_id}: the report {source or 'was written before reports recorded their source'}")
    changes = pair["changes"]
    shown = [c for c in changes if c["moved"] or show_all]
    a, b = pair["baseline"], pair["run"]
    table = Table(title=f"benefit: {a} → {b} ({sum(c['moved'] for c in changes)} moved)")
    for col in ("what", "name", a, b, "Δ"):
        table.add_column(col, justify="right" if col in (a, b, "Δ") else "left")
    for c in shown:
        d = c["delta"]
        delta = "" if d is None else (f"[green]+{d:.4g}[/]" if d > 0 else f"[red]{d:.4g}[/]" if d < 0 else "0")
        table.add_row(c["section"], c["name"], _fmt(c["before"]), _fmt(c["after"]), delta)
    if shown:
        console.print(table)
    else:
        click.echo(f"benefit {a} → {b}: nothing moved")


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
