"""The ``domainfm rec`` command group: recommend, batch, similar, add-items, train.

Heavy libraries are imported inside the commands. The artifact comes from ``--artifact`` or
``$DOMAINFM_REC_ARTIFACT`` (a directory written by ``domainfm run``/``train`` or ``domainfm rec train``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

ARTIFACT_ENV = "DOMAINFM_REC_ARTIFACT"


def _artifact_option(func: Any) -> Any:
    return click.option(
        "--artifact", "artifact", type=click.Path(path_type=Path), default=None,
        help=f"a recommendation run or artifact directory, or 'recommendation' for the newest run "
             f"(default: ${ARTIFACT_ENV})",
    )(func)


def _load(artifact: Path | None, device: str = "cpu") -> Any:
    from domainfm.errors import DomainfmError
    from domainfm.run_layout import resolve_model

    from domainfm_recommendation.predictor import RecommendationPredictor

    path = artifact or (Path(os.environ[ARTIFACT_ENV]) if os.environ.get(ARTIFACT_ENV) else None)
    if path is None:
        raise click.UsageError(f"name the trained model with --artifact or ${ARTIFACT_ENV}")
    try:
        path = resolve_model(path, domain="recommendation").artifact_dir
    except DomainfmError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        return RecommendationPredictor.load(path, device=device)
    except Exception as exc:  # a clear one-line message instead of a traceback
        raise click.ClickException(f"{path}: cannot load recommender: {exc}") from None


def _print(pred: Any, as_json: bool) -> None:
    if as_json:
        click.echo(pred.model_dump_json())
        return
    if pred.abstained:
        raise click.ClickException((pred.explanation or {}).get("error", "no answer"))
    if (pred.extra or {}).get("fallback"):
        click.echo(f"# {pred.id or 'new user'}: no usable history, showing popular items", err=True)
    for unknown in (pred.extra or {}).get("unknown_history_items", []):
        click.echo(f"# ignored unknown item {unknown!r} in history", err=True)
    for rank, item in enumerate(pred.ranking or [], start=1):
        click.echo(f"{rank:>3}  {item.id}  {item.score:.4f}  {item.reason or ''}")


@click.group(name="rec", help="Recommendations: per user, for all users, and 'more like this'.")
def rec() -> None:
    """Command group registered by the recommendation plugin."""


@rec.command("recommend", help="Top-k items for USER (use --history for a new user or recent items).")
@click.argument("user")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--history", default="", help="comma-separated item ids the user interacted with recently")
@click.option("--json", "as_json", is_flag=True, help="print the Prediction as JSON")
@_artifact_option
def recommend_cmd(user: str, k: int, history: str, as_json: bool, artifact: Path | None) -> None:
    predictor = _load(artifact)
    record: dict[str, Any] = {"user": user, "k": k}
    if history.strip():
        record["history"] = [h.strip() for h in history.split(",") if h.strip()]
    _print(predictor.predict([record])[0], as_json)


@rec.command("similar", help="Items like ITEM ('more like this').")
@click.argument("item")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@_artifact_option
def similar_cmd(item: str, k: int, as_json: bool, artifact: Path | None) -> None:
    predictor = _load(artifact)
    _print(predictor.predict([{"item": item, "k": k}])[0], as_json)


@rec.command("batch", help="Recommendations for every known user (or --users FILE, one id a line) as JSONL.")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--users", "users_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write JSONL here (atomically); default stdout")
@_artifact_option
def batch_cmd(k: int, users_file: Path | None, out: Path | None, artifact: Path | None) -> None:
    predictor = _load(artifact)
    if users_file:
        users = [line.strip() for line in users_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        users = sorted(predictor.model.histories)
    lines = []
    for pred in predictor.predict([{"user": u, "k": k} for u in users]):
        row = {"user": pred.id, "items": [r.id for r in pred.ranking or []],
               "scores": [round(r.score, 6) for r in pred.ranking or []], "confidence": pred.confidence}
        if (pred.extra or {}).get("fallback"):
            row["fallback"] = pred.extra["fallback"]
        lines.append(json.dumps(row))
    text = "\n".join(lines) + ("\n" if lines else "")
    if out is None:
        sys.stdout.write(text)
    else:
        from domainfm.io import atomic_write_text

        atomic_write_text(out, text)
        click.echo(f"wrote {len(lines)} users to {out}", err=True)


@rec.command("train", help="Fit a recommender on DATA (demo, movielens, a directory or file) as a run: OUT gets "
                            "run.json (status, resources) and artifact/.")
@click.option("--data", "source", default="demo", show_default=True)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="the run directory (default: a new run under runs/recommendation/)")
@click.option("--base-model", default="sentence-transformers/all-MiniLM-L6-v2", show_default=True)
@click.option("--quick", is_flag=True, help="small validation grid (for smoke runs)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--model-kind", type=click.Choice(["sequential", "text_mix"]), default=None,
              help="text-aware sequential network or text/kNN/popularity mix (default: the plugin's default)")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a run config field")
def train_cmd(source: str, out: Path | None, base_model: str, quick: bool, device: str, model_kind: str | None,
              overrides: tuple[str, ...]) -> None:
    from domainfm.config import build_config
    from domainfm.manager import get_plugin_manager
    from domainfm.runner import Runner

    options = {"options.quick": quick or None, "options.model_kind": model_kind}
    config = build_config(None, overrides, data=source, device=device, **{"model.base": base_model}, **options)
    result = Runner(get_plugin_manager(), config).train_run("recommendation", run_dir=out)
    artifact = result.artifact
    assert artifact is not None
    click.echo(f"trained {artifact.metadata['model_kind']} model on {artifact.metadata.get('n_items')} items in "
               f"{result.ctx.resources.train_seconds:.1f} s, validation NDCG@10 "
               f"{artifact.metadata['validation']['ndcg_at_10']:.4f} -> {result.ctx.run_dir}")
