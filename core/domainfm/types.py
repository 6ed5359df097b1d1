"""The typed records that pass between the core and its plugins.

Every hook in :mod:`domainfm.hookspecs` takes and returns the types defined here. Pydantic models are
used for anything that is serialised (domain declarations, predictions, evaluations, artifacts);
plain dataclasses hold live objects (datasets, the run context). Nothing here imports torch,
transformers, datasets or faiss.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

    from domainfm.config import RunConfig
    from domainfm.manager import PluginManager

TaskType = Literal["classification", "regression", "retrieval", "ranking", "sequence", "generation"]
OutputSpace = Literal["labels", "scores", "rankings"]
Stage = Literal["data", "train", "load", "predict", "evaluate", "benefit", "report"]
STAGES: tuple[str, ...] = ("data", "train", "load", "predict", "evaluate", "benefit", "report")

_DOMAIN_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


# --------------------------------------------------------------------------------------- registration


class BenefitTermInfo(_Model):
    """What a domain declares about a benefit term it contributes (the term itself comes later)."""

    name: str
    objective: Literal["business", "social", "constraint"]
    unit: str
    description: str = ""


class DomainSpec(_Model):
    """A domain as declared by its plugin in ``domainfm_domains``."""

    name: str = Field(description="identifier: lower case, digits and underscores")
    description: str
    tasks: list[TaskType] = Field(min_length=1)
    output_space: OutputSpace
    default_data: str = Field(description="data source used when the user names none, e.g. 'demo'")
    default_model: str = Field(description="hub id or local path of the default base model")
    metrics: list[str] = Field(min_length=1)
    key_metric: str = Field(description="the metric fairness gaps and model selection use")
    benefit_terms: list[BenefitTermInfo] = Field(
        default_factory=list,
        description="leave empty: derived from the terms domainfm_benefit_terms returns "
        "(domainfm.benefit.declared.domain_terms); a hand-written list must match them (the contract check)",
    )
    plugin: str | None = Field(default=None, description="filled in by the core")
    cli_group: str | None = Field(default=None, description="name of the plugin's command group, if any")
    record_model: type[BaseModel] | None = Field(
        default=None,
        description="pydantic model of one input record (see domainfm.records); the HTTP server validates "
        "records with it and shows it in OpenAPI. None: any fields, 'text' (if given) must be text",
    )

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        if not _DOMAIN_NAME.match(value):
            raise ValueError("must match [a-z][a-z0-9_]{1,63}")
        return value

    @field_serializer("record_model")
    def _record_model_name(self, model: type[BaseModel] | None) -> str | None:
        return None if model is None else f"{model.__module__}.{model.__qualname__}"

    @model_validator(mode="after")
    def _key_metric_is_declared(self) -> DomainSpec:
        if self.key_metric not in self.metrics:
            raise ValueError(f"key_metric {self.key_metric!r} is not in metrics {self.metrics}")
        return self


# ------------------------------------------------------------------------------------------- run context


@dataclass
class ResourceUsage:
    """Resources measured by the core while a run's stages execute (filled in as stages finish)."""

    parameters: int | None = None
    trainable_parameters: int | None = None
    train_seconds: float | None = None
    predict_seconds: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    peak_memory_mb: float | None = None
    energy_kwh: float | None = None
    co2_kg: float | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


_TYPED_STATE: dict[str, Callable[[Any], Any]] = {
    "dp_epsilon": float,
    "data_sizes": lambda v: v,
    "resumed_from": str,
    "energy_country": str,
    "energy_tracking_error": str,
    "variant_resources": lambda v: v,
    "privacy_public_names": list,
    "privacy_texts": lambda v: v,
    "privacy_scans": lambda v: v,
    "privacy_scans_previous": lambda v: v,
    "benefit_details": lambda v: v,
}
"""``ctx.state`` keys that are typed fields of :class:`RunContext` now (key -> how a value is converted)."""


class RunState(MutableMapping[str, Any]):
    """``RunContext.state``: free-form keys for plugins, and the old spellings of the typed fields.

    ``ctx.state["dp_epsilon"]`` reads and writes ``ctx.dp_epsilon`` (likewise every key of
    ``_TYPED_STATE``), so code written against the string keys keeps working; an unset field reads as a
    missing key. Every other key is stored here as in a dict.
    """

    def __init__(self, ctx: RunContext, initial: Mapping[str, Any] | None = None) -> None:
        self._ctx = ctx
        self._other: dict[str, Any] = {}
        for key, value in (initial or {}).items():
            self[key] = value

    def __getitem__(self, key: str) -> Any:
        if key in _TYPED_STATE:
            value = getattr(self._ctx, key)
            if value is None:
                raise KeyError(key)
            return value
        return self._other[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in _TYPED_STATE:
            setattr(self._ctx, key, None if value is None else _TYPED_STATE[key](value))
        else:
            self._other[key] = value

    def __delitem__(self, key: str) -> None:
        if key in _TYPED_STATE:
            if getattr(self._ctx, key) is None:
                raise KeyError(key)
            setattr(self._ctx, key, None)
        else:
            del self._other[key]

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]  # the stored value (a typed field may have converted it), so mutations stick

    def __iter__(self) -> Iterator[str]:
        yield from (k for k in _TYPED_STATE if getattr(self._ctx, k) is not None)
        yield from self._other

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"RunState({dict(self)!r})"


