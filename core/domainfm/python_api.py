"""``domainfm.load(run_or_artifact).predict(texts)``: the documented Python API.

It is the CLI's own path (:func:`domainfm.kit.load_run_predictor`: the run resolver, ``domainfm_load_predictor`` and
``domainfm_predict`` with every plugin's wrappers), so a text gets exactly the label, scores and calibrated
confidence ``domainfm predict`` prints for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from domainfm.errors import DataError
from domainfm.types import Prediction


class Model:
    """A trained domainfm model, loaded once; :meth:`predict` takes texts or records."""

    def __init__(self, predictor: Any) -> None:
        self._predictor = predictor

    @property
    def domain(self) -> str:
        return str(self._predictor.domain)

    @property
    def device(self) -> str:
        return str(self._predictor.device)

    @property
    def artifact_dir(self) -> Path:
        return Path(self._predictor.artifact.path)

    @property
    def labels(self) -> list[str]:
        return list(self._predictor.artifact.label_names or [])

    def predict(self, inputs: Sequence[str | Mapping[str, Any]], batch_size: int = 64) -> list[Prediction]:
        """One :class:`~domainfm.types.Prediction` (label, scores, calibrated confidence, abstained) per input; a
        string is the record ``{"text": ...}``."""
        if isinstance(inputs, (str, Mapping)):
            raise DataError("predict takes a list of texts or records, e.g. model.predict(['some text'])")
        records = [{"text": item} if isinstance(item, str) else dict(item) for item in inputs]
        out: list[Prediction] = []
        for start in range(0, len(records), batch_size):
            out.extend(self._predictor.predict(records[start : start + batch_size]))
        return out

    def __repr__(self) -> str:
        return f"domainfm.Model(domain={self.domain!r}, artifact={str(self.artifact_dir)!r}, device={self.device!r})"


def load(
    ref: str | Path, *, variant: str | None = None, device: str = "auto", output_dir: str | Path = "runs",
    domain: str | None = None,
) -> Model:
    """Load the model ``ref`` names: a run directory, an artifact directory (an exported or copied one too), or a
    domain name (its newest run under ``output_dir``). Errors are one line naming the path."""
    from domainfm.kit import load_run_predictor

    return Model(load_run_predictor(ref, domain=domain, variant=variant, device=device, output_dir=output_dir))
