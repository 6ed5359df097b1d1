"""``domainfm score --set benefit.assumptions.TYPO=...`` fails naming the nearest known name (issue 22 item 13)."""

from __future__ import annotations

import json
from pathlib import Path

from domainfm.cli.benefit_commands import score_command
from domainfm.errors import ConfigError
from domainfm.manager import PluginManager

from .test_cli import invoke, toy_manager, write_run  # noqa: F401 - toy_manager is a fixture


def test_score_refuses_a_mistyped_assumption_and_limit(tmp_path: Path, toy_manager: PluginManager) -> None:  # noqa: F811
    run_dir = write_run(tmp_path, "r1", "2026-12-05T07:00:00")
    result = invoke(score_command, [str(run_dir), "--set", "benefit.assumptions.eror_penalty=1"])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)
    assert str(result.exception).startswith(
        "benefit.assumptions.eror_penalty: unknown assumption for domain 'toy'; did you mean 'error_penalty'?"
    )
    result = invoke(score_command, [str(run_dir), "--set", "benefit.limits.resource_latency_p59=5"])
    assert isinstance(result.exception, ConfigError) and "did you mean 'resource_latency_p95'?" in str(result.exception)
    assert not (run_dir / "benefit.json").exists()  # nothing was rescored
    out = json.loads(invoke(score_command, [str(run_dir), "--json", "--set", "benefit.assumptions.error_penalty=1"]).output)
    assert out["verdict"]