@dataclass
class RunContext:
    """One object per run, handed to every hook: identity, configuration, paths and device.

    Typed facts the core and plugins share during a run: ``dp_epsilon`` (the privacy budget of
    differentially private training, set by the runner from the artifact, see :func:`dp_epsilon_of`),
    ``data_sizes`` (rows per table), ``resumed_from`` (the checkpoint training resumed from),
    ``energy_country`` and ``energy_tracking_error`` (energy measurement), ``variant_resources`` (variant ->
    its measured resources), ``privacy_public_names`` (the data's public names, not counted as people),
    ``privacy_texts`` (source -> texts the privacy constraints scan: ``training_data``, ``outputs``),
    ``privacy_scans`` and ``privacy_scans_previous`` (PII scan results of this run and of the report a
    rescore replaces) and ``benefit_details`` (constraint name -> details shown in the report).
    ``state`` holds anything else a plugin wants to keep for the run; the old ``state`` keys of the typed
    fields still read and write them.
    """

    run_id: str
    domain: str
    config: RunConfig
    run_dir: Path
    device: str
    pm: PluginManager | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    resources: ResourceUsage = field(default_factory=ResourceUsage)
    state: MutableMapping[str, Any] = field(default_factory=dict)
    variant: str | None = None
    dp_epsilon: float | None = None
    data_sizes: dict[str, int] | None = None
    resumed_from: str | None = None
    energy_country: str | None = None
    energy_tracking_error: str | None = None
    variant_resources: dict[str, dict[str, Any]] | None = None
    privacy_public_names: list[str] | None = None
    privacy_texts: dict[str, list[str]] | None = None
    privacy_scans: dict[str, dict[str, Any]] | None = None
    privacy_scans_previous: dict[str, dict[str, Any]] | None = None
    benefit_details: dict[str, dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.state, RunState) and self.state._ctx is self):
            self.state = RunState(self, self.state)

    @property
    def artifact_dir(self) -> Path:
        """Where ``domainfm_train`` writes the model (one folder per variant when a run trains several)."""
        return self.run_dir / "artifact" if self.variant is None else self.run_dir / "variants" / self.variant / "artifact"

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints" if self.variant is None else self.run_dir / "variants" / self.variant / "checkpoints"

    def for_variant(self, variant: str, **config_updates: Any) -> RunContext:
        """A context for one model variant of this run: same run, own artifact folder and config."""
        from dataclasses import replace

        config = self.config.model_copy(deep=True)
        for dotted, value in config_updates.items():
            section, _, name = dotted.rpartition(".")
            setattr(getattr(config, section) if section else config, name, value)
        return replace(self, config=config, variant=variant, resources=ResourceUsage(), state=dict(self.state))

    def option(self, name: str, default: Any = None) -> Any:
        """A domain-specific option from ``config.options`` (plugins document their own)."""
        return self.config.options.get(name, default)

    def flag(self, name: str, default: bool = False) -> bool:
        """A yes/no option from ``config.options`` (see :func:`domainfm.config.parse_flag`); a value that is not
        yes/no raises :class:`~domainfm.errors.ConfigError` naming ``options.<name>``."""
        from domainfm.config import parse_flag

        return parse_flag(self.option(name, default), f"options.{name}")


# ------------------------------------------------------------------------------------------------ data


@dataclass
class DataBundle:
    """The data a domain works on, as named tables.

    ``tables`` maps a split or table name to a Hugging Face ``datasets.Dataset`` (Arrow, memory-mapped).
    Conventional names are ``train``, ``validation`` and ``test``; domains add their own (``items``,
    ``kb``, ``interactions``...). ``group_columns`` name columns that carry group membership for
    fairness checks; an empty list means fairness is "not measurable" for this data.
    ``text_column`` is the column the privacy check scans for personal data (None: every string column
    but the label). ``public_names`` are names in the data known to be public rather than personal
    (catalogue titles, company names) that a name recogniser would otherwise count as people.
    """

    tables: dict[str, Dataset]
    source: str
    label_names: list[str] | None = None
    text_column: str | None = "text"
    label_column: str | None = "label"
    group_columns: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    public_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.tables:
            raise ValueError("DataBundle.tables: at least one table is required")
        for name, table in self.tables.items():
            if not (hasattr(table, "column_names") and hasattr(table, "__len__")):
                raise TypeError(
                    f"DataBundle.tables[{name!r}]: expected a datasets.Dataset, got {type(table).__name__}"
                )

    def split(self, name: str) -> Dataset:
        try:
            return self.tables[name]
        except KeyError:
            raise KeyError(f"data has no table {name!r}; it has {sorted(self.tables)}") from None

    def sizes(self) -> dict[str, int]:
        return {name: len(t) for name, t in self.tables.items()}


