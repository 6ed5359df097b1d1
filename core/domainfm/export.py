"""``domainfm export RUN --format hf|onnx``: a trained model as a folder other tools load, calibration included.

``hf``: a Hugging Face model directory (``save_pretrained`` layout, tokenizer, model card) that
``transformers.pipeline("text-classification", model=DIR)`` loads and that gives the confidences domainfm gives.
A linear calibrator (temperature ``softmax(z / T)``, vector scaling ``softmax(a * z + b)``, none) is baked into the
final linear layer (for a temperature: weight and bias divided by T), so the plain pipeline applies it. A
top-label isotonic calibrator is not linear: the folder then carries :data:`PIPELINE_FILE`, a pipeline class that
applies it after the softmax, registered in ``config.json`` (``pipeline(model=DIR, trust_remote_code=True)``) and
importable by hand (``pipeline_class=DomainfmCalibratedPipeline``).

``onnx``: the same (baked) classifier exported to ONNX and quantised to int8 (:mod:`domainfm.engine.onnx_int8`), with
its tokenizer, labels and calibration in ``domainfm_calibration.json``; ``softmax(output)`` gives the calibrated
probabilities of a linear calibrator (the isotonic map, when there is one, is described in the JSON).

Only ``hf-sequence-classification`` artifacts (``full``, ``lora``, ``distill``) are exported; an encoder with a
separate linear head (``head``, ``lpft``, ``contrastive``) or an ensemble is refused in one line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np

from domainfm.errors import ConfigError, DataError
from domainfm.io import atomic_directory, atomic_write_json, atomic_write_text

Format = Literal["hf", "onnx"]
CALIBRATION_FILE = "domainfm_calibration.json"
PIPELINE_FILE = "domainfm_pipeline.py"
PIPELINE_CLASS = "DomainfmCalibratedPipeline"


def export_model(ref: str | Path, target: str | Path, fmt: Format, *, variant: str | None = None,
                 output_dir: str | Path = "runs") -> Path:
    """Export the model ``ref`` names (run, artifact or domain name) to ``target`` (created atomically; an existing
    folder is refused). Returns ``target``."""
    from domainfm.engine.calibration import Calibrator
    from domainfm.engine.classifier_predictor import KIND_HF
    from domainfm.run_layout import resolve_model

    layout = resolve_model(ref, variant=variant, output_dir=output_dir)
    artifact = layout.load_artifact()
    if artifact.kind != KIND_HF:
        raise ConfigError(f"{layout.artifact_dir}: a {artifact.kind!r} artifact (mode "
                          f"{artifact.metadata.get('mode', '?')}); export supports hf-sequence-classification models "
                          "(modes full, lora, distill)")
    if artifact.metadata.get("peft_adapter"):
        raise ConfigError(f"{layout.artifact_dir}: a model.mode={artifact.metadata.get('mode')} artifact keeps its "
                          "adapter apart from the base model; export supports merged models (full, lora, adalora, ia3, "
                          "distill)")
    target = Path(target)
    if target.exists():
        raise DataError(f"{target}: already exists; export writes a new folder")
    try:
        calibrator = Calibrator.from_metadata(artifact.metadata)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{layout.artifact_dir}: metadata field 'calibrator': {exc}") from None
    model, tokenizer = _load(layout.artifact_dir, int(artifact.metadata.get("max_length", 128)))
    baked = bake_calibration(model, calibrator)
    with atomic_directory(target) as tmp:
        if fmt == "hf":
            _write_hf(tmp, model, tokenizer, calibrator, baked)
        elif fmt == "onnx":
            _write_onnx(tmp, model, tokenizer)
        else:
            raise ConfigError(f"--format {fmt!r}: expected hf or onnx")
        atomic_write_json(tmp / CALIBRATION_FILE, {
            "labels": list(artifact.label_names or []),
            "calibrator": calibrator.to_metadata(),
            "baked_into_weights": baked,
            "abstain_threshold": artifact.metadata.get("abstain_threshold"),
            "max_length": artifact.metadata.get("max_length", 128),
            "source_artifact": str(layout.artifact_dir),
            "format": fmt,
        })
        atomic_write_text(tmp / "README.md", _card(layout, fmt, calibrator, baked))
    return target


def _load(artifact_dir: Path, max_length: int) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(artifact_dir))
    tokenizer.model_max_length = max_length  # the pipeline truncates where domainfm does
    model = AutoModelForSequenceClassification.from_pretrained(str(artifact_dir), use_safetensors=True)
    return model.float().eval(), tokenizer


def output_layer(model: Any) -> Any:
    """The linear layer that produces the logits: the last ``nn.Linear`` with one output per label."""
    import torch

    n = int(model.config.num_labels)
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == n]
    if not layers:
        raise ConfigError(f"{type(model).__name__}: no linear layer with {n} outputs to bake the calibration into")
    return layers[-1]


def bake_calibration(model: Any, calibrator: Any) -> bool:
    """Fold a linear calibrator into the output layer (True), or leave the model as it is (False: isotonic)."""
    import torch

    if calibrator.kind == "none":
        return True
    if calibrator.kind not in ("temperature", "vector"):
        return False
    layer = output_layer(model)
    with torch.no_grad():
        if layer.bias is None:  # a vector calibrator's bias needs one
            layer.bias = torch.nn.Parameter(torch.zeros(layer.out_features, dtype=layer.weight.dtype))
        if calibrator.kind == "temperature":
            layer.weight.div_(float(calibrator.temperature))
            layer.bias.div_(float(calibrator.temperature))
        else:
            scale = torch.tensor(calibrator.scale, dtype=layer.weight.dtype)
            shift = torch.tensor(calibrator.bias, dtype=layer.weight.dtype)
            layer.weight.mul_(scale[:, None])
            layer.bias.mul_(scale).add_(shift)
    return True


def _write_hf(folder: Path, model: Any, tokenizer: Any, calibrator: Any, baked: bool) -> None:
    if not baked:
        shutil.copyfile(Path(__file__).with_name("export_pipeline.py"), folder / PIPELINE_FILE)
        model.config.custom_pipelines = {"text-classification": {
            "impl": f"{Path(PIPELINE_FILE).stem}.{PIPELINE_CLASS}", "pt": ["AutoModelForSequenceClassification"],
            "tf": [], "type": "text"}}
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))


def _write_onnx(folder: Path, model: Any, tokenizer: Any) -> None:
    from domainfm.engine import onnx_int8

    if not onnx_int8.onnxruntime_available():
        raise ConfigError("--format onnx needs onnxruntime and onnx: pip install 'domainfm[onnx]'")
    onnx_int8.export_int8(model, tokenizer, folder / onnx_int8.INT8_FILE, sentence_encoder=False)
    tokenizer.save_pretrained(str(folder))
    model.config.save_pretrained(str(folder))  # labels (id2label) beside the graph


def onnx_probabilities(folder: Path, texts: list[str]) -> np.ndarray:
    """Calibrated probabilities from an ``--format onnx`` export (ONNX Runtime and the saved tokenizer only)."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    from domainfm.engine.calibration import Calibrator

    spec = json.loads((folder / CALIBRATION_FILE).read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    session = ort.InferenceSession(str(folder / "model_int8.onnx"), providers=["CPUExecutionProvider"])
    wanted = [i.name for i in session.get_inputs()]
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=int(spec["max_length"]), return_tensors="np")
    logits = session.run(None, {name: encoded[name].astype(np.int64) for name in wanted})[0]
    calibrator = Calibrator.from_metadata({"calibrator": spec["calibrator"]})
    if spec["baked_into_weights"]:
        return Calibrator("none").apply(logits)
    return calibrator.apply(logits)


