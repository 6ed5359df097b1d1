"""Quiet by default (issue 22.15): a run's captured output has no library noise; ``-v`` brings it back."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

NOISE = {
    "presidio warnings": re.compile(r"presidio", re.IGNORECASE),
    "Loading weights bars": re.compile(r"Loading weights"),
    "transformers LOAD REPORT": re.compile(r"LOAD REPORT"),
    "codecarbon messages": re.compile(r"\[codecarbon"),
    "raw Trainer dicts": re.compile(r"\{'(?:eval_)?(?:loss|train_runtime|eval_accuracy|learning_rate|grad_norm)'"),
    "datasets Map bars": re.compile(r"^Map", re.MULTILINE),
    "Writing model shards bars": re.compile(r"Writing model shards"),
}


def _run(args: list[str], tmp_path: Path, tiny_model_dir: Path) -> str:
    data = tmp_path / "feedback.csv"
    rows = [
        ("The refund of $40 arrived in 3 days, great service from Anna in Berlin", "positive", "chat"),
        ("Nobody answered for 2 hours and the parcel worth 80 euros was broken", "negative", "email"),
        ("I would like to know the opening hours on the 5th of May", "neutral", "phone"),
    ]
    with data.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label", "channel"])
        for i in range(10):
            for text, label, channel in rows:
                writer.writerow([f"{text} (case {i})", label, channel])
    env = {k: v for k, v in os.environ.items() if k != "DOMAINFM_VERBOSE"}
    env["DOMAINFM_NO_PROGRESS"] = "1"  # the Trainer prints its dicts itself when it has no bar
    command = [
        *args, "run", "text_classification", "--data", str(data), "--output-dir", str(tmp_path / "runs"),
        "--set", f"model.base={tiny_model_dir}", "--set", "model.mode=full", "--set", "train.epochs=2",
        "--set", "train.batch_size=8", "--set", "model.max_length=32",
    ]
    code = "import sys; from domainfm.cli.main import main; main(sys.argv[1:])"
    out = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def outputs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        "quiet": _run([], tmp_path_factory.mktemp("quiet"), tiny_model_dir),
        "verbose": _run(["-v"], tmp_path_factory.mktemp("verbose"), tiny_model_dir),
    }


def test_default_run_output_has_no_library_noise(outputs: dict[str, str]) -> None:
    quiet = outputs["quiet"]
    found = {name: rx.findall(quiet)[:2] for name, rx in NOISE.items() if rx.search(quiet)}
    assert not found, found
    assert "verdict:" in quiet.strip().splitlines()[-1]  # the run still ends with its verdict


def test_verbose_run_shows_what_was_hidden(outputs: dict[str, str]) -> None:
    verbose = outputs["verbose"]
    assert NOISE["transformers LOAD REPORT"].search(verbose)  # the deliberately new head, reported
    assert NOISE["raw Trainer dicts"].search(verbose)
    assert len(verbose.splitlines()) > len(outputs["quiet"].splitlines())


@pytest.mark.parametrize("verbose", [False, True])
def test_presidio_warnings_only_with_verbose(verbose: bool) -> None:
    from domainfm.privacy import load_ner_analyzer

    if load_ner_analyzer()[0] is None:
        pytest.skip("presidio NER (offline spaCy model) is not installed")
    code = (
        "import logging; logging.basicConfig()\n"  # a run has a root handler (libraries configure one)
        "from domainfm.logging_setup import configure\n"
        f"configure(verbose={verbose})\n"
        "from domainfm.privacy import PiiScanner\n"
        "print(PiiScanner().find_many(['Ana paid $40 for 3 apples', 'Revenue rose 12 percent to EUR 40 million']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert bool(NOISE["presidio warnings"].search(out.stderr)) == verbose, out.stderr[-2000:]
