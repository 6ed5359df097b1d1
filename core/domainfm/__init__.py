"""domainfm: foundation models at work in application domains, with what they are worth measured.

The public API for plugin authors is small: :data:`hookimpl` to mark hook implementations, the types in
:mod:`domainfm.types`, the hook contract in :mod:`domainfm.hookspecs`, and the shared engine in
:mod:`domainfm.engine` (imported lazily: importing ``domainfm`` never imports torch).
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("domainfm")

__all__ = ["__version__", "hookimpl"]
