"""``domainfm runs compare A B [C...]``: configuration differences, data fingerprints, paired bootstrap of the
metric differences over the shared test items (refused when the splits differ), benefit deltas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import f1_score

from domainfm.benefit.paired_bootstrap import compare_evaluations, mean_statistic, paired_bootstrap
from domainfm.benefit.runs import compare_runs
from domainfm.cli.benefit_commands import runs_group
from domainfm.config import RunConfig
from domainfm.errors import DomainfmError
from domainfm.types import Evaluation, Outcomes

LABELS = ["neg", "neu", "pos"]
N = 400


def evaluation(gold: list[str], predicted: list[str], ids: list[str] | None = None, split: str = "test") -> Evaluation:
    quality = [float(g == p) for g, p in zip(gold, predicted, strict=True)]
    return Evaluation(
        domain="toy", split=split, metrics={"accuracy": float(np.mean(quality))}, key_metric="accuracy",
        n_items=len(gold),
        outcomes=Outcomes(ids=ids or [f"q{i}" for i in range(len(gold))], confidence=[0.9] * len(gold), quality=quality,
                          extra={"label": gold, "predicted": predicted}),
    )


def known_pair(flipped: int) -> tuple[list[str], list[str], list[str]]:
    """Gold labels, run A's predictions (right on the first half) and run B's (A's, plus ``flipped`` of A's wrong
    answers made right): B - A accuracy is exactly flipped / N."""
    gold = [LABELS[i % 3] for i in range(N)]
    pred_a = [g if i < N // 2 else LABELS[(i + 1) % 3] for i, g in enumerate(gold)]
    pred_b = [gold[i] if N // 2 <= i < N // 2 + flipped else p for i, p in enumerate(pred_a)]
    return gold, pred_a, pred_b


def test_paired_bootstrap_on_a_pair_with_a_known_difference() -> None:
    gold, pred_a, pred_b = known_pair(80)
    n, diffs = compare_evaluations(evaluation(gold, pred_a), evaluation(gold, pred_b), resamples=2000, seed=1)
    accuracy, macro = diffs
    assert n == N and accuracy.metric == "accuracy"
    assert accuracy.a == 0.5 and accuracy.b == 0.7 and accuracy.delta == pytest.approx(0.2)
    # 80 discordant pairs, all for B: sd of the per-item difference 0.4, so the interval is 0.2 +- 1.96 * 0.4 / 20
    assert accuracy.ci_low == pytest.approx(0.2 - 1.96 * 0.02, abs=0.01)
    assert accuracy.ci_high == pytest.approx(0.2 + 1.96 * 0.02, abs=0.01)
    assert accuracy.p_value == pytest.approx(1 / 2001)  # no resample comes near a zero difference
    expected = f1_score(gold, pred_b, average="macro") - f1_score(gold, pred_a, average="macro")
    assert macro.metric == "macro_f1" and macro.delta == pytest.approx(expected)
    assert macro.ci_low < expected < macro.ci_high and macro.p_value < 0.01


def test_no_difference_and_a_tiny_one_are_not_significant() -> None:
    gold, pred_a, _ = known_pair(0)
    _, (same, _) = compare_evaluations(evaluation(gold, pred_a), evaluation(gold, pred_a))
    assert same.delta == 0 and same.p_value == 1.0 and same.ci_low == same.ci_high == 0.0
    gold, pred_a, pred_b = known_pair(2)
    _, (tiny, _) = compare_evaluations(evaluation(gold, pred_a), evaluation(gold, pred_b))
    assert tiny.delta == pytest.approx(2 / N) and tiny.p_value > 0.1 and tiny.ci_low <= 0.0


def test_only_shared_items_are_paired() -> None:
    gold, pred_a, pred_b = known_pair(80)
    a = evaluation(gold, pred_a)
    # B evaluated the items in another order and lacks the last 100: pairing goes by id
    order = list(reversed(range(N - 100)))
    b = evaluation([gold[i] for i in order], [pred_b[i] for i in order], ids=[f"q{i}" for i in order])
    n, (accuracy, _) = compare_evaluations(a, b)
    assert n == N - 100
    assert accuracy.a == pytest.approx(200 / 300) and accuracy.b == pytest.approx(280 / 300)


def test_a_bootstrap_is_reproducible_with_its_seed() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2, 300).astype(float), rng.integers(0, 2, 300).astype(float)
    one = paired_bootstrap(a, b, mean_statistic, metric="m", seed=3)
    assert one == paired_bootstrap(a, b, mean_statistic, metric="m", seed=3)


def write_run(root: Path, run_id: str, ev: Evaluation, *, epochs: float, seed: int, test_ids_hash: str) -> Path:
    run_dir = root / "toy" / run_id
    (run_dir / "evaluations").mkdir(parents=True)
    config = RunConfig.model_validate({"domain": "toy", "train": {"epochs": epochs, "seed": seed}})
    (run_dir / "run.json").write_text(json.dumps({
        "run_id": run_id, "domain": "toy", "status": "finished", "started_at": f"2026-01-0{len(run_id)}", "device": "cpu",
        "config": json.loads(config.model_dump_json(by_alias=True)),
        "data_fingerprints": {"test": {"sha256": test_ids_hash, "n": ev.n_items, "basis": "ids"},
                              "train": {"sha256": "t" * 64, "n": 10, "basis": "ids"}},
    }))
    (run_dir / "evaluations" / "full.json").write_text(ev.model_dump_json())
    return run_dir


def test_compare_runs_shows_config_fingerprints_and_significance(tmp_path: Path) -> None:
    gold, pred_a, pred_b = known_pair(80)
    a = write_run(tmp_path, "a", evaluation(gold, pred_a), epochs=1, seed=42, test_ids_hash="x" * 64)
    b = write_run(tmp_path, "bb", evaluation(gold, pred_b), epochs=3, seed=7, test_ids_hash="x" * 64)
    c = write_run(tmp_path, "ccc", evaluation(gold, pred_b), epochs=3, seed=7, test_ids_hash="y" * 64)
    result = compare_runs([a, b, c], resamples=500)
    fields = {row["field"]: row["values"] for row in result["config"]}
    assert fields == {"train.epochs": [1.0, 3.0, 3.0], "train.seed": [42, 7, 7]}
    test = next(row for row in result["fingerprints"] if row["split"] == "test")
    assert test["sha256"] == ["x" * 64, "x" * 64, "y" * 64] and not test["same"]
    vs_b, vs_c = result["significance"]
    assert vs_b["refused"] is None and vs_b["n_shared"] == N
    assert vs_b["metrics"][0]["delta"] == pytest.approx(0.2) and vs_b["metrics"][0]["p_value"] < 0.01
    assert "the test splits differ" in vs_c["refused"] and "metrics" not in vs_c
    assert all("no benefit report" in pair["note"] for pair in result["benefit"])


def test_runs_compare_cli(tmp_path: Path) -> None:
    gold, pred_a, pred_b = known_pair(80)
    write_run(tmp_path, "a", evaluation(gold, pred_a), epochs=1, seed=42, test_ids_hash="x" * 64)
    write_run(tmp_path, "bb", evaluation(gold, pred_b), epochs=3, seed=7, test_ids_hash="y" * 64)
    runner = CliRunner()
    shown = runner.invoke(runs_group, ["compare", "a", "bb", "--output-dir", str(tmp_path)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "train.epochs" in shown.output and "train.seed" in shown.output
    assert "paired comparison refused: the test splits differ" in shown.output
    out = json.loads(runner.invoke(runs_group, ["compare", "a", "bb", "--output-dir", str(tmp_path), "--json",
                                                "--resamples", "200"]).output)
    assert set(out) == {"domain", "runs", "config", "fingerprints", "significance", "benefit"}
    one = runner.invoke(runs_group, ["compare", "a", "--output-dir", str(tmp_path)])
    assert isinstance(one.exception, DomainfmError) and "at least two runs" in str(one.exception)
