"""The built-in tracking plugin (``domainfm.tracking``): stage-hook wrappers that log a run to the trackers named
by ``train.report_to`` (see :mod:`domainfm.tracking`). A run that names none is not touched."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

from domainfm import hookimpl
from domainfm.tracking.session import current, open_session
from domainfm.types import Artifact, DataBundle, Evaluation, Predictor, RunContext


@hookimpl(wrapper=True)
def domainfm_train(ctx: RunContext, domain: str, data: DataBundle) -> Generator[None, Any, Artifact | None]:
    session = open_session(ctx)
    artifact = yield
    if session is not None and isinstance(artifact, Artifact):
        session.log_trained(ctx, artifact)
    return artifact


@hookimpl(wrapper=True)
def domainfm_evaluate(
    ctx: RunContext, domain: str, predictor: Predictor, data: DataBundle, split: str
) -> Generator[None, Any, Evaluation | None]:
    evaluation = yield
    session = current(ctx)
    if session is not None and isinstance(evaluation, Evaluation):
        session.log_evaluation(ctx, evaluation)
    return evaluation


@hookimpl
def domainfm_stage_finished(ctx: RunContext, stage: str, result: Any, seconds: float) -> None:
    session = current(ctx)
    if session is None:
        return
    if stage == "benefit":
        session.log_benefit(result)
    elif stage == "report":  # the last stage of a run
        session.log_end(ctx, result if isinstance(result, Mapping) else None)
        session.close("FINISHED")


@hookimpl
def domainfm_stage_failed(ctx: RunContext, stage: str, error: BaseException) -> None:
    session = current(ctx)
    if session is not None:
        session.text("error.txt", f"stage {stage}: {type(error).__name__}: {error}")
        session.close("FAILED" if not isinstance(error, KeyboardInterrupt) else "KILLED")


def finish(ctx: RunContext, paths: Mapping[str, Path] | None = None) -> None:
    """End the run's session when a command stops before the report stage (``domainfm train``)."""
    session = current(ctx)
    if session is not None:
        session.log_end(ctx, paths)
        session.close("FINISHED")
