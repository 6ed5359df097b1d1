"""The report: benefit.json round trip, self-contained HTML, headless browser rendering, terminal summary."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from domainfm.benefit import load_report, render_html, score, summary_table, write_report
from domainfm.errors import DataError

from .conftest import ToyPlugin, build_ctx, make_evaluation

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Any:
    rng = np.random.default_rng(7)
    n = 60
    conf = rng.uniform(0, 1, n)
    quality = (rng.uniform(0, 1, n) < conf).astype(float)
    groups = {"region": rng.choice(["north", "south", "east"], n).tolist()}
    ev = make_evaluation(conf.tolist(), quality.tolist(), groups=groups)
    ctx = build_ctx(
        tmp_path_factory.mktemp("runs") / "r1", ToyPlugin(with_error_rate=True), builtins=True,
        assumptions={"fairness_min_group_size": 3}, thresholds=[i / 10 for i in range(11)],
    )
    ctx.state["privacy_texts"] = {"training_data": ["mail ann@example.org", "plain"], "outputs": ["label: ok"]}
    ctx.resources.parameters = 22_713_216
    ctx.resources.latency_ms_p50, ctx.resources.latency_ms_p95 = 4.0, 9.5
    ctx.resources.peak_memory_mb = 900.0
    other = make_evaluation(np.clip(conf + 0.1, 0, 1).tolist(), quality.tolist(), groups=groups)
    return score(ctx, {"full": ev, "lora": other})


def test_write_report_round_trips_every_term(report: Any, tmp_path: Path) -> None:
    paths = write_report(report, tmp_path)
    assert set(paths) == {"benefit", "report"}
    data = json.loads(paths["benefit"].read_text())
    assert data["lambda"] == report.lambda_
    assert {t["name"] for t in data["terms"]} == {"net_value", "people_helped"}
    assert {"error_rate", "fairness_gap_region", "privacy_identifiers_training_data", "resource_co2"} <= {
        c["name"] for c in data["constraints"]
    }
    back = load_report(tmp_path)
    assert back == report
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_html_is_self_contained(report: Any) -> None:
    html = render_html(report)
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") >= 5
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", html)  # nothing fetched from anywhere
    assert "<script" not in html and "@import" not in html
    assert not re.search(r"url\((?!#)", html)  # only references to ids inside the page
    for text in ("Pareto front", "risk", "by region", "Resources against their limits", "net_value", "error_penalty"):
        assert text in html
    assert "ann@example.org" not in html  # privacy examples are masked


def test_privacy_findings_reach_the_report(report: Any) -> None:
    c = report.constraint("privacy_identifiers_training_data")
    assert c.at_optimum.value == pytest.approx(0.5) and c.at_optimum.status == "fail"
    assert c.details["by_kind"] == {"EMAIL": 1} and "<EMAIL>" in c.details["examples"][0]
    assert report.optimum is None and report.verdict == "fail"


def test_load_report_names_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no benefit report"):
        load_report(tmp_path)
    (tmp_path / "benefit.json").write_text('{"run_id": 1}')
    with pytest.raises(DataError, match="not a valid benefit report"):
        load_report(tmp_path)


def test_summary_table_lists_terms_and_constraints(report: Any) -> None:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(summary_table(report))
    text = console.export_text()
    assert "none feasible" in text and "net_value" in text and "fairness_gap_region" in text
    assert "not measurable" in text  # energy was not tracked


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt package 'chromium')")
def test_report_renders_in_headless_chromium(report: Any, tmp_path: Path) -> None:
    from matplotlib.image import imread

    paths = write_report(report, tmp_path)
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--window-size=1200,2400", f"--screenshot={shot}", paths["report"].resolve().as_uri()],
            check=True, capture_output=True, timeout=90,
        )
    image = imread(shot)
    assert image.shape[0] >= 2000 and image.shape[1] >= 1100
    rgb = image[..., :3]
    assert (rgb < 0.5).mean() > 0.01  # text and plots are drawn, not a blank page
    assert len(np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50  # colours: plots are there
