"""Benefit terms and constraints of customer service (business R_T, social R_S, constraints).

Defaults are stated assumptions a deployment should replace with its own figures
(``--set benefit.assumptions.NAME=VALUE``, ``--set benefit.limits.NAME=VALUE``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from domainfm.benefit.assumptions import BenefitSettings
from domainfm.benefit.measures import group_quality_gap
from domainfm.types import BenefitTerm, Constraint, Evaluation, ItemBatch, RunContext

from domainfm_customer_service import OUT_OF_SCOPE

DEFAULTS: dict[str, tuple[float, str, str]] = {
    "minutes_per_ticket": (8.0, "min", "assumption: a short banking FAQ contact handled by an agent incl. wrap-up"),
    "agent_hourly_cost": (40.0, "EUR/h", "assumption: fully loaded cost of a support agent hour"),
    "repeat_contact_cost": (9.0, "EUR", "assumption: a wrong automated answer causes a repeat contact plus escalation"),
    "off_hours_share": (0.5, "fraction", "demo KB: agents staff 8:00-20:00, so half of the day has no human"),
    "human_wait_minutes": (6.0, "min", "assumption: median queue wait for a human at peak"),
    "human_answer_accuracy": (0.9, "fraction", "assumption: share of human answers that are complete and correct"),
    "misled_customer_cost": (25.0, "EUR", "assumption: an answer to a question the bank's intents do not cover misleads "
                             "the customer: a complaint, a repeat contact and goodwill (more than a wrong in-scope answer)"),
}
LIMITS: dict[str, float] = {
    "pii_in_index_and_logs": 0.0,
    "error_rate_gap_across_groups": 0.05,
    "latency_p95_ms": 500.0,
    "out_of_scope_answered_rate": 0.05,
}


def error_rate_gap(batch: ItemBatch, group: str = "channel") -> float | None:
    """Largest difference in wrong-answer rate of automated items between groups of >= 5 (None if unmeasurable)."""
    return group_quality_gap(batch, group, 5)


def oos_answered_rate(batch: ItemBatch) -> float | None:
    intents = batch.extra.get("intent")
    if intents is None:
        return None
    oos = np.asarray(intents) == OUT_OF_SCOPE
    return float(batch.automated.astype(float)[oos].mean()) if oos.any() else None


def out_of_scope_items(batch: ItemBatch) -> np.ndarray:
    """1.0 for the items whose true intent is out of scope (none when the batch has no intents)."""
    intents = batch.extra.get("intent")
    if intents is None:
        return np.zeros(len(batch.automated))
    return (np.asarray(intents) == OUT_OF_SCOPE).astype(float)


def benefit_terms(ctx: RunContext, evaluation: Evaluation) -> list[Any]:
    """The customer-service terms and constraints for ``evaluation``."""
    s = BenefitSettings(ctx, DEFAULTS, LIMITS)
    hours_per_ticket = s.value("minutes_per_ticket") / 60.0
    repeat_cost = s.value("repeat_contact_cost")
    off_hours = s.value("off_hours_share")
    wait = s.value("human_wait_minutes")
    human_acc = s.value("human_answer_accuracy")
    misled_cost = s.value("misled_customer_cost")
    pii_found = evaluation.extra.get("pii_findings_in_index_and_logs")

    def wait_saved(b: ItemBatch) -> np.ndarray:
        bot_minutes = (b.resources.latency_ms_p50 or 0.0) / 60000.0
        return b.automated.astype(float) * b.quality * max(wait - bot_minutes, 0.0)

    return [
        BenefitTerm(
            name="agent_time_saved", objective="business", unit="agent hours", scale=s.value("agent_hourly_cost"),
            description="Tickets answered correctly without an agent, times agent handling time (scaled by hourly cost).",
            assumptions=s.assumptions("minutes_per_ticket", "agent_hourly_cost"),
            utility=lambda b: b.automated.astype(float) * b.quality * hours_per_ticket,
        ),
        BenefitTerm(
            name="wrong_answer_cost", objective="business", unit="EUR",
            description="Cost of wrong automated answers to in-scope questions (repeat contact, later escalation).",
            assumptions=s.assumptions("repeat_contact_cost"),
            utility=lambda b: -b.automated.astype(float) * (1.0 - b.quality) * (1.0 - out_of_scope_items(b)) * repeat_cost,
        ),
        BenefitTerm(
            name="misled_customer_cost", objective="business", unit="EUR",
            description="Cost of out-of-scope questions answered instead of handed over: a customer misled by an "
                        "answer to a question the assistant does not cover.",
            assumptions=s.assumptions("misled_customer_cost"),
            utility=lambda b: -b.automated.astype(float) * out_of_scope_items(b) * misled_cost,
        ),
        BenefitTerm(
            name="answers_outside_staffed_hours", objective="social", unit="correct answers",
            description="Correct answers customers get when no human is on duty (24/7 availability).",
            assumptions=s.assumptions("off_hours_share"),
            utility=lambda b: b.automated.astype(float) * b.quality * off_hours,
        ),
        BenefitTerm(
            name="customer_wait_saved", objective="social", unit="customer minutes",
            description="Queue time customers no longer spend waiting for a human, for correctly answered questions.",
            assumptions=s.assumptions("human_wait_minutes"),
            utility=wait_saved,
        ),
        BenefitTerm(
            name="consistency_gain", objective="social", unit="correct answers vs human baseline",
            description="Automated answers come from one vetted knowledge base: correctness relative to the human baseline.",
            assumptions=s.assumptions("human_answer_accuracy"),
            utility=lambda b: b.automated.astype(float) * (b.quality - human_acc),
        ),
        Constraint(
            name="pii_in_index_and_logs", kind="privacy", unit="findings", limit=s.limit("pii_in_index_and_logs"),
            description="Personal data found by the PII scanner in the indexed chunks and the evaluation log (must be 0).",
            measure=lambda b: None if pii_found is None else float(pii_found), depends_on_operating_point=False,
        ),
        Constraint(
            name="error_rate_gap_across_groups", kind="fairness", unit="error-rate points",
            limit=s.limit("error_rate_gap_across_groups"),
            description="Largest gap in wrong automated answers between customer groups (channel), groups of >= 5 automated items.",
            measure=error_rate_gap,
        ),
        Constraint(
            name="latency_p95_ms", kind="resource", unit="ms", limit=s.limit("latency_p95_ms"),
            description="95th percentile latency of one answer (intent + retrieval + answer choice).",
            measure=lambda b: b.resources.latency_ms_p95, depends_on_operating_point=False,
        ),
        Constraint(
            name="out_of_scope_answered_rate", kind="safety", unit="fraction", limit=s.limit("out_of_scope_answered_rate"),
            description="Share of out-of-scope questions the assistant answered instead of handing over.",
            measure=oos_answered_rate,
        ),
    ]
