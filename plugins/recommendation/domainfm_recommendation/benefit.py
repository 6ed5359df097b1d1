"""Benefit terms and constraints of the recommendation domain.

Business: expected extra clicks over the most-popular list the platform would show otherwise.
Social: exposure of long-tail items, diversity of each list. Constraints: concentration of exposure
(Gini), filter-bubble risk and privacy of the artifact (ids only). Quality gaps between the outcome groups
(user activity, target popularity), latency and PII scans are the core's built-in constraints.
Every number a term assumes is an :class:`~domainfm.types.Assumption` that users
override through ``benefit.assumptions`` (limits through ``benefit.limits``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from domainfm.types import Assumption, BenefitTerm, Constraint, Evaluation, ItemBatch, RunContext

DEFAULTS = {
    "click_through_given_hit": 0.3,
    "value_per_click_eur": 0.05,
    "lists_per_user": 20.0,
}
LIMITS = {
    "exposure_gini": 0.95,
    "filter_bubble_similarity": 0.90,
    "artifact_user_fields": 0.0,
}


def _setting(ctx: RunContext, table: str, name: str, default: float) -> float:
    source = getattr(ctx.config.benefit, table, {}) or {}
    return float(source.get(name, default))


def _extra(batch: ItemBatch, name: str) -> np.ndarray | None:
    value = batch.extra.get(name)
    return None if value is None else np.asarray(value, dtype=float)


def terms(ctx: RunContext, evaluation: Evaluation) -> list[BenefitTerm | Constraint]:
    """The recommendation domain's terms (read assumptions and limits from the run config)."""
    ctr = _setting(ctx, "assumptions", "click_through_given_hit", DEFAULTS["click_through_given_hit"])
    value = _setting(ctx, "assumptions", "value_per_click_eur", DEFAULTS["value_per_click_eur"])
    lists = _setting(ctx, "assumptions", "lists_per_user", DEFAULTS["lists_per_user"])
    limit = {k: _setting(ctx, "limits", k, v) for k, v in LIMITS.items()}

    def clicks_lift(batch: ItemBatch) -> np.ndarray:
        hit = _extra(batch, "hit_at_10")
        pop = _extra(batch, "popular_hit_at_10")
        if hit is None or pop is None:
            return np.zeros(len(batch))
        return batch.automated * (hit - pop) * ctr * lists

    def tail_exposure(batch: ItemBatch) -> np.ndarray:
        share = _extra(batch, "long_tail_share")
        return np.zeros(len(batch)) if share is None else batch.automated * share * 10.0

    def diversity(batch: ItemBatch) -> np.ndarray:
        div = _extra(batch, "diversity")
        return np.zeros(len(batch)) if div is None else batch.automated * div

    def exposure_gini(batch: ItemBatch) -> float | None:
        lists = batch.extra.get("top10")
        mask = np.asarray(batch.automated, dtype=bool)
        if lists is None or mask.sum() == 0:
            return None
        from domainfm_recommendation.evaluation import gini

        n_items = int(batch.evaluation.extra.get("n_catalogue_items", 0))
        counts: dict[str, int] = {}
        for row in np.asarray(lists, dtype=object)[mask]:
            for item in str(row).split():
                counts[item] = counts.get(item, 0) + 1
        exposure = np.zeros(max(n_items, len(counts)))
        exposure[: len(counts)] = list(counts.values())
        return gini(exposure)

    def bubble(batch: ItemBatch) -> float | None:
        sims = _extra(batch, "profile_similarity")
        mask = np.asarray(batch.automated, dtype=bool)
        if sims is None or mask.sum() == 0:
            return None
        return float(sims[mask].mean())

    fields = evaluation.extra.get("artifact_user_fields")

    def artifact_fields(batch: ItemBatch) -> float | None:
        return None if fields is None else float(fields)

    source_ctr = "assumed; replace with the click-through measured in your own A/B tests"
    return [
        BenefitTerm(
            name="clicks_lift_over_most_popular", objective="business", unit="clicks",
            description="Expected extra clicks per user over the most-popular list: (hit@10 − most-popular hit@10) "
            "× P(click | relevant item shown) × lists shown per user.",
            utility=clicks_lift, scale=value,
            assumptions=[
                Assumption(name="click_through_given_hit", value=ctr, unit="probability", source=source_ctr),
                Assumption(name="lists_per_user", value=lists, unit="lists", source="assumed: one list per visit, 20 visits"),
                Assumption(name="value_per_click_eur", value=value, unit="EUR/click",
                           source="assumed; typical order of magnitude of per-click ad value, set your own"),
            ],
        ),
        BenefitTerm(
            name="long_tail_exposure", objective="social", unit="long-tail items shown per list",
            description="Items outside the head (the most popular items making up 80% of interactions) shown per "
            "top-10 list: exposure for niche items and new creators.",
            utility=tail_exposure,
        ),
        BenefitTerm(
            name="list_diversity", objective="social", unit="1 − mean pairwise cosine",
            description="Intra-list diversity of the top-10 in the base model's embedding space (filter-bubble antidote).",
            utility=diversity,
        ),
        Constraint(
            name="exposure_gini", kind="fairness", unit="Gini",
            description="Concentration of top-10 exposure over the catalogue (1 = one item takes everything).",
            limit=limit["exposure_gini"], measure=exposure_gini,
        ),
        Constraint(
            name="filter_bubble_similarity", kind="safety", unit="cosine",
            description="Mean similarity between a user's own text profile and the items recommended to them.",
            limit=limit["filter_bubble_similarity"], measure=bubble,
        ),
        Constraint(
            name="artifact_user_fields", kind="privacy", unit="fields",
            description="User fields stored in the artifact beyond the user id and the ids of items interacted with.",
            limit=limit["artifact_user_fields"], measure=artifact_fields, depends_on_operating_point=False,
        ),
    ]


def artifact_user_fields(path: Any) -> int:
    """Columns in the artifact's user table other than the id and the item ids (should be 0)."""
    import pyarrow.parquet as pq
    from pathlib import Path

    table = Path(path) / "histories.parquet"
    if not table.is_file():
        return 0
    return len([c for c in pq.read_schema(str(table)).names if c not in ("user", "items")])
