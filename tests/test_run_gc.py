"""``domainfm runs gc``: checkpoints of finished runs and stale temporary files go; what a resume needs stays."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from click.testing import CliRunner

from domainfm.cli.benefit_commands import runs_group
from domainfm.run_gc import plan, remove_checkpoints


def make_run(root: Path, run_id: str, status: str) -> Path:
    run_dir = root / "text_classification" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_id, "status": status}))
    return run_dir


def blob(path: Path, size: int, age_s: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if age_s:
        then = time.time() - age_s
        os.utime(path, (then, then))
    return path


def build(root: Path) -> dict[str, Path]:
    finished = make_run(root, "finished", "finished")
    failed = make_run(root, "failed", "failed")
    running = make_run(root, "running", "running")
    trained = make_run(root, "trained", "trained")
    return {
        "ckpt": blob(finished / "checkpoints" / "checkpoint-8" / "model.safetensors", 1000),
        "ckpt_opt": blob(finished / "checkpoints" / "checkpoint-8" / "optimizer.pt", 500),
        "summary": blob(finished / "checkpoints" / "trainer_state_summary.json", 7),
        "variant_ckpt": blob(finished / "variants" / "lora" / "checkpoints" / "checkpoint-4" / "adapter.bin", 300),
        "finished_tmp": blob(finished / ".metrics.json.k2j3.tmp", 11),
        "teacher_ckpt": blob(finished / "teacher" / "checkpoints" / "checkpoint-6" / "model.safetensors", 70),
        "model_named_checkpoints": blob(finished / "artifact" / "checkpoints" / "weights.bin", 5),  # a model's own
        "trained_ckpt": blob(trained / "checkpoints" / "checkpoint-2" / "model.safetensors", 200),
        "failed_ckpt": blob(failed / "checkpoints" / "checkpoint-3" / "model.safetensors", 400),  # resume needs it
        "failed_tmp": blob(failed / "artifact" / ".model.safetensors.a1.tmp", 13),
        "running_ckpt": blob(running / "checkpoints" / "checkpoint-1" / "model.safetensors", 600),  # resume needs it
        "running_fresh_tmp": blob(running / ".run.json.q9.tmp", 17),  # a live writer's
        "running_old_tmp": blob(running / "checkpoints" / "tmp-checkpoint-5" / "model.safetensors", 19, age_s=7200),
    }


RECLAIMED = 1000 + 500 + 300 + 11 + 70 + 200 + 13 + 19
KEPT = ("summary", "failed_ckpt", "running_ckpt", "running_fresh_tmp", "model_named_checkpoints")


def test_plan_takes_finished_checkpoints_and_stale_temporaries_only(tmp_path: Path) -> None:
    files = build(tmp_path)
    items = plan(tmp_path)
    assert sum(i.bytes for i in items) == RECLAIMED
    removed = {i.path for i in items}
    for name in KEPT:
        assert not any(files[name] == r or r in files[name].parents for r in removed), name


def test_runs_gc_dry_run_then_for_real(tmp_path: Path) -> None:
    files = build(tmp_path)
    dry = CliRunner().invoke(runs_group, ["gc", "--output-dir", str(tmp_path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would reclaim {RECLAIMED} bytes" in dry.output and "from 4 run(s)" in dry.output
    assert all(path.exists() for path in files.values())

    done = CliRunner().invoke(runs_group, ["gc", "--output-dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert f"reclaimed {RECLAIMED} bytes" in done.output
    for name, path in files.items():
        assert path.exists() == (name in KEPT), name
    again = CliRunner().invoke(runs_group, ["gc", "--output-dir", str(tmp_path)])
    assert "reclaimed 0 bytes" in again.output
    assert "no runs under" in CliRunner().invoke(runs_group, ["gc", "--output-dir", str(tmp_path / "none")]).output


def test_remove_checkpoints_keeps_the_summary(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    blob(folder / "checkpoint-1" / "model.safetensors", 64)
    blob(folder / "trainer_state_summary.json", 5)
    assert remove_checkpoints(folder) == 64
    assert [p.name for p in folder.iterdir()] == ["trainer_state_summary.json"]
    assert remove_checkpoints(tmp_path / "absent") == 0
