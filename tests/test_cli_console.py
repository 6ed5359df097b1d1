"""The CLI's console off a terminal: tables at their natural width (no cut cells), other lines not padded."""

from __future__ import annotations

import pytest
from rich.table import Table

from domainfm.cli.console import make_console


def test_tables_are_whole_and_log_lines_short_off_a_terminal(capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    console = make_console()
    table = Table(title="runs")
    for col in ("domain", "run id", "status", "started", "device", "key metric", "verdict", "objective"):
        table.add_column(col)
    table.add_row("text_classification", "20261205-072512-a1b2c3", "finished", "2026-12-05T07:25:12", "cpu",
                  "macro_f1=0.2576", "unverified", "0.4141")
    console.print(table)
    console.log("loading data")
    out = capsys.readouterr().out
    assert "…" not in out and "20261205-072512-a1b2c3" in out and "2026-12-05T07:25:12" in out
    log_line = next(line for line in out.splitlines() if "loading data" in line)
    assert len(log_line) <= 80
    assert console.width == 80  # restored after the table
