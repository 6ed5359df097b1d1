"""Resource measurements for the resource constraints: energy and CO2 (codecarbon, offline) and latency."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

from domainfm.types import RunContext

DEFAULT_COUNTRY = "DEU"
"""ISO 3166-1 alpha-3 code whose grid carbon intensity codecarbon applies; ``DOMAINFM_CO2_COUNTRY`` overrides."""

log = logging.getLogger(__name__)


class EnergyTracker:
    """Measure the energy (kWh) and CO2 (kg) of a block with codecarbon's ``OfflineEmissionsTracker``.

    Results are *added* to ``ctx.resources.energy_kwh`` / ``co2_kg`` (so several tracked stages sum up).
    Nothing is written to disk (``save_to_file=False``) and nothing is sent anywhere. If codecarbon is
    missing or fails, the block still runs: the values stay None and the reason is kept in
    ``ctx.state['energy_tracking_error']`` (and on :attr:`error`), so the resource constraints say
    "not measurable" rather than pass.

    :param country: ISO alpha-3 country for the grid's carbon intensity; default: ``options.co2_country`` of the
        run config, else the environment variable ``DOMAINFM_CO2_COUNTRY``, else DEU.
    """

    def __init__(self, ctx: RunContext, country: str | None = None, measure_power_secs: float = 15.0) -> None:
        self.ctx = ctx
        self.country = str(
            country or ctx.option("co2_country") or os.environ.get("DOMAINFM_CO2_COUNTRY") or DEFAULT_COUNTRY
        )
        self.measure_power_secs = measure_power_secs
        self.error: str | None = None
        self.energy_kwh: float | None = None
        self.co2_kg: float | None = None
        self._tracker: Any = None

    def __enter__(self) -> EnergyTracker:
        try:
            from codecarbon import OfflineEmissionsTracker

            self._tracker = OfflineEmissionsTracker(
                country_iso_code=self.country,
                save_to_file=False,
                log_level="error",
                measure_power_secs=self.measure_power_secs,
                allow_multiple_runs=True,  # several runs on one machine must not block each other
                project_name=f"domainfm-{self.ctx.domain}",
            )
            self._tracker.start()
        except Exception as exc:  # ImportError, codecarbon hardware probing errors
            self._fail(exc)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._tracker is None:
            return
        try:
            co2 = self._tracker.stop()
            data = getattr(self._tracker, "final_emissions_data", None)
            energy = getattr(data, "energy_consumed", None)
            if co2 is None or energy is None:
                raise RuntimeError("codecarbon returned no measurement")
            self.co2_kg, self.energy_kwh = float(co2), float(energy)
            res = self.ctx.resources
            res.co2_kg = (res.co2_kg or 0.0) + self.co2_kg
            res.energy_kwh = (res.energy_kwh or 0.0) + self.energy_kwh
            self.ctx.state["energy_country"] = self.country
        except Exception as err:
            self._fail(err)
        finally:
            self._tracker = None

    def _fail(self, exc: BaseException) -> None:
        self.error = f"energy tracking failed ({type(exc).__name__}: {exc})"
        self.ctx.state["energy_tracking_error"] = self.error
        log.warning(self.error)
        self._tracker = None


def measure_latency(
    fn: Callable[[Any], Any], batches: Iterable[Any], warmup: int = 1
) -> tuple[float, float]:
    """Call ``fn(batch)`` for each batch and return the (p50, p95) wall time in milliseconds.

    The first ``warmup`` calls are made but not timed (lazy initialisation, caches). Raises ValueError
    when nothing was timed.
    """
    items = list(batches)
    for batch in items[:warmup]:
        fn(batch)
    timed = items[warmup:] if len(items) > warmup else items
    if not timed:
        raise ValueError("measure_latency: no batches to time")
    times = []
    for batch in timed:
        started = time.perf_counter()
        fn(batch)
        times.append((time.perf_counter() - started) * 1000.0)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


DEFAULT_SERVING_PATH = "the domain's predict hook on one record (what `domainfm serve` runs per request)"


@dataclass
class ServingLatency:
    """Single-request latency of the serving path and a sentence saying exactly what was timed."""

    p50_ms: float
    p95_ms: float
    n: int
    warmup: int
    timed: str
    outputs: list[Any] = field(default_factory=list, repr=False)


def serving_path(predictor: Any) -> str:
    """What one request runs for ``predictor``: its ``serving_path`` attribute when it declares one (e.g.
    "de-identification, calibrated top-3 suggestions and abstention; attributions only on request")."""
    declared = getattr(predictor, "serving_path", None)
    return str(declared) if isinstance(declared, str) and declared.strip() else DEFAULT_SERVING_PATH


def time_serving(
    call: Callable[[Any], Any], records: Sequence[Any], *, path: str, split: str, warmup: int = 1
) -> ServingLatency:
    """Time ``call(record)`` once per record, the way a server answers single requests.

    The first ``warmup`` calls run untimed (lazy loading, caches: a server pays them once, not per request)
    unless there are no others. Every call's result is kept in :attr:`ServingLatency.outputs`. Raises
    ValueError without records.
    """
    if not records:
        raise ValueError("time_serving: no records to time")
    warm = min(warmup, len(records) - 1)
    outputs = [call(record) for record in records[:warm]]
    times = []
    for record in records[warm:]:
        started = time.perf_counter()
        outputs.append(call(record))
        times.append((time.perf_counter() - started) * 1000.0)
    timed = (
        f"{path}; {len(times)} records of the {split} split one per call"
        + (f", after {warm} untimed warm-up call{'s' if warm > 1 else ''}" if warm else "")
    )
    return ServingLatency(
        float(np.percentile(times, 50)), float(np.percentile(times, 95)), len(times), warm, timed, outputs
    )
