"""``domainfm improve RUN --feedback SOURCE``: a child run trained from RUN's model on feedback (see
:mod:`domainfm.continual.improve`)."""

from __future__ import annotations

from typing import Any

import click

ROWS = (("parent", "parent"), ("replay", "child (replay)"), ("naive", "naive fine-tuning"),
        ("full_retrain", "full retraining"))


@click.command("improve")
@click.argument("model_ref", metavar="RUN")
@click.option("--feedback", required=True, metavar="SOURCE",
              help="New labelled data in the domain's format (a JSONL/CSV file or a source the domain's reader takes).")
@click.option("--force", is_flag=True, help="Make the child the served default even if the promotion gate refuses it.")
@click.option("--no-compare", is_flag=True,
              help="Skip training the naive fine-tuning and full retraining comparisons (quicker; the gate still runs).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a field of the parent's config, e.g. options.replay_ratio=2, train.regularisation.l2sp=0.01.")
@click.option("--variant", help="Which model of a multi-variant parent run (default: the one its report chose).")
@click.option("--output-dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Where a domain name's runs are looked up.")
def improve_command(model_ref: str, feedback: str, force: bool, no_compare: bool, overrides: tuple[str, ...],
                    variant: str | None, output_dir: str) -> None:
    """Train a child of RUN (a run directory or a domain name: its served run) on FEEDBACK plus replay of RUN's
    training data; measure gain on the new data and forgetting on the old beside naive fine-tuning and full
    retraining; promote the child to served default only when its benefit objective improves and every
    constraint holds."""
    from domainfm.cli.console import make_console
    from domainfm.continual.improve import improve
    from domainfm.manager import get_plugin_manager

    console = make_console()
    with console.status("starting") as status:
        def progress(msg: str) -> None:
            status.update(msg)
            console.log(msg)

        result = improve(get_plugin_manager(), model_ref, feedback, overrides, force=force, compare=not no_compare,
                         variant=variant, output_dir=output_dir, progress=progress)
    _print(console, result)


def _print(console: Any, result: Any) -> None:
    from rich.table import Table

    sizes = result.plan.sizes()
    table = Table(title=f"{result.run.ctx.domain} child {result.run.ctx.run_id}: accuracy on the parent's test split "
                        f"(old, {sizes['parent_test']}) and held-out feedback (new, {sizes['feedback_heldout']})")
    for col in ("model", "old", "new", "overall", "gain on new", "forgetting on old", "training s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for key, name in ROWS:
        m = result.models.get(key)
        if m is not None:
            table.add_row(name, *(_fmt(m.get(k)) for k in ("old", "new", "overall", "gain_on_new", "forgetting_on_old",
                                                         "train_seconds")))
    console.print(table)
    console.print(f"trained on {sizes['feedback_train']} feedback rows + {sizes['replayed']} replayed parent rows; "
                  f"new labels: {', '.join(result.plan.new_labels) or 'none'}")
    console.print(f"run directory: {result.run.ctx.run_dir}")
    d = result.decision
    head = "promoted (forced)" if d.forced else "promoted" if d.promoted else "not promoted"
    console.print(f"{head}: {'; '.join(d.reasons)}", soft_wrap=True)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
