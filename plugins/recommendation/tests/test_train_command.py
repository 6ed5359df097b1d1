"""``domainfm rec train`` is a run of the core Runner: run.json with its status (a failure recorded), resources with
the Runner's training time, artifact/ with its model card, and the ``rec`` commands read the run directory."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from domainfm_recommendation.cli import rec


def _train(out: Path, model_dir: Path, *extra: str) -> object:
    return CliRunner().invoke(rec, ["train", "--out", str(out), "--base-model", str(model_dir), "--quick",
                                    "--device", "cpu", "--model-kind", "text_mix",
                                    "--set", "benefit.energy_tracking=false", *extra])


def test_rec_train_is_a_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "rec-model"
    done = _train(out, tiny_model_dir)
    assert done.exit_code == 0, done.output  # type: ignore[attr-defined]
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["status"] == "trained" and run["domain"] == "recommendation" and run["plugin"] == "recommendation"
    assert run["data_sizes"]["items"] == 42 and run["config"]["options"] == {"quick": True, "model_kind": "text_mix"}
    resources = run["resources"]
    assert resources["train_seconds"] == resources["stage_seconds"]["train"] > 0
    artifact = json.loads((out / "artifact" / "domainfm-artifact.json").read_text(encoding="utf-8"))
    assert artifact["metadata"]["model_kind"] == "text_mix" and "train_seconds" not in artifact["metadata"]
    assert (out / "artifact" / "README.md").is_file()
    recs = CliRunner().invoke(rec, ["recommend", "u01", "-k", "3", "--artifact", str(out)])
    assert recs.exit_code == 0 and len(recs.output.strip().splitlines()) == 3, recs.output


def test_a_failed_rec_train_leaves_a_failed_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("user,item,rating\nu1,i1,5\nu1,i2,oops\n", encoding="utf-8")
    out = tmp_path / "broken"
    done = _train(out, tiny_model_dir, "--data", str(log))
    assert done.exit_code != 0  # type: ignore[attr-defined]
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["status"] == "failed" and f"{log}:3: field 'rating' is not a number" in run["error"]
    assert not (out / "artifact").exists()
