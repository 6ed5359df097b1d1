"""Unknown benefit assumption and limit names fail before training, with did-you-mean (issue 22 item 13)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from domainfm.benefit.overrides import check_override_names, declared_names, unknown_name_message
from domainfm.config import build_config
from domainfm.errors import ConfigError
from domainfm.manager import get_plugin_manager
from domainfm.runner import Runner


def _runner(tmp_path: Path, *overrides: str) -> Runner:
    return Runner(get_plugin_manager(), build_config(None, list(overrides), output_dir=str(tmp_path)))


def test_a_mistyped_assumption_fails_with_the_nearest_known_name(tmp_path: Path) -> None:
    runner = _runner(tmp_path, "benefit.assumptions.hourly_cots=40")
    ctx = runner.context("text_classification")
    with pytest.raises(ConfigError) as err:
        runner.load_data(ctx)
    assert str(err.value) == (
        "benefit.assumptions.hourly_cots: unknown assumption for domain 'text_classification'; did you mean "
        "'hourly_cost'? Known: error_cost, fairness_min_group_size, hourly_cost, minutes_per_item"
    )


def test_a_mistyped_limit_fails_naming_the_constraint(tmp_path: Path) -> None:
    runner = _runner(tmp_path, "benefit.limits.resource_c02=1")
    with pytest.raises(ConfigError, match=r"^benefit\.limits\.resource_c02: unknown limit .*did you mean 'resource_co2'\?"):
        runner.load_data(runner.context("text_classification"))


def test_declared_and_plugin_read_names_pass(tmp_path: Path) -> None:
    runner = _runner(
        tmp_path,
        "benefit.assumptions.hourly_cost=40",
        "benefit.assumptions.fairness_min_group_size=5",
        "benefit.limits.resource_co2=1",
        "benefit.limits.fairness_gap_channel=0.2",  # the demo data's group column
    )
    bundle = runner.load_data(runner.context("text_classification"))
    assert bundle.group_columns == ["channel"]


def test_names_a_plugin_reads_without_a_constraint_of_that_name_are_known(tmp_path: Path) -> None:
    pm = get_plugin_manager()
    expected = {
        "healthcare": ({"triage_minutes_per_case"}, {"precision_floor", "latency_p95_ms", "group_accuracy_gap"}),
        "education": ({"min_group_items", "teacher_hourly_cost"}, {"grading_accuracy_gap", "auto_graded_precision"}),
        "finance_sentiment": ({"analyst_hourly_cost"}, {"calibration_ece", "negative_miss_rate"}),
    }
    for domain, (assumptions, limits) in expected.items():
        if domain not in pm.domains:
            continue
        ctx = _runner(tmp_path, "benefit.assumptions.x=1").context(domain)
        names = declared_names(ctx, ["region"])
        assert assumptions <= names.assumptions, domain
        assert limits | {"fairness_gap_region", "resource_co2"} <= names.limits, domain


def test_no_overrides_asks_nothing_of_the_plugins(tmp_path: Path) -> None:
    ctx = _runner(tmp_path).context("text_classification")
    ctx.pm = None  # a check that asked the plugins would fail on this
    check_override_names(ctx)


def test_the_message_without_a_close_name() -> None:
    assert unknown_name_message("assumptions", "zzz", ["b", "a"], "d") == (
        "benefit.assumptions.zzz: unknown assumption for domain 'd' Known: a, b"
    )


def test_the_cli_refuses_a_typo_before_training(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "domainfm.cli.main", "run", "text_classification", "--output-dir", str(tmp_path),
         "--set", "benefit.assumptions.hourly_cots=40", "--set", "model.base=/nonexistent/never-loaded"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "DOMAINFM_NO_PROGRESS": "1", "COLUMNS": "200"},
    )
    assert done.returncode != 0
    assert "benefit.assumptions.hourly_cots: unknown assumption" in done.stderr + done.stdout
    assert "did you mean 'hourly_cost'?" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("text_classification/*/artifact"))  # no training started


def test_a_rescore_checks_only_the_overrides_it_adds(tmp_path: Path) -> None:
    # a finished run's config may hold names from before this check; `domainfm score --set` checks its own
    ctx = _runner(tmp_path, "benefit.assumptions.legacy_name=1", "benefit.assumptions.hourly_cots=2").context(
        "text_classification"
    )
    check_override_names(ctx, only=["benefit.assumptions.not_given"])  # the stale names are not checked
    with pytest.raises(ConfigError, match=r"^benefit\.assumptions\.hourly_cots: .*did you mean 'hourly_cost'"):
        check_override_names(ctx, only=["benefit.assumptions.hourly_cots"])
