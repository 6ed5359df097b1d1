"""Hook implementations of the recommendation domain (entry point ``recommendation``).

Nothing heavy is imported at module level: torch, faiss, datasets and implicit load inside the hooks.

Options (``config.options``): ``model_kind`` (``sequential``: text-aware sequential network | ``text_mix``:
text/kNN/popularity mix; default ``seqmodel.DEFAULT_MODEL_KIND``), ``seq_epochs`` (most epochs of the sequential network), ``quick``
(bool, small validation grid), ``baselines`` (``quick`` | ``full`` | ``none``: baseline runs inside
``evaluate``), ``batch_size`` (encoding batch size).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domainfm import hookimpl
from domainfm.config import DEFAULT_BASE_MODEL
from domainfm.types import DomainSpec

from domainfm_recommendation.records import RecommendationRecord

if TYPE_CHECKING:  # pragma: no cover
    import click

    from domainfm.types import Artifact, DataBundle, Evaluation, Prediction, RunContext

DOMAIN = "recommendation"
ARTIFACT_KIND = "text-recommender"
METRICS = ["ndcg_at_10", "hr_at_10", "recall_at_20", "mrr", "coverage", "gini", "novelty", "long_tail_share"]


@hookimpl
def domainfm_domains() -> list[DomainSpec]:
    return [
        DomainSpec(
            name=DOMAIN,
            description="Text-aware recommendations: item text embedded by the base model, recency-weighted user "
            "profiles, FAISS retrieval and a re-ranker mixing text, item-kNN and popularity.",
            tasks=["ranking", "retrieval"],
            output_space="rankings",
            default_data="demo",
            default_model=DEFAULT_BASE_MODEL,
            metrics=METRICS,
            key_metric="ndcg_at_10",
            cli_group="rec",
            record_model=RecommendationRecord,
        )
    ]


@hookimpl
def domainfm_register_commands(cli: click.Group) -> None:
    from domainfm_recommendation.cli import rec

    cli.add_command(rec)


@hookimpl
def domainfm_register_routes(router: Any, get_predictor: Any) -> None:
    from domainfm_recommendation.routes import add_routes

    add_routes(router)


# ---------------------------------------------------------------------------------------------- stages


@hookimpl
def domainfm_load_data(ctx: RunContext, domain: str, source: str) -> DataBundle | None:
    if domain != DOMAIN:
        return None
    from domainfm_recommendation.sources import load_split

    return bundle_from_split(load_split(source), source)


def bundle_from_split(split: Any, source: str) -> DataBundle:
    """The protocol's split as a DataBundle: ``train``, ``validation``, ``test`` and ``items`` tables."""
    from domainfm.types import DataBundle

    from domainfm_recommendation.protocol import events_to_dataset, items_to_dataset

    return DataBundle(
        tables={
            "train": events_to_dataset(split.train),
            "validation": events_to_dataset(split.validation),
            "test": events_to_dataset(split.test),
            "items": items_to_dataset(split.items),
        },
        source=source,
        label_names=None,
        text_column="text",
        label_column=None,
        group_columns=[],
        meta={"protocol": split.report},
        # catalogue titles and creators are public metadata, not personal names of users
        public_names=sorted({n for it in split.items for n in (it.title, it.creator) if n}),
    )


def split_from_bundle(data: DataBundle) -> Any:
    from domainfm_recommendation.protocol import Split, dataset_to_events, dataset_to_items

    return Split(
        dataset_to_events(data.split("train")),
        dataset_to_events(data.split("validation")),
        dataset_to_events(data.split("test")),
        dataset_to_items(data.split("items")),
        dict(data.meta.get("protocol", {})),
    )


def model_kind_option(value: Any) -> str:
    """``options.model_kind``: ``sequential`` or ``text_mix`` (None: the default); anything else is one clear error."""
    from domainfm.errors import ConfigError

    from domainfm_recommendation.seqmodel import DEFAULT_MODEL_KIND, MODEL_KINDS

    kind = DEFAULT_MODEL_KIND if value is None else str(value)
    if kind not in MODEL_KINDS:
        raise ConfigError(f"options.model_kind: {kind!r} is not one of {list(MODEL_KINDS)}")
    return kind


