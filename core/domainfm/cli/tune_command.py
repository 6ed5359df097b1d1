"""``domainfm tune DOMAIN --space FILE --trials N`` (see :mod:`domainfm.scale.tune`)."""

from __future__ import annotations

from typing import Any

import click


@click.command("tune")
@click.argument("domain")
@click.option("--space", "space_path", required=True, type=click.Path(dir_okay=False),
              help="YAML/JSON file: config key -> {type: loguniform|uniform|int|choice, low, high | values}.")
@click.option("--trials", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--metric", default="macro_f1", show_default=True, help="Evaluation metric a trial is scored on.")
@click.option("--mode", type=click.Choice(["max", "min"]), default="max", show_default=True)
@click.option("--engine", type=click.Choice(["auto", "ray", "optuna"]), default="auto", show_default=True,
              help="auto: Ray Tune (ASHA, Optuna search) when Ray is installed, else Optuna trials one by one.")
@click.option("--name", help="Name of this search (default: a timestamp); trials are runs tune-NAME-trial-N.")
@click.option("--grace-period", type=click.IntRange(min=1), default=1, show_default=True,
              help="Validation evaluations a trial gets before it may be stopped early.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Base YAML or TOML config.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a base config field.")
@click.option("--data", help="Data source (as for run).")
@click.option("--output-dir", default="runs", show_default=True, type=click.Path(file_okay=False))
def tune_command(domain: str, space_path: str, trials: int, metric: str, mode: str, engine: str, name: str | None,
                 grace_period: int, seed: int, config_path: str | None, overrides: tuple[str, ...], data: str | None,
                 output_dir: str) -> None:
    """Search hyper-parameters: each trial is a normal run of DOMAIN with its own run directory and tracking;
    the best values and run go to OUTPUT_DIR/DOMAIN/tune-NAME.json."""
    from domainfm.scale.tune import tune

    sets: tuple[str, ...] = (*overrides, f"data={data}") if data else overrides
    result = tune(domain, space_path, trials, metric=metric, mode=mode, config_path=config_path, overrides=sets,
                  output_dir=output_dir, name=name, engine=engine, seed=seed, grace_period=grace_period)
    summary: dict[str, Any] = {"engine": result.engine, "best_value": result.best_value,
                               "best_params": result.best_params, "best_run": result.best_run}
    click.echo(f"best {metric} {result.best_value:.4f} with {summary['best_params']} ({result.engine}, "
               f"{len(result.trials)} trials): {result.best_run}")
    click.echo(f"written: {result.path}")
