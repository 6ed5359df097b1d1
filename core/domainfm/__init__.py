"""domainfm: foundation models at work in application domains, with what they are worth measured.

Users load a trained model with :func:`load` (``domainfm.load(run).predict(texts)``). The public API for plugin
authors is small: :data:`hookimpl` to mark hook implementations, the types in
:mod:`domainfm.types`, the hook contract in :mod:`domainfm.hookspecs`, and the shared engine in
:mod:`domainfm.engine` (imported lazily: importing ``domainfm`` never imports torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("domainfm")

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from domainfm.python_api import Model


def load(ref: str | Path, *, variant: str | None = None, device: str = "auto", output_dir: str | Path = "runs",
         domain: str | None = None) -> Model:
    """A trained model: ``domainfm.load("runs/finance_sentiment/<id>").predict(["shares fell"])`` gives the labels
    and calibrated confidences ``domainfm predict`` gives. ``ref``: a run or artifact directory, or a domain name
    (its newest run under ``output_dir``); see :mod:`domainfm.python_api`."""
    from domainfm.python_api import load as _load

    return _load(ref, variant=variant, device=device, output_dir=output_dir, domain=domain)


__all__ = ["__version__", "hookimpl", "load"]
