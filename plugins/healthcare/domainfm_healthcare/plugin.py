"""Hook implementations of the healthcare plugin (entry point ``healthcare``).

Domain ``healthcare``: symptom triage and medical text classification. Sources: ``demo`` (default, the
project's offline set), ``symptom2disease``, ``medical_abstracts`` (from ../shared/data/healthcare) or a
``text,label`` file / directory of split files. Everything is de-identified while loading.

Options (``options.<name>=...``): ``target_precision`` (0.9), ``top_k`` (3), ``explain`` (on_request:
attributions for records with ``"explain": true``; always; never),
``ig_steps`` (16), ``dp`` (false: the core's DP-SGD head, also ``train.dp.enabled``; see
:mod:`domainfm.privacy.dp_training`), ``dp_epsilon`` (8), ``dp_delta``, ``dp_max_grad_norm`` (1.0; ``train.dp.*``),
``max_train`` (medical_abstracts), ``deid_ner`` (true), ``seed`` (42), ``text_column``, ``label_column``,
``group_columns``, ``labels``.

No torch/transformers import at module level: ``domainfm plugins list`` must stay light.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from domainfm import hookimpl
from domainfm.config import DEFAULT_BASE_MODEL
from domainfm.records import TextRecord
from domainfm.types import (
    Artifact,
    BenefitContribution,
    DataBundle,
    DomainSpec,
    Evaluation,
    Prediction,
    RunContext,
)

DOMAIN = "healthcare"


def _mine(domain: str) -> bool:
    return domain == DOMAIN


@hookimpl
def domainfm_domains() -> list[DomainSpec]:
    return [
        DomainSpec(
            name=DOMAIN,
            description=(
                "Symptom triage and medical text classification: de-identified input, calibrated top-k "
                "suggestions, abstention with referral to a clinician, token attributions. Not a diagnosis."
            ),
            tasks=["classification"],
            output_space="labels",
            default_data="demo",
            default_model=DEFAULT_BASE_MODEL,
            metrics=[
                "accuracy",
                "macro_f1",
                "top3_accuracy",
                "ece",
                "coverage",
                "selective_accuracy",
                "precision_at_80_coverage",
                "deid_recall",
                "deid_precision",
            ],
            key_metric="macro_f1",
            cli_group="health",
            record_model=TextRecord,
        )
    ]


@hookimpl
def domainfm_register_commands(cli: Any) -> None:
    from domainfm_healthcare.cli import health

    cli.add_command(health)


def _deidentifier(ctx: RunContext) -> Any:
    from domainfm_healthcare.deid import Deidentifier, default_deidentifier

    return default_deidentifier() if ctx.flag("deid_ner", True) else Deidentifier(use_ner=False)


@hookimpl
def domainfm_load_data(ctx: RunContext, domain: str, source: str) -> DataBundle | None:
    if not _mine(domain):
        return None
    from domainfm_healthcare.readers import load_source

    options = dict(ctx.config.options)
    options.setdefault("seed", ctx.config.train.seed)
    return load_source(source, _deidentifier(ctx), **options)


@hookimpl
def domainfm_train(ctx: RunContext, domain: str, data: DataBundle) -> Artifact | None:
    if not _mine(domain):
        return None
    from domainfm_healthcare.training import train_classifier

    return train_classifier(ctx, data)


@hookimpl
def domainfm_load_predictor(ctx: RunContext, domain: str, artifact: Artifact) -> Any:
    if not _mine(domain):
        return None
    from domainfm.engine.text_classifier import TextClassifierPredictor

    from domainfm_healthcare.predictor import HealthcarePredictor

    inner = TextClassifierPredictor.load(artifact, ctx.device)
    return HealthcarePredictor(
        inner,
        _deidentifier(ctx),
        top_k=int(ctx.option("top_k", 3)),
        explain=ctx.option("explain", "on_request"),
        ig_steps=int(ctx.option("ig_steps", 16)),
    )


@hookimpl
def domainfm_predict(
    ctx: RunContext, domain: str, predictor: Any, records: Sequence[Mapping[str, Any]]
) -> list[Prediction] | None:
    if not _mine(domain):
        return None
    return list(predictor.predict(records))


@hookimpl
def domainfm_evaluate(ctx: RunContext, domain: str, predictor: Any, data: DataBundle, split: str) -> Evaluation | None:
    if not _mine(domain):
        return None
    from domainfm_healthcare.evaluation import evaluate_healthcare

    return evaluate_healthcare(ctx, predictor, data, split)


@hookimpl
def domainfm_benefit_terms(ctx: RunContext, domain: str, evaluation: Evaluation) -> list[BenefitContribution]:
    if not _mine(domain):
        return []
    from domainfm_healthcare.benefit import benefit_terms

    return benefit_terms(ctx, evaluation)


@hookimpl
def domainfm_register_routes(router: Any, get_predictor: Any) -> None:
    from domainfm_healthcare.serving import register_routes

    register_routes(router, get_predictor)
