"""The rich console every table of the CLI prints through.

Off a terminal (a pipe, a log file, CI) rich assumes 80 columns and cuts table cells to ``h…``, which loses the
run id ``runs compare`` needs. There, a table is printed at its natural width instead; everything else keeps the
ordinary width, so log lines are not padded out to a table's width.
"""

from __future__ import annotations

import sys
from typing import Any

MAX_TABLE_WIDTH = 4096


def make_console(stderr: bool = False) -> Any:
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    class PipeConsole(Console):
        def print(self, *objects: Any, **kwargs: Any) -> None:
            tables = [o for o in objects if isinstance(o, Table)]
            width = self.width
            if tables:
                options = self.options.update(max_width=MAX_TABLE_WIDTH)
                natural = max(Measurement.get(self, options, t).maximum for t in tables)
                self.width = max(width, min(natural, MAX_TABLE_WIDTH))  # print caps its width at the console's
            try:
                super().print(*objects, **kwargs)
            finally:
                self.width = width

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr, highlight=False)
    return PipeConsole(stderr=stderr, highlight=False)
