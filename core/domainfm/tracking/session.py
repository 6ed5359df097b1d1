"""A tracked domainfm run: the trackers ``train.report_to`` names, open from the first training stage to the report.

A run has one session (keyed by its run directory; variants and a distillation teacher share it). Logging that
fails after the session opened (a tracking server gone) is warned about once per tracker and recorded in
``ctx.state["tracking_errors"]``: a long training run is never lost to its tracker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from domainfm.errors import ConfigError
from domainfm.tracking import model_name, require, trackers
from domainfm.tracking.flatten import flatten
from domainfm.tracking.tensorboard_tracker import RUN_LOGDIR
from domainfm.training_log import curves, find_training_logs, read_training_log
from domainfm.types import Artifact, Evaluation, RunContext

log = logging.getLogger(__name__)
_SESSIONS: dict[str, Session] = {}


class Session:
    """Fans each figure out to every tracker of the run."""

    def __init__(self, ctx: RunContext, backends: list[Any]) -> None:
        self.key = session_key(ctx)
        self.ctx = ctx
        self.backends = backends
        self.logged_curves: set[Path] = set()
        self.failed: set[str] = set()

    def _each(self, what: str, call: Callable[[Any], None]) -> None:
        for backend in self.backends:
            if backend.name in self.failed:
                continue
            try:
                call(backend)
            except Exception as exc:  # a tracker's failure never fails the run; it is said once
                self.failed.add(backend.name)
                message = f"{backend.name}: {what} failed: {type(exc).__name__}: {exc}"
                log.warning("tracking stopped for this run: %s", message)
                self.ctx.state.setdefault("tracking_errors", []).append(message)

    def params(self, values: Mapping[str, Any]) -> None:
        self._each("params", lambda b: b.params(values))

    def metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        self._each("metrics", lambda b: b.metrics(values, step))

    def tags(self, values: Mapping[str, Any]) -> None:
        self._each("tags", lambda b: b.tags(values))

    def text(self, name: str, value: str) -> None:
        self._each("text", lambda b: b.text(name, value))

    def files(self, paths: list[Path], folder: str | None = None) -> None:
        self._each("files", lambda b: b.files(paths, folder))

    def close(self, status: str) -> None:
        self._each("close", lambda b: b.close(status))
        _SESSIONS.pop(self.key, None)

    # --------------------------------------------------------------------------- what a run logs

    def log_start(self, ctx: RunContext) -> None:
        config = json.loads(ctx.config.model_dump_json(by_alias=True))
        params = flatten(config)
        for split, fp in (ctx.state.get("data_fingerprints") or {}).items():
            params[f"data_fingerprint.{split}"] = fp.get("sha256")
            params[f"data_size.{split}"] = fp.get("n")
        lineage = ctx.state.get("lineage") or {}  # a `domainfm improve` child names its parent
        params.update({f"lineage.{k}": v for k, v in lineage.items() if not isinstance(v, dict)})
        self.params(params)
        self.tags({"domainfm.run_id": ctx.run_id, "domainfm.domain": ctx.domain, "domainfm.run_dir": str(ctx.run_dir),
                   "device": ctx.device, **({"domainfm.parent_run_id": lineage["parent_run_id"]} if lineage else {})})

    def log_trained(self, ctx: RunContext, artifact: Artifact) -> None:
        """After a model trained: where it is, its size and time, and every training curve not logged yet."""
        prefix = _prefix(ctx)
        self.tags({f"{prefix}artifact_dir": str(artifact.path), f"{prefix}device": artifact.device or ctx.device})
        figures = {"train_seconds": ctx.resources.train_seconds, "parameters": ctx.resources.parameters,
                   "trainable_parameters": ctx.resources.trainable_parameters}
        self.metrics({f"{prefix}{k}": v for k, v in figures.items() if v is not None})
        for name, path in find_training_logs(ctx.run_dir).items():
            if path in self.logged_curves:
                continue
            self.logged_curves.add(path)
            for series, points in curves(read_training_log(path)).items():
                kind = "eval" if series.startswith("eval_") else "train"
                metric = series.removeprefix("eval_").replace(" [seed ", "/seed_").rstrip("]")
                for step, value in points:
                    self.metrics({f"{name}/{kind}/{metric}": value}, step=int(step))

    def log_evaluation(self, ctx: RunContext, evaluation: Evaluation) -> None:
        """Final metrics of one model on its split, intervals included (``*_ci95_low``/``*_ci95_high``)."""
        prefix = f"{_prefix(ctx)}{evaluation.split}/"
        self.metrics({prefix + k: v for k, v in evaluation.metrics.items()})
        self.tags({f"{prefix}key_metric": evaluation.key_metric, f"{prefix}n_items": evaluation.n_items})

    def log_benefit(self, report: Any) -> None:
        """Every benefit term and constraint at the chosen operating point, the decision and the verdict."""
        best = report.best
        figures: dict[str, Any] = {"benefit/lambda": report.lambda_}
        if best is not None:
            figures.update({"benefit/objective": best.objective, "benefit/R_T": best.r_t, "benefit/R_S": best.r_s,
                            "benefit/coverage": best.coverage, "benefit/threshold": best.threshold})
        for term in report.terms:
            if term.value_at_optimum is not None:
                figures[f"benefit/term/{term.name}"] = term.value_at_optimum
        tags: dict[str, Any] = {"verdict": report.verdict, "benefit/variant": best.variant if best else "none feasible"}
        for c in report.constraints:
            figures[f"benefit/constraint/{c.name}/limit"] = c.limit
            if c.at_optimum is not None:
                if c.at_optimum.value is not None:
                    figures[f"benefit/constraint/{c.name}"] = c.at_optimum.value
                tags[f"benefit/constraint/{c.name}/status"] = c.at_optimum.status
        self.metrics(figures)
        self.tags(tags)
        try:
            from domainfm.benefit.verdict import verdict_reason

            reason = verdict_reason(report)
        except ImportError:
            reason = None
        if reason:
            self.tags({"verdict_reason": reason})

    def log_end(self, ctx: RunContext, paths: Mapping[str, Path] | None) -> None:
        """Device, energy and serving figures of the run, and its report files."""
        resources = ctx.resources.as_dict()
        self.metrics({f"resources/{k}": v for k, v in resources.items() if isinstance(v, (int, float)) and v is not None})
        for variant, figures in (ctx.state.get("variant_resources") or {}).items():
            self.metrics({f"{variant}/resources/{k}": v for k, v in figures.items() if isinstance(v, (int, float))})
        self.tags({"device": ctx.device})
        files = [Path(p) for p in (paths or {}).values()]
        files += [ctx.run_dir / "run.json"]
        self.files([f for f in files if f.is_file()], "report")


def session_key(ctx: RunContext) -> str:
    return str(Path(ctx.run_dir).resolve())


def current(ctx: RunContext) -> Session | None:
    """The open session of the run ``ctx`` belongs to, if it is tracked."""
    return _SESSIONS.get(session_key(ctx))


def open_session(ctx: RunContext) -> Session | None:
    """The run's session, opened now when its first model is about to train (None: not tracked)."""
    names = trackers(ctx)
    if not names:
        return None
    existing = current(ctx)
    if existing is not None:
        return existing
    require(names)  # a missing package fails in one line, before training
    backends: list[Any] = []
    if "mlflow" in names:
        from domainfm.tracking import default_tracking_uri
        from domainfm.tracking.mlflow_tracker import MlflowTracker

        try:
            backends.append(MlflowTracker(run_name=f"{ctx.domain}/{ctx.run_id}", domain=ctx.domain,
                                          output_dir=Path(ctx.config.output_dir),
                                          tags={"domainfm.run_id": ctx.run_id, "domainfm.domain": ctx.domain}))
        except Exception as exc:  # an unreachable server, a store it cannot open: one line, before training
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ConfigError(f"train.report_to=mlflow: cannot start a run in {default_tracking_uri(ctx.config.output_dir)}"
                              f" ({type(exc).__name__}: {first[:300]}); set MLFLOW_TRACKING_URI or drop mlflow") from None
    if "tensorboard" in names:
        from domainfm.tracking import tensorboard_dir
        from domainfm.tracking.tensorboard_tracker import TensorBoardTracker

        backends.append(TensorBoardTracker(tensorboard_dir(ctx, RUN_LOGDIR)))
    session = Session(ctx, backends)
    _SESSIONS[session.key] = session
    session.log_start(ctx)
    return session


def _prefix(ctx: RunContext) -> str:
    """Figures of one model of a multi-model run carry its name (``lora/test/macro_f1``); a plain run's do not."""
    return f"{model_name(ctx)}/" if ctx.variant else ""
