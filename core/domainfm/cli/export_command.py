"""``domainfm export RUN --format hf|onnx --out DIR`` (see :mod:`domainfm.export`)."""

from __future__ import annotations

import click


@click.command("export")
@click.argument("model_ref", metavar="RUN")
@click.option("--format", "fmt", type=click.Choice(["hf", "onnx"]), default="hf", show_default=True,
              help="hf: a transformers folder with the calibration applied; onnx: the int8 ONNX model and tokenizer.")
@click.option("--out", "out", type=click.Path(file_okay=False), help="Folder to create (default: RUN/export/<format>).")
@click.option("--variant", help="Which model of a multi-variant run (default: the one its benefit report chose).")
@click.option("--output-dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Where a domain name's runs are looked up.")
def export_command(model_ref: str, fmt: str, out: str | None, variant: str | None, output_dir: str) -> None:
    """Export a trained model (RUN: a run or artifact directory, or a domain name) for tools outside domainfm."""
    from pathlib import Path

    from domainfm.export import export_model
    from domainfm.run_layout import resolve_model

    if out is None:
        layout = resolve_model(model_ref, variant=variant, output_dir=output_dir)
        base = layout.run_dir or layout.artifact_dir.parent
        out = str(Path(base) / "export" / (fmt if layout.run_dir is None or len(layout.variants) == 1
                                           else f"{layout.variant}-{fmt}"))
    target = export_model(model_ref, out, fmt, variant=variant, output_dir=output_dir)  # type: ignore[arg-type]
    click.echo(f"exported ({fmt}): {target}")
