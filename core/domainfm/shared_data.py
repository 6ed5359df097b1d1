"""Where the public data sets live: ``$DOMAINFM_SHARED_DATA``, else the ``shared/data`` folder next to the checkout.

One resolver for every plugin reader (the test fixture ``shared_data_dir`` in :mod:`domainfm.testing` skips a
test where this finds nothing). A plugin asks for the file or folder it needs with :func:`shared_data_path`, which
fails with one line naming the expected place and the variable to set.
"""

from __future__ import annotations

import os
from pathlib import Path

from domainfm.errors import DataError

ENV_VAR = "DOMAINFM_SHARED_DATA"


def shared_data_dir() -> Path | None:
    """``$DOMAINFM_SHARED_DATA`` when it is set (None if that is not a folder), else the first ``shared/data``
    folder beside an ancestor of the installed core (a source checkout: ``<repo>/../shared/data``), else None."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env) if Path(env).is_dir() else None
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def shared_data_path(relative: str | Path, what: str, *, folder: bool = False) -> Path:
    """The file (or, with ``folder``, the folder) ``relative`` under the shared data folder.

    :param what: the data set in words (``"BANKING77"``), for the error.
    :raises DataError: one line naming the expected path and how to point the core at the data.
    """
    base = shared_data_dir()
    path = base / relative if base is not None else None
    if path is None or not (path.is_dir() if folder else path.is_file()):
        where = path if path is not None else f"<shared data>/{relative}"
        looked = f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "../shared/data"
        raise DataError(f"{where}: {what} not found (looked under {looked}; set {ENV_VAR} to the shared data folder)")
    return path
