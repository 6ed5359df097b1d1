"""The ``domainfm`` command line.

Plugin selection flags (``--plugins``, ``--disable-plugins``, ``--strict-plugins``, ``--no-autoload``) are
read before the command tree is built, because plugins add their own command groups to it (the way
pytest reads ``-p`` early).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from domainfm import __version__
from domainfm.cli.models_command import models_group
from domainfm.cli.plugins_new_command import plugins_new
from domainfm.config import MODES
from domainfm.errors import DomainfmError

EARLY_FLAGS = {
    "--plugins": "DOMAINFM_PLUGINS",
    "--disable-plugins": "DOMAINFM_DISABLE_PLUGINS",
}
EARLY_SWITCHES = {
    "--strict-plugins": "DOMAINFM_STRICT_PLUGINS",
    "--no-autoload": "DOMAINFM_DISABLE_PLUGIN_AUTOLOAD",
    "-v": "DOMAINFM_VERBOSE",
    "--verbose": "DOMAINFM_VERBOSE",
}


def _apply_early_flags(argv: list[str]) -> None:
    """Move plugin-selection flags into the environment before plugins load."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, _, value = arg.partition("=")
        if name in EARLY_FLAGS:
            if not value and i + 1 < len(argv):
                value = argv[i + 1]
                i += 1
            os.environ[EARLY_FLAGS[name]] = value
        elif arg in EARLY_SWITCHES:
            os.environ[EARLY_SWITCHES[arg]] = "1"
        i += 1


def _console() -> Any:
    from domainfm.cli.console import make_console

    return make_console()


def _manager() -> Any:
    from domainfm.manager import get_plugin_manager

    return get_plugin_manager()


def _report_broken(pm: Any) -> None:
    for info in pm.broken:
        click.echo(f"warning: plugin {info.one_line()}", err=True)


class RootGroup(click.Group):
    """The root group: plugin command groups join it the first time a command is looked up or listed, so
    ``CliRunner().invoke(cli, ["routing", ...])`` reaches a plugin's commands in tests as ``main()`` does."""

    _plugin_commands_added = False

    def add_plugin_commands(self) -> None:
        if self._plugin_commands_added:
            return
        self._plugin_commands_added = True
        _add_optional_commands(self)
        # a plugin whose domainfm_register_commands raises is excluded from every hook (strict: one-line error)
        _manager().hooks.register_commands(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            self.add_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.add_plugin_commands()
        return super().list_commands(ctx)


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="domainfm")
@click.option("--plugins", metavar="A,B", help="Load only these plugins (also DOMAINFM_PLUGINS).")
@click.option("--disable-plugins", metavar="A,B", help="Never load these plugins.")
@click.option("--strict-plugins", is_flag=True, help="Fail on the first plugin that cannot load.")
@click.option("--no-autoload", is_flag=True, help="Load no entry-point plugins unless named in --plugins.")
@click.option("-v", "--verbose", is_flag=True, help="Show libraries' warnings, progress bars and training logs.")
def cli(**_: Any) -> None:
    """domainfm: put foundation models to work in a domain and measure what they are worth."""


# ------------------------------------------------------------------------------------------- plugins


