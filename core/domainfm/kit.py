"""Helpers for plugin authors, so that no plugin rewrites them.

- :func:`load_run_predictor`: the model of a run, an artifact or a domain's newest run, loaded through the
  plugin manager (so ``domainfm_load_predictor`` and every wrapper of it apply) and predicting through the
  ``domainfm_predict`` hook, as ``domainfm predict`` does. Use it in plugin commands.
- :func:`run_training_data` and :func:`split_texts`: the data a run was trained on (from its ``run.json``) and the
  texts of one of its pinned splits, read again through the domain's ``domainfm_load_data`` (drift references,
  continual learning, audits).
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

__all__ = ["RunPredictor", "evaluate_text_classifier", "load_run_predictor", "run_training_data", "split_texts"]


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


def run_training_data(artifact: str | Path | None) -> tuple[str | None, dict[str, Any]]:
    """The data source and ``options`` of the run that trained ``artifact`` (the ``run.json`` beside it), or
    ``(None, {})`` when there is none."""
    import json

    run_json = Path(artifact).resolve().parent / "run.json" if artifact else None
    if run_json is None or not run_json.is_file():
        return None, {}
    config = json.loads(run_json.read_text(encoding="utf-8")).get("config") or {}
    return config.get("data"), dict(config.get("options") or {})


def split_texts(
    domain: str, source: str, split: str, options: Mapping[str, Any] | None = None
) -> tuple[list[str], list[str], list[str], str]:
    """Texts and labels of ``split`` of ``source`` as ``domain``'s reader pins it (``"all"``: every split), the
    texts of the other splits (held out from ``split``), and a description of where they came from.

    The data is read through ``domainfm_load_data`` with the given ``options``, so the split is the one training
    used when the options are the run's (:func:`run_training_data`)."""
    import json
    import uuid

    from domainfm.config import build_config
    from domainfm.errors import DataError
    from domainfm.manager import PluginManager
    from domainfm.types import RunContext

    cfg = build_config(None, [f"options.{k}={json.dumps(v)}" for k, v in (options or {}).items()])
    ctx = RunContext(run_id=uuid.uuid4().hex[:8], domain=domain, config=cfg, run_dir=Path("."), device="cpu")
    bundle = PluginManager().load().hooks.load_data(ctx, domain, source)
    if bundle is None:
        raise DataError(f"{source}: no installed plugin reads data for domain {domain!r}")
    if split != "all" and split not in bundle.tables:
        raise DataError(f"{source}: no split {split!r} (it has {', '.join(bundle.tables)})")
    names = list(bundle.tables) if split == "all" else [split]
    texts = [str(t) for name in names for t in bundle.tables[name]["text"]]
    labels = [str(v) for name in names for v in bundle.tables[name]["label"]]
    heldout = [str(t) for name in bundle.tables if name not in names for t in bundle.tables[name]["text"]]
    return texts, labels, heldout, f"{bundle.source} ({split})"


def evaluate_text_classifier(predictor: Any, data: DataBundle, split: str, **kwargs: Any) -> Evaluation:
    """See :func:`domainfm.engine.classifier_evaluation.evaluate_text_classifier`."""
    from domainfm.engine.classifier_evaluation import evaluate_text_classifier as evaluate

    return evaluate(predictor, data, split, **kwargs)
