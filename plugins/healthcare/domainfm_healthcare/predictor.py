"""The healthcare predictor: de-identify, top-k calibrated suggestions, abstain and refer, explain.

Wraps the engine's :class:`~domainfm.engine.text_classifier.TextClassifierPredictor`. Every output carries
the not-a-diagnosis notice; the input text is never echoed (only counts of removed identifiers and flags).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from domainfm.errors import DataError
from domainfm.types import Prediction
from domainfm_healthcare import NOTICE
from domainfm_healthcare.deid import Deidentifier
from domainfm_healthcare.readers import MAX_TEXT_CHARS, looks_non_english

REFERRAL = "Uncertain: refer to a clinician for assessment."
EXPLAIN_MODES = ("always", "on_request", "never")


def explain_mode(value: bool | str | None) -> str:
    """``options.explain`` as one of :data:`EXPLAIN_MODES` (true: always, false: never; default on_request)."""
    if value is None:
        return "on_request"
    if isinstance(value, bool):
        return "always" if value else "never"
    text = str(value).strip().lower().replace("-", "_")
    aliases = {"true": "always", "1": "always", "yes": "always", "false": "never", "0": "never", "no": "never"}
    mode = aliases.get(text, text)
    if mode not in EXPLAIN_MODES:
        raise DataError(f"options.explain: {value!r} is not one of {', '.join(EXPLAIN_MODES)} (or true/false)")
    return mode


class HealthcarePredictor:
    """Calibrated top-k condition suggestions with abstention and token attributions.

    Attributions (integrated gradients, seconds per record on a CPU) are computed ``explain="always"``, never,
    or ``"on_request"`` (default): only for records with ``"explain": true``. So a plain request, and the
    latency the benefit report measures, is the answer path alone (:attr:`serving_path` says which).
    """

    def __init__(
        self,
        inner: Any,
        deid: Deidentifier,
        *,
        top_k: int = 3,
        explain: bool | str = "on_request",
        ig_steps: int = 16,
        explain_labels: int | None = None,
    ) -> None:
        self.inner = inner
        self.deid = deid
        self.domain = inner.domain
        self.device = inner.device
        self.labels: list[str] = list(inner.labels)
        self.top_k = max(1, min(top_k, len(self.labels)))
        self.explain = explain_mode(explain)
        self.ig_steps = ig_steps
        self.explain_labels = self.top_k if explain_labels is None else max(0, min(explain_labels, self.top_k))
        self._attributor: Any = None
        self._id_scanner = Deidentifier(use_ner=False)

    @property
    def threshold(self) -> float | None:
        return self.inner.threshold

    @property
    def serving_path(self) -> str:
        """What one request runs (recorded beside the latency figures of the benefit report)."""
        path = f"de-identification, calibrated top-{self.top_k} suggestions and abstention"
        if self.explain == "always" and self.explain_labels:
            return path + f", integrated-gradients attributions for {self.explain_labels} labels"
        if self.explain == "on_request" and self.explain_labels:
            return path + "; attributions only for records asking for them (explain: true), which these did not"
        return path

    def _wants_explanation(self, record: Mapping[str, Any]) -> bool:
        if not self.explain_labels or self.explain == "never":
            return False
        return self.explain == "always" or record.get("explain") is True

    def _attributions(self) -> Any:
        if self._attributor is None:
            from domainfm_healthcare.attributions import TokenAttributor

            self._attributor = TokenAttributor(self.inner, n_steps=self.ig_steps)
        return self._attributor

    def prepare(self, records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
        """Validate and de-identify the ``text`` of each record; returns texts and per-record flags."""
        texts, info = [], []
        for i, rec in enumerate(records):
            if not isinstance(rec, Mapping):
                raise DataError(f"record {i}: expected an object with a 'text' field, got {type(rec).__name__}")
            value = rec.get("text")
            text = "" if value is None else str(value).strip()
            if not text:
                raise DataError(f"record {i}: field 'text' is missing or empty")
            if len(text) > MAX_TEXT_CHARS:
                raise DataError(f"record {i}: field 'text' has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
            result = self.deid.deidentify(text)
            flags = []
            if looks_non_english(result.text):
                flags.append("non_english")
            if result.spans:
                flags.append("identifiers_removed")
            texts.append(result.text)
            info.append({"flags": flags, "identifiers_removed": result.counts})
        return texts, info

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Temperature-calibrated probabilities for already de-identified texts."""
        return self.inner.predict_proba(list(texts))

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        texts, info = self.prepare(records)
        probs = self.predict_proba(texts)
        truncated = self._truncated(texts)
        out = []
        for i, (rec, row) in enumerate(zip(records, probs, strict=True)):
            order = np.argsort(-row)[: self.top_k]
            top = int(order[0])
            confidence = float(np.clip(row[top], 0.0, 1.0))
            abstained = self.threshold is not None and confidence < float(self.threshold)
            flags = list(info[i]["flags"]) + (["truncated"] if truncated[i] else [])
            if "non_english" in flags:
                abstained = True  # the model was trained on English text only
            explanation = None
            if self._wants_explanation(rec):
                attributions = self._attributions().attribute(texts[i], [int(j) for j in order[: self.explain_labels]])
                explanation = {
                    "method": "integrated gradients (captum), word-embedding layer",
                    "attributions": {self.labels[j]: words for j, words in attributions.items()},
                }
            record_id = self._safe_id(rec.get("id"), flags)
            out.append(
                Prediction(
                    id=record_id,
                    label=self.labels[top],
                    scores={name: float(p) for name, p in zip(self.labels, row, strict=True)},
                    confidence=confidence,
                    abstained=bool(abstained),
                    explanation=explanation,
                    extra={
                        "notice": NOTICE,
                        "top_k": [{"label": self.labels[j], "probability": float(row[j])} for j in order],
                        "referral": REFERRAL if abstained else None,
                        "threshold": self.threshold,
                        "flags": flags,
                        "identifiers_removed": info[i]["identifiers_removed"],
                    },
                )
            )
        return out

    def _safe_id(self, value: Any, flags: list[str]) -> str | None:
        """The record id, unless it looks like an identifier (an MRN, a phone, an email): then a hash of it."""
        if value is None:
            return None
        text = str(value)
        if self._id_scanner.detect(text):
            import hashlib

            flags.append("id_redacted")
            return "redacted-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
        return text

    def _truncated(self, texts: Sequence[str]) -> list[bool]:
        tokenizer = getattr(self.inner, "tokenizer", None)
        if tokenizer is None:
            return [False] * len(texts)
        lengths = [len(ids) for ids in tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]]
        return [n > self.inner.max_length for n in lengths]
