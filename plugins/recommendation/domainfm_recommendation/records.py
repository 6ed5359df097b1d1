"""The input record of the recommendation domain (``DomainSpec.record_model``): pydantic only, imported at
registration. The predictor's module docstring describes what each kind of record returns."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The largest list a request may ask for (the predictor's ``MAX_K``).
MAX_K = 1000

Id = Annotated[str | int, Field(description="a user or item id as in the training data")]


class RecommendationRecord(BaseModel):
    """Recommendations for a ``user`` (known, or new with a ``history``), or items like an ``item``."""

    model_config = ConfigDict(extra="forbid")

    user: Id | None = Field(default=None, description="a known user (seen items are excluded) or a new one")
    history: list[Id] | str | None = Field(
        default=None, description="items the user interacted with, oldest first (a list, or ids separated by spaces or commas)"
    )
    item: Id | None = Field(default=None, description="'more like this': items similar to this one")
    k: int | None = Field(default=None, ge=1, le=MAX_K, description="how many items (default 10)")

    @model_validator(mode="after")
    def _needs_someone(self) -> RecommendationRecord:
        if self.user is None and not self.history and self.item is None:
            raise ValueError("give 'user', 'history' or 'item'")
        return self
