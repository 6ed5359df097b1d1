"""Training and inference for the finance_sentiment domain on the shared engine (imported only inside hooks).

Training = the plugin's recipe in :mod:`finetune` for full and LoRA (``options.recipe=soup``, the default:
layer-wise LR decay, optional gradual unfreezing, early stopping and a greedy soup of seeds on validation) or the
engine's ``fine_tune_text_classifier`` (``options.recipe=engine``, and always for ``head``), temperature-
calibrated on validation + an abstention threshold chosen on validation + a topic model saved under
``artifact/topics``. The predictor adds the topic to every prediction (``extra["topic"]``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from domainfm.config import DEFAULT_BASE_MODEL
from domainfm.engine.text_classifier import (
    KIND_HF,
    TextClassifierPredictor,
    choose_abstain_threshold,
    fine_tune_text_classifier,
)
from domainfm.errors import ConfigError
from domainfm.types import Artifact, DataBundle, Prediction, RunContext

from domainfm_finance_sentiment import DOMAIN, LABELS
from domainfm_finance_sentiment.topics import TopicModel, fit_topics

log = logging.getLogger(__name__)


def _encoder(base: str, device: str, max_length: int | None) -> Any:
    from domainfm.engine.encoder import TextEncoder

    return TextEncoder(base, device=device, max_length=max_length)


def train(ctx: RunContext, data: DataBundle) -> Artifact:
    """Fine-tune the sentiment classifier, pick the abstention threshold and fit the topic model."""
    recipe = str(ctx.option("recipe", "soup"))
    if recipe not in ("soup", "engine"):
        raise ConfigError(f"options.recipe: {recipe!r} is not one of soup, engine")
    if ctx.config.model.mode in ("full", "lora") and recipe == "soup":
        from domainfm_finance_sentiment.finetune import fine_tune

        artifact = fine_tune(ctx, data, list(LABELS))
    else:
        artifact = fine_tune_text_classifier(ctx, data, label_names=list(LABELS))
    valid = data.tables.get("validation")
    predictor = TextClassifierPredictor.load(artifact, ctx.device)
    if valid is not None and len(valid) and artifact.kind == KIND_HF:
        artifact.metadata.update(choose_inference_dtype(predictor, valid, str(ctx.option("inference_dtype", "auto"))))
        set_inference_dtype(predictor, artifact.metadata["inference_dtype"])
    if valid is not None and len(valid):
        artifact.metadata["abstain_threshold"] = choose_abstain_threshold(
            predictor, valid, target_precision=float(ctx.option("target_precision", 0.9))
        )
    if str(ctx.option("topics", "auto")) != "off":
        train_table = data.split("train")
        texts = list(train_table["text"])
        topics = list(train_table["topic"]) if "topic" in train_table.column_names else None
        base = ctx.config.model.base or DEFAULT_BASE_MODEL
        encoder = _encoder(base, ctx.device, ctx.config.model.max_length)
        model = fit_topics(
            texts,
            encoder.encode(texts, batch_size=ctx.config.train.eval_batch_size),
            topics,
            n_topics=ctx.option("n_topics"),
            pinned_names=ctx.option("topic_names"),
            seed=ctx.config.train.seed,
        )
        model.save(artifact.path)
        artifact.metadata["topics"] = {"kind": model.kind, "names": model.names, "base_model": base}
    artifact.save_metadata()
    return artifact


def bf16_is_fast(device: str) -> bool:
    """bf16 matmuls have hardware support: a CUDA device with bf16, or a CPU with AVX512-BF16 / AMX."""
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def set_inference_dtype(predictor: TextClassifierPredictor, dtype: str) -> None:
    """Convert the loaded classifier in place: ``float32`` (as trained), ``bfloat16``, or ``int8`` (dynamic
    quantisation of the Linear layers, CPU only). Head-only artifacts are left as they are."""
    import torch

    model = getattr(predictor, "_model", None)
    if model is None or predictor.artifact.kind != KIND_HF or dtype == "float32":
        return
    if dtype == "bfloat16":
        predictor._model = model.to(torch.bfloat16)
    elif dtype == "int8":
        if predictor.device != "cpu":
            raise ConfigError("inference_dtype=int8 (dynamic quantisation) runs on the CPU only")
        predictor._model = torch.ao.quantization.quantize_dynamic(model.float(), {torch.nn.Linear}, dtype=torch.qint8)
    else:
        raise ConfigError(f"inference_dtype: {dtype!r} is not one of auto, float32, bfloat16, int8")


def choose_inference_dtype(predictor: TextClassifierPredictor, valid: Any, wanted: str = "auto",
                           tolerance: float = 0.002) -> dict[str, Any]:
    """The inference precision, chosen on validation only.

    ``auto``: bfloat16 where the hardware runs it fast and validation accuracy stays within ``tolerance`` of
    float32 (and the predicted labels change for at most 1% of sentences), else float32. int8 is never chosen
    automatically (dynamic quantisation cost ~2.7 points of validation accuracy on PhraseBank); ask for it
    explicitly. Returns metadata: the choice and the validation accuracy of each precision tried."""
    import copy

    texts = [str(t) for t in valid["text"]]
    y = np.asarray([predictor.labels.index(str(v)) for v in valid["label"]])
    fp32 = predictor.predict_logits(texts).argmax(1)
    out: dict[str, Any] = {"validation_accuracy_by_dtype": {"float32": float((fp32 == y).mean())}}
    if wanted != "auto":
        out["inference_dtype"] = wanted
        return out
    choice = "float32"
    if bf16_is_fast(predictor.device):
        trial = copy.copy(predictor)
        trial._model = copy.deepcopy(predictor._model)
        set_inference_dtype(trial, "bfloat16")
        bf = trial.predict_logits(texts).argmax(1)
        acc = float((bf == y).mean())
        out["validation_accuracy_by_dtype"]["bfloat16"] = acc
        out["validation_label_changes_bf16"] = float((bf != fp32).mean())
        if acc >= float((fp32 == y).mean()) - tolerance and (bf != fp32).mean() <= 0.01:
            choice = "bfloat16"
    out["inference_dtype"] = choice
    return out


class FinancePredictor:
    """Calibrated sentiment probabilities plus a topic for each text."""

    def __init__(self, inner: TextClassifierPredictor, topics: TopicModel | None, topic_base: str | None) -> None:
        self.inner = inner
        self.domain = DOMAIN
        self.device = inner.device
        self.labels = inner.labels
        self.topics = topics
        self._topic_base = topic_base
        self._encoder: Any = None

    @classmethod
    def load(cls, artifact: Artifact, device: str = "cpu") -> FinancePredictor:
        inner = TextClassifierPredictor.load(artifact, device)
        dtype = str(artifact.metadata.get("inference_dtype", "float32"))
        if dtype == "bfloat16" and not bf16_is_fast(device):
            dtype = "float32"  # chosen where bf16 was fast; elsewhere it would be slower than float32
        set_inference_dtype(inner, dtype)
        inner.artifact.metadata["inference_dtype_used"] = dtype
        topics = TopicModel.load(artifact.path)
        base = (artifact.metadata.get("topics") or {}).get("base_model") or artifact.base_model
        return cls(inner, topics, base)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Temperature-calibrated probabilities in LABELS order."""
        return self.inner.predict_proba(list(texts))

    def assign_topics(self, texts: Sequence[str]) -> list[str] | None:
        if self.topics is None:
            return None
        if self._encoder is None:
            self._encoder = _encoder(self._topic_base or DEFAULT_BASE_MODEL, self.device,
                                     int(self.inner.artifact.metadata.get("max_length", 128)))
        return self.topics.assign(self._encoder.encode(list(texts)))

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        predictions = self.inner.predict(records)
        missing = [i for i, r in enumerate(records) if not r.get("topic")]
        assigned = self.assign_topics([str(records[i]["text"]) for i in missing]) if missing else None
        found = dict(zip(missing, assigned or [], strict=False))
        for i, (record, pred) in enumerate(zip(records, predictions, strict=True)):
            topic = record.get("topic") or found.get(i)
            if topic is not None:
                pred.extra["topic"] = str(topic)
                pred.extra["topic_source"] = "given" if record.get("topic") else (self.topics.kind if self.topics else None)
        return predictions
