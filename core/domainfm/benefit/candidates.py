"""One row per candidate model of a run (a variant: e.g. a distilled student and its teacher): quality with its
95 % interval, latency, throughput and energy per 1,000 predictions, the best objective it reaches under the
constraints, and whether the constrained optimum picked it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from domainfm.benefit.model import OperatingPoint
from domainfm.types import Evaluation

QUALITY_KEYS = ("accuracy", "macro_f1")


def candidate_rows(evaluations: Mapping[str, Evaluation], scored: Sequence[str], points: Sequence[OperatingPoint],
                   optimum: int | None) -> list[dict[str, Any]]:
    """Rows for the ``scored`` variants, in order. Quality is the evaluation's own (its split); latency comes from
    the variant's resources; texts/s and energy per 1,000 predictions from ``extra["inference"]`` when the
    variant's trainer measured them (distillation measures teacher and student side by side)."""
    chosen = points[optimum].variant if optimum is not None else None
    rows = []
    for name in scored:
        ev = evaluations[name]
        raw_resources, raw_inference = ev.extra.get("resources"), ev.extra.get("inference")
        resources = raw_resources if isinstance(raw_resources, Mapping) else {}
        inference = raw_inference if isinstance(raw_inference, Mapping) else {}
        own = [p for p in points if p.variant == name]
        feasible = [p.objective for p in own if p.feasible]
        row: dict[str, Any] = {
            "variant": name,
            "role": inference.get("role"),
            "split": ev.split,
            "latency_ms_p50": resources.get("latency_ms_p50"),
            "latency_ms_p95": resources.get("latency_ms_p95"),
            "parameters": resources.get("parameters"),
            "texts_per_s": inference.get("texts_per_s"),
            "energy_kwh_per_1000_predictions": inference.get("energy_kwh_per_1000_predictions"),
            "best_feasible_objective": max(feasible) if feasible else None,
            "chosen": name == chosen,
        }
        for key in QUALITY_KEYS:
            if key in ev.metrics:
                row[key] = float(ev.metrics[key])
                low, high = ev.metrics.get(f"{key}_ci95_low"), ev.metrics.get(f"{key}_ci95_high")
                row[f"{key}_ci95"] = [float(low), float(high)] if low is not None and high is not None else None
        rows.append(row)
    return rows