# -------------------------------------------------------------------------------------------- artifacts

ARTIFACT_METADATA = "domainfm-artifact.json"


class Artifact(_Model):
    """A trained model: a directory in ``save_pretrained`` layout plus ``domainfm-artifact.json``.

    ``metadata["dp"] = {"epsilon": ...}`` marks differentially private training; the runner copies the
    epsilon to :attr:`RunContext.dp_epsilon`, which the privacy constraints read.
    """

    path: Path
    domain: str
    kind: str = Field(description="how to load it, e.g. 'hf-sequence-classification', 'embedding-linear-head'")
    base_model: str
    label_names: list[str] | None = None
    device: str = "cpu"
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    metadata: dict[str, Any] = Field(default_factory=dict)

    def save_metadata(self) -> Path:
        from domainfm.io import atomic_write_text

        return atomic_write_text(self.path / ARTIFACT_METADATA, self.model_dump_json(indent=2))

    @classmethod
    def load(cls, path: str | Path) -> Artifact:
        path = Path(path)
        meta = path / ARTIFACT_METADATA
        if not meta.is_file():
            raise FileNotFoundError(f"{path}: not a domainfm artifact (missing {ARTIFACT_METADATA})")
        artifact = cls.model_validate_json(meta.read_text(encoding="utf-8"))
        return artifact.model_copy(update={"path": path})


def dp_epsilon_of(artifact: Artifact) -> float | None:
    """The epsilon of differentially private training recorded in ``artifact.metadata["dp"]``, if any."""
    dp = artifact.metadata.get("dp")
    epsilon = dp.get("epsilon") if isinstance(dp, Mapping) else None
    return None if epsilon is None else float(epsilon)


# ------------------------------------------------------------------------------------------ predictions


class RankedItem(_Model):
    id: str
    score: float
    reason: str | None = None


class Prediction(_Model):
    """One prediction. Which fields are set depends on the domain's output space.

    - labels: ``label`` and ``scores`` (label -> probability), ``confidence`` = probability of ``label``
    - scores: ``value`` (a regression output or grade), optionally ``label``
    - rankings: ``ranking`` (best first)
    ``abstained`` is True when the model declines to answer (escalation, referral, human review);
    ``confidence`` is in [0, 1] and is what operating-point sweeps threshold on.
    """

    id: str | None = None
    label: str | None = None
    scores: dict[str, float] | None = None
    value: float | None = None
    ranking: list[RankedItem] | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    abstained: bool = False
    explanation: dict[str, Any] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


@runtime_checkable
class Predictor(Protocol):
    """A loaded model that answers requests. Returned by ``domainfm_load_predictor``.

    Predictors are loaded once per process and shared (CLI and HTTP), so ``predict`` must not keep
    per-request state.
    """

    domain: str
    device: str

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]: ...


_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


class Router(Protocol):
    """What ``domainfm_register_routes`` receives: the part of ``fastapi.APIRouter`` plugins use.

    Structural, so the hook contract names no FastAPI type and this module does not import fastapi.
    Each method returns the route decorator, like ``@router.post("/{domain}/ask", response_model=...)``.
    """

    def get(self, path: str, *args: Any, **kwargs: Any) -> Callable[[_Endpoint], _Endpoint]: ...

    def post(self, path: str, *args: Any, **kwargs: Any) -> Callable[[_Endpoint], _Endpoint]: ...

    def put(self, path: str, *args: Any, **kwargs: Any) -> Callable[[_Endpoint], _Endpoint]: ...

    def delete(self, path: str, *args: Any, **kwargs: Any) -> Callable[[_Endpoint], _Endpoint]: ...

    def add_api_route(self, path: str, endpoint: Callable[..., Any], *args: Any, **kwargs: Any) -> None: ...


GetPredictor = Callable[[str], Predictor]
"""``get_predictor(domain)``: the process-wide shared predictor of ``domain`` (loaded on first use)."""


# ------------------------------------------------------------------------------------------- evaluation


