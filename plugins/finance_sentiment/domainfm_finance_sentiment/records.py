"""The input record of the finance_sentiment domain (``DomainSpec.record_model``): pydantic only."""

from __future__ import annotations

from pydantic import Field

from domainfm.records import Text, TextRecord


class FinanceRecord(TextRecord):
    """A financial text; a ``topic`` given here is kept, otherwise the artifact's topic model assigns one."""

    topic: Text | None = Field(default=None, description="the text's topic, if known")
