"""Process-wide predictors: each domain's artifact is loaded once (through ``domainfm_load_predictor``)
and shared by every request; a domain that cannot load is remembered as unavailable with the reason."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domainfm.config import RunConfig
from domainfm.errors import DataError, DomainfmError
from domainfm.manager import PluginManager
from domainfm.run_layout import RunLayout
from domainfm.types import Artifact, Prediction, Predictor, RunContext


def freeze_loaded_objects() -> int:
    """Move every object alive now (a loaded model's Python objects included) out of the garbage collector's
    reach (``gc.freeze``); returns how many are frozen.

    Measured on the serving benchmark: without it, every ~5 s a full collection walked the hundreds of
    thousands of objects torch/transformers keep alive and stalled one 64-request batch from ~150 to ~450 ms,
    which alone set the p99. Frozen objects are long-lived by construction (models stay loaded for the
    process's life), so nothing is leaked that would otherwise be freed.
    """
    import gc

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class DomainUnavailableError(DomainfmError):
    """A domain cannot answer: no artifact, or its plugin failed to load the model.

    The server answers 503 with this message on the domain's routes only.
    """

    def __init__(self, domain: str, reason: str) -> None:
        self.domain = domain
        self.reason = reason
        super().__init__(f"domain {domain!r} is unavailable: {reason}")


class InputError(DomainfmError):
    """A request's records do not fit the domain (the server answers 422)."""


class PredictFailedError(DomainfmError):
    """The domain's plugin raised in predict or broke its contract: a bug on the server's side (answered 500),
    not a missing model (503, which a load balancer reads as 'this server is down')."""

    def __init__(self, domain: str, reason: str) -> None:
        self.domain = domain
        self.reason = reason
        super().__init__(f"domain {domain!r}: {reason}")


@dataclass
class _Slot:
    layout: RunLayout | None
    predictor: Predictor | None = None
    ctx: RunContext | None = None
    error: str | None = None
    reason: str | None = None  # why the domain has no model, from the resolver

    @property
    def artifact_path(self) -> Path | None:
        return self.layout.artifact_dir if self.layout is not None else None


class PredictorRegistry:
    """Loads and holds one predictor per domain; thread-safe, loads each domain at most once."""

    def __init__(
        self, pm: PluginManager, config: RunConfig, artifacts: Mapping[str, RunLayout | Path | None],
        runs_dir: Path | None = None, reasons: Mapping[str, str] | None = None,
    ) -> None:
        """``artifacts``: each domain's model as resolved by :mod:`domainfm.serve.artifacts` (an artifact folder is
        resolved here); ``reasons``: why a domain without one has none."""
        from domainfm.runner import Runner

        self.pm = pm
        self.runs_dir = Path(runs_dir if runs_dir is not None else config.output_dir)
        self.runner = Runner(pm, config)
        reasons = reasons or {}
        self._slots = {domain: _Slot(_as_layout(ref), reason=reasons.get(domain)) for domain, ref in artifacts.items()}
        self._locks = {domain: threading.Lock() for domain in artifacts}

    @property
    def domains(self) -> list[str]:
        return list(self._slots)

    def artifact_path(self, domain: str) -> Path | None:
        return self._slot(domain).artifact_path

    def _slot(self, domain: str) -> _Slot:
        try:
            return self._slots[domain]
        except KeyError:
            raise DomainUnavailableError(domain, f"not served; served domains: {sorted(self._slots)}") from None

    def status(self, domain: str) -> dict[str, Any]:
        """Readiness of one domain for ``/health``: ``ready``, ``not_loaded``, ``no_artifact`` or ``failed``."""
        slot = self._slot(domain)
        if slot.predictor is not None:
            state = "ready"
        elif slot.error is not None:
            state = "failed" if slot.artifact_path is not None else "no_artifact"
        elif slot.artifact_path is None:
            state = "no_artifact"
        else:
            state = "not_loaded"
        out: dict[str, Any] = {"status": state, "artifact": str(slot.artifact_path) if slot.artifact_path else None}
        if slot.predictor is not None:
            out["device"] = slot.predictor.device
        if slot.error is not None or slot.artifact_path is None:
            out["error"] = slot.error or self._no_artifact_message(domain)
        return out

    def _no_artifact_message(self, domain: str) -> str:
        reason = self._slots[domain].reason or f"no finished run with an artifact under {self.runs_dir / domain}"
        return f"no artifact: pass --artifact {domain}=PATH or train one (domainfm run {domain}); {reason}"

    def get(self, domain: str) -> Predictor:
        """The shared predictor of ``domain``, loaded on first use.

        :raises DomainUnavailableError: when the domain has no artifact or its plugin failed to load it
            (the failure is remembered: later calls fail fast with the same reason).
        """
        slot = self._slot(domain)
        if slot.predictor is not None:
            return slot.predictor
        with self._locks[domain]:
            if slot.predictor is not None:
                return slot.predictor
            if slot.error is not None:
                raise DomainUnavailableError(domain, slot.error)
            if slot.artifact_path is None:
                slot.error = self._no_artifact_message(domain)
                raise DomainUnavailableError(domain, slot.error)
            try:
                artifact = Artifact.load(slot.artifact_path)
                if artifact.domain != domain:
                    raise DomainfmError(f"{slot.artifact_path} is an artifact of domain {artifact.domain!r}")
                assert slot.layout is not None
                # the run the model belongs to (not variants/<v>); a bare artifact folder is its own
                ctx = self.runner.context(domain, run_dir=slot.layout.run_dir or slot.layout.artifact_dir.parent)
                slot.predictor = self.runner.load_predictor(ctx, artifact)
                slot.ctx = ctx
                freeze_loaded_objects()
            except Exception as exc:  # any plugin failure: this domain only
                slot.error = f"loading the model failed: {type(exc).__name__}: {exc}"
                raise DomainUnavailableError(domain, slot.error) from exc
            return slot.predictor

    def loaded(self, domain: str) -> Predictor | None:
        """The predictor if it is already loaded (no loading, no locking), else None."""
        slot = self._slots.get(domain)
        return slot.predictor if slot is not None else None

    def predict(self, domain: str, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        """Predict a batch through ``domainfm_predict`` (blocking; called from a worker thread).

        :raises InputError: the plugin rejected the input (a :class:`~domainfm.errors.DataError`).
        :raises DomainUnavailableError: the domain has no model, or no plugin predicts for it.
        :raises PredictFailedError: the plugin raised or broke the contract.
        """
        predictor = self.get(domain)
        ctx = self._slots[domain].ctx
        try:
            result = self.pm.hooks.predict(ctx, domain, predictor, records)
        except DataError as exc:
            raise InputError(str(exc)) from exc
        except Exception as exc:
            raise PredictFailedError(domain, f"predict failed: {type(exc).__name__}: {exc}") from exc
        if result is None:
            raise DomainUnavailableError(domain, "no loaded plugin implements domainfm_predict for it")
        if len(result) != len(records):
            raise PredictFailedError(
                domain, f"domainfm_predict returned {len(result)} predictions for {len(records)} records"
            )
        return result


def _as_layout(ref: RunLayout | Path | None) -> RunLayout | None:
    if ref is None or isinstance(ref, RunLayout):
        return ref
    from domainfm.serve.artifacts import explicit_layout

    return explicit_layout(Path(ref), Path("runs"))
