"""A plugin's benefit assumptions and constraint limits, read against the run's overrides.

A plugin states each number its terms depend on once, with unit and source, and each constraint's default limit::

    DEFAULTS = {"minutes_per_ticket": (8.0, "min", "assumption: a short FAQ contact handled by an agent")}
    LIMITS = {"latency_p95_ms": 500.0}

    def benefit_terms(ctx, evaluation):
        s = BenefitSettings(ctx, DEFAULTS, LIMITS)
        minutes = s.value("minutes_per_ticket")            # --set benefit.assumptions.minutes_per_ticket=6
        ... BenefitTerm(..., assumptions=s.assumptions("minutes_per_ticket"), ...)
        ... Constraint(..., limit=s.limit("latency_p95_ms"), ...)  # --set benefit.limits.latency_p95_ms=300

Every value is read through ``ctx.config.benefit.assumptions`` / ``.limits`` at the moment it is asked for, so the
override check (:mod:`domainfm.benefit.overrides`) sees which names a plugin reads. An overridden assumption keeps
its unit and says in its ``source`` that the user set it and what the default was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domainfm.types import Assumption

#: ``(default value, unit, source of the default)``
AssumptionDefault = tuple[float, str, str]


class BenefitSettings:
    """The assumptions and limits of one plugin's terms for one run (``ctx``: the :class:`~domainfm.types.RunContext`)."""

    def __init__(self, ctx: Any, defaults: Mapping[str, AssumptionDefault],
                 limits: Mapping[str, float] | None = None) -> None:
        self._benefit = ctx.config.benefit
        self.defaults = dict(defaults)
        self.limits = dict(limits or {})

    def value(self, name: str) -> float:
        """The assumption's value: the run's override, else the default. An unknown name is a KeyError."""
        default = self.defaults[name][0]
        return float(self._benefit.assumptions.get(name, default))

    def values(self) -> dict[str, float]:
        """Every assumption's value, by name."""
        return {name: self.value(name) for name in self.defaults}

    def assumption(self, name: str) -> Assumption:
        """The :class:`~domainfm.types.Assumption` a term lists: value, unit, and where the value comes from."""
        default, unit, source = self.defaults[name]
        value = self.value(name)
        if name in self._benefit.assumptions:
            source = f"user override (default {default:g} {unit}: {source})"
        return Assumption(name=name, value=value, unit=unit, source=source)

    def assumptions(self, *names: str) -> list[Assumption]:
        """The assumptions ``names`` (all of them, in declaration order, when none is named)."""
        return [self.assumption(n) for n in (names or tuple(self.defaults))]

    def limit(self, name: str) -> float:
        """A constraint's limit: the run's ``benefit.limits`` override, else the plugin's default."""
        return float(self._benefit.limits.get(name, self.limits[name]))
