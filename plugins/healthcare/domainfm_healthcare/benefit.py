"""Benefit terms and constraints of the healthcare domain.

Every number is an :class:`~domainfm.types.Assumption` users can override with
``benefit.assumptions.<name>=<value>``; constraint limits with ``benefit.limits.<name>=<value>``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from domainfm.benefit.assumptions import BenefitSettings
from domainfm.types import BenefitContribution, BenefitTerm, Constraint, Evaluation, ItemBatch, RunContext

DEFAULTS: dict[str, tuple[float, str, str]] = {
    "triage_minutes_per_case": (
        4.0,
        "min",
        "time a triage nurse spends reading and routing one free-text description (project assumption; "
        "telephone-triage studies report several minutes per call)",
    ),
    "misroute_minutes": (
        15.0,
        "min",
        "clinician time lost when an automatically routed case was routed wrongly and must be re-triaged",
    ),
    "hours_to_care_saved_per_case": (
        2.0,
        "h",
        "waiting time a correctly pre-routed patient saves before reaching the right service (project assumption)",
    ),
    "misroutes_avoided_value": (
        1.0,
        "case",
        "one wrong routing avoided for each uncertain case the model referred instead of answering",
    ),
}
LIMITS: dict[str, float] = {
    "precision_floor": 0.9,
    "identifiers_in_artifacts": 0.0,
    "group_accuracy_gap": 0.10,
    "latency_p95_ms": 3000.0,  # one request: de-identification, top-3 suggestions, abstention (no attributions)
}


def _answered_precision(batch: ItemBatch) -> float | None:
    if not batch.automated.any():
        return None
    return float(np.mean(batch.quality[batch.automated]))


def _group_gap(batch: ItemBatch) -> float | None:
    gaps = []
    for values in batch.groups.values():
        accs = []
        for g in np.unique(values):
            mask = (values == g) & batch.automated
            if mask.sum() >= 3:
                accs.append(float(batch.quality[mask].mean()))
        if len(accs) >= 2:
            gaps.append(max(accs) - min(accs))
    return max(gaps) if gaps else None


def benefit_terms(ctx: RunContext, evaluation: Evaluation) -> list[BenefitContribution]:
    """Business: triage minutes saved; social: faster access to care, misroutes avoided by referral;
    constraints: safety (precision floor), privacy (zero identifiers), fairness (group gap), resources."""
    settings = BenefitSettings(ctx, DEFAULTS, LIMITS)
    minutes = settings.value("triage_minutes_per_case")
    misroute = settings.value("misroute_minutes")
    hours = settings.value("hours_to_care_saved_per_case")
    avoided = settings.value("misroutes_avoided_value")
    identifiers = evaluation.extra.get("identifiers_in_artifacts")

    def minutes_saved(batch: ItemBatch) -> np.ndarray:
        auto = batch.automated.astype(float)
        return auto * (batch.quality * minutes - (1.0 - batch.quality) * misroute)

    def faster_access(batch: ItemBatch) -> np.ndarray:
        return batch.automated.astype(float) * batch.quality * hours

    def referrals(batch: ItemBatch) -> np.ndarray:
        return (~batch.automated).astype(float) * (1.0 - batch.quality) * avoided

    def latency(batch: ItemBatch) -> float | None:
        value: Any = batch.resources.latency_ms_p95
        return float(value) if value is not None else None

    return [
        BenefitTerm(
            name="triage_minutes_saved",
            objective="business",
            unit="clinician minutes",
            description="minutes of manual triage saved on automatically routed cases, minus re-triage of misroutes",
            assumptions=[settings.assumption("triage_minutes_per_case"), settings.assumption("misroute_minutes")],
            utility=minutes_saved,
        ),
        BenefitTerm(
            name="faster_access_to_care",
            objective="social",
            unit="patient hours",
            description="waiting time saved by patients whose case was routed correctly without waiting for triage",
            assumptions=[settings.assumption("hours_to_care_saved_per_case")],
            utility=faster_access,
        ),
        BenefitTerm(
            name="uncertain_cases_referred",
            objective="social",
            unit="misroutes avoided",
            description="cases the model would have got wrong that it referred to a clinician instead",
            assumptions=[settings.assumption("misroutes_avoided_value")],
            utility=referrals,
        ),
        Constraint(
            name="precision_at_operating_point",
            kind="safety",
            unit="precision",
            description="precision of the suggestions the model makes at this coverage must reach the floor",
            limit=settings.limit("precision_floor"),
            direction="min",
            measure=_answered_precision,
        ),
        Constraint(
            name="identifiers_in_artifacts",
            kind="privacy",
            unit="identifiers",
            description="identifiers found in the stored training text and outputs after de-identification",
            limit=settings.limit("identifiers_in_artifacts"),
            direction="max",
            measure=lambda batch: float(identifiers) if identifiers is not None else None,
            depends_on_operating_point=False,
        ),
        Constraint(
            name="group_accuracy_gap",
            kind="fairness",
            unit="accuracy points",
            description="largest accuracy gap between groups (e.g. age band) on answered cases; "
            "not measurable without group data",
            limit=settings.limit("group_accuracy_gap"),
            direction="max",
            measure=_group_gap,
        ),
        Constraint(
            name="latency_p95",
            kind="resource",
            unit="ms",
            description="95th percentile single-request latency. Timed: "
            + str(ctx.state.get("latency_timed") or "not recorded"),
            limit=settings.limit("latency_p95_ms"),
            direction="max",
            measure=latency,
            depends_on_operating_point=False,
        ),
    ]
