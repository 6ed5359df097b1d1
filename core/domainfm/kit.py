"""Helpers for plugin authors, so that no plugin rewrites them.

- :func:`load_run_predictor`: the model of a run, an artifact or a domain's newest run, loaded through the
  plugin manager (so ``domainfm_load_predictor`` and every wrapper of it apply) and predicting through the
  ``domainfm_predict`` hook, as ``domainfm predict`` does. Use it in plugin commands.
- :func:`evaluate_text_classifier` (re-exported from the engine): metrics with 95 % intervals, per-item outcomes
  (confidence, correctness, groups), ECE and the risk-coverage curve of a text classifier on one split.

Heavy modules are imported inside functions: importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domainfm.types import Prediction

if TYPE_CHECKING:  # pragma: no cover
    from domainfm.runner import Runner
    from domainfm.types import Artifact, DataBundle, Evaluation, Predictor, RunContext

__all__ = ["RunPredictor", "evaluate_text_classifier", "load_run_predictor"]


@dataclass
class RunPredictor:
    """A loaded model of a run: ``predict`` dispatches ``domainfm_predict`` like the CLI and the server do."""

    runner: Runner
    ctx: RunContext
    artifact: Artifact
    model: Predictor

    @property
    def domain(self) -> str:
        return self.artifact.domain

    @property
    def device(self) -> str:
        return str(self.ctx.device)

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        return self.runner.predict(self.ctx, self.model, records)


def load_run_predictor(
    ref: str | Path,
    *,
    domain: str | None = None,
    variant: str | None = None,
    device: str = "auto",
    output_dir: str | Path = "runs",
) -> RunPredictor:
    """Load the model ``ref`` names: a run directory, an artifact directory, or a domain name (its newest run
    under ``output_dir``). ``domain`` refuses a model of another domain; ``variant`` picks one of a multi-variant
    run. Errors are :class:`~domainfm.errors.DomainfmError` subclasses with one line naming the path."""
    from domainfm.config import RunConfig
    from domainfm.manager import PluginManager
    from domainfm.run_layout import resolve_model
    from domainfm.runner import Runner

    layout = resolve_model(ref, domain=domain, variant=variant, output_dir=output_dir)
    artifact = layout.load_artifact()
    runner = Runner(PluginManager().load(), RunConfig.model_validate({"device": device}))
    ctx = runner.context(artifact.domain, run_dir=layout.run_dir or Path(artifact.path))
    return RunPredictor(runner, ctx, artifact, runner.load_predictor(ctx, artifact))


def evaluate_text_classifier(predictor: Any, data: DataBundle, split: str, **kwargs: Any) -> Evaluation:
    """See :func:`domainfm.engine.classifier_evaluation.evaluate_text_classifier`."""
    from domainfm.engine.classifier_evaluation import evaluate_text_classifier as evaluate

    return evaluate(predictor, data, split, **kwargs)
