"""The input records of the education domains (``DomainSpec.record_model``): pydantic only.

A client mistake (no ``reference_answers``, an answer list that does not match its skills) is a 422 naming
the field, not a prediction routed to review.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domainfm.records import RecordId, Scalar, Text

Skill = Annotated[str | int, Field(description="a skill name as in training, or its integer index")]
Correct = Annotated[bool, Field(description="1/0, true/false or yes/no")]


class GradingRecord(BaseModel):
    """A student's answer and the reference answers it is graded against."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Scalar]  # type: ignore[valid-type]

    reference_answers: Annotated[list[Text], Field(min_length=1)] | Text = Field(
        description="the reference answers: a list, a JSON list as a string, or 'a || b'"
    )
    student_answer: str | None = Field(default=None, description="the answer to grade (blank: graded the lowest class)")
    text: str | None = Field(default=None, description="the answer, when 'student_answer' is not given")
    question: str | None = None
    question_id: RecordId | None = None
    id: RecordId | None = None

    @model_validator(mode="after")
    def _has_answer(self) -> GradingRecord:
        if self.student_answer is None and self.text is None:
            raise ValueError("give 'student_answer' (or 'text'): the answer to grade; an empty string is a blank answer")
        return self


class Interaction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skill: Skill
    correct: Correct


class KnowledgeTracingRecord(BaseModel):
    """A student's answers so far, as ``interactions`` or as parallel ``skills``/``correct`` lists (none: the
    model's prior mastery)."""

    model_config = ConfigDict(extra="forbid")

    id: RecordId | None = None
    student: RecordId | None = None
    interactions: list[Interaction] | None = None
    skills: list[Skill] | None = None
    correct: list[Correct] | None = None

    @model_validator(mode="after")
    def _one_history(self) -> KnowledgeTracingRecord:
        if self.interactions is not None and (self.skills is not None or self.correct is not None):
            raise ValueError("give 'interactions' or 'skills' with 'correct', not both")
        if (self.skills is None) != (self.correct is None):
            raise ValueError("'skills' and 'correct' go together")
        if self.skills is not None and self.correct is not None and len(self.skills) != len(self.correct):
            raise ValueError(f"'skills' ({len(self.skills)}) and 'correct' ({len(self.correct)}) differ in length")
        return self
