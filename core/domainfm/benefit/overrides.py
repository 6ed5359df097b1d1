"""Check ``benefit.assumptions.NAME`` and ``benefit.limits.NAME`` overrides against what the plugins declare.

The names a run can override are the assumptions its benefit terms list and the names of its constraints,
as every loaded plugin contributes them for the run's domain (``domainfm_benefit_terms``). They are known
before training: the plugins are asked once for their terms on an empty evaluation of the domain (no items,
the data's group columns), which builds terms and constraints without measuring anything. An unknown name
(``hourly_cots``) is a :class:`~domainfm.errors.ConfigError` with the nearest known name, raised before any
model is trained, instead of an override that silently changes nothing.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from domainfm.errors import ConfigError
from domainfm.types import Evaluation, Outcomes, ResourceUsage, RunContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeclaredNames:
    """What a domain's run can override: assumption names and limit names."""

    assumptions: frozenset[str]
    limits: frozenset[str]


class _Recording(dict[str, Any]):
    """A dict that remembers every key looked up in it: the names a plugin reads from its overrides."""

    def __init__(self, data: dict[str, float]) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)

    def __bool__(self) -> bool:  # ``overrides or {}`` must keep this dict, even when it is empty
        return True


def declared_names(ctx: RunContext, group_columns: Sequence[str] = ()) -> DeclaredNames:
    """The assumption and limit names the loaded plugins declare or read for ``ctx.domain``.

    Known assumptions: those the terms list, plus every name a plugin looks up in ``benefit.assumptions``
    while building its terms or evaluating them on zero items. Known limits: the constraints' names, plus
    every name looked up in ``benefit.limits`` (some plugins derive several constraints from one limit).
    Measures nothing: the privacy scan gets an empty cache, resources are unmeasured, the evaluation has no
    items; ``group_columns`` name the data's fairness groups (one ``fairness_gap_<column>`` each).
    """
    from domainfm.benefit.engine import KNOWN_ASSUMPTIONS, collect_contributions, make_batch

    assert ctx.pm is not None
    spec = ctx.pm.domain(ctx.domain)
    probe = Evaluation(
        domain=ctx.domain,
        split="(override check)",
        metrics=dict.fromkeys(spec.metrics, 0.0),
        key_metric=spec.key_metric,
        n_items=0,
        outcomes=Outcomes(ids=[], confidence=[], quality=[], groups={c: [] for c in group_columns}),
    )
    assumptions = _Recording(dict(ctx.config.benefit.assumptions))
    limits = _Recording(dict(ctx.config.benefit.limits))
    # model_copy(update=...) skips validation, so the recording dicts stay what the plugins read from
    benefit = ctx.config.benefit.model_copy(update={"assumptions": assumptions, "limits": limits})
    config = ctx.config.model_copy(update={"benefit": benefit})
    resources = ResourceUsage()
    probe_ctx = replace(ctx, config=config, state={"privacy_scans": {}}, resources=resources)
    terms, constraints = collect_contributions(probe_ctx, probe)
    batch = make_batch(probe, resources, 1.0)
    with np.errstate(all="ignore"):
        for call in [*(t.utility for t in terms), *(c.measure for c in constraints)]:
            try:  # some plugins read their overrides only when a term is evaluated
                call(batch)
            except Exception:  # noqa: BLE001 - zero items is not what a term is written for; only the reads count
                pass
    return DeclaredNames(
        assumptions=frozenset({a.name for t in terms for a in t.assumptions} | KNOWN_ASSUMPTIONS | assumptions.read),
        limits=frozenset({c.name for c in constraints} | limits.read),
    )


def unknown_name_message(section: str, name: str, known: Iterable[str], domain: str) -> str:
    """``benefit.assumptions.hourly_cots: unknown assumption of domain 'x'; did you mean 'hourly_cost'? ...``"""
    known = sorted(known)
    kind = "assumption" if section == "assumptions" else "limit (constraint name)"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(known) if known else "none"
    return f"benefit.{section}.{name}: unknown {kind} for domain {domain!r}{hint} Known: {listed}"


def check_override_names(
    ctx: RunContext, group_columns: Sequence[str] = (), only: Iterable[str] | None = None
) -> None:
    """Raise :class:`ConfigError` for the first override in ``benefit.assumptions``/``benefit.limits`` that
    no plugin declares for ``ctx.domain``. ``only`` (dotted keys such as ``benefit.assumptions.x``) restricts the
    check to those overrides, e.g. the ones a rescore adds to a finished run's config. Nothing is asked of the
    plugins when there is nothing to check."""
    cfg = ctx.config.benefit
    wanted = None if only is None else {key.strip() for key in only}
    sections = {
        section: sorted(n for n in given if wanted is None or f"benefit.{section}.{n}" in wanted)
        for section, given in (("assumptions", cfg.assumptions), ("limits", cfg.limits))
    }
    if not any(sections.values()):
        return
    try:
        names = declared_names(ctx, group_columns)
    except ConfigError:
        raise
    except Exception as exc:  # a plugin that cannot build its terms without data: the report lists unused names
        log.warning("cannot check the names of benefit overrides before training: %s: %s", type(exc).__name__, exc)
        return
    known = {"assumptions": names.assumptions, "limits": names.limits}
    for section, given in sections.items():
        for name in given:
            if name not in known[section]:
                raise ConfigError(unknown_name_message(section, name, known[section], ctx.domain))
