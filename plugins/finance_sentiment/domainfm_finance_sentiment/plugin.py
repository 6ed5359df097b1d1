"""Hook implementations of the ``finance_sentiment`` domain (entry point target; no torch at import).

Options (``--set options.NAME=VALUE``):

- ``agreement``: PhraseBank file for a directory source (``50agree``, ``66agree``, ``75agree``, ``allagree``);
- ``split_seed``: seed of the pinned 80/10/10 split stratified by label (default 42);
- ``label_map``: mapping of raw labels to negative/neutral/positive for generic files;
- ``target_precision``: precision the abstention threshold reaches on validation (default 0.9);
- ``topics``: ``auto`` (labelled topics when the data has them, else clusters) or ``off``;
- ``n_topics`` / ``topic_names``: number of clusters / pinned names (``{"0": "credit"}`` or a list).
"""

from __future__ import annotations

from typing import Any

from domainfm import hookimpl
from domainfm.errors import DataError
from domainfm.types import Artifact, BenefitTermInfo, DataBundle, DomainSpec, Evaluation, RunContext

from domainfm_finance_sentiment import DOMAIN, LABELS
from domainfm_finance_sentiment.records import FinanceRecord

SPLIT = (0.8, 0.1, 0.1)
SPLIT_SEED = 42
GROUP_COLUMNS = ("source", "entity")


@hookimpl
def domainfm_domains() -> list[DomainSpec]:
    return [
        DomainSpec(
            name=DOMAIN,
            description=("Financial news sentiment (negative/neutral/positive) with calibrated probabilities, "
                         "topics, and a negative-surge monitor with evidence."),
            tasks=["classification"],
            output_space="labels",
            default_data="demo",
            default_model="sentence-transformers/all-MiniLM-L6-v2",
            metrics=["accuracy", "macro_f1", "weighted_f1", "ece"],
            key_metric="macro_f1",
            benefit_terms=[
                BenefitTermInfo(name="analyst_hours_saved", objective="business", unit="EUR"),
                BenefitTermInfo(name="alert_lead_time", objective="business", unit="EUR"),
                BenefitTermInfo(name="retail_early_warning", objective="social", unit="reader-hours"),
                BenefitTermInfo(name="source_accuracy_gap", objective="constraint", unit="accuracy (fraction)"),
                BenefitTermInfo(name="negative_miss_rate", objective="constraint", unit="fraction of negative items"),
                BenefitTermInfo(name="calibration_ece", objective="constraint", unit="ECE"),
                BenefitTermInfo(name="train_seconds", objective="constraint", unit="s"),
            ],
            cli_group="finance",
            record_model=FinanceRecord,
        )
    ]


@hookimpl
def domainfm_register_commands(cli: Any) -> None:
    from domainfm_finance_sentiment.cli import finance

    cli.add_command(finance)


@hookimpl
def domainfm_load_data(ctx: RunContext, domain: str, source: str) -> DataBundle | None:
    if domain != DOMAIN:
        return None
    from domainfm.data import records_to_dataset, stratified_split

    from domainfm_finance_sentiment.readers import label_counts, read_source

    rows, meta = read_source(source, ctx.config.options)
    counts = label_counts(rows)
    too_few = [k for k, v in counts.items() if v < 3]
    if too_few:
        raise DataError(f"{meta['origin']}: labels {too_few} have fewer than 3 rows ({counts}); cannot split 80/10/10")
    present = [c for c in ("id", "timestamp", "topic", "source", "entity") if all(c in r for r in rows)]
    full = records_to_dataset(rows, columns=["text", "label", *present])
    seed = int(ctx.option("split_seed", SPLIT_SEED))
    tables = stratified_split(full, "label", SPLIT, seed=seed, where=meta["origin"])
    groups = [c for c in GROUP_COLUMNS if c in present and len({r[c] for r in rows}) > 1]
    return DataBundle(
        tables=tables,
        source=meta["origin"],
        label_names=list(LABELS),
        group_columns=groups,
        meta={**meta, "label_counts": counts, "split": list(SPLIT), "split_seed": seed},
        # the companies the texts are about are public names, not personal data
        public_names=sorted({str(r["entity"]) for r in rows if r.get("entity")}),
    )


@hookimpl
def domainfm_train(ctx: RunContext, domain: str, data: DataBundle) -> Artifact | None:
    if domain != DOMAIN:
        return None
    from domainfm_finance_sentiment.model import train

    return train(ctx, data)


@hookimpl
def domainfm_load_predictor(ctx: RunContext, domain: str, artifact: Artifact) -> Any:
    if domain != DOMAIN:
        return None
    from domainfm_finance_sentiment.model import FinancePredictor

    return FinancePredictor.load(artifact, ctx.device)


@hookimpl
def domainfm_evaluate(ctx: RunContext, domain: str, predictor: Any, data: DataBundle, split: str) -> Evaluation | None:
    if domain != DOMAIN:
        return None
    from domainfm.engine.text_classifier import evaluate_text_classifier

    evaluation = evaluate_text_classifier(predictor.inner, data, split)
    table = data.split(split)
    topics = getattr(predictor, "topics", None)
    if topics is not None and topics.kind == "labelled" and "topic" in table.column_names and len(table):
        assigned = predictor.assign_topics(list(table["text"])) or []
        truth = list(table["topic"])
        evaluation.metrics["topic_accuracy"] = sum(a == t for a, t in zip(assigned, truth, strict=True)) / len(truth)
    return evaluation


@hookimpl
def domainfm_benefit_terms(ctx: RunContext, domain: str, evaluation: Evaluation) -> list[Any]:
    if domain != DOMAIN:
        return []
    from domainfm_finance_sentiment.benefit import terms

    return terms(ctx, evaluation)
