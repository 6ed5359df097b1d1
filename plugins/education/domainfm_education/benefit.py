"""Benefit terms and constraints of the education domains.

Every number a term depends on is an :class:`~domainfm.types.Assumption` with its source, overridable
with ``--set benefit.assumptions.NAME=VALUE``; constraint limits with ``benefit.limits.NAME``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from domainfm.benefit.assumptions import BenefitSettings
from domainfm.benefit.measures import group_quality_gap
from domainfm.types import BenefitTerm, Constraint, Evaluation, ItemBatch, RunContext

GRADING_DEFAULTS: dict[str, tuple[float, str, str]] = {
    "minutes_per_answer": (1.5, "min", "marking rate of 40 short answers per hour (stated assumption; set per school)"),
    "correction_minutes": (5.0, "min", "a teacher handling a student's query about a wrong automatic grade"),
    "teacher_hourly_cost": (35.0, "EUR/h", "stated assumption for a teacher's loaded hourly cost; set per school"),
    "manual_feedback_days": (3.0, "days", "typical turnaround for hand-marked homework (stated assumption)"),
    "value_per_feedback_day": (0.1, "EUR/student-day", "placeholder social value of a day earlier feedback"),
    "min_group_items": (20.0, "items", "smallest group whose accuracy is compared (smaller groups are noise)"),
}
KT_DEFAULTS: dict[str, tuple[float, str, str]] = {
    "minutes_per_practice_item": (1.5, "min", "time a student spends on one practice item (stated assumption)"),
    "missed_practice_penalty_minutes": (3.0, "min", "cost of skipping practice a student still needed"),
    "value_per_student_minute": (0.05, "EUR/min", "placeholder value of a student's study minute"),
    "value_per_weak_spot": (1.0, "weak spots", "each correctly flagged weak spot counts once"),
}
LIMITS = {"grading_accuracy_gap": 0.10, "auto_graded_precision": 0.9,
          "kt_accuracy_gap": 0.10, "raw_student_ids_in_artifact": 0.0}


def grading_terms(ctx: RunContext, evaluation: Evaluation) -> list[Any]:
    """Teacher hours saved, feedback latency, auto-grading precision, accuracy gaps (the core adds resources)."""
    s = BenefitSettings(ctx, GRADING_DEFAULTS, LIMITS)
    v = s.values()
    hours = v["minutes_per_answer"] / 60.0
    fix = v["correction_minutes"] / 60.0
    min_items = int(v["min_group_items"])

    def gap(group: str) -> Callable[[ItemBatch], float | None]:
        return lambda b: group_quality_gap(b, group, min_items)

    def precision(b: ItemBatch) -> float | None:
        auto = b.automated.astype(bool)
        return float(b.quality[auto].mean()) if auto.any() else None

    return [
        BenefitTerm(
            name="teacher_hours_saved", objective="business", unit="h", scale=v["teacher_hourly_cost"],
            description="Marking time of auto-graded answers, less the time spent on queries about wrong grades; "
            "scaled by the teacher's hourly cost.",
            assumptions=s.assumptions("minutes_per_answer", "correction_minutes", "teacher_hourly_cost"),
            utility=lambda b: b.automated * (hours - (1.0 - b.quality) * fix),
        ),
        BenefitTerm(
            name="feedback_latency_days_saved", objective="social", unit="student-days",
            scale=v["value_per_feedback_day"],
            description="Students whose answer is graded correctly at once get feedback days earlier.",
            assumptions=s.assumptions("manual_feedback_days", "value_per_feedback_day"),
            utility=lambda b: b.automated * b.quality * v["manual_feedback_days"],
        ),
        Constraint(
            name="auto_graded_precision", kind="safety", unit="accuracy", direction="min",
            limit=s.limit("auto_graded_precision"),
            description="Accuracy of the answers graded without a teacher (the target precision of the review queue).",
            measure=precision,
        ),
        Constraint(
            name="grading_accuracy_gap_corpus", kind="fairness", unit="accuracy points",
            limit=s.limit("grading_accuracy_gap"),
            description="Equal grading accuracy across subject domains/corpora (automated answers).",
            measure=gap("corpus"),
        ),
        Constraint(
            name="grading_accuracy_gap_question", kind="fairness", unit="accuracy points",
            limit=s.limit("grading_accuracy_gap"),
            description=f"Equal grading accuracy across questions with at least {min_items} automated answers.",
            measure=gap("question"),
        ),
    ]


def kt_terms(ctx: RunContext, evaluation: Evaluation) -> list[Any]:
    """Practice time saved, remediation reach, accuracy gap new vs established students, id privacy."""
    s = BenefitSettings(ctx, KT_DEFAULTS, LIMITS)
    v = s.values()
    raw_ids = float(evaluation.extra.get("raw_student_ids_in_artifact", 0.0) or 0.0)
    scanned = evaluation.extra.get("raw_student_ids_in_artifact") is not None

    def predicted_correct(b: ItemBatch) -> np.ndarray:
        return np.asarray(b.extra.get("predicted_correct", np.zeros(len(b))), dtype=float)

    return [
        BenefitTerm(
            name="practice_minutes_saved", objective="business", unit="min", scale=v["value_per_student_minute"],
            description="Practice items skipped because the model is confident the student has mastered them, "
            "less a penalty where the student in fact answered wrongly.",
            assumptions=s.assumptions("minutes_per_practice_item", "missed_practice_penalty_minutes", "value_per_student_minute"),
            utility=lambda b: b.automated * predicted_correct(b) * (
                b.quality * v["minutes_per_practice_item"] - (1 - b.quality) * v["missed_practice_penalty_minutes"]
            ),
        ),
        BenefitTerm(
            name="remediation_reach", objective="social", unit="weak spots", scale=v["value_per_weak_spot"],
            description="Weak spots (answers predicted wrong that were wrong) flagged for remediation in time.",
            assumptions=s.assumptions("value_per_weak_spot"),
            utility=lambda b: b.automated * (1 - predicted_correct(b)) * b.quality,
        ),
        Constraint(
            name="kt_accuracy_gap_history", kind="fairness", unit="accuracy points", limit=s.limit("kt_accuracy_gap"),
            description="Equal prediction accuracy for new students (short histories) and established ones.",
            measure=lambda b: group_quality_gap(b, "history", 50, automated_only=False),
            depends_on_operating_point=False,
        ),
        Constraint(
            name="raw_student_ids_in_artifact", kind="privacy", unit="ids", limit=s.limit("raw_student_ids_in_artifact"),
            description="Student ids are pseudonymised (keyed hash) before anything is written; raw ids found "
            "in the artifact directory.",
            measure=lambda b: raw_ids if scanned else None,
            depends_on_operating_point=False,
        ),
    ]
