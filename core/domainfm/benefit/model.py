"""The records a benefit report is made of (serialised as ``benefit.json``)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

Status = Literal["pass", "fail", "not_measurable"]
Verdict = Literal["pass", "fail", "unverified"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssumptionReport(_Record):
    name: str
    value: float
    unit: str
    source: str
    overridden: bool = False


class TermReport(_Record):
    """A benefit term as declared, with its value at the chosen operating point."""

    name: str
    objective: Literal["business", "social"]
    unit: str
    description: str
    scale: float
    contributed_by: str | None
    assumptions: list[AssumptionReport] = Field(default_factory=list)
    value_at_optimum: float | None = Field(default=None, description="sum of per-item utility x scale")
    variants: list[str] = Field(default_factory=list, description="variants that contributed this term")


class ConstraintCheck(_Record):
    """A constraint measured at one operating point."""

    value: float | None
    status: Status
    margin: float | None = Field(default=None, description="slack to the limit; negative = violated by that much")
    note: str | None = None


class ConstraintReport(_Record):
    """A constraint as declared, its check at the optimum and what it costs in objective."""

    name: str
    kind: Literal["privacy", "fairness", "resource", "safety"]
    unit: str
    description: str
    limit: float
    limit_overridden: bool = False
    direction: Literal["max", "min"]
    depends_on_operating_point: bool
    contributed_by: str | None
    at_optimum: ConstraintCheck | None = None
    cost: float | None = Field(
        default=None, description="objective optimum without this constraint minus with it (>= 0)"
    )
    cost_note: str | None = None
    details: dict[str, Any] = Field(default_factory=dict, description="what the measurement was based on")


class OperatingPoint(_Record):
    """One model variant at one confidence threshold (automate at or above it)."""

    variant: str
    threshold: float
    coverage: float = Field(description="fraction of items automated")
    n_automated: int
    quality_automated: float | None = Field(description="mean per-item quality among automated items")
    r_t_raw: float = Field(description="business benefit, sum of business terms x scale")
    r_s_raw: float = Field(description="social benefit, sum of social terms x scale")
    r_t: float = Field(description="normalised business benefit (r_t_raw / business reference)")
    r_s: float = Field(description="normalised social benefit (r_s_raw / social reference)")
    objective: float = Field(description="r_t + lambda * r_s at the report's lambda")
    terms: dict[str, float] = Field(default_factory=dict)
    constraints: dict[str, ConstraintCheck] = Field(default_factory=dict)
    feasible: bool = Field(description="no measured constraint fails")
    verdict: Verdict


class Normalisation(_Record):
    """How an objective's raw sum is made unitless so that R_T and R_S can be added."""

    objective: Literal["business", "social"]
    method: Literal["oracle", "max_abs", "none"]
    reference: float
    unit: str
    explanation: str


class LambdaPoint(_Record):
    lambda_: float = Field(validation_alias=AliasChoices("lambda_", "lambda"), serialization_alias="lambda")
    optimum: int | None
    objective: float | None
    r_t: float | None
    r_s: float | None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class GroupStats(_Record):
    n: int
    n_automated: int
    coverage: float
    quality: float | None
    key_metric: float | None = None


class ReportSource(_Record):
    """Which evaluation records a report scores, and who scored it.

    The evaluations are always the run's own (``evaluations/<variant>.json``, written once by the training run on
    its configured split); ``domainfm score`` may rescore them with other weights, recorded in ``changes``.
    """

    splits: dict[str, str] = Field(description="variant -> split of the evaluation record scored")
    scored_by: Literal["run", "score"] = "run"
    changes: list[str] = Field(default_factory=list, description="what a rescore changed, e.g. 'lambda: 1 -> 2'")
    history: str | None = Field(default=None, description="the rescore's record under evaluations/history/")

    def short(self) -> str:
        """``test · training`` or ``test · rescored``: the split(s) and who scored."""
        splits = "/".join(sorted(set(self.splits.values()))) or "?"
        return f"{splits} · {'training' if self.scored_by == 'run' else 'rescored'}"

    def describe(self) -> str:
        """One sentence for reports and tables."""
        splits = "/".join(sorted(set(self.splits.values()))) or "?"
        line = f"scores the {splits} evaluation recorded when the run trained"
        if self.scored_by == "score":
            line += "; rescored by `domainfm score`" + (f" ({'; '.join(self.changes)})" if self.changes else "")
        return line


class ExcludedPlugin(_Record):
    """A plugin taken out of every hook for the rest of the process after it raised outside its own domain."""

    plugin: str
    hook: str = Field(description="the hook that raised")
    domain: str | None = Field(default=None, description="the domain being served when it raised")
    error: str = Field(description="the error, one line")


class BenefitReport(_Record):
    """Everything ``domainfm score`` / the end of ``domainfm run`` decides and shows."""

    run_id: str
    domain: str
    device: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    lambda_: float = Field(validation_alias=AliasChoices("lambda_", "lambda"), serialization_alias="lambda")
    key_metric: str | None = None
    variants: list[str]
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict, description="variant -> metrics")
    normalisation: dict[str, Normalisation]
    terms: list[TermReport]
    constraints: list[ConstraintReport]
    points: list[OperatingPoint]
    pareto: list[int] = Field(default_factory=list, description="indices of feasible Pareto-optimal points")
    pareto_all: list[int] = Field(default_factory=list, description="Pareto-optimal points ignoring constraints")
    optimum: int | None = Field(default=None, description="index of the constrained optimum")
    unconstrained_optimum: int | None = None
    verdict: Verdict = "unverified"
    lambda_sweep: list[LambdaPoint] = Field(default_factory=list)
    group_metrics: dict[str, dict[str, GroupStats]] = Field(
        default_factory=dict, description="group column -> group -> stats at the optimum"
    )
    curves: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict, description="variant -> curves")
    resources: dict[str, Any] = Field(default_factory=dict)
    assumption_overrides_unused: list[str] = Field(default_factory=list)
    limit_overrides_unused: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    candidates: list[dict[str, Any]] = Field(
        default_factory=list, description="one row per variant: quality with its interval, latency, texts/s, energy per "
        "1,000 predictions, best feasible objective, chosen or not (domainfm.benefit.candidates)",
    )
    excluded_plugins: list[ExcludedPlugin] = Field(
        default_factory=list, description="plugins that raised outside their own domain and took no further part"
    )
    source: ReportSource | None = Field(default=None, description="which evaluation records this report scores")
    continual: dict[str, Any] | None = Field(
        default=None, description="a `domainfm improve` child's parent, gain and forgetting beside naive fine-tuning "
        "and full retraining, and the promotion decision (domainfm.continual)",
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def best(self) -> OperatingPoint | None:
        """The constrained optimum, if any operating point satisfies every measured constraint."""
        return self.points[self.optimum] if self.optimum is not None else None

    def term(self, name: str) -> TermReport:
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(f"no term {name!r}; terms: {[t.name for t in self.terms]}")

    def constraint(self, name: str) -> ConstraintReport:
        for c in self.constraints:
            if c.name == name:
                return c
        raise KeyError(f"no constraint {name!r}; constraints: {[c.name for c in self.constraints]}")
