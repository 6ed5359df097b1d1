"""A text-classification pipeline that applies a domainfm top-label isotonic calibration (copied into an export).

Self-contained (numpy and transformers only), so the exported folder works without domainfm::

    from transformers import pipeline
    clf = pipeline("text-classification", model=FOLDER, trust_remote_code=True)

or ``pipeline(..., pipeline_class=DomainfmCalibratedPipeline)`` after importing this file. The calibration is read
from ``domainfm_calibration.json`` next to the model: the softmax's top-1 probability is mapped through the
isotonic knots and the other labels share the rest in their old proportions, as domainfm's ``Calibrator`` does.
"""

from __future__ import annotations

import json
import os
from typing import Any, cast

import numpy as np
from transformers import TextClassificationPipeline

CALIBRATION_FILE = "domainfm_calibration.json"


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def calibrate(logits: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Calibrated probabilities (n, K) for ``logits`` under a ``top_isotonic`` (or linear) calibrator spec."""
    probs = _softmax(logits)
    if spec.get("kind") != "top_isotonic":
        return probs
    n, k = probs.shape
    confidence = probs.max(1)
    top = np.interp(confidence, spec["knots_x"], spec["knots_y"])
    top = np.maximum(top, 1.0 / k) + 1e-7 * confidence
    ordered = np.sort(probs, axis=1)
    q1, q2 = ordered[:, -1], ordered[:, -2]
    top = np.minimum(np.maximum(top, q2 / np.clip(1.0 - q1 + q2, 1e-12, None) + 1e-9), 1.0)
    rows, winner = np.arange(n), probs.argmax(1)
    out = probs.copy()
    out[rows, winner] = 0.0
    rest = out.sum(1, keepdims=True)
    shares = np.where(rest > 1e-12, out / np.clip(rest, 1e-12, None), 1.0 / max(k - 1, 1))
    out = shares * (1.0 - top)[:, None]
    out[rows, winner] = top
    return out


class DomainfmCalibratedPipeline(TextClassificationPipeline):
    """``text-classification`` with the exported model's domainfm calibration applied to its scores."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        path = os.path.join(str(self.model.config._name_or_path), CALIBRATION_FILE)
        with open(path, encoding="utf-8") as fh:
            self.calibration = json.load(fh)["calibrator"]

    def postprocess(  # type: ignore[override]  # transformers types **postprocess_parameters as dict values
        self, model_outputs: Any, function_to_apply: Any = None, top_k: int | None = 1, _legacy: bool = True
    ) -> Any:
        logits = model_outputs["logits"][0].float().numpy()
        scores = calibrate(logits[None, :], self.calibration)[0]
        id2label = cast(dict[int, str], self.model.config.id2label)
        if top_k == 1 and _legacy:
            return {"label": id2label[int(scores.argmax())], "score": float(scores.max())}
        ranked: list[dict[str, Any]] = [{"label": id2label[i], "score": float(s)} for i, s in enumerate(scores)]
        if not _legacy:
            ranked.sort(key=lambda x: x["score"], reverse=True)
            if top_k is not None:
                ranked = ranked[:top_k]
        return ranked
