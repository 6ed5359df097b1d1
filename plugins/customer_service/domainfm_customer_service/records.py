"""The input record of the customer_service domain (``DomainSpec.record_model``): pydantic only."""

from __future__ import annotations

from pydantic import Field

from domainfm.records import TextRecord


class CustomerServiceRecord(TextRecord):
    """A customer's question; ``k`` asks for more or fewer knowledge-base passages than the artifact's default."""

    # Plain text: the assistant's own query check names what is wrong (empty, binary, too long for a question).
    text: str = Field(description="the customer's question")  # type: ignore[assignment]
    k: int | None = Field(default=None, ge=1, le=50, description="passages to return")
