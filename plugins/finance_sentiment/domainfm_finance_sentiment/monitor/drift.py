"""Drift of the monitored stream against the training data: ``retrain_suggested`` events next to the surge alerts.

The statistics and their thresholds are the core's (:mod:`domainfm.engine.drift`: chi-square of the predicted-label
mix, RBF-kernel MMD of sentence embeddings, thresholds from held-out windows of the reference at a stated false-alarm
rate). This module fits that reference from the training texts (:func:`fit_reference`), keeps it and the sliding
window in the monitor's SQLite state (:class:`StreamDrift`; committed in the same transaction as the surge state,
so a restart resumes the window exactly), and turns an opened drift episode into an event with evidence.

Embeddings come from the encoder named in the reference (``encoder`` spec): a head artifact's own sentence
embeddings, or the base sentence encoder of any other artifact (``kind: artifact``), or a named encoder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from domainfm.engine.drift import DriftConfig, DriftReference, DriftTracker
from domainfm.engine.drift import fit_reference as fit_core_reference

from domainfm_finance_sentiment import LABELS
from domainfm_finance_sentiment.monitor.detector import iso
from domainfm_finance_sentiment.monitor.store import MonitorStore, StateMismatchError

Embedder = Callable[[Sequence[str]], np.ndarray]
Classifier = Callable[[Sequence[str]], np.ndarray]
EVIDENCE_ITEMS = 3


def artifact_embedder(predictor: Any) -> Embedder:
    """A :class:`FinancePredictor`'s sentence embeddings: the head kind's own encoder, else the base encoder."""
    inner = predictor.inner
    if inner.is_head and not inner.artifact.metadata.get("pair_features"):
        return lambda texts: inner.features(list(texts))
    from domainfm.engine.encoder import TextEncoder

    encoder = TextEncoder(inner.artifact.base_model, device=inner.device,
                          max_length=int(inner.artifact.metadata.get("max_length", 128)))
    return lambda texts: encoder.encode(list(texts))


def embedder_from_spec(spec: dict[str, Any], device: str = "auto") -> Embedder:
    """Rebuild the embedder a reference was fitted with (``kind``: ``artifact`` or ``encoder``)."""
    from domainfm.device import resolve_device

    if spec.get("kind") == "artifact":
        from domainfm.types import Artifact

        from domainfm_finance_sentiment.model import FinancePredictor

        return artifact_embedder(FinancePredictor.load(Artifact.load(spec["path"]), resolve_device(device)))
    if spec.get("kind") == "encoder":
        from domainfm.engine.encoder import TextEncoder

        encoder = TextEncoder(spec["model"], device=resolve_device(device), max_length=spec.get("max_length"))
        return lambda texts: encoder.encode(list(texts))
    raise StateMismatchError(f"the drift reference's encoder {spec} cannot be rebuilt here; pass an embedder")


def fit_reference(
    texts: Sequence[str], labels: Sequence[str], embedder: Embedder, config: DriftConfig, *,
    classifier: Classifier | None = None, heldout_texts: Sequence[str] = (), origin: str = "",
    encoder: dict[str, Any] | None = None,
) -> DriftReference:
    """The reference of the training ``texts``. The label mix is the one the monitor will see on an unchanged
    stream: the ``classifier``'s predictions on ``heldout_texts`` (data like the training data it did not learn
    from), or on ``texts`` when none are given; the given ``labels`` when there is no classifier."""
    mix = None
    if classifier is not None:
        ids = np.asarray(classifier(list(texts))).argmax(axis=1)
        if heldout_texts:
            mix = np.asarray(classifier(list(heldout_texts))).argmax(axis=1)
        label_source = "predicted on held-out data" if heldout_texts else "predicted on the training data"
    else:
        ids = np.asarray([LABELS.index(label) for label in labels])
        label_source = "given"
    ref = fit_core_reference(ids, np.asarray(embedder(list(texts)), dtype=np.float32), list(LABELS), config,
                             label_reference=mix)
    ref.calibration.update({"origin": origin, "label_source": label_source, "encoder": encoder or {"kind": "custom"}})
    return ref


class StreamDrift:
    """The monitor's drift tracker: a :class:`DriftTracker` whose window rows are committed with each batch."""

    def __init__(self, reference: DriftReference, reference_id: str, tracker: DriftTracker,
                 embedder: Embedder | None, device: str = "auto") -> None:
        self.reference = reference
        self.reference_id = reference_id
        self.tracker = tracker
        self._embedder = embedder
        self._device = device
        self._pending: list[tuple[int, int, np.ndarray | None, Any]] = []
        spec = reference.calibration.get("encoder", {"kind": "custom"})
        if embedder is None and spec.get("kind") == "artifact" and not Path(spec["path"]).is_dir():
            raise FileNotFoundError(f"{spec['path']}: the drift reference's artifact is gone; rebuild the reference")
        if embedder is None and spec.get("kind") not in ("artifact", "encoder"):
            raise StateMismatchError("the state's drift reference was fitted with a custom embedder; pass embedder=")

    @classmethod
    def open(cls, store: MonitorStore, state: dict[str, Any] | None, embedder: Embedder | None,
             device: str = "auto") -> StreamDrift | None:
        """The drift part of a monitor over ``store``, or None when the state has no drift reference."""
        found = store.load_drift_reference()
        if found is None:
            return None
        params, arrays = found
        reference = DriftReference.from_state(params, arrays)
        if state and state.get("reference_id") == params["id"]:
            tracker = DriftTracker.restore(reference, state["tracker"], store.load_drift_window())
        else:  # a new reference starts a new window
            tracker = DriftTracker(reference)
        return cls(reference, params["id"], tracker, embedder, device)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._embedder is None:
            self._embedder = embedder_from_spec(self.reference.calibration["encoder"], self._device)
        return np.asarray(self._embedder(list(texts)), dtype=np.float32)

    def observe(self, label: str, embedding: np.ndarray, ts: float, text: str, where: str) -> dict[str, Any] | None:
        """Add one accepted event; return a ``retrain_suggested`` event when a drift episode opens."""
        meta = [ts, text[:300], where]
        result = self.tracker.observe(LABELS.index(label), embedding, meta)
        self._pending.append(self.tracker.items[-1])
        return None if result is None else self._event(result)

    def _event(self, result: dict[str, Any]) -> dict[str, Any]:
        items = self.tracker.window_items()
        witness = self.reference.witness(np.stack([e for _, _, e, _ in items if e is not None]))
        typical = np.argsort(-witness, kind="stable")[:EVIDENCE_ITEMS]
        ref = self.reference
        return {
            "id": f"retrain_suggested@{result['last_item']}",
            "event": "retrain_suggested",
            "key": "drift:*", "kind": "drift", "name": "retrain_suggested",
            "window_start": iso(items[0][3][0]), "window_end": iso(items[-1][3][0]),
            "window": {"items": len(items), "first_item": result["first_item"], "last_item": result["last_item"],
                       "step": ref.config.test_every},
            "statistic": {t: _rounded(result[t]) for t in ("label_mix", "embedding") if t in result}
                         | {"exceeded": result["exceeded"]},
            "reference": ref.describe(),
            "evidence": [{"text": items[i][3][1], "timestamp": iso(items[i][3][0]), "where": items[i][3][2],
                          "label": LABELS[items[i][1]], "witness": round(float(witness[i]), 4)}
                         for i in typical],
        }

    def state(self) -> dict[str, Any]:
        return {"reference_id": self.reference_id, "tracker": self.tracker.state()}

    def take_rows(self) -> tuple[list[tuple[int, int, bytes | None, str]], int]:
        """The window rows added since the last commit, and the oldest sequence number still in the window."""
        keep_from = self.tracker.items[0][0] if self.tracker.items else self.tracker.seen + 1
        rows = [(seq, label, None if emb is None else emb.astype(np.float32).tobytes(), json.dumps(meta))
                for seq, label, emb, meta in self._pending if seq >= keep_from]
        self._pending = []
        return rows, keep_from

    def summary(self) -> dict[str, Any]:
        return {"reference": self.reference.describe(), **self.tracker.state()}


def _rounded(test: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in test.items()}
