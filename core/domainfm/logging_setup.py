"""Quiet by default: what third-party libraries print only with ``domainfm -v``.

Without ``-v`` a run shows domainfm's own stage lines and one progress bar per long stage (training), and none
of: presidio's per-entity warnings, Hugging Face "Loading weights" / "Map" / "Writing model shards" bars, the
transformers LOAD REPORT for a deliberately new classification head, codecarbon's start-up messages, or the
Trainer's raw metric dicts (those go to the ``domainfm.training`` logger, shown with ``-v``).

:func:`configure` must run before the libraries are imported (the CLI calls it first thing): several of them
read their verbosity from the environment once, at import. It imports none of them itself, so commands that
never touch a model stay light.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

VERBOSE_ENV = "DOMAINFM_VERBOSE"

# read at import time by transformers / huggingface_hub / datasets / codecarbon
QUIET_ENV: dict[str, str] = {
    "TRANSFORMERS_VERBOSITY": "error",  # LOAD REPORT tables, advisory warnings
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' own bars: "Loading weights", "Writing model shards"
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # datasets' "Map" bars
    "CODECARBON_LOG_LEVEL": "error",  # "offline tracker init", "Multiple instances ..."
}
QUIET_LOGGERS: tuple[str, ...] = (
    "presidio-analyzer", "codecarbon", "transformers", "datasets", "sentence_transformers", "huggingface_hub",
    "filelock", "spacy", "urllib3", "torch", "peft", "faiss", "onnxruntime",
)
TRAINING_LOG = logging.getLogger("domainfm.training")


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") == "1"


def configure(verbose: bool) -> None:
    """Quiet third-party output unless ``verbose``; with ``verbose`` every library keeps its own defaults and
    domainfm's loggers show INFO."""
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    if verbose:
        logging.getLogger("domainfm").setLevel(logging.INFO)
        return
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    _quiet_loaded_libraries()
    after_import("transformers.trainer", quiet_trainer_module)


def _quiet_loaded_libraries() -> None:
    """The same settings for libraries imported before :func:`configure` ran (tests, embedding callers)."""
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
    if "transformers.trainer" in sys.modules:
        quiet_trainer_module(sys.modules["transformers.trainer"])


def quiet_trainer_module(module: ModuleType) -> None:
    """Every ``transformers.Trainer`` created from now on shows one training bar (no evaluation bars) and
    sends its metric dicts to the ``domainfm.training`` logger instead of printing them."""
    from transformers.trainer_callback import ProgressCallback, TrainerCallback

    class StageProgressCallback(ProgressCallback):
        def on_prediction_step(self, *args: Any, **kwargs: Any) -> None:
            return None  # evaluation inside training is part of the training stage: no second bar

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if state.is_world_process_zero and logs:
                TRAINING_LOG.info("%s", {k: v for k, v in logs.items() if k != "total_flos"})

    class LogCallback(TrainerCallback):
        """What ``disable_tqdm`` runs instead of ``PrinterCallback``: the dicts go to the log, not stdout."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if state.is_local_process_zero and logs:
                TRAINING_LOG.info("%s", {k: v for k, v in logs.items() if k != "total_flos"})

    module.DEFAULT_PROGRESS_CALLBACK = StageProgressCallback  # type: ignore[attr-defined]
    module.PrinterCallback = LogCallback  # type: ignore[attr-defined]


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``patch(module)`` right after ``name`` is first imported (the module itself is unchanged on disk)."""

    def __init__(self, name: str, patch: Callable[[ModuleType], None]) -> None:
        self.name = name
        self.patch = patch

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # one shot: find the real spec, then wrap its loader
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run = loader.exec_module
        patch = self.patch

        def exec_module(module: ModuleType) -> None:
            run(module)
            patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def after_import(name: str, patch: Callable[[ModuleType], None]) -> None:
    """``patch(module)`` now if ``name`` is imported, else right after its first import."""
    if name in sys.modules:
        patch(sys.modules[name])
        return
    if not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, patch))
