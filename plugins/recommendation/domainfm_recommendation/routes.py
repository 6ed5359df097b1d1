"""HTTP route ``POST /recommendation/recommend`` (used by ``domainfm serve``): one record, or a batch in
``records``, through the server like ``/recommendation/predict`` (record model, limits, micro-batcher,
``domainfm_predict``). Imported only inside ``domainfm_register_routes``."""

from typing import Any, Optional

from pydantic import BaseModel, Field, model_validator

from domainfm.serve.context import ServeDep
from domainfm.types import Prediction

from domainfm_recommendation.records import RecommendationRecord

DOMAIN = "recommendation"


class RecommendRequest(RecommendationRecord):
    """One record (the fields below), or a batch of them in ``records``."""

    records: Optional[list[RecommendationRecord]] = Field(default=None, min_length=1, description="a batch of records")

    @model_validator(mode="after")
    def _needs_someone(self) -> "RecommendRequest":  # replaces the record's check: a batch needs no user
        if self.records is None:
            return RecommendationRecord._needs_someone(self)  # type: ignore[return-value]
        single = sorted(self.model_fields_set - {"records"})
        if single:
            raise ValueError(f"give 'records' or the fields of one record, not both (also given: {single})")
        return self


class RecommendResponse(BaseModel):
    predictions: list[Prediction]


def add_routes(router: Any) -> None:
    """Register ``POST /recommendation/recommend`` on ``router``."""

    @router.post(f"/{DOMAIN}/recommend", response_model=RecommendResponse)
    async def recommend(body: RecommendRequest, serve: ServeDep) -> RecommendResponse:
        if body.records is not None:
            records: list[Any] = list(body.records)
            loc = [("body", "records", i) for i in range(len(records))]
        else:
            records, loc = [body.model_dump(exclude_unset=True)], [("body",)]
        return RecommendResponse(predictions=await serve.predict(DOMAIN, records, loc=loc))
