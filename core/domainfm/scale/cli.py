"""The command-line side of ``predict --engine ray``: argument checks and the summary line."""

from __future__ import annotations

import os

import click

from domainfm.errors import DomainfmError


def predict_on_ray(model_ref: str, *, variant: str | None, output_dir: str, input_path: str, output_path: str,
                   batch_size: int, device: str, max_text_chars: int, concurrency: int, cpus_per_actor: float) -> None:
    from domainfm.scale.ray_predict import predict_with_ray

    if input_path == "-":
        raise DomainfmError("--engine ray reads files: give --input a Parquet/JSONL/CSV file, folder or glob")
    if output_path == "-":
        raise DomainfmError("--engine ray writes Parquet shards: give --output a folder")
    summary = predict_with_ray(model_ref, input_path, output_path, variant=variant, output_dir=output_dir,
                               batch_size=batch_size, concurrency=concurrency, cpus_per_actor=cpus_per_actor,
                               device=device, max_text_chars=max_text_chars,
                               progress=os.environ.get("DOMAINFM_NO_PROGRESS") != "1")
    click.echo(f"{summary.rows} predictions in {summary.shards} Parquet shards under {summary.output} "
               f"({summary.seconds:.1f} s, {summary.actors} actor(s), {summary.gpus_per_actor:g} GPU each)", err=True)