@cli.group()
def plugins() -> None:
    """Inspect installed plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_list(as_json: bool) -> None:
    """List plugins with their version, status and domains."""
    pm = _manager()
    infos = list(pm.plugins.values())
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    from rich.table import Table

    table = Table(title="domainfm plugins")
    for col in ("plugin", "version", "status", "domains"):
        table.add_column(col)
    for info in infos:
        status = info.status if info.status != "broken" else f"[red]broken[/red]: {info.error}"
        table.add_row(info.name, info.version or "-", status, ", ".join(d.name for d in info.domains) or "-")
    _console().print(table)


@plugins.command("info")
@click.argument("name")
def plugins_info(name: str) -> None:
    """Show a plugin's domains in full (or a domain's declaration)."""
    pm = _manager()
    info = pm.plugins.get(name)
    if info is None:
        owner = next((p for p in pm.plugins.values() if any(d.name == name for d in p.domains)), None)
        if owner is None:
            raise DomainfmError(f"no plugin or domain named {name!r}; installed: {sorted(pm.plugins)}")
        info = owner
    from domainfm.benefit.declared import with_derived_terms

    payload = info.as_dict()  # benefit terms as the plugin returns them (derived when it declares none)
    payload["domains"] = [json.loads(with_derived_terms(pm, d).model_dump_json()) for d in info.domains]
    click.echo(json.dumps(payload, indent=2))


plugins.add_command(plugins_new)

cli.add_command(models_group)


# ------------------------------------------------------------------------------------------- config


def config_options(func: Any) -> Any:
    """Options shared by the commands that build a RunConfig."""
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML or TOML config file."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config field."),
        click.option("--data", help="Data source: a path, 'demo' (or a source the domain names), or "
                     "hf:<dataset>[:<split>] for domains whose data is one text table; default: the domain's."),
        click.option("--base-model", help="Base model hub id or local path."),
        click.option("--mode", type=click.Choice(MODES), help="Fine-tuning mode."),
        click.option("--epochs", type=float, help="Training epochs."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Device (default auto)."),
        click.option("--output-dir", type=click.Path(file_okay=False), help="Where run directories go."),
        click.option("--lambda", "lambda_", type=float, help="Weight of social benefit in the objective."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _build_config(kw: dict[str, Any]) -> Any:
    from domainfm.config import build_config

    return build_config(
        kw.pop("config_path", None),
        kw.pop("overrides", ()),
        **{
            "data": kw.pop("data", None),
            "model.base": kw.pop("base_model", None),
            "model.mode": kw.pop("mode", None),
            "train.epochs": kw.pop("epochs", None),
            "device": kw.pop("device", None),
            "output_dir": kw.pop("output_dir", None),
            "benefit.lambda": kw.pop("lambda_", None),
        },
    )


# ------------------------------------------------------------------------------------------- stages


@cli.command()
@click.argument("domain")
@config_options
def run(domain: str, **kw: Any) -> None:
    """The main job: data → fine-tune → evaluate → benefit report, in a new run directory."""
    from domainfm.runner import Runner

    config = _build_config(kw)
    pm = _manager()
    _report_broken(pm)
    console = _console()
    runner = Runner(pm, config)
    with console.status("starting") as status:
        def progress(msg: str) -> None:
            status.update(msg)
            console.log(msg)

        result = runner.run(domain, progress=progress)
    _print_results(console, result)


def _print_results(console: Any, result: Any) -> None:
    from rich.table import Table

    from domainfm.metrics import INTERVAL_SUFFIXES, metric_interval

    table = Table(title=f"{result.ctx.domain} run {result.ctx.run_id} on {result.ctx.device}")
    table.add_column("variant")
    table.add_column("split")
    metric_names: list[str] = []
    for ev in result.evaluations.values():
        metric_names += [m for m in ev.metrics if m not in metric_names and not m.endswith(INTERVAL_SUFFIXES)]
    for name in metric_names:
        table.add_column(name, justify="right")
    for variant, ev in result.evaluations.items():
        table.add_row(variant, ev.split, *[_fmt(ev.metrics.get(m)) for m in metric_names])
    console.print(table)
    for variant, ev in result.evaluations.items():  # the intervals, one line per variant instead of 4 columns
        bounds = [f"{m} [{_fmt(b[0])}, {_fmt(b[1])}]" for m in metric_names if (b := metric_interval(ev.metrics, m))]
        if bounds:
            console.print(f"{variant}: 95 % bootstrap intervals over the {ev.split} items: " + ", ".join(bounds))
    if result.report is not None:
        try:
            from domainfm.benefit import summary_table

            console.print(summary_table(result.report))
        except ImportError:
            pass
    console.print(f"run directory: {result.ctx.run_dir}")
    for name, path in result.paths.items():
        if name != "run":
            console.print(f"  {name}: {path}")
    if result.report is not None:  # the last line: the verdict, and why when it is not "pass"
        from domainfm.benefit.verdict import verdict_line

        console.print(verdict_line(result.report), soft_wrap=True)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


@cli.command()
@click.argument("domain")
@config_options
def train(domain: str, **kw: Any) -> None:
    """Load data and fine-tune; writes the artifact into a run directory (re-run it to resume)."""
    from domainfm.runner import Runner

    config = _build_config(kw)
    result = Runner(_manager(), config).train_run(domain)
    assert result.artifact is not None
    click.echo(f"artifact: {result.artifact.path} (trained on {result.ctx.device})")


def _resolve(ref: str, variant: str | None, output_dir: str) -> Any:
    """The run layout of a model reference (see :mod:`domainfm.run_layout`); says which run a domain name chose."""
    from domainfm.run_layout import resolve_model

    layout = resolve_model(ref, variant=variant, output_dir=output_dir)
    if layout.source == "domain":
        click.echo(f"using the newest run of {ref}: {layout.run_dir} (variant {layout.variant})", err=True)
    return layout


def model_options(func: Any) -> Any:
    """The model reference of predict/evaluate: RUN (run or artifact directory, or a domain name), --variant."""
    options = [
        click.argument("model_ref", metavar="RUN"),
        click.option("--variant", help="Which model of a multi-variant run (default: the one its benefit report chose)."),
        click.option("--output-dir", default="runs", show_default=True, type=click.Path(file_okay=False),
                     help="Where a domain name's runs are looked up."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command()
@model_options
@click.option("--input", "input_path", default="-", help="JSONL/CSV file of records, or - for stdin (JSONL or plain lines).")
@click.option("--output", "output_path", default="-", help="JSONL output file, or - for stdout.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--max-text-chars", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Characters one text may have; a longer one (or a longer line) fails naming its line.")
@click.option("--engine", type=click.Choice(["inprocess", "ray"]), default="inprocess", show_default=True,
              help="ray: Ray Data over an actor pool (--input a Parquet/JSONL/CSV file, folder or glob; --output a "
                   "folder of Parquet shards); RAY_ADDRESS joins a cluster, else a local Ray starts.")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="--engine ray: actors, each with its own copy of the model.")
@click.option("--cpus-per-actor", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="--engine ray: CPUs (and torch threads) each actor gets.")
def predict(model_ref: str, variant: str | None, output_dir: str, input_path: str, output_path: str, batch_size: int,
            device: str, max_text_chars: int, engine: str, concurrency: int, cpus_per_actor: float) -> None:
    """Predict with a trained model: RUN is a run directory, an artifact directory or a domain name (its newest
    run). Records in, JSONL predictions out (--engine ray: Parquet shards out)."""
    if engine == "ray":
        from domainfm.scale.cli import predict_on_ray

        predict_on_ray(model_ref, variant=variant, output_dir=output_dir, input_path=input_path,
                       output_path=output_path, batch_size=batch_size, device=device, max_text_chars=max_text_chars,
                       concurrency=concurrency, cpus_per_actor=cpus_per_actor)
        return
    from domainfm.config import RunConfig
    from domainfm.runner import Runner

    layout = _resolve(model_ref, variant, output_dir)
    artifact = layout.load_artifact()
    records = _read_input(input_path, max_text_chars)
    runner = Runner(_manager(), RunConfig.model_validate({"device": device}))
    ctx = runner.context(artifact.domain, run_dir=layout.run_dir or layout.artifact_dir.parent)
    predictor = runner.load_predictor(ctx, artifact)
    out = sys.stdout if output_path == "-" else None
    lines: list[str] = []
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        for pred in runner.predict(ctx, predictor, batch):
            line = json.dumps(prediction_fields(pred, ctx.device))
            if out is not None:
                out.write(line + "\n")
            else:
                lines.append(line)
    if out is None:
        from domainfm.io import atomic_write_text

        atomic_write_text(output_path, "\n".join(lines) + ("\n" if lines else ""))


def prediction_fields(pred: Any, device: str) -> dict[str, Any]:
    """One prediction as ``predict`` outputs it (a JSONL line; a Parquet row of ``predict --engine ray``)."""
    return {**json.loads(pred.model_dump_json(exclude_none=True)), "device": device}


def _read_input(path: str, max_text_chars: int = 10_000) -> list[dict[str, Any]]:
    """Records from a table file or stdin, read bounded, texts capped (:func:`domainfm.io.read_input_records`)."""
    from domainfm.io import read_input_records

    return read_input_records(path, max_text_chars)


@cli.command()
@model_options
@click.option("--data", help="Data source; default: the one the run trained on.")
@click.option("--split", default="test", show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
def evaluate(model_ref: str, variant: str | None, output_dir: str, data: str | None, split: str, device: str) -> None:
    """Evaluate a trained model on a split. The run's own evaluation (written when it trained) is never replaced:
    this writes a new record under evaluations/history/ (see domainfm.run_history)."""
    from domainfm.config import RunConfig, parse_config
    from domainfm.run_history import save_evaluation
    from domainfm.run_layout import check_name
    from domainfm.runner import Runner

    check_name(split, "--split")
    layout = _resolve(model_ref, variant, output_dir)
    artifact = layout.load_artifact()
    run = layout.run_json()
    if run.get("config"):  # the run's own configuration (data source, options), on the requested split and device
        config = parse_config(dict(run["config"]), source=str(layout.run_dir / "run.json"))
        config = config.model_copy(update={"device": device, "eval_split": split, "data": data or config.data,
                                           "run_name": None})
    else:
        config = RunConfig.model_validate({"device": device, "data": data, "eval_split": split})
    runner = Runner(_manager(), config)
    ctx = runner.context(artifact.domain, run_dir=layout.run_dir or layout.artifact_dir.parent)
    bundle = runner.load_data(ctx)
    predictor = runner.load_predictor(ctx, artifact)
    ev = runner.evaluate(ctx, predictor, bundle, split)
    payload: dict[str, Any] = {"split": split, "variant": layout.variant, "device": ctx.device, **ev.metrics}
    if layout.run_dir is not None:
        path, is_record = save_evaluation(layout.run_dir, layout.variant, ev, run, data=ctx.config.data,
                                          artifact=layout.artifact_dir)
        payload["written"] = str(path)
        payload["record"] = "the run's evaluation" if is_record else "history (the run's own evaluation is unchanged)"
    click.echo(json.dumps(payload, indent=2))


def _add_optional_commands(root: click.Group) -> None:
    try:
        from domainfm.cli.benefit_commands import runs_group, score_command

        root.add_command(score_command, "score")
        root.add_command(runs_group, "runs")
    except ImportError:
        pass
    from domainfm.cli.export_command import export_command

    root.add_command(export_command, "export")
    from domainfm.cli.tune_command import tune_command

    root.add_command(tune_command, "tune")
    from domainfm.cli.improve_command import improve_command

    root.add_command(improve_command, "improve")
    try:
        from domainfm.cli.serve_command import serve_command

        root.add_command(serve_command, "serve")
    except ImportError:
        pass


def build_cli() -> click.Group:
    """The root group with core commands and every loaded plugin's commands."""
    assert isinstance(cli, RootGroup)
    cli.add_plugin_commands()
    return cli


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    _apply_early_flags(args)
    from domainfm.logging_setup import configure

    configure(verbose=os.environ.get("DOMAINFM_VERBOSE") == "1")  # before any library is imported
    try:
        root = build_cli()
        root.main(args=args, prog_name="domainfm", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except DomainfmError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
