"""Portable artifacts: ``domainfm.load(...).predict`` gives the CLI's labels and confidences; ``domainfm export
--format hf`` loads in ``transformers.pipeline`` with the calibration applied (the same confidences as domainfm);
``--format onnx`` is the int8 model with its tokenizer."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import domainfm
from domainfm.errors import ConfigError, DataError
from domainfm.testing import TINY_CORPUS, build_tiny_classifier_artifact

TEXTS = [*TINY_CORPUS, "an unseen sentence about nothing", "late payment and a blocked card"]
CALIBRATORS: dict[str, dict[str, Any]] = {
    "temperature": {"kind": "temperature", "temperature": 2.5},
    "vector": {"kind": "vector", "temperature": 1.0, "scale": [1.5, 0.7, 1.1], "bias": [0.2, -0.1, 0.0]},
    "top_isotonic": {"kind": "top_isotonic", "temperature": 1.0, "knots_x": [0.34, 0.5, 0.8, 1.0],
                     "knots_y": [0.4, 0.45, 0.7, 0.9]},
}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("artifacts")
    return {kind: build_tiny_classifier_artifact(root / kind, calibrator=spec) for kind, spec in CALIBRATORS.items()}


def domainfm_scores(artifact: Path) -> tuple[list[str], np.ndarray]:
    preds = domainfm.load(artifact, device="cpu").predict(TEXTS)
    labels = list(preds[0].scores)
    return [p.label for p in preds], np.asarray([[p.scores[name] for name in labels] for p in preds])


def pipeline_scores(clf: Any, labels: list[str]) -> tuple[list[str], np.ndarray]:
    rows = clf(TEXTS, top_k=None, batch_size=len(TEXTS))  # padded to the longest text, as domainfm's batch is
    scores = np.asarray([[next(r["score"] for r in row if r["label"] == name) for name in labels] for row in rows])
    return [labels[i] for i in scores.argmax(1)], scores


def test_python_api_gives_the_cli_labels_and_confidences(artifacts: dict[str, Path]) -> None:
    from domainfm.cli.main import cli

    artifact = artifacts["temperature"]
    done = CliRunner().invoke(cli, ["--no-autoload", "predict", str(artifact), "--device", "cpu"],
                              input="\n".join(TEXTS) + "\n")
    assert done.exit_code == 0, done.output
    cli_rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    api = domainfm.load(artifact, device="cpu").predict(TEXTS)
    assert len(cli_rows) == len(api) == len(TEXTS)
    for row, pred in zip(cli_rows, api, strict=True):
        assert row["label"] == pred.label and row["confidence"] == pred.confidence and row["scores"] == pred.scores
    assert len({p.label for p in api}) > 1 and max(p.confidence for p in api) - min(p.confidence for p in api) > 0.1
    # records work too, and a bare string is refused in one line
    alone = domainfm.load(artifact).predict([{"text": TEXTS[0]}])[0]  # a batch of one pads differently: float noise
    assert alone.label == api[0].label and alone.confidence == pytest.approx(api[0].confidence, abs=1e-4)
    with pytest.raises(DataError, match="a list of texts"):
        domainfm.load(artifact).predict(TEXTS[0])  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["temperature", "vector"])
def test_hf_export_bakes_a_linear_calibration_into_the_weights(
    artifacts: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    from transformers import pipeline

    from domainfm.export import export_model

    out = export_model(artifacts[kind], tmp_path / "hf", "hf")
    labels, expected = domainfm_scores(artifacts[kind])
    got_labels, got = pipeline_scores(pipeline("text-classification", model=str(out), device="cpu"), list(
        domainfm.load(artifacts[kind]).labels))
    assert got_labels == labels
    np.testing.assert_allclose(got, expected, atol=1e-4)  # float32 W/T vs domainfm dividing float64 logits
    uncalibrated = np.asarray(domainfm.load(artifacts[kind]).predict(TEXTS)[0].confidence)
    assert not (out / "domainfm_pipeline.py").exists()
    if kind == "temperature":
        from safetensors.numpy import load_file

        before = load_file(str(artifacts[kind] / "model.safetensors"))["classifier.weight"]
        after = load_file(str(out / "model.safetensors"))["classifier.weight"]
        np.testing.assert_allclose(after, before / 2.5, rtol=1e-6)
    assert uncalibrated > 0
    card = (out / "README.md").read_text()
    assert "## Calibration" in card and "## This export (hf)" in card and "licence" in card.lower()


def test_hf_export_of_an_isotonic_calibration_uses_the_custom_pipeline(artifacts: dict[str, Path], tmp_path: Path) -> None:
    from transformers import pipeline

    from domainfm.export import export_model

    out = export_model(artifacts["top_isotonic"], tmp_path / "hf", "hf")
    labels = domainfm.load(artifacts["top_isotonic"]).labels
    expected_labels, expected = domainfm_scores(artifacts["top_isotonic"])
    # registered in config.json: pipeline(model=..., trust_remote_code=True) picks the class
    clf = pipeline("text-classification", model=str(out), trust_remote_code=True, device="cpu")
    assert type(clf).__name__ == "DomainfmCalibratedPipeline"
    got_labels, got = pipeline_scores(clf, labels)
    assert got_labels == expected_labels
    np.testing.assert_allclose(got, expected, atol=1e-4)  # float32 W/T vs domainfm dividing float64 logits
    # or imported by hand
    spec = importlib.util.spec_from_file_location("exported_pipeline", out / "domainfm_pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["exported_pipeline"] = module
    spec.loader.exec_module(module)
    clf = pipeline("text-classification", model=str(out), pipeline_class=module.DomainfmCalibratedPipeline, device="cpu")
    np.testing.assert_allclose(pipeline_scores(clf, labels)[1], expected, atol=1e-4)
    top = clf(TEXTS[0])
    assert top[0]["label"] == expected_labels[0] and top[0]["score"] == pytest.approx(expected[0].max(), abs=1e-3)  # alone


def test_onnx_export_is_int8_with_its_tokenizer(artifacts: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from domainfm.export import export_model, onnx_probabilities

    out = export_model(artifacts["temperature"], tmp_path / "onnx", "onnx")
    assert {"model_int8.onnx", "tokenizer.json", "config.json", "domainfm_calibration.json", "README.md"} <= {
        p.name for p in out.iterdir()}
    from domainfm.engine.classifier_predictor import TextClassifierPredictor

    # domainfm serving the same artifact in int8 (inference_dtype=int8-ort): per-channel int8 scales of W / T are
    # those of W divided by T, so the export's softmax(output) is domainfm's softmax(int8 logits / T)
    served = TextClassifierPredictor.load(artifacts["temperature"], "cpu", precision="int8-ort")
    np.testing.assert_allclose(onnx_probabilities(out, TEXTS), served.predict_proba(TEXTS), atol=1e-4)
    spec = json.loads((out / "domainfm_calibration.json").read_text())
    assert spec["baked_into_weights"] and spec["labels"] == ["negative", "neutral", "positive"] and spec["max_length"] == 32


def test_export_refusals_are_one_line(artifacts: dict[str, Path], tmp_path: Path) -> None:
    from domainfm.export import export_model

    head = tmp_path / "head"
    head.mkdir()
    meta = json.loads((artifacts["temperature"] / "domainfm-artifact.json").read_text())
    meta.update(kind="embedding-linear-head", path=str(head))
    meta["metadata"]["mode"] = "head"
    (head / "domainfm-artifact.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="embedding-linear-head.*modes full, lora, distill"):
        export_model(head, tmp_path / "out", "hf")
    (tmp_path / "taken").mkdir()
    with pytest.raises(DataError, match="already exists"):
        export_model(artifacts["temperature"], tmp_path / "taken", "hf")


def test_export_command(artifacts: dict[str, Path], tmp_path: Path) -> None:
    from domainfm.cli.main import cli

    done = CliRunner().invoke(cli, ["--no-autoload", "export", str(artifacts["vector"]), "--format", "hf", "--out",
                                    str(tmp_path / "x")])
    assert done.exit_code == 0, done.output
    assert "exported (hf)" in done.output and (tmp_path / "x" / "config.json").is_file()
