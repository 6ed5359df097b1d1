"""The core's generic ``text_classification`` domain: any ``text,label`` table, no plugin needed.

It is also the reference implementation of a domain plugin on the shared engine: the domain plugins in
``plugins/`` follow the same shape. Options (``--set options.NAME=VALUE``):

- ``label_names``: the label set (default: the sorted labels found in the training data);
- ``group_columns``: columns holding group membership for fairness checks (default: ``channel`` if present);
- ``target_precision``: precision the abstention threshold is chosen for on validation data (default 0.9).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from domainfm import hookimpl
from domainfm.errors import DataError
from domainfm.records import TextPairRecord
from domainfm.types import Artifact, BenefitTermInfo, DataBundle, DomainSpec, Evaluation, RunContext

DOMAIN = "text_classification"


@hookimpl
def domainfm_domains() -> list[DomainSpec]:
    return [
        DomainSpec(
            name=DOMAIN,
            description="Generic text classification on any text,label file (CSV, JSONL, Parquet).",
            tasks=["classification"],
            output_space="labels",
            default_data="demo",
            default_model="sentence-transformers/all-MiniLM-L6-v2",
            metrics=["accuracy", "macro_f1", "weighted_f1", "ece", "top3_accuracy"],
            key_metric="macro_f1",
            benefit_terms=[
                BenefitTermInfo(name="handling_cost_saved", objective="business", unit="currency"),
            ],
            record_model=TextPairRecord,
        )
    ]


def demo_path() -> Path:
    return Path(str(resources.files("domainfm") / "demo_data" / "feedback_demo.csv"))


@hookimpl
def domainfm_load_data(ctx: RunContext, domain: str, source: str) -> DataBundle | None:
    if domain != DOMAIN:
        return None
    from domainfm.data import clean_text, read_table, records_to_dataset, require_labels, stratified_split

    path: Path | str = demo_path() if source == "demo" else source if source.startswith("hf:") else Path(source)
    limit = ctx.config.max_text_chars
    rows = read_table(path, required=("text", "label"), max_text_chars=limit)
    if len(rows) < 6:
        raise DataError(f"{path}: needs at least 6 labelled rows, found {len(rows)}")
    for row in rows:
        where = f"{path}:{row['_line']}"
        row["text"] = clean_text(row["text"], where, "text", max_chars=limit)
        row["label"] = clean_text(row["label"], where, "label")
    require_labels([r["label"] for r in rows], str(path))
    groups = ctx.option("group_columns") or (["channel"] if "channel" in rows[0] else [])
    columns = ["text", "label", *groups]
    full = records_to_dataset(rows, columns=columns)
    label_names = ctx.option("label_names") or sorted({r["label"] for r in rows})
    unknown = sorted({r["label"] for r in rows} - set(label_names))
    if unknown:
        raise DataError(f"{path}: labels {unknown} are not in options.label_names {label_names}")
    splits = stratified_split(full, "label", (0.6, 0.2, 0.2), seed=ctx.config.train.seed, where=str(path))
    return DataBundle(tables=splits, source=str(path), label_names=list(label_names), group_columns=list(groups))


@hookimpl
def domainfm_train(ctx: RunContext, domain: str, data: DataBundle) -> Artifact | None:
    if domain != DOMAIN:
        return None
    from domainfm.engine.text_classifier import (
        TextClassifierPredictor,
        choose_abstain_threshold,
        fine_tune_text_classifier,
    )

    artifact = fine_tune_text_classifier(ctx, data, label_names=data.label_names or [])
    if "validation" in data.tables and len(data.tables["validation"]):
        predictor = TextClassifierPredictor.load(artifact, ctx.device)
        artifact.metadata["abstain_threshold"] = choose_abstain_threshold(
            predictor, data.tables["validation"], target_precision=float(ctx.option("target_precision", 0.9))
        )
        artifact.save_metadata()
    return artifact


@hookimpl
def domainfm_load_predictor(ctx: RunContext, domain: str, artifact: Artifact) -> Any:
    if domain != DOMAIN:
        return None
    from domainfm.engine.text_classifier import TextClassifierPredictor

    return TextClassifierPredictor.load(artifact, ctx.device)


@hookimpl
def domainfm_evaluate(ctx: RunContext, domain: str, predictor: Any, data: DataBundle, split: str) -> Evaluation | None:
    if domain != DOMAIN:
        return None
    from domainfm.engine.text_classifier import evaluate_text_classifier

    return evaluate_text_classifier(predictor, data, split)


@hookimpl
def domainfm_benefit_terms(ctx: RunContext, domain: str, evaluation: Evaluation) -> list[Any]:
    if domain != DOMAIN:
        return []
    from domainfm.types import Assumption, BenefitTerm

    minutes = float(ctx.config.benefit.assumptions.get("minutes_per_item", 1.0))
    rate = float(ctx.config.benefit.assumptions.get("hourly_cost", 30.0))
    error_cost = float(ctx.config.benefit.assumptions.get("error_cost", 2.0))
    per_item = minutes / 60.0 * rate
    return [
        BenefitTerm(
            name="handling_cost_saved",
            objective="business",
            unit="currency",
            description="Labelling work the model takes over, less the cost of its automated mistakes.",
            assumptions=[
                Assumption(name="minutes_per_item", value=minutes, unit="min", source="placeholder: set per deployment"),
                Assumption(name="hourly_cost", value=rate, unit="currency/h", source="placeholder: set per deployment"),
                Assumption(name="error_cost", value=error_cost, unit="currency", source="placeholder: set per deployment"),
            ],
            utility=lambda b: b.automated * (per_item - (1.0 - b.quality) * error_cost),
        )
    ]
