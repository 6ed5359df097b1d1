"""``domainfm health ...``: de-identify files, measure de-identification, triage with a trained artifact.

Heavy libraries are imported inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click


@click.group("health")
def health() -> None:
    """Healthcare tools: de-identification and symptom triage (suggestions, never a diagnosis)."""


@health.command("deid")
@click.argument("input_path", type=click.Path(exists=True, dir_okay=False))
@click.argument("output_path", type=click.Path(dir_okay=False))
@click.option("--column", "columns", multiple=True, help="text column(s) to de-identify (default: every text column)")
@click.option("--no-ner", is_flag=True, help="patterns only (faster; misses free-standing names and places)")
def deid_command(input_path: str, output_path: str, columns: tuple[str, ...], no_ner: bool) -> None:
    """De-identify INPUT_PATH (CSV/TSV/JSONL/Parquet) into OUTPUT_PATH (.jsonl or .csv), atomically."""
    from domainfm.data import read_table
    from domainfm.errors import DataError
    from domainfm_healthcare.deid import Deidentifier, default_deidentifier

    deid = Deidentifier(use_ner=False) if no_ner else default_deidentifier()
    try:
        rows = read_table(input_path)
    except DataError as exc:
        raise click.ClickException(str(exc)) from None
    if not rows:
        raise click.ClickException(f"{input_path}: no rows")
    present = [c for c in rows[0] if c != "_line"]
    missing = [c for c in columns if c not in present]
    if missing:
        raise click.ClickException(f"{input_path}: column(s) {missing} not found; has {present}")
    targets = list(columns) or present
    totals: dict[str, int] = {}
    out_rows = []
    for row in rows:
        clean: dict[str, Any] = {}
        for col in present:
            value = row.get(col)
            if col in targets and isinstance(value, str) and value:
                result = deid.deidentify(value)
                for kind, n in result.counts.items():
                    totals[kind] = totals.get(kind, 0) + n
                value = result.text
            clean[col] = value
        out_rows.append(clean)
    _write_rows(Path(output_path), out_rows, present)
    click.echo(json.dumps({"rows": len(out_rows), "identifiers_removed": totals, "output": output_path}))


def _write_rows(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    import csv
    import io

    from domainfm.io import atomic_write_text

    if path.suffix.lower() == ".csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, buf.getvalue())
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))
    else:
        raise click.ClickException(f"{path}: output must be .csv or .jsonl")


@health.command("deid-eval")
@click.option("--probe", type=click.Path(exists=True, dir_okay=False), default=None, help="probe JSONL (default: packaged)")
@click.option("--no-ner", is_flag=True, help="patterns only")
def deid_eval_command(probe: str | None, no_ner: bool) -> None:
    """Recall / precision of the de-identifier on texts with planted identifiers."""
    from domainfm_healthcare.deid import Deidentifier
    from domainfm_healthcare.deid_eval import evaluate_deidentifier, load_probe

    report = evaluate_deidentifier(Deidentifier(use_ner=not no_ner), load_probe(probe))
    click.echo(json.dumps(report, indent=2))


@health.command("triage")
@click.argument("artifact_path", metavar="RUN")
@click.argument("texts", nargs=-1)
@click.option("--top-k", default=3, show_default=True)
@click.option("--no-explain", is_flag=True, help="skip integrated-gradients attributions")
@click.option("--device", default="auto", show_default=True)
def triage_command(artifact_path: str, texts: tuple[str, ...], top_k: int, no_explain: bool, device: str) -> None:
    """Suggest conditions for symptom descriptions (TEXTS, or one per line on stdin). Not a diagnosis.

    RUN: a healthcare run or artifact directory, or 'healthcare' for the newest run."""
    from domainfm.device import resolve_device
    from domainfm.engine.text_classifier import TextClassifierPredictor
    from domainfm.errors import DomainfmError
    from domainfm.run_layout import resolve_model
    from domainfm_healthcare.deid import default_deidentifier
    from domainfm_healthcare.predictor import HealthcarePredictor

    try:
        artifact = resolve_model(artifact_path, domain="healthcare").load_artifact()
    except DomainfmError as exc:
        raise click.ClickException(str(exc)) from None
    lines = list(texts) or [line.strip() for line in sys.stdin if line.strip()]
    if not lines:
        raise click.ClickException("no text given (pass TEXTS or pipe lines on stdin)")
    try:
        inner = TextClassifierPredictor.load(artifact, resolve_device(device))
        predictor = HealthcarePredictor(
            inner, default_deidentifier(), top_k=top_k, explain="never" if no_explain else "always"
        )
        predictions = predictor.predict([{"id": str(i), "text": t} for i, t in enumerate(lines)])
    except DomainfmError as exc:
        raise click.ClickException(str(exc)) from None
    for p in predictions:
        click.echo(p.model_dump_json(exclude_none=True))
