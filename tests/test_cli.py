"""The CLI end to end: on a tiny random-init model, on the packaged MiniLM, with a third-party plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def domainfm(*args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "DOMAINFM_NO_PROGRESS": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "domainfm.cli.main", *args], input=input, capture_output=True, text=True,
        env=full_env, timeout=timeout,
    )


def only_run_dir(root: Path, domain: str) -> Path:
    runs = sorted((root / domain).iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def test_run_predict_evaluate_on_a_tiny_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    done = domainfm(
        "--no-autoload", "run", "text_classification", "--base-model", str(tiny_model_dir), "--mode", "full",
        "--epochs", "1", "--output-dir", str(tmp_path), "--set", "model.max_length=32",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = only_run_dir(tmp_path, "text_classification")
    for name in ("run.json", "metrics.json", "benefit.json", "report.html", "artifact/domainfm-artifact.json",
                 "artifact/model.safetensors", "evaluations/full.json"):
        assert (run_dir / name).is_file(), name
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["device"] == "cpu"
    assert run["resources"]["train_seconds"] > 0 and run["resources"]["latency_ms_p95"] > 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["full"]["accuracy"] <= 1.0 and metrics["full"]["device"] == "cpu"
    assert "macro_f1" in done.stdout  # the results table

    pred = domainfm("predict", str(run_dir), input="my parcel arrived broken\n{\"text\": \"great staff\", \"id\": \"r2\"}\n")
    assert pred.returncode == 0, pred.stderr[-2000:]
    lines = [json.loads(line) for line in pred.stdout.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[1]["id"] == "r2"
    assert lines[0]["label"] in {"positive", "negative", "neutral"} and lines[0]["device"] == "cpu"
    assert abs(sum(lines[0]["scores"].values()) - 1.0) < 1e-4

    ev = domainfm("evaluate", str(run_dir), "--split", "validation")
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert json.loads(ev.stdout)["split"] == "validation"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "model.mode=fast"], "model.mode: Input should be 'full', 'head', 'lora', 'lpft'"),  # ... or the last mode
        (["--set", "train.epochs=-1"], "train.epochs: Input should be greater than 0"),
        (["--set", "train.batchsize=8"], "train.batchsize: Extra inputs are not permitted"),
        (["--set", "noequals"], "expected key=value"),
    ],
)
def test_bad_config_values_give_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    done = domainfm("run", "text_classification", "--output-dir", str(tmp_path), *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_bad_config_file_names_the_file_and_field(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model:\n  mode: fast\n")
    done = domainfm("run", "text_classification", "--config", str(cfg))
    assert done.returncode == 2 and str(cfg) in done.stderr and "model.mode" in done.stderr


def test_unknown_domain_and_bad_data_are_clear(tmp_path: Path) -> None:
    done = domainfm("run", "no_such_domain", "--output-dir", str(tmp_path))
    assert done.returncode == 2 and "unknown domain 'no_such_domain'" in done.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,positive\n,negative\n")
    done = domainfm("run", "text_classification", "--data", str(bad), "--output-dir", str(tmp_path))
    assert done.returncode == 2 and f"{bad}:" in done.stderr


@pytest.fixture(scope="module")
def example_plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin, installed from its own directory with pip (into an isolated target)."""
    target = tmp_path_factory.mktemp("example-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(HERE / "example_plugin")],
        check=True, capture_output=True, text=True, timeout=300,
    )
    return target


def test_third_party_plugin_adds_a_domain_and_overrides_and_wraps_stages(tmp_path: Path, example_plugin_site: Path) -> None:
    env = {"PYTHONPATH": str(example_plugin_site)}
    listed = domainfm("plugins", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    example = next(p for p in json.loads(listed.stdout) if p["name"] == "example")
    assert example["status"] == "loaded" and example["domains"] == ["keyword_sentiment"]

    done = domainfm("run", "keyword_sentiment", "--output-dir", str(tmp_path), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = only_run_dir(tmp_path, "keyword_sentiment")
    artifact = json.loads((run_dir / "artifact" / "domainfm-artifact.json").read_text())
    assert artifact["metadata"]["wrapped_by"] == "example"
    benefit = json.loads((run_dir / "benefit.json").read_text())
    assert "example_review_minutes" in json.dumps(benefit)

    # Override every stage of a domain the example plugin does not own.
    done = domainfm("run", "text_classification", "--output-dir", str(tmp_path), "--set", "options.example_override=true", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = only_run_dir(tmp_path, "text_classification")
    artifact = json.loads((run_dir / "artifact" / "domainfm-artifact.json").read_text())
    assert artifact["kind"] == "lexicon" and artifact["metadata"]["wrapped_by"] == "example"

    # Selecting plugins: without 'example' its domain is gone, and the CLI says so.
    done = domainfm("--plugins", "nothing_else", "run", "keyword_sentiment", "--output-dir", str(tmp_path), env=env)
    assert done.returncode == 2 and "keyword_sentiment" in done.stderr


@pytest.mark.slow
def test_run_on_the_packaged_minilm(tmp_path: Path) -> None:
    done = domainfm("--no-autoload", "run", "text_classification", "--mode", "head", "--output-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = only_run_dir(tmp_path, "text_classification")
    artifact = json.loads((run_dir / "artifact" / "domainfm-artifact.json").read_text())
    assert artifact["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert artifact["metadata"]["resolved_from"] in {"packaged", "hf-cache"}
    metrics = json.loads((run_dir / "metrics.json").read_text())["head"]
    # 45 original sentences, 9 test items: frozen MiniLM embeddings separate these sentiments well.
    assert metrics["accuracy"] >= 0.6


@pytest.mark.parametrize("command", ["run", "train"])
def test_a_run_name_that_leaves_the_output_dir_is_refused(tmp_path: Path, command: str) -> None:
    out = tmp_path / "out"
    done = domainfm("--no-autoload", command, "text_classification", "--output-dir", str(out), "--set",
                    "run_name=../../../x")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "run_name: '../../../x' is not a valid name" in done.stderr
    assert not (tmp_path.parent / "x").exists() and not out.exists()


def test_a_failed_train_says_so_in_run_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,positive\n,negative\n")
    done = domainfm("--no-autoload", "train", "text_classification", "--data", str(bad), "--output-dir", str(tmp_path),
                    "--set", "run_name=broken")
    assert done.returncode == 2 and f"{bad}:" in done.stderr
    run = json.loads((tmp_path / "text_classification" / "broken" / "run.json").read_text())
    assert run["status"] == "failed" and str(bad) in run["error"]


def test_a_config_value_where_a_section_belongs_is_one_line(tmp_path: Path) -> None:
    done = domainfm("--no-autoload", "run", "text_classification", "--output-dir", str(tmp_path), "--set", "model=3",
                    "--mode", "full")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "model" in done.stderr
