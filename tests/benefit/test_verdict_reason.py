"""A verdict that is not "pass" carries a one-line reason: terminal summary, HTML badge, end of a run (issue 22.7)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from domainfm.benefit import render_html, score, summary_table, verdict_line, verdict_reason

from .conftest import ToyPlugin, build_ctx, make_evaluation


def _report(  # type: ignore[no-untyped-def]
    tmp_path: Path, n: int, groups: list[str], quality: list[float] | None = None, top: int = 10
):
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.5, 1.0, n).tolist()
    ev = make_evaluation(conf, quality if quality is not None else [1.0] * n, groups={"channel": groups})
    ctx = build_ctx(tmp_path / "r", ToyPlugin(with_error_rate=True), builtins=True, options={"privacy_ner": "auto"},
                    thresholds=[i / 10 for i in range(top + 1)], energy_tracking=False)
    ctx.state["privacy_texts"] = {"training_data": ["plain words"], "outputs": ["label: ok"]}
    ctx.artifact_dir.mkdir(parents=True)
    (ctx.artifact_dir / "config.json").write_text('{"labels": ["a", "b"]}', encoding="utf-8")
    ctx.resources.parameters, ctx.resources.train_seconds = 1000, 1.0
    ctx.resources.latency_ms_p50, ctx.resources.latency_ms_p95, ctx.resources.peak_memory_mb = 1.0, 2.0, 100.0
    ctx.resources.energy_kwh, ctx.resources.co2_kg = 0.001, 0.001
    return score(ctx, {"full": ev})


def _rendered(table: object) -> str:
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=1000).print(table)  # wide enough that no cell wraps
    return buf.getvalue()


def test_unmeasurable_fairness_names_the_groups_that_are_too_small(tmp_path: Path) -> None:
    groups = ["chat"] * 12 + ["email"] * 3 + ["phone"] * 3  # only one group reaches 10 automated items
    report = _report(tmp_path, 18, groups)
    assert report.verdict == "unverified"
    reason = verdict_reason(report)
    assert reason is not None and "\n" not in reason
    assert "fairness_gap_channel" in reason and "fewer than 2 groups with >= 10 automated items" in reason
    assert "email 3" in reason and "phone 3" in reason
    assert verdict_line(report) == f"verdict: unverified: {reason}"
    assert reason in _rendered(summary_table(report))
    html = render_html(report)
    badge = html.index("badge unverified")
    assert html.index("fewer than 2 groups", badge) - badge < 300  # the reason sits beside the badge


def test_no_feasible_point_names_the_failing_constraint(tmp_path: Path) -> None:
    n = 40
    quality = [0.0 if i % 2 else 1.0 for i in range(n)]  # half wrong at every threshold: error_rate 0.5 > 0.2
    # thresholds up to 0.4 only: every point automates all items (confidence >= 0.5)
    report = _report(tmp_path, n, ["a"] * 20 + ["b"] * 20, quality=quality, top=4)
    assert report.verdict == "fail"
    reason = verdict_reason(report)
    assert reason is not None and reason.startswith("no operating point satisfies every measured constraint")
    assert "error_rate 0.5 > limit 0.2" in reason


def test_a_point_that_automates_nothing_says_what_automating_breaks(tmp_path: Path) -> None:
    n = 40
    quality = [0.0 if i % 2 else 1.0 for i in range(n)]
    report = _report(tmp_path, n, ["a"] * 20 + ["b"] * 20, quality=quality)  # threshold 1.0 automates nothing
    assert report.verdict == "unverified" and report.best is not None and report.best.n_automated == 0
    reason = verdict_reason(report)
    assert reason is not None and reason.startswith("the chosen operating point automates nothing")
    assert "fairness_gap_channel" in reason
    assert re.search(r"the best point that automates fails \(full @ 0\.\d+\): error_rate 0\.\d+ > limit 0\.2", reason)


def test_pass_has_no_reason(tmp_path: Path) -> None:
    groups = ["a"] * 20 + ["b"] * 20
    report = _report(tmp_path, 40, groups)
    assert report.verdict == "pass", verdict_reason(report)
    assert verdict_reason(report) is None and verdict_line(report) == "verdict: pass"
    assert "class='reason'" not in render_html(report)
