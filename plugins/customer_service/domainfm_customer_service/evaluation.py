"""Evaluation: intent accuracy/macro-F1, retrieval recall@k and MRR, automation vs answer accuracy,
escalation precision/recall, out-of-scope recall and the AUROC of the out-of-scope score, in-scope false
escalation and the accuracy of the in-scope questions answered, all on one split with the thresholds fixed
beforehand on validation data.

An item's ``quality`` is 1 when the answer the assistant would give is right for the true intent (0 for
any answer to an out-of-scope question); its ``confidence`` is the calibrated in-scope confidence the
escalation threshold applies to. An item "needs escalation" when it is out of scope or its answer
would be wrong: escalation precision/recall are measured against that.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from domainfm.types import Curve, DataBundle, Evaluation, Outcomes

RECALL_KS = (1, 5, 10)
MAX_CURVE_POINTS = 200


def retrieval_metrics(rankings: Sequence[Sequence[str]], relevant: Sequence[set[str]], ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """Mean recall@k (for every k) and MRR over queries that have at least one relevant document."""
    from domainfm.metrics import recall_at_k, reciprocal_rank

    pairs = [(r, rel) for r, rel in zip(rankings, relevant, strict=True) if rel]
    if not pairs:
        return {}
    out = {f"recall_at_{k}": float(np.mean([recall_at_k(r, rel, k) for r, rel in pairs])) for k in ks}
    out["mrr"] = float(np.mean([reciprocal_rank(r, rel) for r, rel in pairs]))
    out["retrieval_queries"] = float(len(pairs))
    return out


def escalation_metrics(escalated: np.ndarray, needs: np.ndarray) -> dict[str, float]:
    """Precision and recall of the hand-off decision (positive = handed to a human)."""
    esc, need = escalated.astype(bool), needs.astype(bool)
    tp = float((esc & need).sum())
    return {
        "escalation_rate": float(esc.mean()) if esc.size else 0.0,
        "escalation_precision": tp / esc.sum() if esc.sum() else 0.0,
        "escalation_recall": tp / need.sum() if need.sum() else 1.0,
    }


def out_of_scope_metrics(answers: Sequence[dict[str, Any]], truth: Sequence[str], oos_label: str) -> dict[str, float]:
    """In-scope false escalation, accuracy of the in-scope questions answered and, when some questions are truly
    out of scope, their recall and the AUROC of the out-of-scope score."""
    from domainfm.engine.ood import auroc

    is_oos = np.array([t == oos_label for t in truth], dtype=bool)
    escalated = np.array([a["escalate"] for a in answers], dtype=bool)
    out: dict[str, float] = {}
    if (~is_oos).any():
        out["in_scope_false_escalation"] = float(escalated[~is_oos].mean())
        answered = ~is_oos & ~escalated
        if answered.any():
            right = np.array([a["intent"] == t for a, t in zip(answers, truth, strict=True)])
            out["answered_accuracy"] = float(right[answered].mean())
    if is_oos.any():
        out["out_of_scope_recall"] = float(escalated[is_oos].mean())
        scores = [a.get("escalation_scores", {}).get("out_of_scope_score") for a in answers]
        if (~is_oos).any() and all(v is not None for v in scores):
            value = auroc(np.asarray(scores, dtype=float)[~is_oos], np.asarray(scores, dtype=float)[is_oos])
            if value is not None:
                out["oos_auroc"] = value
    return out


def automation_curve(confidence: np.ndarray, quality: np.ndarray) -> Curve:
    """Automation rate (share answered without a human) against the accuracy of those answers."""
    from domainfm.engine.label_evaluation import risk_coverage

    return risk_coverage(confidence, quality, max_points=MAX_CURVE_POINTS, x_label="automation rate",
                         y_label="answer accuracy")


def evaluate_assistant(assistant: Any, data: DataBundle, split: str, *, baselines: bool = True) -> Evaluation:
    """Evaluate a :class:`~domainfm_customer_service.assistant.CustomerServiceAssistant` on ``split``."""
    from domainfm.metrics import INTERVAL_KEYS, classification_metrics

    table = data.split(split)
    texts = [str(t) for t in table["text"]]
    truth = [str(v) for v in table["label"]]
    started = time.perf_counter()
    answers = assistant.answer_many(texts, k=max(RECALL_KS))
    seconds = time.perf_counter() - started
    oos = assistant.oos_label
    predicted = [a["predicted_label"] for a in answers]
    labels = list(assistant.labels)
    report = classification_metrics(truth, predicted, labels)
    metrics: dict[str, float] = {k: report[k] for k in ("accuracy", "macro_f1", "weighted_f1", *INTERVAL_KEYS)}

    confidence = np.array([a["confidence"] for a in answers])
    answer_intent = [a["answer_intent"] if a["answer"] is not None else a["intent"] for a in answers]
    quality = np.array([float(t != oos and ai == t) for ai, t in zip(answer_intent, truth, strict=True)])
    escalated = np.array([a["escalate"] for a in answers], dtype=bool)
    needs = quality < 1.0
    automated = ~escalated
    metrics["automation_rate"] = float(automated.mean())
    metrics["automated_answer_accuracy"] = float(quality[automated].mean()) if automated.any() else 0.0
    metrics["answer_accuracy_all"] = float(quality.mean())
    metrics.update(escalation_metrics(escalated, needs))
    metrics.update(out_of_scope_metrics(answers, truth, oos))

    relevant_by_intent = assistant.index.documents_with_intent() if assistant.index is not None else {}
    relevant = [relevant_by_intent.get(t, set()) for t in truth]
    rankings = [[p["doc_id"] for p in a["passages"]] for a in answers]
    metrics.update(retrieval_metrics(rankings, relevant))
    base: dict[str, dict[str, float]] = {}
    if baselines and assistant.index is not None and any(relevant):
        masked = [a["query"] for a in answers]
        for fusion in ("dense", "bm25"):
            hits = assistant.index.search_many(masked, k=max(RECALL_KS), fusion=fusion)
            base[f"retrieval_{fusion}_only"] = retrieval_metrics([[h.chunk.doc_id for h in hs] for hs in hits], relevant)
    base["always_escalate"] = {"automation_rate": 0.0, "escalation_recall": 1.0}

    groups = {c: [str(v) for v in table[c]] for c in data.group_columns if c in table.column_names}
    ids = [str(v) for v in table["id"]] if "id" in table.column_names else [f"{split}-{i}" for i in range(len(table))]
    return Evaluation(
        domain=assistant.domain,
        split=split,
        metrics=metrics,
        key_metric="macro_f1",
        n_items=len(texts),
        outcomes=Outcomes(
            ids=ids,
            confidence=confidence.tolist(),
            quality=quality.tolist(),
            groups=groups,
            extra={"intent": truth, "predicted": predicted, "escalated": escalated.tolist()},
        ),
        per_class=report["per_class"],
        confusion=report["confusion"],
        labels=labels,
        curves={"automation_vs_accuracy": automation_curve(confidence, quality)},
        baselines=base,
        device=assistant.device,
        seconds=seconds,
        extra={
            "escalation_threshold": assistant.threshold,
            "items_per_second": len(texts) / seconds if seconds > 0 else None,
            "retrieval_fusion": assistant.fusion,
            "out_of_scope_method": getattr(assistant, "oos_method", None),
            "escalation_reasons": _reason_counts(answers),
        },
    )


def _reason_counts(answers: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for a in answers:
        for reason in a.get("escalation_reasons", []):
            counts[reason] = counts.get(reason, 0) + 1
    return counts
