"""Runs the stages of a domain through the hooks: data → train → load → evaluate → benefit → report.

Every stage call goes through :meth:`Runner.stage`, which fires the lifecycle hooks, times the stage and
turns a missing implementation into a clear error. The run directory holds everything a run produced:

    runs/<domain>/<run id>/
      run.json                 config, domain, device, resources, status
      artifact/                the model (save_pretrained layout + domainfm-artifact.json)
      evaluations/<variant>.json
      metrics.json             key figures of every variant
      benefit.json, report.html
"""

from __future__ import annotations

import json
import resource
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from domainfm.config import RunConfig
from domainfm.device import describe_device, resolve_device
from domainfm.engine.distill import RUN_DATA, evaluate_companions
from domainfm.errors import DomainfmError
from domainfm.io import atomic_write_json
from domainfm.manager import PluginExclusion, PluginManager
from domainfm.run_layout import check_name
from domainfm.types import Artifact, DataBundle, Evaluation, Prediction, Predictor, RunContext, dp_epsilon_of

T = TypeVar("T")


class StageNotImplementedError(DomainfmError):
    """No loaded plugin implements a stage for the domain."""


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


@dataclass
class RunResult:
    ctx: RunContext
    artifact: Artifact | None = None
    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    report: Any = None
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def excluded_plugins(self) -> list[PluginExclusion]:
        """Plugins that raised outside their own domain and were excluded (this run or earlier in the process)."""
        return list(self.ctx.pm.exclusions) if self.ctx.pm is not None else []


