"""The answering assistant: intent + confidence, top passages, the chosen answer and the hand-off decision.

Escalation is a calibrated decision: the classifier's probabilities are temperature-scaled on validation
data, and the confidence threshold is the lowest one whose automated answers reached the target precision
on validation data (:func:`domainfm.engine.calibration.threshold_for_precision`). An out-of-scope score
(:mod:`domainfm_customer_service.oos`, method and threshold chosen on validation for a stated in-scope
false-escalation rate) hands over questions unlike every known intent; a question predicted out-of-scope is
always handed to a human. Each answer says whether it escalates, why (``escalation_reasons``:
``out_of_scope``, ``low_confidence``, ``no_answer``, ``pii``) and the scores behind it (``escalation_scores``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from domainfm.errors import DataError
from domainfm.types import Artifact, Prediction, RankedItem

from domainfm_customer_service import OUT_OF_SCOPE
from domainfm_customer_service.oos import ScoreInputs, base_feature_encoder, load_scorer, score_batch
from domainfm_customer_service.query import validate_query

if TYPE_CHECKING:
    from domainfm.engine.ood import OodScorer

log = logging.getLogger(__name__)

KB_DIR = "kb_index"
BIENCODER_DIR = "biencoder"
TEMPLATES_FILE = "templates.json"
SMALL_BATCH = 4
SMALL_BATCH_THREADS = 1


def in_scope_confidence(probs: np.ndarray, labels: Sequence[str], oos_label: str = OUT_OF_SCOPE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: (best in-scope label index, its probability, whether the overall argmax is out-of-scope)."""
    labels = list(labels)
    mask = np.array([lab != oos_label for lab in labels])
    if not mask.any():
        raise DataError("every label is out-of-scope: nothing to answer")
    scoped = np.where(mask[None, :], probs, -1.0)
    best = scoped.argmax(1)
    conf = probs[np.arange(len(probs)), best]
    oos = ~mask[probs.argmax(1)] if len(probs) else np.zeros(0, dtype=bool)
    return best, np.clip(conf, 0.0, 1.0), oos


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, target_precision: float) -> float:
    """The escalation threshold reaching ``target_precision`` on validation data (never test data)."""
    from domainfm.engine.calibration import threshold_for_precision

    return float(threshold_for_precision(confidence, correct, target_precision))


def _finite(value: float) -> float | None:
    """JSON has no infinity: an infinite threshold (escalate everything / nothing) is reported as None."""
    return float(value) if np.isfinite(value) else None


def _describe(reason: str, scores: Mapping[str, Any]) -> str:
    """One reason code in words, with the score behind it."""
    if reason == "low_confidence":
        thr = scores["confidence_threshold"]
        return f"confidence {scores['confidence']:.2f} below threshold {thr:.2f}" if thr is not None else "no confidence threshold: escalate everything"
    if reason == "out_of_scope":
        if scores["out_of_scope_score"] is not None and scores["out_of_scope_threshold"] is not None \
                and scores["out_of_scope_score"] > scores["out_of_scope_threshold"]:
            return (f"out of scope ({scores['out_of_scope_method']} score {scores['out_of_scope_score']:.3g} above "
                    f"{scores['out_of_scope_threshold']:.3g})")
        return "out of scope (predicted label)"
    if reason == "no_answer":
        return "no answer available"
    return "personal data in the question" if reason == "pii" else reason


