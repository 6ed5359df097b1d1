"""Make RecBole 1.2.1 importable here: its private install folder and the numpy-2 aliases it still uses.

RecBole is installed by ``setup_sequential.sh`` into ``benchmarks/recommendation/work/recbole-site`` (its
metadata pins ``ray<=2.6.3``, so it never enters the project's dependencies). Only its lower-level API is
used (``recbole.config``, ``recbole.data``, ``recbole.utils``, ``recbole.model``); ``recbole.quick_start``
imports Ray and is not touched.

Compatibility with today's stack (see /work/shared/LIBRARIES.md):

- numpy 2 removed ``np.float_``, ``np.complex_`` and ``np.unicode_``, which ``Config.compatibility_settings``
  reads: :func:`install_numpy_aliases` adds them back (the numpy-2 types they always meant).
- ``recbole.utils`` imports ``torch.utils.tensorboard.SummaryWriter`` at module level, which needs the
  ``tensorboard`` package (and absl, grpc, ... behind it); only RecBole's ``Trainer`` constructs one, and the
  benchmark does not use ``Trainer``. Without tensorboard, :func:`install_tensorboard_stub` registers a
  ``torch.utils.tensorboard`` whose ``SummaryWriter`` raises if anything ever constructs it.
- pandas 3 applies ``Series.agg(len)`` to the whole Series (one number) where RecBole expects one length per
  row (``_remap`` of token sequences, ``SequentialDataset._benchmark_presets``): the ids of every history
  would be mis-split. :func:`install_pandas_agg_len` restores the per-row meaning for ``len`` only, and only
  when pandas lacks it. pandas 3 also warns (``ChainedAssignmentError``) that RecBole's
  ``fillna(..., inplace=True)`` does nothing: harmless, the atomic files have no missing values.
- ``recbole.model.sequential_recommender.sine`` calls ``torch.autograd.set_detect_anomaly(True)`` at import,
  and importing any sequential model imports it: every backward pass in the process then checks each gradient
  for NaN (``aten::ne`` + ``aten::any`` on every node's output), a third of a SASRec step's CPU time here.
  :func:`import_recbole` imports the models package and switches anomaly mode back off
  (:func:`undo_anomaly_mode`).
- torch >= 2.6 refuses RecBole's pickled checkpoints (``weights_only``): the benchmark never writes or loads
  them. It runs its own epoch loop (the body of ``Trainer._train_epoch``) and keeps the best epoch's
  ``state_dict`` in memory, so no shim is needed there.
"""

from __future__ import annotations

import sys
from pathlib import Path

SITE = Path(__file__).resolve().parent / "work" / "recbole-site"
NUMPY_ALIASES = {"float_": "float64", "complex_": "complex128", "unicode_": "str_"}


def install_numpy_aliases() -> list[str]:
    """Add the numpy-1 aliases RecBole reads if numpy lacks them; returns the names added."""
    import numpy as np

    added = []
    for old, new in NUMPY_ALIASES.items():
        if not hasattr(np, old):
            setattr(np, old, getattr(np, new))
            added.append(old)
    return added


def install_pandas_agg_len() -> bool:
    """Make ``Series.agg(len)`` per row again (pandas 3 returns the Series length); True if it patched."""
    import pandas as pd

    if isinstance(pd.Series([[1, 2], [3]]).agg(len), pd.Series):
        return False
    original = pd.Series.agg

    def agg(self: pd.Series, func: object = None, axis: object = 0, *args: object, **kwargs: object) -> object:
        if func is len:
            return self.map(len)
        return original(self, func, axis, *args, **kwargs)

    pd.Series.agg = agg  # type: ignore[method-assign]
    pd.Series.aggregate = agg  # type: ignore[method-assign]
    return True


class _NoSummaryWriter:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("tensorboard is not installed; this RecBole path needs it (the benchmark never should)")


def install_tensorboard_stub() -> bool:
    """Register a stand-in ``torch.utils.tensorboard`` when tensorboard is absent; True if it did."""
    import importlib.util
    import types

    if importlib.util.find_spec("tensorboard") is not None or "torch.utils.tensorboard" in sys.modules:
        return False
    stub = types.ModuleType("torch.utils.tensorboard")
    stub.SummaryWriter = _NoSummaryWriter  # type: ignore[attr-defined]
    sys.modules["torch.utils.tensorboard"] = stub
    return True


def undo_anomaly_mode() -> bool:
    """Switch off autograd anomaly detection if an import switched it on; True if it was on."""
    import torch

    was_on = torch.is_anomaly_enabled()
    torch.autograd.set_detect_anomaly(False)
    return was_on


def import_recbole() -> str:
    """Put the private install on ``sys.path``, add the numpy aliases, return RecBole's version."""
    if SITE.is_dir() and str(SITE) not in sys.path:
        sys.path.insert(0, str(SITE))
    install_numpy_aliases()
    install_tensorboard_stub()
    install_pandas_agg_len()
    try:
        import recbole
    except ImportError as exc:
        raise SystemExit(
            f"RecBole is not installed ({exc}); run: bash benchmarks/recommendation/setup_sequential.sh"
        ) from None
    import recbole.model.sequential_recommender  # noqa: F401  (its sine module turns anomaly mode on)

    undo_anomaly_mode()
    return str(recbole.__version__)
