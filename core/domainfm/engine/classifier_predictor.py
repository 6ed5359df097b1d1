"""A loaded text classifier (either artifact kind): calibrated probabilities, labels and abstention.

The artifact kinds: ``hf-sequence-classification`` (a Hugging Face model saved with ``save_pretrained``:
full or LoRA fine-tuning), ``embedding-linear-head`` (a sentence encoder with a linear head: head-only, or
LP-FT / contrastive with its own fine-tuned encoder) and ``text-classifier-ensemble`` (members of those kinds,
:mod:`domainfm.engine.ensemble`). :mod:`domainfm.engine.text_classifier` trains and evaluates them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from domainfm.engine.calibration import Calibrator
from domainfm.engine.precision import precision_for_device
from domainfm.errors import ConfigError, DataError
from domainfm.models import resolve_model
from domainfm.types import Artifact, Prediction

KIND_HF = "hf-sequence-classification"
KIND_HEAD = "embedding-linear-head"
KIND_ENSEMBLE = "text-classifier-ensemble"  # members of either kind (domainfm.engine.ensemble)


def pair_features(encoder: Any, texts: list[str], pairs: list[str] | None, batch_size: int) -> np.ndarray:
    u = encoder.encode(texts, batch_size=batch_size)
    if pairs is None:
        return u
    v = encoder.encode(pairs, batch_size=batch_size)
    return np.hstack([u, v, np.abs(u - v), u * v]).astype(np.float32)


class TextClassifierPredictor:
    """A loaded text classifier: calibrated probabilities, labels and abstention for batches of texts."""

    def __init__(self, artifact: Artifact, device: str, model: Any, tokenizer: Any = None, head: Any = None) -> None:
        self.artifact = artifact
        self.domain = artifact.domain
        self.device = device
        self.labels = list(artifact.label_names or [])
        try:
            self.calibrator = Calibrator.from_metadata(artifact.metadata)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{artifact.path}: metadata field 'calibrator': {exc}") from exc
        self.temperature = self.calibrator.temperature
        self.threshold = artifact.metadata.get("abstain_threshold")
        self.max_length = int(artifact.metadata.get("max_length", 128))
        self.batch_size = 64
        self._model = model
        self._tokenizer = tokenizer
        self._head = head
        self._ort: Any = None  # the int8 ONNX Runtime graph that runs instead of the torch model (int8-ort)
        self.precision = "float32"

    @property
    def is_head(self) -> bool:
        """A sentence encoder with a linear head (``embedding-linear-head``: head-only, or LP-FT with its own
        fine-tuned encoder) rather than a sequence-classification model."""
        return self._head is not None

    @property
    def torch_model(self) -> Any:
        """The torch module that runs: the fine-tuned model, or the head kind's ``SentenceTransformer``."""
        return self._model.model if self.is_head else self._model

    @property
    def tokenizer(self) -> Any:
        return self.torch_model.tokenizer if self.is_head else self._tokenizer

    @property
    def head(self) -> dict[str, np.ndarray] | None:
        """The head kind's ``weight`` (labels x features) and ``bias``; None for fine-tuned models."""
        return self._head

    def set_precision(self, dtype: str) -> None:
        """Run the model in ``float32`` (as trained), ``bfloat16``, ``int8`` (torch dynamic quantisation of the
        Linear layers) or ``int8-ort`` (the model exported to ONNX and quantised per channel, run by ONNX
        Runtime; CPU only, cached in the artifact's ``onnx/`` folder). Converting the weights (not autocast) is
        what makes bf16 fast on a CPU."""
        from domainfm.engine.precision import convert_module

        if dtype == "int8-ort":
            from domainfm.engine import onnx_int8

            if not str(self.device).startswith("cpu"):
                raise ConfigError("inference_dtype=int8-ort (ONNX Runtime) runs on the CPU only")
            model = self.torch_model
            path = onnx_int8.cached_int8(model, self.tokenizer, Path(self.artifact.path) / onnx_int8.ONNX_DIR, sentence_encoder=self.is_head)
            self._ort = onnx_int8.OrtSentenceEncoder(self._model, path) if self.is_head else onnx_int8.OrtSequenceClassifier(model, self.tokenizer, path)
            self.precision = dtype
            return
        converted = convert_module(self.torch_model, dtype, self.device)
        if self.is_head:
            self._model.model = converted
        else:
            self._model = converted
        self._ort = None
        self.precision = dtype

    @classmethod
    def load(cls, artifact: Artifact | str | Path, device: str = "cpu", precision: str | None = None) -> TextClassifierPredictor:
        """Load an artifact of either kind on ``device``, at ``precision`` (default: the artifact's
        ``inference_dtype`` chosen on validation, float32 where that is bfloat16 but bf16 is slow here)."""
        if not isinstance(artifact, Artifact):
            artifact = Artifact.load(artifact)
        if artifact.kind == KIND_ENSEMBLE:
            from domainfm.engine.ensemble import EnsemblePredictor

            return EnsemblePredictor.load_members(artifact, device, precision)
        if artifact.kind == KIND_HEAD:
            from safetensors.numpy import load_file

            from domainfm.engine.encoder import TextEncoder

            own = artifact.metadata.get("encoder")  # LP-FT: the fine-tuned encoder lives in the artifact
            path = Path(artifact.path) / str(own) if own else resolve_model(artifact.base_model).path
            encoder = TextEncoder(str(path), device=device, max_length=artifact.metadata.get("max_length"))
            head = load_file(str(Path(artifact.path) / "head.safetensors"))
            predictor = cls(artifact, device, encoder, head=head)
        elif artifact.kind == KIND_HF:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(artifact.path))
            if artifact.metadata.get("peft_adapter"):  # prompt / P-tuning: base model + the artifact's adapter
                from domainfm.engine.peft_modes import load_adapter_model

                model = load_adapter_model(Path(artifact.path), resolve_model(artifact.base_model).path,
                                           list(artifact.label_names or []))
            else:
                model = AutoModelForSequenceClassification.from_pretrained(str(artifact.path), use_safetensors=True)
            model.to(device).eval()
            predictor = cls(artifact, device, model, tokenizer=tokenizer)
        else:
            raise DataError(f"{artifact.path}: unknown artifact kind {artifact.kind!r} for a text classifier")
        if precision is None:
            precision = precision_for_device(str(artifact.metadata.get("inference_dtype", "float32")), device)
        if precision != "float32":
            predictor.set_precision(precision)
        return predictor

    def predict_logits(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        """Uncalibrated logits, batches sorted by length so that padding stays small."""
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        if self._head is not None:
            return self.logits_from_features(self.features(texts, pairs))
        import torch

        order = np.argsort([len(t) + (len(pairs[i]) if pairs is not None else 0) for i, t in enumerate(texts)])
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                enc = self._tokenizer(
                    [texts[i] for i in idx],
                    [pairs[i] for i in idx] if pairs is not None else None,
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                out[idx] = (self._ort or self._model)(**enc).logits.float().cpu().numpy()
        return out

    def features(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        """The head kind's input features: L2-normalised sentence embeddings (with pair features for pairs)."""
        if self._head is None:
            raise TypeError(f"{self.artifact.path}: a sequence-classification model has no sentence features; only the head kind does")
        return pair_features(self._ort or self._model, list(texts), list(pairs) if pairs is not None else None, self.batch_size)

    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        """The head kind's logits for features from :meth:`features`."""
        assert self._head is not None
        return features @ self._head["weight"].T + self._head["bias"]

    def predict_proba(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        """Calibrated class probabilities (the artifact's calibrator), shape (n, len(labels))."""
        return self.calibrator.apply(self.predict_logits(texts, pairs))

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        return self.predict_with_features(records)[0]

    def predict_with_features(self, records: Sequence[Mapping[str, Any]]) -> tuple[list[Prediction], np.ndarray | None]:
        """Predictions, and for the head kind the sentence embeddings they came from (one row per record), so
        a caller needing embeddings of the same texts (topics, retrieval) does not run the encoder twice."""
        text_col = self.artifact.metadata.get("text_column") or "text"
        pair_col = self.artifact.metadata.get("text_pair_column")
        texts: list[str] = []
        pairs: list[str] | None = [] if pair_col else None
        for i, rec in enumerate(records):
            value = rec.get("text", rec.get(text_col))
            if value is None or not str(value).strip():
                raise DataError(f"record {i}: field 'text' is missing or empty")
            texts.append(str(value))
            if pairs is not None:
                pv = rec.get("text_pair", rec.get(cast(str, pair_col)))
                if pv is None or not str(pv).strip():
                    raise DataError(f"record {i}: field 'text_pair' is missing or empty")
                pairs.append(str(pv))
        feats = self.features(texts, pairs) if self._head is not None else None
        logits = self.logits_from_features(feats) if feats is not None else self.predict_logits(texts, pairs)
        probs = self.calibrator.apply(logits)
        return [self._prediction(rec, row) for rec, row in zip(records, probs, strict=True)], feats

    def _prediction(self, record: Mapping[str, Any], row: np.ndarray) -> Prediction:
        top = int(row.argmax())
        confidence = float(row[top])
        abstained = self.threshold is not None and confidence < float(self.threshold)
        return Prediction(
            id=str(record["id"]) if record.get("id") is not None else None,
            label=self.labels[top],
            scores={name: float(p) for name, p in zip(self.labels, row, strict=True)},
            confidence=min(max(confidence, 0.0), 1.0),
            abstained=bool(abstained),
        )