class CustomerServiceAssistant:
    """A loaded customer-service model (a :class:`~domainfm.types.Predictor`)."""

    def __init__(
        self,
        artifact: Artifact,
        classifier: Any,
        index: Any = None,
        templates: Mapping[str, str] | None = None,
        masker: Any = None,
        device: str = "cpu",
        generator: Any = None,
        oos_scorer: OodScorer | None = None,
        feature_encoder: Any = None,
    ) -> None:
        meta = artifact.metadata.get("customer_service", {})
        self.artifact = artifact
        self.domain = artifact.domain
        self.device = device
        self.classifier = classifier
        self.index = index
        self.templates = dict(templates or {})
        self.masker = masker
        self.generator = generator
        self.labels: list[str] = list(classifier.labels)
        self.oos_label: str = meta.get("oos_label", OUT_OF_SCOPE)
        threshold = meta.get("escalation_threshold")
        self.threshold: float = float("inf") if threshold is None else float(threshold)
        self.top_k: int = int(meta.get("top_k", 3))
        self.fusion: str = meta.get("fusion", "rrf")
        self.escalate_on_pii: bool = bool(meta.get("escalate_on_pii", False))
        oos_meta = meta.get("oos") or {}
        self.oos_scorer = oos_scorer
        self.oos_method: str | None = oos_meta.get("method") if oos_scorer is not None else None
        oos_threshold = oos_meta.get("threshold") if oos_scorer is not None else None
        self.oos_threshold: float = float("inf") if oos_threshold is None else float(oos_threshold)
        self._inputs = ScoreInputs(classifier, feature_encoder)
        self._in_scope = np.array([lab != self.oos_label for lab in self.labels])

    @classmethod
    def load(
        cls, artifact: Artifact | str | Path, device: str = "cpu", use_ner: bool | None = None, generator: str | None = None
    ) -> CustomerServiceAssistant:
        """Load the classifier, the knowledge index (if any), templates, the PII masker and, when
        ``generator`` names a causal LM, the answer generator."""
        from domainfm.engine.text_classifier import TextClassifierPredictor
        from domainfm.models import resolve_model

        from domainfm.privacy.masker import Masker
        from domainfm.engine.hybrid_index import HybridIndex
        from domainfm.engine.query_encoder import QueryEncoder

        if not isinstance(artifact, Artifact):
            artifact = Artifact.load(artifact)
        root = Path(artifact.path)
        classifier = TextClassifierPredictor.load(artifact, device)
        masker = Masker(use_ner=use_ner)
        index = None
        if (root / KB_DIR).is_dir():
            enc_dir = root / BIENCODER_DIR if (root / BIENCODER_DIR).is_dir() else resolve_model(artifact.base_model).path
            encoder = QueryEncoder(enc_dir, device=device, max_length=int(artifact.metadata.get("max_length", 128)))
            index = HybridIndex.load(root / KB_DIR, encoder, masker=masker)
        templates: dict[str, str] = {}
        if (root / TEMPLATES_FILE).is_file():
            templates = json.loads((root / TEMPLATES_FILE).read_text(encoding="utf-8"))
        from domainfm_customer_service.generator import maybe_generator

        oos_meta = artifact.metadata.get("customer_service", {}).get("oos") or {}
        try:
            scorer = load_scorer(root, oos_meta)
        except (FileNotFoundError, ValueError) as exc:
            raise DataError(f"{root}: {exc}") from None
        feature_encoder = None
        if scorer is not None and scorer.needs_features:
            feature_encoder = base_feature_encoder(classifier, device, int(artifact.metadata.get("max_length", 128)))
        return cls(artifact, classifier, index=index, templates=templates, masker=masker, device=device,
                   generator=maybe_generator(generator, device), oos_scorer=scorer, feature_encoder=feature_encoder)

    # ----------------------------------------------------------------------------------- answering

    def answer_many(
        self, queries: Sequence[Any], *, k: int | None = None, threshold: float | None = None,
        oos_threshold: float | None = None,
    ) -> list[dict[str, Any]]:
        """Answer a batch of questions. Raises :class:`QueryError` naming the first bad query.

        ``threshold`` / ``oos_threshold`` override the confidence and out-of-scope thresholds chosen in training.
        """
        from domainfm.engine.query_encoder import cpu_threads, faiss_threads

        texts = [validate_query(q, where=f"query {i}") for i, q in enumerate(queries)]
        masked = self.masker.mask_many(texts) if self.masker is not None else texts
        # A chat turn is a tiny forward pass: one intra-op thread is faster than several (see serving.py).
        small = SMALL_BATCH_THREADS if self.device == "cpu" and len(texts) <= SMALL_BATCH else None
        with cpu_threads(small), faiss_threads(small):
            oos_scores, probs = self._scores(masked)
            k = k or self.top_k
            hits_all = self.index.search_many(masked, k=k, fusion=self.fusion) if self.index is not None else [[] for _ in texts]
        best, conf, oos = in_scope_confidence(probs, self.labels, self.oos_label)
        thr = self.threshold if threshold is None else threshold
        oos_thr = self.oos_threshold if oos_threshold is None else oos_threshold
        out = []
        for i, text in enumerate(masked):
            intent = self.labels[int(best[i])]
            hits = hits_all[i]
            answer, source, doc_id, answer_intent = self._choose_answer(intent, hits)
            oos_score = None if oos_scores is None else float(oos_scores[i])
            reasons: list[str] = []
            if oos[i] or (oos_score is not None and oos_score > oos_thr):
                reasons.append("out_of_scope")
            if conf[i] < thr:
                reasons.append("low_confidence")
            if answer is None and (self.index is not None or self.templates):
                reasons.append("no_answer")
            pii = masked[i] != texts[i]
            if pii and self.escalate_on_pii:
                reasons.append("pii")
            scores = {
                "confidence": float(conf[i]),
                "confidence_threshold": _finite(thr),
                "out_of_scope_score": oos_score,
                "out_of_scope_threshold": _finite(oos_thr) if oos_score is not None else None,
                "out_of_scope_method": self.oos_method,
                "out_of_scope_probability": float(probs[i][self.labels.index(self.oos_label)]) if self.oos_label in self.labels else 0.0,
                "personal_data_in_query": pii,
            }
            out.append(
                {
                    "query": text,
                    "intent": intent,
                    "predicted_label": self.labels[int(probs[i].argmax())],
                    "confidence": float(conf[i]),
                    "out_of_scope_probability": scores["out_of_scope_probability"],
                    "threshold": _finite(thr),
                    "escalate": bool(reasons),
                    "escalation_reasons": reasons,
                    "escalation_reason": "; ".join(_describe(r, scores) for r in reasons) or None,
                    "escalation_scores": scores,
                    "answer": answer,
                    "answer_source": source,
                    "answer_doc_id": doc_id,
                    "answer_intent": answer_intent,
                    "passages": [h.as_dict() for h in hits],
                    "scores": {lab: float(p) for lab, p in zip(self.labels, probs[i], strict=True)},
                }
            )
            if self.generator is not None and answer is not None and not reasons:
                grounding = [answer] + [h.chunk.text for h in hits if h.chunk.text != answer]
                out[-1]["generated_answer"] = self.generator.phrase(text, grounding)
        return out

    def _scores(self, texts: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """(out-of-scope scores or None without a scorer, calibrated probabilities) for masked texts."""
        if self.oos_scorer is None:
            return None, self.classifier.predict_proba(texts)
        logits, probs, features = self._inputs.run(texts, self.oos_scorer.needs_features)
        return score_batch(self.oos_scorer, logits, probs, features, self._in_scope), probs

    def answer(self, query: Any, **kwargs: Any) -> dict[str, Any]:
        return self.answer_many([query], **kwargs)[0]

    def _choose_answer(self, intent: str, hits: Sequence[Any]) -> tuple[str | None, str | None, str | None, str | None]:
        """The intent's template if there is one, else its best passage, else the best passage overall."""
        matching = [h for h in hits if h.chunk.intent == intent]
        if intent in self.templates:
            doc = matching[0].chunk.doc_id if matching else None
            return self.templates[intent], "template", doc, intent
        if matching:
            return matching[0].chunk.text, "passage", matching[0].chunk.doc_id, intent
        if hits:
            return hits[0].chunk.text, "passage", hits[0].chunk.doc_id, hits[0].chunk.intent
        if self.index is None and not self.templates:
            return None, "intent_only", None, intent  # no knowledge base: the assistant routes by intent
        return None, None, None, None

    # ----------------------------------------------------------------------------------- Predictor

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        for i, rec in enumerate(records):
            if "text" not in rec:
                raise DataError(f"record {i}: field 'text' is missing")
        answers: list[dict[str, Any]] = [{} for _ in records]
        for k in dict.fromkeys(rec.get("k") for rec in records):  # a record may ask for its own passage count
            idx = [i for i, rec in enumerate(records) if rec.get("k") == k]
            for i, ans in zip(idx, self.answer_many([records[i]["text"] for i in idx], k=k), strict=True):
                answers[i] = ans
        preds = []
        for rec, ans in zip(records, answers, strict=True):
            preds.append(
                Prediction(
                    id=str(rec["id"]) if rec.get("id") is not None else None,
                    label=ans["intent"],
                    scores=ans["scores"],
                    confidence=ans["confidence"],
                    abstained=ans["escalate"],
                    ranking=[RankedItem(id=p["doc_id"], score=float(p["score"])) for p in ans["passages"]] or None,
                    extra={k: ans[k] for k in ("answer", "answer_source", "answer_doc_id", "escalate", "escalation_reasons",
                                               "escalation_reason", "escalation_scores", "predicted_label")},
                )
            )
        return preds