def _card(layout: Any, fmt: str, calibrator: Any, baked: bool) -> str:
    from domainfm.model_card import render_model_card

    card = render_model_card(layout.artifact_dir, layout.run_dir, layout.variant)
    if fmt == "hf":
        how = ("```python\nfrom transformers import pipeline\n"
               + ("clf = pipeline('text-classification', model='THIS_FOLDER')\n" if baked else
                  "clf = pipeline('text-classification', model='THIS_FOLDER', trust_remote_code=True)  # "
                  f"{PIPELINE_FILE}: {PIPELINE_CLASS}\n")
               + "clf(['some text'], top_k=None)   # calibrated probabilities of every label\n```\n")
        where = ("The calibration is baked into the classifier's final linear layer "
                 f"({_describe(calibrator)}), so any tool that takes the softmax of the logits gets domainfm's "
                 "confidences." if baked else
                 f"The {calibrator.kind} calibration is applied by `{PIPELINE_CLASS}` in `{PIPELINE_FILE}` after the "
                 "softmax; the weights give the uncalibrated logits.")
    else:
        how = ("```python\nfrom domainfm.export import onnx_probabilities\n"
               "onnx_probabilities(Path('THIS_FOLDER'), ['some text'])\n```\n"
               "or with ONNX Runtime alone: tokenize with the saved tokenizer (truncation at max_length), run "
               "`model_int8.onnx`, take the softmax of its output.\n")
        where = (f"int8 weights (dynamic quantisation, per channel); the calibration ({_describe(calibrator)}) is "
                 + ("baked into the output layer: softmax(output) is calibrated." if baked else
                    f"described in `{CALIBRATION_FILE}` and applied after the softmax."))
    meta = layout.load_artifact().metadata
    abstain = "" if meta.get("abstain_threshold") is None else (
        f"\ndomainfm abstains below confidence {meta['abstain_threshold']:.4g} "
        f"(in `{CALIBRATION_FILE}`); a plain pipeline always answers.\n")
    served = str(meta.get("inference_dtype", "float32"))
    if fmt == "hf" and served != "float32":
        abstain += (f"\ndomainfm serves this model in {served} (chosen on validation); these float32 weights give "
                    "its float32 confidences, which differ from the served ones by that precision's rounding.\n")
    return card + f"\n## This export ({fmt})\n\n{where}\n{abstain}\n{how}"


def _describe(calibrator: Any) -> str:
    if calibrator.kind == "temperature":
        return f"temperature T = {calibrator.temperature:.6g}: weight and bias divided by T"
    if calibrator.kind == "vector":
        return "vector scaling: each label's weight row and bias scaled, plus its offset"
    return calibrator.kind
