"""Experiment tracking: domainfm runs in MLflow and TensorBoard (``train.report_to``).

``train.report_to`` takes ``none`` (default), ``tensorboard``, ``mlflow`` or a list of both. Two parts do the work:

- the built-in plugin ``domainfm.tracking`` (:mod:`domainfm.tracking.plugin`), stage-hook wrappers around
  ``domainfm_train`` and ``domainfm_evaluate`` plus observers of the ``benefit``, ``report`` and failed stages, logs
  one tracked run per domainfm run: the flattened configuration as params, the data fingerprints, each trained
  model's per-step loss and validation metrics (its ``training_log.json``), the final metrics with their intervals,
  every benefit term, constraint and the verdict, the device, energy and the artifact directory;
- the Hugging Face ``Trainer``'s own ``report_to`` (:func:`trainer_arguments`): per-step figures as the Trainer logs
  them, TensorBoard event files under ``<run dir>/tensorboard/<model>/`` and an MLflow child run per trained model
  nested in the domainfm run.

MLflow logs to ``MLFLOW_TRACKING_URI`` when it is set, else to an embedded SQLite store next to the runs
(``<output_dir>/mlflow.db``, artifacts in ``<output_dir>/mlflow-artifacts``): ``mlflow ui --backend-store-uri
sqlite:///runs/mlflow.db``. TensorBoard: ``tensorboard --logdir runs/``.

mlflow and tensorboard are imported only when a run asks for them (``pip install 'domainfm[tracking]'``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from domainfm.errors import ConfigError
from domainfm.types import RunContext

TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlflow-artifacts"
_PACKAGES = {"mlflow": "mlflow", "tensorboard": "tensorboard"}


def trackers(ctx: RunContext) -> list[str]:
    """The trackers a run reports to (``train.report_to``), in the order given."""
    return list(ctx.config.train.report_to)


def require(names: list[str]) -> None:
    """A tracker whose package is missing fails in one line, before any training."""
    import importlib.util

    missing = [name for name in names if importlib.util.find_spec(_PACKAGES[name]) is None]
    if missing:
        raise ConfigError(f"train.report_to={','.join(names)}: {', '.join(missing)} is not installed; "
                          "pip install 'domainfm[tracking]'")


def model_name(ctx: RunContext) -> str:
    """How a trained model is named in the trackers: its variant (``teacher``, ``lora``...), else ``model``."""
    return ctx.variant or "model"


def tensorboard_dir(ctx: RunContext, model: str | None = None) -> Path:
    """Where TensorBoard event files of one trained model go: ``<run dir>/tensorboard/<model>``."""
    return ctx.run_dir / TENSORBOARD_DIR / (model or model_name(ctx))


def default_tracking_uri(output_dir: str | Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the SQLite store next to the runs."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path(output_dir) / MLFLOW_DB).resolve()}"


def trainer_arguments(ctx: RunContext) -> dict[str, Any]:
    """``TrainingArguments`` fields for the Trainer's own reporting: ``report_to`` and ``run_name``."""
    names = trackers(ctx)
    if not names:
        return {"report_to": "none"}
    return {"report_to": names, "run_name": f"{ctx.run_id}/{model_name(ctx)}"}


class trainer_environment:
    """Around building a ``Trainer``: its TensorBoard callback reads ``TENSORBOARD_LOGGING_DIR`` when it is created
    (else it writes under the checkpoint folder, which a finished run deletes)."""

    def __init__(self, ctx: RunContext, model: str | None = None) -> None:
        self.ctx = ctx
        self.model = model  # a second Trainer of the same model (a retrieval encoder) gets its own folder
        self.saved: str | None = None

    def __enter__(self) -> None:
        self.saved = os.environ.get("TENSORBOARD_LOGGING_DIR")
        if "tensorboard" in trackers(self.ctx):
            os.environ["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir(self.ctx, self.model))

    def __exit__(self, *exc: object) -> None:
        if self.saved is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = self.saved


def adapt_trainer(trainer: Any, ctx: RunContext) -> Any:
    """Swap the Trainer's MLflow callback for one whose ``__del__`` leaves other runs alone.

    transformers' ``MLflowCallback.__del__`` ends whichever MLflow run is active when the callback is collected:
    after a first model (a distillation teacher) it ended the domainfm run the next model's child run belongs to.
    """
    if "mlflow" not in trackers(ctx):
        return trainer
    from transformers.integrations import MLflowCallback

    class NestedMLflowCallback(MLflowCallback):
        def __del__(self) -> None:
            return None

    if any(isinstance(cb, MLflowCallback) for cb in trainer.callback_handler.callbacks):
        trainer.remove_callback(MLflowCallback)
        trainer.add_callback(NestedMLflowCallback())
    return trainer
