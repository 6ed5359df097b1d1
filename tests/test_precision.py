"""Inference precision and shared features of the engine's text classifier, on tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domainfm.engine.onnx_int8 import onnxruntime_available
from domainfm.engine.precision import choose_inference_dtype, precision_for_device
from domainfm.engine.text_classifier import TextClassifierPredictor
from domainfm.errors import ConfigError
from domainfm.types import Artifact

from .test_engine import run_stages

TEXTS = ["the parcel arrived broken", "great friendly staff", "refund took three weeks"]


@pytest.fixture(scope="module", params=["head", "full"])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp(f"precision-{request.param}")
    ctx, artifact, predictor, _ = run_stages(tmp, tiny_model_dir, request.param, ["train.epochs=1"])
    return ctx, Artifact.load(artifact.path)


def test_predict_with_features_matches_predict_and_exposes_head_features(trained) -> None:  # type: ignore[no-untyped-def]
    _, artifact = trained
    predictor = TextClassifierPredictor.load(artifact, "cpu", precision="float32")
    records = [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]
    predictions, features = predictor.predict_with_features(records)
    plain = predictor.predict(records)
    assert [p.scores for p in predictions] == [p.scores for p in plain]
    if predictor.is_head:
        assert features is not None and features.shape[0] == len(TEXTS)
        np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-4)
        logits = predictor.logits_from_features(features)
        np.testing.assert_allclose(logits, predictor.predict_logits(TEXTS), rtol=1e-4, atol=1e-5)
    else:
        assert features is None
        with pytest.raises(TypeError, match="head kind"):
            predictor.features(TEXTS)


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_lower_precisions_keep_probabilities_close(trained, dtype: str) -> None:  # type: ignore[no-untyped-def]
    import torch

    _, artifact = trained
    reference = TextClassifierPredictor.load(artifact, "cpu", precision="float32").predict_proba(TEXTS)
    predictor = TextClassifierPredictor.load(artifact, "cpu", precision=dtype)
    assert predictor.precision == dtype
    if dtype == "bfloat16":
        assert next(predictor.torch_model.parameters()).dtype == torch.bfloat16
    probs = predictor.predict_proba(TEXTS)
    assert probs.shape == reference.shape and np.allclose(probs.sum(1), 1.0)
    assert np.abs(probs - reference).max() < 0.1


def test_artifact_precision_is_applied_at_load_and_unknown_ones_are_refused(trained) -> None:  # type: ignore[no-untyped-def]
    artifact = trained[1].model_copy(deep=True)  # the fixture is shared: change a copy
    artifact.metadata["inference_dtype"] = "int8"
    assert TextClassifierPredictor.load(artifact, "cpu").precision == "int8"
    artifact.metadata["inference_dtype"] = "fp4"
    with pytest.raises(ConfigError, match="inference_dtype: 'fp4'"):
        TextClassifierPredictor.load(artifact, "cpu")
    with pytest.raises(ConfigError, match="inference_dtype"):
        TextClassifierPredictor.load(artifact, "cpu", precision="fp16")


def test_bf16_falls_back_to_float32_where_it_is_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    import domainfm.engine.precision as precision

    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: False)
    assert precision_for_device("bfloat16", "cpu") == "float32"
    assert precision_for_device("int8", "cpu") == "int8"
    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: True)
    assert precision_for_device("bfloat16", "cpu") == "bfloat16"


def test_choose_inference_dtype_uses_validation_and_honours_an_explicit_choice(trained, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import domainfm.engine.precision as precision

    _, artifact = trained
    valid = {"text": TEXTS, "label": [artifact.label_names[0]] * len(TEXTS)}
    predictor = TextClassifierPredictor.load(artifact, "cpu", precision="float32")
    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: True)
    chosen = choose_inference_dtype(predictor, valid)
    tried = set(chosen["validation_accuracy_by_dtype"])
    assert {"float32", "bfloat16"} <= tried <= {"float32", "bfloat16", "int8-ort"}
    assert chosen["inference_dtype"] in tried
    timed = chosen["validation_seconds_by_dtype"]
    assert chosen["inference_dtype"] == min(timed, key=timed.__getitem__)  # the fastest of those within tolerance
    assert predictor.precision == "float32"  # the trial ran on a copy
    monkeypatch.setattr(precision, "_candidates", lambda device: [])  # nothing but float32 can run here
    assert choose_inference_dtype(predictor, valid)["inference_dtype"] == "float32"
    assert choose_inference_dtype(predictor, valid, "int8")["inference_dtype"] == "int8"
    with pytest.raises(ConfigError):
        choose_inference_dtype(predictor, valid, "fp8")


def test_a_broken_calibrator_in_metadata_names_the_artifact(trained) -> None:  # type: ignore[no-untyped-def]
    from domainfm.errors import DataError

    artifact = trained[1].model_copy(deep=True)
    artifact.metadata["calibrator"] = {"kind": "vector", "scale": [1.0, 2.0]}
    with pytest.raises(DataError, match="metadata field 'calibrator'.*scale and a bias"):
        TextClassifierPredictor.load(artifact, "cpu")
    artifact.metadata["calibrator"] = {"kind": "isotonic"}
    with pytest.raises(DataError, match=str(artifact.path)):
        TextClassifierPredictor.load(artifact, "cpu")


needs_ort = pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime/onnx not installed (pip install 'domainfm[onnx]')")


@needs_ort
def test_int8_ort_keeps_probabilities_close_and_caches_its_export(trained, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from domainfm.engine import onnx_int8

    _, artifact = trained
    reference = TextClassifierPredictor.load(artifact, "cpu", precision="float32").predict_proba(TEXTS)
    predictor = TextClassifierPredictor.load(artifact, "cpu", precision="int8-ort")
    assert predictor.precision == "int8-ort"
    probs = predictor.predict_proba(TEXTS)
    assert probs.shape == reference.shape and np.allclose(probs.sum(1), 1.0)
    assert np.abs(probs - reference).max() < 0.1
    assert probs.argmax(1).tolist() == reference.argmax(1).tolist()
    exported = list((Path(artifact.path) / onnx_int8.ONNX_DIR).glob("model_int8-*.onnx"))
    assert len(exported) == 1
    if predictor.is_head:  # the embeddings stay unit vectors and the torch model stays reachable
        np.testing.assert_allclose(np.linalg.norm(predictor.features(TEXTS), axis=1), 1.0, rtol=1e-4)
    assert predictor.torch_model is not None and predictor.tokenizer is not None

    def no_export(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the cached export should have been reused")

    monkeypatch.setattr(onnx_int8, "export_int8", no_export)
    again = TextClassifierPredictor.load(artifact, "cpu", precision="int8-ort").predict_proba(TEXTS)
    np.testing.assert_allclose(again, probs, rtol=1e-5, atol=1e-6)


@needs_ort
def test_int8_ort_export_is_keyed_by_the_weights(tmp_path: Path, trained) -> None:  # type: ignore[no-untyped-def]
    import torch

    from domainfm.engine import onnx_int8

    _, artifact = trained
    model = TextClassifierPredictor.load(artifact, "cpu", precision="float32").torch_model
    before = onnx_int8.weights_fingerprint(model)
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    assert onnx_int8.weights_fingerprint(model) != before


def test_int8_ort_falls_back_where_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import domainfm.engine.onnx_int8 as onnx_int8
    import domainfm.engine.precision as precision

    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: True)
    assert precision_for_device("int8-ort", "cuda:0") == "bfloat16"  # ONNX Runtime's CPU build only
    monkeypatch.setattr(onnx_int8, "onnxruntime_available", lambda: False)
    assert precision_for_device("int8-ort", "cpu") == "float32"
    with pytest.raises(ConfigError, match="onnxruntime"):
        onnx_int8.OrtSession("missing.onnx", ["input_ids"])


@needs_ort
def test_choose_inference_dtype_refuses_a_precision_that_moves_labels(trained, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import domainfm.engine.precision as precision

    _, artifact = trained
    valid = {"text": TEXTS, "label": [artifact.label_names[0]] * len(TEXTS)}
    predictor = TextClassifierPredictor.load(artifact, "cpu", precision="float32")
    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: False)
    fake_seconds = {"float32": 1.0, "int8-ort": 0.1}
    monkeypatch.setattr(precision, "_alternating_seconds",
                        lambda timed, texts: {name: fake_seconds[name] for name in timed})
    assert choose_inference_dtype(predictor, valid)["inference_dtype"] == "int8-ort"
    # no label may change and accuracy must not drop at all: a precision that fails either is never timed
    chosen = choose_inference_dtype(predictor, valid, max_label_changes=-1.0)
    assert chosen["inference_dtype"] == "float32"
    assert set(chosen["validation_seconds_by_dtype"]) == {"float32"}
    # a plugin's other outputs (e.g. topics from the embeddings) are held to the same rule as the labels
    steady = choose_inference_dtype(predictor, valid, other_outputs=lambda trial, texts: ["same"] * len(texts))
    assert steady["inference_dtype"] == "int8-ort" and steady["validation_other_output_changes_by_dtype"]["int8-ort"] == 0.0
    moving = choose_inference_dtype(predictor, valid, other_outputs=lambda trial, texts: [trial.precision] * len(texts))
    assert moving["inference_dtype"] == "float32"
    assert moving["validation_other_output_changes_by_dtype"]["int8-ort"] == 1.0


def test_the_accuracy_tolerance_is_at_least_one_validation_example(monkeypatch: pytest.MonkeyPatch) -> None:
    import copy

    import numpy as np

    import domainfm.engine.precision as precision

    class Fake:
        labels = ["a", "b"]
        device = "cpu"

        def __init__(self, flips: int) -> None:
            self.precision, self.flips = "float32", flips

        def set_precision(self, dtype: str) -> None:
            self.precision = dtype

        def predict_logits(self, texts: list[str]) -> np.ndarray:
            logits = np.tile([1.0, 0.0], (len(texts), 1))
            if self.precision != "float32":
                logits[: self.flips] = [0.0, 1.0]  # the reduced precision turns `flips` right answers wrong
            return logits

    monkeypatch.setattr(precision, "_candidates", lambda device: ["bfloat16"])
    monkeypatch.setattr(precision, "_copy_predictor", copy.copy)
    monkeypatch.setattr(precision, "_alternating_seconds", lambda timed, texts: {k: 0.5 if k == "bfloat16" else 1.0 for k in timed})
    valid = {"text": [str(i) for i in range(100)], "label": ["a"] * 100}
    # one flip in 100 is a 1-point drop: more than 0.2 points, but no finer drop can be seen on 100 examples
    one = precision.choose_inference_dtype(Fake(1), valid, tolerance=0.002, max_label_changes=1.0)  # type: ignore[arg-type]
    assert one["inference_dtype"] == "bfloat16" and one["validation_accuracy_tolerance"] == 0.01
    two = precision.choose_inference_dtype(Fake(2), valid, tolerance=0.002, max_label_changes=1.0)  # type: ignore[arg-type]
    assert two["inference_dtype"] == "float32" and two["validation_accuracy_by_dtype"]["bfloat16"] == 0.98


def test_alternating_seconds_takes_turns_and_keeps_each_best_round(monkeypatch: pytest.MonkeyPatch) -> None:
    from domainfm.engine.precision import _alternating_seconds

    calls: list[str] = []
    # per predictor, the seconds each successive timed call "takes" (after its warm-up call)
    clock = {"a": iter([0.0, 5.0, 1.0, 3.0]), "b": iter([0.0, 2.0, 4.0, 0.5])}

    class Fake:
        def __init__(self, name: str) -> None:
            self.name = name

        def predict_logits(self, texts: list[str]) -> None:
            calls.append(self.name)
            fake_now[0] += next(clock[self.name])

    fake_now = [0.0]
    import domainfm.benchmarking as benchmarking  # the clock of the turn-taking it is built on

    monkeypatch.setattr(benchmarking.time, "perf_counter", lambda: fake_now[0])
    best = _alternating_seconds({"a": Fake("a"), "b": Fake("b")}, ["x"], rounds=3)  # type: ignore[dict-item]
    assert calls == ["a", "b", "a", "b", "a", "b", "a", "b"]  # warm-ups, then turns within every round
    assert best == {"a": 1.0, "b": 0.5}


def test_training_autocast_by_setting_and_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import domainfm.engine.precision as precision
    from domainfm.engine.precision import training_autocast

    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: True)
    assert training_autocast("cpu", "auto") is None  # CPU training stays float32 unless asked
    assert training_autocast("cpu", "bf16") == "bfloat16"
    assert training_autocast("cuda:0", "auto") == "bfloat16"
    assert training_autocast("cuda:0", "fp32") is None
    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: False)
    assert training_autocast("cpu", "bf16") is None  # no hardware bf16: float32, not a slow emulation
    assert training_autocast("cuda:0", "auto") == "float16"  # a GPU without bf16
    assert training_autocast("cuda:0", "bf16") is None
    with pytest.raises(ConfigError, match="train.mixed_precision: 'fp8'"):
        training_autocast("cpu", "fp8")


def test_bf16_without_hardware_support_warns_once_per_device(monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    import domainfm.engine.precision as precision

    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: False)
    monkeypatch.setattr(precision, "_warned_no_bf16", set())
    with caplog.at_level("WARNING", logger="domainfm.engine.precision"):
        for _ in range(3):  # e.g. three soup seeds and the artifact's metadata
            assert precision.training_autocast("cpu", "bf16") is None
    assert sum("no fast bf16 matmuls" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("dtype", [None, "bfloat16", "float16"])
def test_training_amp_takes_clipped_steps_at_each_precision(dtype: str | None) -> None:
    import torch

    from domainfm.engine.precision import TrainingAmp

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    before = model.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    amp = TrainingAmp("cpu", dtype)
    assert amp.scaler.is_enabled() == (dtype == "float16")  # bfloat16 and float32 need no loss scaling
    for _ in range(30):  # float16: the scaler skips the steps whose scaled gradients overflow, then scales down
        optimizer.zero_grad()
        with amp.autocast():
            out = model(torch.randn(8, 4) * 2)
            assert out.dtype == (getattr(torch, dtype) if dtype else torch.float32)
            loss = out.float().pow(2).mean()
        amp.backward_step(loss, optimizer, clip_parameters=model.parameters(), max_norm=0.5)
        if not torch.equal(model.weight, before):
            break
    assert torch.isfinite(model.weight).all() and not torch.equal(model.weight, before)
    grad_norm = torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()
    assert grad_norm <= 0.5 + 1e-4  # the step that was taken used clipped, unscaled gradients