class Outcomes(_Model):
    """Per-item outcomes of an evaluation, column-wise (one entry per evaluated item).

    This is what makes every domain fit one benefit engine: ``confidence`` is what an operating point
    thresholds on (automate above, hand to a human below), ``quality`` is how good the model's answer was
    for that item in [0, 1] (1/0 for a correct/incorrect label, NDCG for a ranking, 1 - |error| for a
    grade), and ``groups`` carries group membership for fairness checks.
    """

    ids: list[str]
    confidence: list[float]
    quality: list[float]
    groups: dict[str, list[str]] = Field(default_factory=dict)
    extra: dict[str, list[Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _same_length(self) -> Outcomes:
        n = len(self.ids)
        columns: dict[str, Sequence[Any]] = {"confidence": self.confidence, "quality": self.quality}
        columns.update({f"groups.{k}": v for k, v in self.groups.items()})
        columns.update({f"extra.{k}": v for k, v in self.extra.items()})
        for name, column in columns.items():
            if len(column) != n:
                raise ValueError(f"{name} has {len(column)} entries, ids has {n}")
        for name in ("confidence", "quality"):
            arr = np.asarray(getattr(self, name), dtype=float)
            if arr.size and (np.isnan(arr).any() or arr.min() < 0.0 or arr.max() > 1.0):
                raise ValueError(f"{name} must be in [0, 1] without NaN")
        return self

    def __len__(self) -> int:
        return len(self.ids)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.confidence, dtype=float), np.asarray(self.quality, dtype=float)


class Curve(_Model):
    """A named curve for the report, e.g. risk-coverage (x=coverage, y=accuracy)."""

    x: list[float]
    y: list[float]
    x_label: str
    y_label: str
    thresholds: list[float] | None = None


class Evaluation(_Model):
    """What ``domainfm_evaluate`` returns: metrics, per-item outcomes and curves for one split."""

    domain: str
    split: str
    metrics: dict[str, float]
    key_metric: str
    n_items: int
    outcomes: Outcomes | None = None
    per_class: dict[str, dict[str, float]] | None = None
    confusion: list[list[int]] | None = None
    labels: list[str] | None = None
    curves: dict[str, Curve] = Field(default_factory=dict)
    baselines: dict[str, dict[str, float]] = Field(default_factory=dict)
    device: str = "cpu"
    seconds: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _key_metric_present(self) -> Evaluation:
        if self.key_metric not in self.metrics:
            raise ValueError(f"key_metric {self.key_metric!r} missing from metrics {sorted(self.metrics)}")
        return self


# ---------------------------------------------------------------------------------------------- benefit


class Assumption(_Model):
    """A number a benefit term depends on, with where it comes from."""

    name: str
    value: float
    unit: str
    source: str = Field(description="citation or reasoning for the default")


@dataclass(frozen=True)
class ItemBatch:
    """The per-item view a benefit term or constraint is evaluated on, at one operating point.

    ``automated`` marks the items the model handles itself at this operating point (the rest go to a
    human: escalation, referral, review). All arrays have one entry per evaluated item.
    """

    confidence: np.ndarray
    quality: np.ndarray
    automated: np.ndarray
    groups: Mapping[str, np.ndarray]
    extra: Mapping[str, np.ndarray]
    threshold: float
    evaluation: Evaluation
    resources: ResourceUsage

    def __len__(self) -> int:
        return int(self.confidence.shape[0])


class BenefitTerm(_Model):
    """One term of R_T (objective='business') or R_S (objective='social').

    ``utility`` maps an :class:`ItemBatch` to per-item values in ``unit``; the term's value is their sum,
    multiplied by ``scale`` (the stated conversion of ``unit`` into the objective's common unit).
    """

    name: str
    objective: Literal["business", "social"]
    unit: str
    description: str
    utility: Callable[[ItemBatch], np.ndarray] = Field(exclude=True)
    assumptions: list[Assumption] = Field(default_factory=list)
    scale: float = 1.0
    contributed_by: str | None = None


class Constraint(_Model):
    """A constraint of the objective: privacy, fairness, resources or safety.

    ``measure`` returns the measured value at an operating point, or None when it cannot be measured
    (e.g. no group data): a constraint that cannot be measured is reported "not measurable", never passed.
    ``direction='max'`` means the value must be <= ``limit``; ``'min'`` means >= ``limit``.
    """

    name: str
    kind: Literal["privacy", "fairness", "resource", "safety"]
    unit: str
    description: str
    limit: float
    direction: Literal["max", "min"] = "max"
    measure: Callable[[ItemBatch], float | None] = Field(exclude=True)
    depends_on_operating_point: bool = True
    contributed_by: str | None = None


BenefitContribution = BenefitTerm | Constraint
