"""The domainfm hook contract.

A plugin is a module (or object) with functions marked ``@domainfm.hookimpl`` whose names match the
specs below. Plugins are installed distributions that expose an entry point in the group ``domainfm``.

Stage hooks (``domainfm_load_data`` ... ``domainfm_evaluate``) dispatch on the domain the way pytest's
collection hooks do: they are ``firstresult`` hooks, every implementation receives ``domain`` and
returns ``None`` for domains that are not its own. A third-party plugin can therefore

- override a stage of any domain with ``@hookimpl(tryfirst=True)`` and return a result for it;
- wrap a stage of every domain with ``@hookimpl(wrapper=True)`` (a generator that ``yield``\\ s once and
  returns the result, possibly changed), e.g. a tracking plugin around every ``domainfm_train``.

Results are validated by the core: a plugin returning the wrong type gets a
:class:`~domainfm.errors.PluginContractError` naming the plugin, the hook and the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import click

    from domainfm.types import (
        Artifact,
        BenefitContribution,
        DataBundle,
        DomainSpec,
        Evaluation,
        GetPredictor,
        Prediction,
        Predictor,
        Router,
        RunContext,
    )

hookspec = pluggy.HookspecMarker("domainfm")


# ------------------------------------------------------------------------------------------ registration


@hookspec
def domainfm_domains() -> list[DomainSpec]:
    """Declare the domains this plugin provides.

    Called once when the plugin manager loads plugins (also by ``domainfm plugins list``), so it must be
    cheap: no model or data loading, no torch import.

    :return: a list of :class:`~domainfm.types.DomainSpec` (may be empty). Two plugins declaring the same
        domain name is an error reported against the second one.
    """
    return []  # a spec's body never runs; this keeps the declared return type honest for mypy


@hookspec
def domainfm_register_commands(cli: click.Group) -> None:
    """Add command groups or commands to the ``domainfm`` CLI (e.g. ``domainfm finance monitor``).

    Called once when the CLI starts, after plugins are loaded. Import heavy libraries inside the
    command functions, not at module level.

    :param cli: the root ``click.Group``; call ``cli.add_command(...)``.
    """


@hookspec
def domainfm_register_routes(router: Router, get_predictor: GetPredictor) -> None:
    """Add HTTP routes for the server (``domainfm serve``).

    Called once per server process for every loaded plugin.

    :param router: a ``fastapi.APIRouter`` mounted at the root (typed as the :class:`~domainfm.types.Router`
        protocol); add routes under ``/{domain}/...``.
    :param get_predictor: ``get_predictor(domain) -> Predictor``, the process-wide shared predictor.
    """


# ------------------------------------------------------------------------------------------ stage hooks


@hookspec(firstresult=True)
def domainfm_load_data(ctx: RunContext, domain: str, source: str) -> DataBundle | None:
    """Load the data for ``domain`` from ``source``.

    Called at the start of ``domainfm run`` / ``train`` / ``evaluate`` / ``score``.

    :param source: what the user named (``--data``), or the domain's ``default_data``. Plugins interpret
        it: a file or directory path, ``demo`` for the plugin's own offline demo set, ``hf:<dataset id>``.
    :return: a :class:`~domainfm.types.DataBundle` whose tables are ``datasets.Dataset`` objects
        (conventionally ``train``/``validation``/``test``), or None if ``domain`` is not yours.
    """


@hookspec(firstresult=True)
def domainfm_train(ctx: RunContext, domain: str, data: DataBundle) -> Artifact | None:
    """Fine-tune (or fit) a model for ``domain`` on ``data``.

    Called by ``domainfm run`` and ``domainfm train`` after data loading. Write the model to
    ``ctx.artifact_dir`` in ``save_pretrained`` layout, checkpoints under ``ctx.checkpoint_dir`` (a
    re-run with the same run directory resumes), and record timings in ``ctx.resources``.

    :return: an :class:`~domainfm.types.Artifact` (its metadata already saved), or None if not yours.
    """


@hookspec(firstresult=True)
def domainfm_load_predictor(ctx: RunContext, domain: str, artifact: Artifact) -> Predictor | None:
    """Load a trained artifact into a :class:`~domainfm.types.Predictor` on ``ctx.device``.

    Called once per process before predictions (CLI ``predict``/``evaluate``, the HTTP server).

    :return: an object with ``domain``, ``device`` and ``predict(records)``; None if not yours.
    """


@hookspec(firstresult=True)
def domainfm_predict(
    ctx: RunContext, domain: str, predictor: Predictor, records: Sequence[Mapping[str, Any]]
) -> list[Prediction] | None:
    """Predict for a batch of input records (dicts with the domain's input fields, e.g. ``text``).

    Called by ``domainfm predict`` and the HTTP ``/{domain}/predict`` route. The core's default
    implementation (``trylast``) calls ``predictor.predict(records)``; override to post-process.

    :return: one :class:`~domainfm.types.Prediction` per record, in order; None if not yours.
    """


@hookspec(firstresult=True)
def domainfm_evaluate(
    ctx: RunContext, domain: str, predictor: Predictor, data: DataBundle, split: str
) -> Evaluation | None:
    """Evaluate ``predictor`` on the ``split`` table of ``data``.

    Called by ``domainfm run`` and ``domainfm evaluate``. Thresholds (abstention, escalation) must be
    chosen on validation data, never on the split being evaluated.

    :return: an :class:`~domainfm.types.Evaluation` with metrics, per-item ``outcomes`` (confidence,
        quality, groups) and curves; None if not yours.
    """


# ------------------------------------------------------------------------------------------ benefit


@hookspec
def domainfm_benefit_terms(ctx: RunContext, domain: str, evaluation: Evaluation) -> list[BenefitContribution]:
    """Contribute benefit terms and constraints to ``domain``'s benefit report.

    Called for every plugin (all results are collected) after evaluation, by ``domainfm run`` and
    ``domainfm score``. Any plugin may add terms to any domain (e.g. a carbon-pricing plugin); return an
    empty list for domains you have nothing to say about.

    :return: a list of :class:`~domainfm.types.BenefitTerm` and :class:`~domainfm.types.Constraint`.
    """
    return []


# ------------------------------------------------------------------------------------------ lifecycle


@hookspec
def domainfm_stage_started(ctx: RunContext, stage: str) -> None:
    """Observe the start of a stage (``data``, ``train``, ``load``, ``predict``, ``evaluate``, ``benefit``,
    ``report``) of a run. Called for every plugin; return values are ignored."""


@hookspec
def domainfm_stage_finished(ctx: RunContext, stage: str, result: Any, seconds: float) -> None:
    """Observe the successful end of a stage, with its result and wall time. Return values are ignored."""


@hookspec
def domainfm_stage_failed(ctx: RunContext, stage: str, error: BaseException) -> None:
    """Observe a stage that raised. Called before the error propagates; return values are ignored."""
