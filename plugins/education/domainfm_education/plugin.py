"""Hook implementations of the education plugin (entry point ``education``).

Domains:

- ``education`` (short-answer grading). Options (``--set options.NAME=VALUE``): ``target_precision``
  (precision the human-review threshold is chosen for on validation data, default 0.9), ``answer_memory``
  (blend in the nearest graded training answers to the same question, default true), ``label_names``,
  ``max_score`` (score data), ``minutes_per_answer`` and ``teacher_hourly_cost`` via benefit assumptions.
- ``knowledge_tracing``. Options: ``kt_model`` (``akt`` default, ``sakt`` or ``dkt``), ``kt_epochs``,
  ``kt_max_len`` (window length, default 200), ``catalogue`` (CSV of skills with prerequisites),
  ``pseudonym_key`` (key for student-id pseudonyms; default a key derived from the run id).

Nothing here imports torch, transformers or datasets at module level.
"""

from __future__ import annotations

from typing import Any

from domainfm import hookimpl
from domainfm.types import Artifact, DataBundle, DomainSpec, Evaluation, RunContext

from domainfm_education.records import GradingRecord, KnowledgeTracingRecord

GRADING = "education"
KT = "knowledge_tracing"
BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@hookimpl
def domainfm_domains() -> list[DomainSpec]:
    return [
        DomainSpec(
            name=GRADING,
            description="Short-answer grading against reference answers (cross-encoder, best match over "
            "references), feedback on what is missing, uncertain answers to a teacher's review queue.",
            tasks=["classification"],
            output_space="labels",
            default_data="demo",
            default_model=BASE_MODEL,
            metrics=["accuracy", "macro_f1", "weighted_f1", "ece", "qwk", "auto_graded_share"],
            key_metric="macro_f1",
            cli_group="edu",
            record_model=GradingRecord,
        ),
        DomainSpec(
            name=KT,
            description="Knowledge tracing (DKT LSTM or AKT-style attention): next-answer correctness, "
            "mastery per skill, and what to study next by expected learning gain in prerequisite order.",
            tasks=["sequence", "ranking"],
            output_space="rankings",
            default_data="demo",
            default_model="domainfm-education/akt",
            metrics=["auc", "accuracy", "rmse", "recommendation_ndcg_at_3", "mastery_future_auc"],
            key_metric="auc",
            cli_group="edu",
            record_model=KnowledgeTracingRecord,
        ),
    ]


@hookimpl
def domainfm_register_commands(cli: Any) -> None:
    from domainfm_education.cli import edu

    cli.add_command(edu)


@hookimpl
def domainfm_load_data(ctx: RunContext, domain: str, source: str) -> DataBundle | None:
    if domain == GRADING:
        from domainfm_education.grading_sources import load_grading_source

        return load_grading_source(
            source, ctx.config.train.seed, ctx.option("label_names"), ctx.option("max_score")
        )
    if domain == KT:
        from domainfm_education.kt_sources import load_kt_source

        return load_kt_source(source, seed=ctx.config.train.seed, key=_pseudonym_key(ctx))
    return None


@hookimpl
def domainfm_train(ctx: RunContext, domain: str, data: DataBundle) -> Artifact | None:
    if domain == GRADING:
        from domainfm_education.grader import train_grader

        return train_grader(ctx, data)
    if domain == KT:
        from domainfm_education.kt_train import train_kt

        return train_kt(ctx, data)
    return None


@hookimpl
def domainfm_load_predictor(ctx: RunContext, domain: str, artifact: Artifact) -> Any:
    if domain == GRADING:
        from domainfm_education.grader import GraderPredictor

        return GraderPredictor.load(artifact, ctx.device)
    if domain == KT:
        from domainfm_education.kt_predictor import KTPredictor

        return KTPredictor.load(artifact, ctx.device)
    return None


@hookimpl
def domainfm_evaluate(ctx: RunContext, domain: str, predictor: Any, data: DataBundle, split: str) -> Evaluation | None:
    if domain == GRADING:
        from domainfm_education.grader import evaluate_grader

        return evaluate_grader(predictor, data, split)
    if domain == KT:
        from domainfm_education.kt_evaluate import evaluate_kt

        return evaluate_kt(predictor, data, split)
    return None


@hookimpl
def domainfm_benefit_terms(ctx: RunContext, domain: str, evaluation: Evaluation) -> list[Any]:
    if domain == GRADING:
        from domainfm_education.benefit import grading_terms

        return grading_terms(ctx, evaluation)
    if domain == KT:
        from domainfm_education.benefit import kt_terms

        return kt_terms(ctx, evaluation)
    return []


def _pseudonym_key(ctx: RunContext) -> str:
    return str(ctx.option("pseudonym_key") or f"domainfm-education:{ctx.run_id}")
