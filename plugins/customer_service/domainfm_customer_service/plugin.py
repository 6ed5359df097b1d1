"""Hook implementations of the customer_service domain (the plugin's entry point).

Nothing heavy is imported at module level: ``domainfm plugins list`` must stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domainfm import hookimpl
from domainfm.types import Artifact, DataBundle, DomainSpec, Evaluation, RunContext

from domainfm_customer_service import DOMAIN
from domainfm_customer_service.records import CustomerServiceRecord

FEEDBACK_FILE = "feedback.sqlite"


@hookimpl
def domainfm_domains() -> list[DomainSpec]:
    return [
        DomainSpec(
            name=DOMAIN,
            description="Customer service: intent + confidence, hybrid retrieval over a knowledge base, "
            "answers, and a calibrated hand-off to a human.",
            tasks=["classification", "retrieval"],
            output_space="labels",
            default_data="demo",
            default_model="sentence-transformers/all-MiniLM-L6-v2",
            metrics=[
                "accuracy", "macro_f1", "recall_at_5", "mrr", "automation_rate", "automated_answer_accuracy",
                "escalation_precision", "escalation_recall",
            ],
            key_metric="macro_f1",
            cli_group="cs",
            record_model=CustomerServiceRecord,
        )
    ]


@hookimpl
def domainfm_register_commands(cli: Any) -> None:
    from domainfm_customer_service.cli import cs

    cli.add_command(cs)


def feedback_path(ctx: RunContext) -> Path:
    """``options.feedback_db`` or ``<output_dir>/customer_service/feedback.sqlite``."""
    option = ctx.option("feedback_db")
    return Path(option) if option else Path(ctx.config.output_dir) / DOMAIN / FEEDBACK_FILE


@hookimpl
def domainfm_load_data(ctx: RunContext, domain: str, source: str) -> DataBundle | None:
    if domain != DOMAIN:
        return None
    from domainfm_customer_service.bundle import build_bundle, feedback_bundle
    from domainfm_customer_service.feedback import FeedbackStore, is_feedback_store
    from domainfm.data import is_reading_feedback
    from domainfm.privacy.masker import Masker
    from domainfm_customer_service.readers import CustomerServiceData, load_source
    from domainfm_customer_service.training import _ner_option

    masker = Masker(use_ner=_ner_option(ctx)) if ctx.flag("mask_training_text", True) else None
    if is_feedback_store(source) and is_reading_feedback():  # `domainfm improve RUN --feedback feedback.sqlite`
        return feedback_bundle(FeedbackStore(source).training_rows(), source, masker)
    if is_feedback_store(source):  # a store as a training set (`domainfm run customer_service --data store`)
        return build_bundle(CustomerServiceData(utterances=FeedbackStore(source).training_rows(), source=source),
                            seed=ctx.config.train.seed, masker=masker)
    data = load_source(source)
    fb_path = feedback_path(ctx)
    # `improve` from this very store: its rows arrive as the feedback (partly held out), never also as parent rows
    improving_from = (ctx.state.get("lineage") or {}).get("feedback")
    is_the_feedback = bool(improving_from) and Path(improving_from).resolve() == fb_path.resolve()
    feedback = FeedbackStore(fb_path).training_rows() if fb_path.is_file() and not is_the_feedback else []
    return build_bundle(data, seed=ctx.config.train.seed, masker=masker, feedback_rows=feedback)


@hookimpl
def domainfm_train(ctx: RunContext, domain: str, data: DataBundle) -> Artifact | None:
    if domain != DOMAIN:
        return None
    from domainfm_customer_service.training import train_customer_service

    return train_customer_service(ctx, data)


@hookimpl
def domainfm_load_predictor(ctx: RunContext, domain: str, artifact: Artifact) -> Any:
    if domain != DOMAIN:
        return None
    from domainfm_customer_service.assistant import CustomerServiceAssistant
    from domainfm_customer_service.training import _ner_option

    return CustomerServiceAssistant.load(artifact, ctx.device, use_ner=_ner_option(ctx), generator=ctx.option("generator"))


@hookimpl
def domainfm_evaluate(ctx: RunContext, domain: str, predictor: Any, data: DataBundle, split: str) -> Evaluation | None:
    if domain != DOMAIN:
        return None
    from domainfm_customer_service.evaluation import evaluate_assistant

    evaluation = evaluate_assistant(predictor, data, split)
    if predictor.index is not None and predictor.masker is not None:
        texts = [c.text for c in predictor.index.chunks.values()] + [str(t) for t in data.split(split)["text"]]
        evaluation.extra["pii_findings_in_index_and_logs"] = predictor.masker.count(texts)
    return evaluation


@hookimpl
def domainfm_benefit_terms(ctx: RunContext, domain: str, evaluation: Evaluation) -> list[Any]:
    if domain != DOMAIN:
        return []
    from domainfm_customer_service.benefit import benefit_terms

    return benefit_terms(ctx, evaluation)


@hookimpl
def domainfm_register_routes(router: Any, get_predictor: Any) -> None:
    from domainfm_customer_service.routes import add_routes

    add_routes(router)
