"""``domainfm plugins new NAME``: write a new plugin distribution from a template (no torch import)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("new")
@click.argument("name")
@click.option("--template", default="text-classification", show_default=True,
              help="Which template to start from (see the choices in the error for an unknown one).")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="Folder to create (default: ./domainfm-NAME).")
def plugins_new(name: str, template: str, directory: str | None) -> None:
    """Write a plugin for the new domain NAME that installs and whose tests pass unchanged."""
    from domainfm.cli.main import _manager
    from domainfm.scaffold import check_name, render_plugin

    taken = {d.name for info in _manager().plugins.values() for d in info.domains}
    names = check_name(name, taken)
    dest = Path(directory) if directory else Path.cwd() / names.dist
    files = render_plugin(names, template, dest)
    click.echo(f"wrote {len(files)} files to {dest}")
    click.echo(f"next: pip install -e {dest} && domainfm plugins info {name} && pytest {dest}")
