"""The ``domainfm edu`` command group: grade files, fill the review queue, trace mastery, recommend.

Heavy libraries are imported inside the commands only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from exc


@click.group(name="edu")
def edu() -> None:
    """Education: short-answer grading, knowledge tracing and study recommendations."""


@edu.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(["grading", "kt"]), default="grading", show_default=True)
def check(path: Path, kind: str) -> None:
    """Validate a grading file or an interaction log and print a summary (errors name file:line:field)."""
    from domainfm.errors import DataError

    try:
        if kind == "grading":
            from domainfm_education.grading_data import read_grading_file

            items = read_grading_file(path)
            summary: dict[str, Any] = {
                "answers": len(items),
                "questions": len({i.question_id for i in items}),
                "classes": sorted({i.label or str(int(i.score or 0)) for i in items}),
            }
        else:
            from domainfm_education.kt_data import read_kt_file

            log = read_kt_file(path, key="check")
            summary = {"students": len(log.sequences), "interactions": sum(len(s.skills) for s in log.sequences),
                       "skills": len(log.skill_names), "notes": log.notes}
    except DataError as exc:
        _fail(exc)
    click.echo(json.dumps(summary, indent=2))


@edu.command("grade")
@click.option("--model", "model_dir", required=True,
              help="an education run or artifact directory, or 'education' for the newest run")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="CSV/JSONL with reference_answers and student_answer (id, question optional)")
@click.option("--output", required=True, type=click.Path(path_type=Path), help="graded JSONL")
@click.option("--queue", type=click.Path(path_type=Path), default=None, help="JSONL of answers for teacher review")
@click.option("--device", default="auto", show_default=True)
def grade(model_dir: str, input_path: Path, output: Path, queue: Path | None, device: str) -> None:
    """Grade a file of answers; uncertain ones (below the validation-chosen threshold) go to --queue."""
    from domainfm.data import read_table
    from domainfm.device import resolve_device
    from domainfm.errors import DomainfmError
    from domainfm.io import atomic_write_text
    from domainfm.run_layout import resolve_model

    from domainfm_education.grader import GraderPredictor

    try:
        artifact = resolve_model(model_dir, domain="education").load_artifact()
        rows = read_table(input_path)
        predictor = GraderPredictor.load(artifact, resolve_device(device))
        preds = predictor.predict(rows)
    except DomainfmError as exc:
        _fail(exc)
    graded, review = [], []
    for row, pred in zip(rows, preds, strict=True):
        rec = {"line": row.get("_line"), "id": row.get("id"), **pred.model_dump(exclude_none=True)}
        graded.append(json.dumps(rec, ensure_ascii=False))
        if pred.abstained:
            review.append(json.dumps({**rec, "student_answer": row.get("student_answer")}, ensure_ascii=False))
    atomic_write_text(output, "\n".join(graded) + ("\n" if graded else ""))
    if queue is not None:
        atomic_write_text(queue, "\n".join(review) + ("\n" if review else ""))
    click.echo(f"graded {len(graded)} answers, {len(review)} to teacher review" + (f" ({queue})" if queue else ""))


@edu.command("mastery")
@click.option("--model", "model_dir", required=True,
              help="a knowledge_tracing run or artifact directory, or 'knowledge_tracing' for the newest run")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="interaction log (student, skill, correct[, timestamp]) or the 3-line format")
@click.option("--output", required=True, type=click.Path(path_type=Path), help="JSONL: mastery and recommendations")
@click.option("--top", default=5, show_default=True, help="how many skills to recommend per student")
@click.option("--key", default=None, help="pseudonymisation key for student ids (default: a random key)")
@click.option("--device", default="auto", show_default=True)
def mastery(model_dir: str, input_path: Path, output: Path, top: int, key: str | None, device: str) -> None:
    """Mastery per skill and what to study next for every student in a log (ids pseudonymised)."""
    import secrets

    from domainfm.device import resolve_device
    from domainfm.errors import DomainfmError
    from domainfm.io import atomic_write_text
    from domainfm.run_layout import resolve_model

    from domainfm_education.kt_data import read_kt_file
    from domainfm_education.kt_predictor import KTPredictor

    try:
        artifact = resolve_model(model_dir, domain="knowledge_tracing").load_artifact()
        predictor = KTPredictor.load(artifact, resolve_device(device))
        log = read_kt_file(input_path, key=key or secrets.token_hex(16), skill_index=predictor.skill_index)
        records = [{"id": s.student, "skills": s.skills, "correct": s.correct} for s in log.sequences]
        preds = predictor.predict(records, top=top)
    except DomainfmError as exc:
        _fail(exc)
    lines = [json.dumps(p.model_dump(exclude_none=True), ensure_ascii=False) for p in preds]
    atomic_write_text(output, "\n".join(lines) + ("\n" if lines else ""))
    click.echo(f"{len(lines)} students written to {output}")
