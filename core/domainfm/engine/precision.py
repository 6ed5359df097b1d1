"""Inference precision for text classifiers: float32, bfloat16, int8 or int8-ort, chosen on validation data only.

Measured on the 2-core AVX512-BF16/VNNI benchmark machine (MiniLM-L6, 64 short sentences): converting the
weights to bfloat16 halves the encoder's time (263 -> 141 ms) with cosine >= 0.998 to the float32 embeddings;
torch's int8 dynamic quantisation (per-tensor) is faster still (117 ms) but moves embeddings much more (cosine
down to 0.92) and cost ~2.7 points of PhraseBank validation accuracy, so it is never chosen automatically.
ONNX Runtime's per-channel int8 (``int8-ort``, :mod:`domainfm.engine.onnx_int8`) keeps cosine 0.99 and runs
~1.5x faster than bfloat16; ``auto`` picks the fastest precision, timed on this machine, whose validation
accuracy and labels stay within tolerance of float32.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from domainfm.errors import ConfigError

if TYPE_CHECKING:
    from domainfm.engine.classifier_predictor import TextClassifierPredictor

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "int8", "int8-ort")
_warned_no_bf16: set[str] = set()  # devices whose bf16 fallback was already logged


def bf16_is_fast(device: str) -> bool:
    """bf16 matmuls have hardware support: a CUDA device with bf16, or a CPU with AVX512-BF16 / AMX."""
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def training_autocast(device: str, setting: str = "auto") -> str | None:
    """The autocast dtype for training on ``device`` under ``train.mixed_precision`` (``"bfloat16"``,
    ``"float16"`` or None for float32).

    ``auto`` keeps CPU training in float32 (what every figure before the setting was measured with) and uses
    bf16, else fp16, on a CUDA GPU; ``bf16`` also autocasts on a CPU whose matmuls support bf16 in hardware
    (MiniLM-L6, batch 32 x 38 tokens, one AdamW step on the 2-core AVX512-BF16 machine: 0.47 s vs 0.67 s).
    """
    if setting not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"train.mixed_precision: {setting!r} is not one of auto, bf16, fp32")
    if setting == "fp32":
        return None
    on_gpu = str(device).startswith("cuda")
    if setting == "auto" and not on_gpu:
        return None
    if bf16_is_fast(device):
        return "bfloat16"
    if setting == "bf16":
        if device not in _warned_no_bf16:  # once per device, not once per seed or stage
            _warned_no_bf16.add(device)
            log.warning("train.mixed_precision=bf16: %s has no fast bf16 matmuls; training in float32", device)
        return None
    return "float16"


class TrainingAmp:
    """Autocast and gradient scaling for a hand-written training loop, from a :func:`training_autocast` dtype.

    ``with amp.autocast(): loss = ...`` then ``amp.backward_step(loss, optimizer)``; the scaler is only enabled
    for float16 (bfloat16 and float32 need none), so the same loop runs unchanged at every precision.
    """

    def __init__(self, device: str, dtype: str | None) -> None:
        import torch

        self.dtype = dtype
        self.device_type = str(device).split(":")[0]
        self._torch_dtype = getattr(torch, dtype) if dtype else torch.float32
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=dtype == "float16")

    def autocast(self) -> Any:
        import torch

        return torch.autocast(self.device_type, dtype=self._torch_dtype, enabled=self.dtype is not None)

    def backward_step(self, loss: Any, optimizer: Any, clip_parameters: Any = None, max_norm: float = 1.0) -> None:
        """Backward pass and optimiser step (gradients unscaled first, then clipped to ``max_norm`` when
        ``clip_parameters`` is given)."""
        import torch

        self.scaler.scale(loss).backward()
        if clip_parameters is not None:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(clip_parameters, max_norm)
        self.scaler.step(optimizer)
        self.scaler.update()


def precision_for_device(dtype: str, device: str) -> str:
    """The precision to run an artifact at on ``device``: a bf16 choice made where bf16 was fast falls back to
    float32 where it is not (there it would be slower than float32)."""
    if dtype not in DTYPES:
        raise ConfigError(f"inference_dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype == "bfloat16" and not bf16_is_fast(device):
        return "float32"
    if dtype == "int8-ort":
        from domainfm.engine.onnx_int8 import onnxruntime_available

        if not str(device).startswith("cpu"):
            return "bfloat16" if bf16_is_fast(device) else "float32"
        if not onnxruntime_available():
            log.warning("the artifact asks for int8-ort but onnxruntime is not installed; running float32 "
                        "(pip install 'domainfm[onnx]')")
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
    if dtype == "int8-ort":
        raise ConfigError("int8-ort is not a torch module conversion: use TextClassifierPredictor.set_precision")
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
    timing_texts: int = 256,
    other_outputs: Callable[[TextClassifierPredictor, list[str]], Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """The inference precision for ``predictor``, chosen on the validation table ``valid`` only.

    ``auto``: among float32 and the candidates this machine can run (bfloat16 where the hardware runs it fast,
    int8-ort on a CPU with onnxruntime installed), those whose validation accuracy stays within ``tolerance``
    (at least one validation example's worth) of float32 and that change at most ``max_label_changes`` of the predicted labels are timed on up to
    ``timing_texts`` validation texts, and the fastest wins. ``other_outputs`` lets a plugin hold its other
    outputs computed from the model to the same rule (e.g. topics assigned from the classifier's embeddings): a
    function of (predictor, validation texts) returning one discrete value per text, of which at most
    ``max_label_changes`` may change either. Any other ``wanted`` is taken as given. Returns artifact metadata:
    ``inference_dtype``, and each candidate's validation accuracy, label (and other-output) changes and seconds.
    The predictor itself is left at its current precision.
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
    if not len(texts):
        out["inference_dtype"] = "float32"
        return out
    sample = texts[:timing_texts]
    timed: dict[str, TextClassifierPredictor] = {predictor.precision: predictor}
    changes_by_dtype: dict[str, float] = {}
    other_changes_by_dtype: dict[str, float] = {}
    reference_other = list(other_outputs(predictor, texts)) if other_outputs is not None else None
    # a drop smaller than one validation example cannot be seen: the tolerance is at least one example's worth
    # (at 483 examples one flip is 0.207 points, so a 0.2-point tolerance had meant "no flip at all")
    allowed_drop = max(tolerance, 1.0 / len(y)) if len(y) else tolerance
    out["validation_accuracy_tolerance"] = round(allowed_drop, 6)
    for dtype in _candidates(predictor.device):
        trial = _copy_predictor(predictor)
        trial.set_precision(dtype)
        labels = trial.predict_logits(texts).argmax(1)
        accuracy = float((labels == y).mean())
        changes = float((labels != reference).mean())
        out["validation_accuracy_by_dtype"][dtype] = accuracy
        changes_by_dtype[dtype] = changes
        other_changes = 0.0
        if other_outputs is not None and reference_other is not None:
            other = list(other_outputs(trial, texts))
            other_changes = float(np.mean([a != b for a, b in zip(other, reference_other, strict=True)]))
            other_changes_by_dtype[dtype] = other_changes
        if accuracy >= reference_accuracy - allowed_drop - 1e-12 and changes <= max_label_changes and other_changes <= max_label_changes:
            timed[dtype] = trial
    seconds = _alternating_seconds(timed, sample)
    if "bfloat16" in changes_by_dtype:
        out["validation_label_changes_bf16"] = changes_by_dtype["bfloat16"]  # the key earlier artifacts carry
    out["validation_label_changes_by_dtype"] = changes_by_dtype
    if other_outputs is not None:
        out["validation_other_output_changes_by_dtype"] = other_changes_by_dtype
    out["validation_seconds_by_dtype"] = {k: round(v, 4) for k, v in seconds.items()}
    out["inference_dtype"] = min(seconds, key=seconds.__getitem__)
    return out


def _candidates(device: str) -> list[str]:
    found = ["bfloat16"] if bf16_is_fast(device) else []
    if str(device).startswith("cpu"):
        from domainfm.engine.onnx_int8 import onnxruntime_available

        if onnxruntime_available():
            found.append("int8-ort")
    return found


def _alternating_seconds(predictors: dict[str, TextClassifierPredictor], texts: list[str],
                         rounds: int = 3) -> dict[str, float]:
    """Best-of-``rounds`` wall time of each predictor on ``texts``, after one warm-up pass each, the candidates
    taking turns within every round (:func:`domainfm.benchmarking.alternating_seconds`)."""
    from domainfm.benchmarking import alternating_seconds

    for predictor in predictors.values():
        predictor.predict_logits(texts[:8])
    runs = {name: (lambda p=predictor: p.predict_logits(texts)) for name, predictor in predictors.items()}
    return {name: min(seconds) for name, seconds in alternating_seconds(runs, rounds).items()}


def _copy_predictor(predictor: TextClassifierPredictor) -> TextClassifierPredictor:
    trial = copy.copy(predictor)
    trial._model = copy.deepcopy(predictor._model)
    trial._ort = None
    return trial
