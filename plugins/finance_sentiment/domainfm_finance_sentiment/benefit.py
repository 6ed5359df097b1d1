"""Benefit terms and constraints of the finance_sentiment domain.

Every number a term depends on is an :class:`~domainfm.types.Assumption` with its source, overridable with
``--set benefit.assumptions.NAME=VALUE``; constraint limits with ``--set benefit.limits.NAME=VALUE``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from domainfm.benefit.assumptions import BenefitSettings
from domainfm.types import BenefitTerm, Constraint, Evaluation, ItemBatch, RunContext

DEFAULTS: dict[str, tuple[float, str, str]] = {
    "reading_seconds_per_item": (
        30.0, "s", "an analyst reads and tags a news sentence or headline in ~30 s (placeholder; time it per desk)"),
    "analyst_hourly_cost": (60.0, "EUR/h", "loaded cost of a markets analyst (placeholder; set per institution)"),
    "error_cost": (1.0, "EUR", "cost of one automated mislabel reaching a dashboard and being corrected later"),
    "manual_backlog_hours": (
        4.0, "h", "typical delay before a manually triaged negative item is read (placeholder; measure the queue)"),
    "value_per_warning_hour": (
        2.0, "EUR/h", "value of learning of one negative item one hour earlier (placeholder for desk P&L impact)"),
    "retail_readers_per_item": (
        50.0, "readers", "retail investors who see a published negative-news flag (placeholder; audience data)"),
}
LIMITS: dict[str, float] = {
    "source_accuracy_gap": 0.10,
    "calibration_ece": 0.05,
    "train_seconds": 1200.0,
    "negative_miss_rate": 0.25,
}
MIN_GROUP_ITEMS = 10


def _is_negative(batch: ItemBatch) -> np.ndarray:
    labels = batch.extra.get("label")
    if labels is None:
        return np.zeros(len(batch), dtype=float)
    return (np.asarray(labels) == "negative").astype(float)


def group_accuracy_gap(batch: ItemBatch, min_items: int = MIN_GROUP_ITEMS) -> float | None:
    """Largest difference in accuracy on automated items between groups (sources, else entities)."""
    for column in ("source", "entity"):
        groups = batch.groups.get(column)
        if groups is None:
            continue
        groups = np.asarray(groups)
        accs = []
        for g in np.unique(groups):
            mask = (groups == g) & batch.automated.astype(bool)
            if mask.sum() >= min_items:
                accs.append(float(batch.quality[mask].mean()))
        if len(accs) >= 2:
            return max(accs) - min(accs)
    return None


def negative_miss_rate(batch: ItemBatch) -> float | None:
    """Share of truly negative items the model handles itself and gets wrong (humans catch the rest)."""
    neg = _is_negative(batch).astype(bool)
    if not neg.any():
        return None
    missed = neg & batch.automated.astype(bool) & (batch.quality < 0.5)
    return float(missed.sum() / neg.sum())


def measurable_ece(evaluation: Evaluation, limit: float) -> tuple[float | None, str]:
    """The evaluation's ECE, or None when its split is too small to check ``limit``: a perfectly calibrated
    model with the same confidences would exceed the limit more than one time in ten (ECE's small-sample bias;
    the authored demo's test split has ~36 items). Returns the value and a sentence saying which it is."""
    ece = evaluation.metrics.get("ece")
    if ece is None or evaluation.outcomes is None or len(evaluation.outcomes) == 0:
        return None, "Not measured: the evaluation has no ECE or no per-item confidences."
    from domainfm.engine.calibration import ece_noise_floor

    confidence, _ = evaluation.outcomes.arrays()
    floor = ece_noise_floor(confidence)
    if floor["p90"] > limit:
        return None, (f"Not measurable on {floor['n']} items: ECE {float(ece):.3f} measured, but a perfectly "
                      f"calibrated model would show {floor['mean']:.3f} on average (90th percentile "
                      f"{floor['p90']:.3f}) at this size, above the limit {limit:g}.")
    return float(ece), f"Measured on {floor['n']} items (noise floor at this size {floor['mean']:.3f})."


def terms(ctx: RunContext, evaluation: Evaluation) -> list[Any]:
    """The domain's business and social terms and its constraints."""
    settings = BenefitSettings(ctx, DEFAULTS, LIMITS)
    seconds, rate, err = (settings.value(n) for n in ("reading_seconds_per_item", "analyst_hourly_cost", "error_cost"))
    backlog, per_hour = settings.value("manual_backlog_hours"), settings.value("value_per_warning_hour")
    readers = settings.value("retail_readers_per_item")
    per_item = seconds / 3600.0 * rate
    ece, ece_note = measurable_ece(evaluation, settings.limit("calibration_ece"))
    return [
        BenefitTerm(
            name="analyst_hours_saved",
            objective="business",
            unit="EUR",
            description="Reading time the model takes over on automated items, less the cost of its automated errors.",
            assumptions=[settings.assumption(n) for n in ("reading_seconds_per_item", "analyst_hourly_cost", "error_cost")],
            utility=lambda b: b.automated * (per_item - (1.0 - b.quality) * err),
        ),
        BenefitTerm(
            name="alert_lead_time",
            objective="business",
            unit="EUR",
            description=("Correctly flagged negative items reach the desk without waiting in the manual reading "
                         "queue: backlog hours saved times the value of one warning hour."),
            assumptions=[settings.assumption(n) for n in ("manual_backlog_hours", "value_per_warning_hour")],
            utility=lambda b: b.automated * b.quality * _is_negative(b) * backlog * per_hour,
        ),
        BenefitTerm(
            name="retail_early_warning",
            objective="social",
            unit="reader-hours",
            description=("Retail investors warned earlier of negative news: readers reached per flagged item "
                         "times the hours of queue the flag skips."),
            assumptions=[settings.assumption(n) for n in ("retail_readers_per_item", "manual_backlog_hours")],
            utility=lambda b: b.automated * b.quality * _is_negative(b) * readers * backlog,
        ),
        Constraint(
            name="source_accuracy_gap",
            kind="fairness",
            unit="accuracy (fraction)",
            description=(f"Accuracy gap on automated items between sources (else entities) with at least "
                         f"{MIN_GROUP_ITEMS} items; not measurable without group columns."),
            limit=settings.limit("source_accuracy_gap"),
            measure=group_accuracy_gap,
        ),
        Constraint(
            name="negative_miss_rate",
            kind="safety",
            unit="fraction of negative items",
            description="Negative items the model handles itself and mislabels (a missed warning).",
            limit=settings.limit("negative_miss_rate"),
            measure=negative_miss_rate,
        ),
        Constraint(
            name="calibration_ece",
            kind="safety",
            unit="ECE",
            description=("Transparency: the probabilities shown to analysts are calibrated (expected calibration "
                         f"error). {ece_note}"),
            limit=settings.limit("calibration_ece"),
            measure=lambda b: None if ece is None else float(ece),
            depends_on_operating_point=False,
        ),
        Constraint(
            name="train_seconds",
            kind="resource",
            unit="s",
            description="Training wall time on the deployment hardware.",
            limit=settings.limit("train_seconds"),
            measure=lambda b: b.resources.train_seconds,
            depends_on_operating_point=False,
        ),
    ]
