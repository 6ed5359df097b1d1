"""``predict --engine ray`` gives the in-process predictions, field for field, from JSONL, CSV and Parquet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from domainfm.scale.ray_predict import from_row, input_files, output_schema, predict_with_ray, read_predictions, to_row
from domainfm.testing import TINY_CORPUS, build_tiny_classifier_artifact
from domainfm.types import Prediction


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOMAINFM_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "domainfm.cli.main", "--no-autoload", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def assert_same_predictions(got: list[dict], expected: list[dict]) -> None:
    """Same rows in the same order with the same fields; labels exact, probabilities within 1e-4 (another batch
    size pads texts to another length, which moves float32 logits in their 6th digit)."""
    assert [sorted(r) for r in got] == [sorted(r) for r in expected]
    for a, b in zip(got, expected, strict=True):
        assert {k: v for k, v in a.items() if k not in ("scores", "confidence")} == \
            {k: v for k, v in b.items() if k not in ("scores", "confidence")}
        assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-4)
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-4)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier_artifact(tmp_path_factory.mktemp("ray-predict") / "artifact")


@pytest.fixture(scope="module")
def records() -> list[dict[str, str]]:
    return [{"id": f"r{i}", "text": text} for i, text in enumerate(TINY_CORPUS * 4)]


@pytest.fixture(scope="module")
def in_process(artifact: Path, records: list[dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    folder = tmp_path_factory.mktemp("in-process")
    (folder / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    done = cli("predict", str(artifact), "--input", str(folder / "in.jsonl"), "--output", str(folder / "out.jsonl"))
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in (folder / "out.jsonl").read_text(encoding="utf-8").splitlines()]


def test_the_parquet_schema_has_every_prediction_field() -> None:
    assert set(output_schema().names) == set(Prediction.model_fields) | {"device"}
    fields = {"id": "a", "label": "x", "scores": {"x": 1.0}, "abstained": False, "extra": {}, "device": "cpu"}
    assert from_row(to_row(fields)) == fields


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_ray_predictions_equal_the_in_process_ones(fmt: str, artifact: Path, records: list[dict[str, str]],
                                                   in_process: list[dict], tmp_path: Path, ray_local: object) -> None:
    import pandas as pd

    frame = pd.DataFrame(records)
    shards = tmp_path / "in"
    shards.mkdir()
    for part, chunk in enumerate((frame.iloc[:17], frame.iloc[17:])):  # two input files, read as one dataset
        path = shards / f"part-{part}.{fmt}"
        {"jsonl": lambda p, c=chunk: c.to_json(p, orient="records", lines=True),
         "csv": lambda p, c=chunk: c.to_csv(p, index=False),
         "parquet": lambda p, c=chunk: c.to_parquet(p, index=False)}[fmt](path)
    summary = predict_with_ray(str(artifact), str(shards / f"*.{fmt}"), tmp_path / "out", batch_size=8,
                               concurrency=2, cpus_per_actor=1, progress=False)
    assert summary.rows == len(records)
    assert_same_predictions(read_predictions(tmp_path / "out"), in_process)


def test_the_cli_writes_shards_and_refuses_stdin(artifact: Path, records: list[dict[str, str]],
                                                 in_process: list[dict], tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    done = cli("predict", str(artifact), "--engine", "ray", "--input", str(src), "--output", str(tmp_path / "out"),
               "--batch-size", "16", "--concurrency", "1", "--cpus-per-actor", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(records)} predictions in" in done.stderr
    assert_same_predictions(read_predictions(tmp_path / "out"), in_process)
    refused = cli("predict", str(artifact), "--engine", "ray", "--output", str(tmp_path / "o2"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("error: --engine ray reads files")


def test_input_errors_are_one_line(tmp_path: Path) -> None:
    from domainfm.errors import DataError

    with pytest.raises(DataError, match="no such input file"):
        input_files(str(tmp_path / "missing-*.jsonl"))
    (tmp_path / "a.jsonl").write_text("{}\n")
    (tmp_path / "b.csv").write_text("text\nx\n")
    with pytest.raises(DataError, match="mixes formats"):
        input_files(str(tmp_path))
    (tmp_path / "c.txt").write_text("x\n")
    with pytest.raises(DataError, match="unsupported input format"):
        input_files(str(tmp_path / "c.txt"))


def test_a_too_long_text_fails_naming_the_record(artifact: Path, tmp_path: Path, ray_local: object) -> None:
    from domainfm.errors import DataError

    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "long-one", "text": "x" * 50}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="long-one"):
        predict_with_ray(str(artifact), str(tmp_path / "in.jsonl"), tmp_path / "out", max_text_chars=10,
                         progress=False)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_plugins_list_and_predict_help_never_import_ray() -> None:
    code = ("import sys; from domainfm.cli.main import main\n"
            "for args in (['plugins', 'list', '--json'], ['predict', '--help'], ['tune', '--help']):\n"
            "    try: main(args)\n"
            "    except SystemExit: pass\n"
            "bad = [m for m in ('ray', 'optuna', 'torch') if m in sys.modules]\n"
            "print('IMPORTED', bad)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "IMPORTED []" in done.stdout
