"""Fixtures for the benefit engine tests: fixed outcomes, a toy plugin with hand-checkable terms, contexts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from domainfm import hookimpl
from domainfm.config import RunConfig
from domainfm.manager import PluginManager
from domainfm.types import (
    Assumption, BenefitTerm, Constraint, Curve, DomainSpec, Evaluation, Outcomes, RunContext,
)

# Four items. Business: +1 per correct automated item, -3 per wrong one. Social: +1 per correct automated item.
CONFIDENCE = [0.9, 0.8, 0.6, 0.3]
QUALITY = [1.0, 1.0, 0.0, 1.0]
THRESHOLDS = [0.0, 0.5, 0.7, 0.85]


def make_evaluation(
    confidence: list[float] = CONFIDENCE,
    quality: list[float] = QUALITY,
    groups: dict[str, list[str]] | None = None,
    extra: dict[str, list[Any]] | None = None,
    key_metric: str = "accuracy",
) -> Evaluation:
    n = len(confidence)
    return Evaluation(
        domain="toy",
        split="test",
        metrics={key_metric: float(np.mean(quality)) if n else 0.0},
        key_metric=key_metric,
        n_items=n,
        outcomes=Outcomes(
            ids=[str(i) for i in range(n)], confidence=confidence, quality=quality,
            groups=groups or {}, extra=extra or {},
        ),
        curves={"risk_coverage": Curve(x=[0.25, 1.0], y=[1.0, 0.75], x_label="coverage", y_label="accuracy")},
    )


class ToyPlugin:
    """Hand-checkable terms; an optional safety constraint 'error_rate' (share of wrong automated items)."""

    def __init__(self, with_error_rate: bool = False, extra: list[Any] | None = None) -> None:
        self.with_error_rate = with_error_rate
        self.extra = extra or []

    @hookimpl
    def domainfm_domains(self) -> list[DomainSpec]:
        return [DomainSpec(name="toy", description="test domain", tasks=["classification"], output_space="labels",
                           default_data="demo", default_model="none", metrics=["accuracy"], key_metric="accuracy")]

    @hookimpl
    def domainfm_benefit_terms(self, ctx: RunContext, domain: str, evaluation: Evaluation) -> list[Any]:
        if domain != "toy":
            return []
        penalty = float(ctx.config.benefit.assumptions.get("error_penalty", 3.0))
        out: list[Any] = [
            BenefitTerm(
                name="net_value", objective="business", unit="EUR", description="+1 right, -penalty wrong",
                assumptions=[Assumption(name="error_penalty", value=penalty, unit="EUR", source="test")],
                utility=lambda b: b.automated * (b.quality - (1 - b.quality) * penalty),
            ),
            BenefitTerm(
                name="people_helped", objective="social", unit="people", description="correct automated answers",
                utility=lambda b: b.automated * b.quality,
            ),
        ]
        if self.with_error_rate:
            out.append(
                Constraint(
                    name="error_rate", kind="safety", unit="fraction", description="wrong among automated",
                    limit=0.2, direction="max",
                    measure=lambda b: float((1 - b.quality[b.automated]).mean()) if b.automated.any() else 0.0,
                )
            )
        return out + list(self.extra)


def build_ctx(run_dir: Path, plugin: Any = None, builtins: bool = False, options: dict[str, Any] | None = None,
              **benefit: Any) -> RunContext:
    """A RunContext for domain 'toy' in ``run_dir`` with the toy plugin (and the core's built-ins if asked)."""
    pm = PluginManager(autoload=False, load_builtins=builtins).load()
    pm.register(plugin if plugin is not None else ToyPlugin(), name="toy")
    config = RunConfig.model_validate(
        {"benefit": {"thresholds": THRESHOLDS, **benefit}, "options": {"privacy_ner": False, **(options or {})}}
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunContext(run_id=run_dir.name, domain="toy", config=config, run_dir=run_dir, device="cpu", pm=pm)


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., RunContext]:
    """``make_ctx(plugin=None, builtins=False, options=None, **benefit_config)`` -> a RunContext for 'toy'."""

    def build(plugin: Any = None, builtins: bool = False, options: dict[str, Any] | None = None,
              **benefit: Any) -> RunContext:
        return build_ctx(tmp_path / "runs" / "toy" / "r1", plugin, builtins, options, **benefit)

    return build
