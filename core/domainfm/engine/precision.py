"""Inference precision for text classifiers: float32, bfloat16 or int8, chosen on validation data only.

Measured on the 2-core AVX512-BF16 benchmark machine (MiniLM-L6, 64 short sentences): converting the weights
to bfloat16 halves the encoder's time (263 -> 141 ms) with cosine >= 0.998 to the float32 embeddings; int8
dynamic quantisation is faster still (117 ms) but moves embeddings much more (cosine down to 0.92) and cost
~2.7 points of PhraseBank validation accuracy, so it is never chosen automatically.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from domainfm.errors import ConfigError

if TYPE_CHECKING:
    from domainfm.engine.text_classifier import TextClassifierPredictor

DTYPES = ("float32", "bfloat16", "int8")


def bf16_is_fast(device: str) -> bool:
    """bf16 matmuls have hardware support: a CUDA device with bf16, or a CPU with AVX512-BF16 / AMX."""
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def precision_for_device(dtype: str, device: str) -> str:
    """The precision to run an artifact at on ``device``: a bf16 choice made where bf16 was fast falls back to
    float32 where it is not (there it would be slower than float32)."""
    if dtype not in DTYPES:
        raise ConfigError(f"inference_dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype == "bfloat16" and not bf16_is_fast(device):
        return "float32"
    return dtype


def convert_module(module: Any, dtype: str, device: str) -> Any:
    """``module`` converted to ``dtype`` (in place for float casts; int8 returns a quantised copy)."""
    if dtype not in DTYPES:
        raise ConfigError(f"inference_dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    import torch

    if dtype == "float32":
        return module.to(torch.float32)
    if dtype == "bfloat16":
        return module.to(torch.bfloat16)
    if not str(device).startswith("cpu"):
        raise ConfigError("inference_dtype=int8 (dynamic quantisation) runs on the CPU only")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch 2.13 flags quantized tensors as deprecated
        return torch.ao.quantization.quantize_dynamic(module.float(), {torch.nn.Linear}, dtype=torch.qint8)


def choose_inference_dtype(
    predictor: TextClassifierPredictor,
    valid: Any,
    wanted: str = "auto",
    *,
    tolerance: float = 0.002,
    max_label_changes: float = 0.01,
    text_column: str = "text",
    label_column: str = "label",
) -> dict[str, Any]:
    """The inference precision for ``predictor``, chosen on the validation table ``valid`` only.

    ``auto``: bfloat16 where the hardware runs it fast, validation accuracy stays within ``tolerance`` of
    float32 and at most ``max_label_changes`` of the predicted labels change; else float32. Any other value is
    taken as given. Returns artifact metadata: ``inference_dtype`` and the validation accuracy of each
    precision tried. The predictor itself is left at its current precision.
    """
    if wanted != "auto" and wanted not in DTYPES:
        raise ConfigError(f"inference_dtype: {wanted!r} is not one of auto, {', '.join(DTYPES)}")
    texts = [str(t) for t in valid[text_column]]
    y = np.asarray([predictor.labels.index(str(v)) for v in valid[label_column]])
    reference = predictor.predict_logits(texts).argmax(1)
    reference_accuracy = float((reference == y).mean()) if len(y) else 0.0
    out: dict[str, Any] = {"validation_accuracy_by_dtype": {predictor.precision: reference_accuracy}}
    if wanted != "auto":
        out["inference_dtype"] = wanted
        return out
    choice = "float32"
    if len(texts) and bf16_is_fast(predictor.device):
        trial = _copy_predictor(predictor)
        trial.set_precision("bfloat16")
        bf = trial.predict_logits(texts).argmax(1)
        accuracy = float((bf == y).mean())
        changes = float((bf != reference).mean())
        out["validation_accuracy_by_dtype"]["bfloat16"] = accuracy
        out["validation_label_changes_bf16"] = changes
        if accuracy >= reference_accuracy - tolerance and changes <= max_label_changes:
            choice = "bfloat16"
    out["inference_dtype"] = choice
    return out


def _copy_predictor(predictor: TextClassifierPredictor) -> TextClassifierPredictor:
    trial = copy.copy(predictor)
    trial._model = copy.deepcopy(predictor._model)
    return trial