class Runner:
    """The stages of a run: one method per stage, each calling its hook through ``pm.hooks`` and observed."""

    def __init__(self, pm: PluginManager, config: RunConfig) -> None:
        self.pm = pm.load()
        self.config = config

    # ----------------------------------------------------------------------------- context

    def context(self, domain: str, run_dir: Path | None = None) -> RunContext:
        spec = self.pm.domain(domain)
        config = self.config.model_copy(deep=True)
        config.domain = domain
        if config.model.base is None:
            config.model.base = spec.default_model
        if config.data is None:
            config.data = spec.default_data
        if config.run_name is not None:
            check_name(config.run_name, "run_name")  # it becomes a folder name: never '../x' or 'a/b'
        run_id = run_dir.name if run_dir else (config.run_name or new_run_id())
        run_dir = run_dir or Path(config.output_dir) / domain / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        device = resolve_device(config.device)
        return RunContext(run_id=run_id, domain=domain, config=config, run_dir=run_dir, device=device, pm=self.pm)

    def stage(self, ctx: RunContext, name: str, call: Callable[[], T | None]) -> T:
        hooks = self.pm.hooks
        hooks.stage_started(ctx, name)
        started = time.perf_counter()
        try:
            result = call()
            if result is None:
                raise StageNotImplementedError(
                    f"no loaded plugin implements stage {name!r} for domain {ctx.domain!r}"
                )
        except BaseException as exc:
            hooks.stage_failed(ctx, name, exc)
            raise
        seconds = time.perf_counter() - started
        ctx.resources.stage_seconds[name] = round(seconds, 4)
        hooks.stage_finished(ctx, name, result, seconds)
        return result

    # ----------------------------------------------------------------------------- stages

    def load_data(self, ctx: RunContext, source: str | None = None) -> DataBundle:
        src = source or ctx.config.data or self.pm.domain(ctx.domain).default_data
        data = self.stage(ctx, "data", lambda: self.pm.hooks.load_data(ctx, ctx.domain, src))
        from domainfm.fingerprints import data_fingerprints

        ctx.state["data_fingerprints"] = data_fingerprints(data)  # run.json: which items each split held
        from domainfm.benefit.overrides import check_override_names

        check_override_names(ctx, data.group_columns)  # a mistyped benefit override fails before any training
        return data

    def train(self, ctx: RunContext, data: DataBundle) -> Artifact:
        """The train stage; its time (measured here, once, for every domain) is the run's training time."""
        artifact = self.stage(ctx, "train", lambda: self.pm.hooks.train(ctx, ctx.domain, data))
        ctx.resources.train_seconds = ctx.resources.stage_seconds["train"]
        ctx.dp_epsilon = dp_epsilon_of(artifact)
        return artifact

    def load_predictor(self, ctx: RunContext, artifact: Artifact) -> Predictor:
        predictor = self.stage(ctx, "load", lambda: self.pm.hooks.load_predictor(ctx, ctx.domain, artifact))
        ctx.dp_epsilon = dp_epsilon_of(artifact) if dp_epsilon_of(artifact) is not None else ctx.dp_epsilon
        return predictor

    def predict(self, ctx: RunContext, predictor: Predictor, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        return self.stage(ctx, "predict", lambda: self.pm.hooks.predict(ctx, ctx.domain, predictor, records))

    def evaluate(self, ctx: RunContext, predictor: Predictor, data: DataBundle, split: str | None = None) -> Evaluation:
        name = split or ctx.config.eval_split
        if name not in data.tables:
            raise DomainfmError(f"data has no split {name!r} to evaluate; it has {sorted(data.tables)}")
        return self.stage(ctx, "evaluate", lambda: self.pm.hooks.evaluate(ctx, ctx.domain, predictor, data, name))

    def benefit(self, ctx: RunContext, evaluations: dict[str, Evaluation]) -> Any:
        def score() -> Any:
            from domainfm import benefit

            return benefit.score(ctx, evaluations)

        return self.stage(ctx, "benefit", score)

    # ----------------------------------------------------------------------------- whole run

    def run(self, domain: str, source: str | None = None, progress: Callable[[str], None] | None = None) -> RunResult:
        """The main job: data → fine-tune → evaluate → benefit report, all written to the run directory."""
        say = progress or (lambda _msg: None)
        ctx = self.context(domain)
        result = RunResult(ctx=ctx)
        self.write_run_json(ctx, status="running")
        try:
            say(f"loading data ({ctx.config.data})")
            data = self.load_data(ctx, source)
            self.remember_data(ctx, data)
            modes = ctx.config.variants or [ctx.config.model.mode]
            trained: list[RunContext] = []
            for mode in modes:
                vctx = ctx if len(modes) == 1 else ctx.for_variant(mode, **{"model.mode": mode})
                trained.append(vctx)
                say(f"training ({mode}, base {ctx.config.model.base}, on {describe_device(ctx.device)})")
                with _energy_tracker(vctx):
                    artifact = self.train(vctx, data)
                say(f"evaluating {mode} on {ctx.config.eval_split}")
                predictor = self.load_predictor(vctx, artifact)
                evaluation = self.evaluate(vctx, predictor, data)
                variant = str(artifact.metadata.get("variant", mode))
                result.evaluations[variant] = evaluation
                self.measure_serving(vctx, predictor, data)
                # the benefit engine reads a variant's own measurements from here
                evaluation.extra["resources"] = vctx.resources.as_dict()
                evaluation.extra["artifact_path"] = str(artifact.path)
                ctx.state.setdefault("variant_resources", {})[variant] = vctx.resources.as_dict()
                if vctx is not ctx:
                    ctx.resources = vctx.resources  # the last variant's resources stand for the run
                result.artifact = artifact
                # a distilled student's teacher is evaluated too: a second candidate for the benefit report
                evaluate_companions(self, ctx, vctx, artifact, data, result.evaluations)
            self.save_evaluations(ctx, result.evaluations)
            say("scoring benefit")
            result.report = self.benefit(ctx, result.evaluations)
            _mark_source(result.report, result.evaluations)
            result.paths.update(self.write_report(ctx, result.report))
            self.write_model_cards(ctx)
        except BaseException as exc:
            self.write_run_json(ctx, status="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        self.write_run_json(ctx, status="finished")
        self.remove_checkpoints(trained)
        result.paths["run"] = ctx.run_dir
        return result

    def train_run(self, domain: str, source: str | None = None, run_dir: Path | None = None,
                  progress: Callable[[str], None] | None = None) -> RunResult:
        """Data → fine-tune with the lifecycle of :meth:`run`, for ``domainfm train`` and a plugin's own train
        command: run.json says ``running``, then ``trained`` or ``failed`` (with the error); the training data's
        privacy sample is kept, energy is measured, the training time is the train stage's, a tracked run
        (``train.report_to``) ends. ``run_dir`` (default: a new run under ``output_dir``) is where run.json and
        ``artifact/`` go. ``domainfm evaluate`` follows."""
        say = progress or (lambda _msg: None)
        ctx = self.context(domain, run_dir)
        result = RunResult(ctx=ctx)
        self.write_run_json(ctx, status="running")
        try:
            say(f"loading data ({source or ctx.config.data})")
            data = self.load_data(ctx, source)
            self.remember_data(ctx, data)
            say(f"training ({ctx.config.model.mode}, base {ctx.config.model.base}, on {describe_device(ctx.device)})")
            with _energy_tracker(ctx):
                result.artifact = self.train(ctx, data)
            self.write_model_cards(ctx)
        except BaseException as exc:
            self.write_run_json(ctx, status="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        self.write_run_json(ctx, status="trained")
        self.remove_checkpoints([ctx])
        from domainfm.tracking.plugin import finish

        finish(ctx)  # train.report_to: no report stage follows, so the tracked run ends here
        result.paths["run"] = ctx.run_dir
        return result

    def remember_data(self, ctx: RunContext, data: DataBundle) -> None:
        """What a run keeps of its data before training: sizes (run.json), the bundle itself (an engine stage
        tells the domain's own data from one it derived) and the privacy sample of the training text."""
        ctx.state["data_sizes"] = data.sizes()
        ctx.state[RUN_DATA] = data
        _remember_training_texts(ctx, data)

    # ----------------------------------------------------------------------------- measurement and files

    def measure_serving(self, ctx: RunContext, predictor: Predictor, data: DataBundle, n: int = 32) -> None:
        """Single-request latency p50/p95 on real inputs of the evaluated split, and peak memory."""
        from domainfm.benefit.resources import serving_path, time_serving

        table = data.tables.get(ctx.config.eval_split)
        if table is None or len(table) == 0:
            return
        records = [dict(table[i]) for i in range(min(n, len(table)))]
        latency = time_serving(
            lambda rec: self.pm.hooks.predict(ctx, ctx.domain, predictor, [rec]) or [],
            records, path=serving_path(predictor), split=ctx.config.eval_split,
        )
        outputs = [p.model_dump_json(exclude_none=True) for preds in latency.outputs for p in preds]
        ctx.resources.latency_ms_p50, ctx.resources.latency_ms_p95 = latency.p50_ms, latency.p95_ms
        ctx.state["latency_timed"] = latency.timed  # the benefit report says what the figure is
        ctx.resources.peak_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ctx.state.setdefault("privacy_texts", {})["outputs"] = outputs

    def save_evaluations(self, ctx: RunContext, evaluations: dict[str, Evaluation]) -> None:
        for variant, ev in evaluations.items():
            atomic_write_json(ctx.run_dir / "evaluations" / f"{variant}.json", json.loads(ev.model_dump_json()))
        atomic_write_json(
            ctx.run_dir / "metrics.json",
            {variant: {"split": ev.split, "device": ev.device, **ev.metrics} for variant, ev in evaluations.items()},
        )

    def remove_checkpoints(self, contexts: Sequence[RunContext]) -> None:
        """Delete the training checkpoints of a run that finished (a failed or killed run keeps them to resume
        from); ``domainfm runs gc`` reclaims those of runs finished before this existed."""
        import os

        from domainfm.run_gc import remove_run_checkpoints

        if os.environ.get("RANK", "0") != "0":  # under torchrun only the main process touches the run folder
            return
        for run_dir in {vctx.run_dir for vctx in contexts}:
            remove_run_checkpoints(run_dir)

    def write_report(self, ctx: RunContext, report: Any) -> dict[str, Path]:
        from domainfm import benefit

        return self.stage(ctx, "report", lambda: benefit.write_report(report, ctx.run_dir))

    def write_model_cards(self, ctx: RunContext) -> None:
        """A ``README.md`` model card in every artifact of the run (variants and a distillation teacher too)."""
        from domainfm.model_card import write_model_card
        from domainfm.types import ARTIFACT_METADATA

        for meta in sorted([*ctx.run_dir.glob(f"artifact/{ARTIFACT_METADATA}"),
                            *ctx.run_dir.glob(f"variants/*/artifact/{ARTIFACT_METADATA}")]):
            write_model_card(meta.parent, ctx.run_dir)

    def write_run_json(self, ctx: RunContext, status: str, error: str | None = None) -> None:
        payload = {
            "run_id": ctx.run_id,
            "domain": ctx.domain,
            "status": status,
            "error": error,
            "started_at": ctx.started_at.isoformat(),
            "updated_at": datetime.now(timezone.utc).isoformat(),
            "device": ctx.device,
            "device_description": describe_device(ctx.device) if status != "running" else ctx.device,
            "plugin": self.pm.domain(ctx.domain).plugin,
            "config": json.loads(ctx.config.model_dump_json(by_alias=True)),
            "resources": ctx.resources.as_dict(),
            "data_sizes": ctx.state.get("data_sizes"),
            "data_fingerprints": ctx.state.get("data_fingerprints"),
            "resumed_from": ctx.state.get("resumed_from"),
            "variant_resources": ctx.state.get("variant_resources"),
            "dp_epsilon": ctx.state.get("dp_epsilon"),
        }
        atomic_write_json(ctx.run_dir / "run.json", payload)


def _mark_source(report: Any, evaluations: Mapping[str, Evaluation]) -> None:
    """Say in the report which evaluation records it scores: the run's own, just written."""
    from domainfm.benefit.model import BenefitReport, ReportSource

    if isinstance(report, BenefitReport):
        report.source = ReportSource(splits={name: ev.split for name, ev in evaluations.items()}, scored_by="run")


def _remember_training_texts(ctx: RunContext, data: DataBundle, limit: int = 2000) -> None:
    """Keep a sample of the training text for the privacy constraint (scanned for personal data).

    The bundle's text column is what the model learns from; label and id columns are not scanned.
    Without a text column, every string column but the label is.
    """
    train = data.tables.get("train")
    texts: list[str] = []
    if train is not None and len(train):
        sample = train.select(range(min(limit, len(train))))
        if data.text_column and data.text_column in train.column_names:
            columns = [data.text_column]
        else:
            first = sample[0]
            columns = [c for c in sample.column_names if c != data.label_column and isinstance(first[c], str)]
        for column in columns:
            texts.extend(str(v) for v in sample[column] if v is not None)
    ctx.state.setdefault("privacy_texts", {})["training_data"] = texts
    ctx.state["privacy_public_names"] = list(data.public_names)


class _NullTracker:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _energy_tracker(ctx: RunContext) -> Any:
    if not ctx.config.benefit.energy_tracking:
        return _NullTracker()
    try:
        from domainfm.benefit.resources import EnergyTracker
    except ImportError:
        return _NullTracker()
    return EnergyTracker(ctx)