def fit_artifact(
    data: DataBundle, out: Path, *, base_model: str, device: str, quick: bool, batch_size: int = 64,
    max_length: int | None = 128, model_kind: str | None = None, seq_epochs: int | None = None,
) -> Artifact:
    """Embed items, choose the model on validation, refit on train + validation, save to ``out``.

    ``model_kind`` ``sequential``: the text-aware sequential network (epochs chosen on validation, at most
    ``seq_epochs``); ``text_mix``: the text/kNN/popularity mix alone.
    """
    from domainfm.engine.encoder import TextEncoder
    from domainfm.types import Artifact

    from domainfm_recommendation.pipeline import embed_items, index_split, train_recommender

    kind = model_kind_option(model_kind)
    started = time.perf_counter()
    split = split_from_bundle(data)
    ix = index_split(split)
    encoder = TextEncoder(base_model, device=device, max_length=max_length)
    embeddings = embed_items(ix.texts, encoder, batch_size=batch_size)
    embed_seconds = time.perf_counter() - started
    extra: dict[str, Any] = {}
    if kind == "sequential":
        from dataclasses import replace

        from domainfm_recommendation.seqnet import SeqConfig
        from domainfm_recommendation.seqpipeline import train_sequential

        cfg = SeqConfig()
        cfg = replace(cfg, epochs=int(seq_epochs) if seq_epochs else (min(cfg.epochs, 10) if quick else cfg.epochs))
        model, seq_report = train_sequential(ix, embeddings, base_model, cfg, quick=quick)
        weights, validation, select_seconds = seq_report.mix_weights, seq_report.validation, seq_report.seconds
        extra = {"sequential": {"config": cfg.as_dict(), "epochs": seq_report.selection.best_epoch,
                                "validation_curve": seq_report.selection.validation_curve,
                                "final_fit_seconds": seq_report.final.seconds,
                                "mix_weight": seq_report.mix_weight,
                                "validation_ndcg_at_10_by_mix_weight": seq_report.validation_by_mix_weight}}
    else:
        model, report = train_recommender(ix, embeddings, base_model, quick=quick)
        weights = {k: (v if v != float("inf") else None) for k, v in report.weights.__dict__.items()}
        validation, select_seconds = report.validation, report.seconds
    model.build_index()
    out = Path(out)
    model.save(out, {"protocol": split.report})
    artifact = Artifact(
        path=out, domain=DOMAIN, kind=ARTIFACT_KIND, base_model=base_model, device=encoder.device,
        metadata={
            "model_kind": kind,
            "n_items": ix.n_items,
            "n_users": len(ix.users),
            "weights": weights,
            "validation": validation,
            "embed_seconds": embed_seconds,
            "select_seconds": select_seconds,
            "index_device": getattr(model.index, "device", "cpu"),
            "protocol": split.report,
            **extra,
        },
    )
    artifact.save_metadata()
    return artifact


@hookimpl
def domainfm_train(ctx: RunContext, domain: str, data: DataBundle) -> Artifact | None:
    if domain != DOMAIN:
        return None
    return fit_artifact(
        data, ctx.artifact_dir, base_model=ctx.config.model.base or DEFAULT_BASE_MODEL, device=ctx.device,
        quick=ctx.flag("quick"), batch_size=int(ctx.option("batch_size", 64)),
        max_length=ctx.config.model.max_length, model_kind=ctx.option("model_kind"),
        seq_epochs=_positive_int(ctx.option("seq_epochs"), "options.seq_epochs"),
    )


def _positive_int(value: Any, name: str) -> int | None:
    from domainfm.errors import ConfigError

    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {value!r} is not an integer") from None
    if number < 1:
        raise ConfigError(f"{name}: must be at least 1, got {number}")
    return number


@hookimpl
def domainfm_load_predictor(ctx: RunContext, domain: str, artifact: Artifact) -> Any:
    if domain != DOMAIN:
        return None
    from domainfm_recommendation.predictor import RecommendationPredictor

    return RecommendationPredictor.load(artifact.path, device=ctx.device)


@hookimpl
def domainfm_predict(
    ctx: RunContext, domain: str, predictor: Any, records: Sequence[Mapping[str, Any]]
) -> list[Prediction] | None:
    if domain != DOMAIN:
        return None
    return list(predictor.predict(records))


@hookimpl
def domainfm_evaluate(ctx: RunContext, domain: str, predictor: Any, data: DataBundle, split: str) -> Evaluation | None:
    if domain != DOMAIN:
        return None
    from domainfm.errors import DataError

    from domainfm_recommendation.benefit import artifact_user_fields
    from domainfm_recommendation.outcomes import build_evaluation
    from domainfm_recommendation.pipeline import index_split

    if split != "test":
        raise DataError(f"recommendation evaluates the pinned 'test' split only (asked for {split!r})")
    ix = index_split(split_from_bundle(data))
    model = predictor.model
    if model.item_ids[: ix.n_items] != ix.item_ids:
        raise DataError("the data's item catalogue differs from the one the model was trained on; retrain")
    evaluation, _, _ = build_evaluation(model, ix, baselines=str(ctx.option("baselines", "quick")), device=predictor.device)
    if predictor.artifact_path is not None:
        evaluation.extra["artifact_user_fields"] = artifact_user_fields(predictor.artifact_path)
    return evaluation


@hookimpl
def domainfm_benefit_terms(ctx: RunContext, domain: str, evaluation: Evaluation) -> list[Any]:
    if domain != DOMAIN:
        return []
    from domainfm_recommendation.benefit import terms

    return terms(ctx, evaluation)
