"""The rich console every table of the CLI prints through."""

from __future__ import annotations

import sys
from typing import Any

PIPE_WIDTH = 4096
"""Width when output is not a terminal: a table is as wide as its content, so no cell is cut to ``h…`` in a log
file or a pipe (rich would otherwise assume 80 columns)."""


def make_console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, width=PIPE_WIDTH)
