"""``domainfm improve RUN --feedback SOURCE``: a child run trained from RUN's model on new labelled data.

The child is a normal run (``runs/<domain>/<id>/``: run.json with status, artifact, evaluations, benefit report)
trained by the domain's own ``domainfm_train`` with the parent's configuration, from the parent's weights (its
head grown for new labels, :mod:`~domainfm.continual.head`), on the feedback plus replayed parent rows
(:mod:`~domainfm.continual.plan`), optionally pulled toward the parent by L2-SP or EWC
(``train.regularisation.l2sp`` / ``ewc``, :mod:`~domainfm.continual.regularisers`). Then, unless switched off:

- the parent, naive fine-tuning (feedback only, from the parent) and full retraining (from the base model on
  everything) are measured beside the child on the parent's test split and the held-out feedback: gain on the
  new, forgetting on the old, training seconds;
- the promotion gate (:mod:`~domainfm.continual.gate`) decides whether the child becomes the domain's served
  default; the decision and its reasons go into run.json (``promotion``), the benefit report (``continual``) and
  the terminal.

Options (``--set options.NAME=VALUE``): ``replay_ratio`` (1, parent rows per feedback row), ``replay_per_label`` (10: at
least this many replayed rows per parent label), ``feedback_holdout``
(0.2), ``head_init`` (``imprint``: new labels' head rows from the parent's features of their examples,
:func:`~domainfm.continual.head.imprint_new_rows`; ``random``), ``promotion_min_gain`` (0: objective gain the gate requires), ``max_forgetting`` (off: accuracy the child
may lose on the parent's test split), ``keep_comparison_models`` (false: the naive and full-retraining models are
measured, then deleted).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from domainfm.config import RunConfig, apply_override, parse_config
from domainfm.continual.gate import Decision, Standing, decide, standing
from domainfm.continual.lineage import lineage_record, update_run_json
from domainfm.continual.measure import gain_and_forgetting, old_new_overall
from domainfm.continual.plan import DEFAULT_REPLAY_PER_LABEL, DEFAULT_REPLAY_RATIO, ImprovePlan, build_plan
from domainfm.errors import ConfigError, DataError
from domainfm.manager import PluginManager
from domainfm.run_layout import RunLayout, resolve_model
from domainfm.runner import Runner, RunResult
from domainfm.types import Artifact, DataBundle, ResourceUsage, RunContext

PARENT_BASE = "parent_base"
PARENT_SERVED = "parent_served"  # the parent's weights over the grown labels, new rows silenced (its standing)
COMPARISONS = "comparisons"
ANCHOR_FILE = "anchor.safetensors"
IMPRINT_REFERENCE = 512  # texts of the parent's labels the imprinted rows are centred on
TRAINABLE_KINDS = ("hf-sequence-classification",)
CHILD_MODES = ("full", "lora", "adalora", "ia3")
OWN_FILES = ("domainfm-artifact.json", "README.md", "onnx")  # never shared with the parent's artifact


@dataclasses.dataclass
class ImproveResult:
    run: RunResult
    plan: ImprovePlan
    models: dict[str, dict[str, Any]]
    decision: Decision


def parent_config(layout: RunLayout, overrides: tuple[str, ...] | list[str]) -> RunConfig:
    """The parent's configuration with ``overrides`` applied: one model (no variants), a fresh run name, the
    mode the parent's artifact can continue in, class weights restoring the label mix of everything seen."""
    run = layout.run_json()
    if not run.get("config"):
        raise DataError(f"{layout.run_dir}: run.json has no config to continue from")
    data = dict(run["config"])
    data["run_name"] = None
    data["variants"] = None
    meta = (layout.load_artifact().metadata or {})
    mode = str(meta.get("mode") or (data.get("model") or {}).get("mode") or "full")
    data.setdefault("model", {})["mode"] = mode if mode in CHILD_MODES else "full"
    # the child's training rows are a chosen mix (all the feedback, a sample of the parent's rows), not the
    # label mix of the data it stands for: unweighted, the head learns to favour the feedback's labels and the
    # parent's labels lose accuracy. "prior" weights the rows back to the label mix of the parent's training
    # rows plus the feedback (set in ImproveRunner._prepare); --set train.class_weights=none keeps the plain loss
    data.setdefault("train", {})["class_weights"] = "prior"
    for assignment in overrides:
        apply_override(data, assignment)
    config = parse_config(data, source=f"{layout.run_dir}/run.json with --set")
    if config.model.mode not in CHILD_MODES:
        raise ConfigError(f"model.mode={config.model.mode}: improve continues a transformers classifier; use one of "
                          f"{', '.join(CHILD_MODES)}")
    return config


def check_parent(layout: RunLayout) -> Artifact:
    """The parent's artifact, refused in one line when it cannot be trained further."""
    if layout.run_dir is None:
        raise DataError(f"{layout.artifact_dir}: improve needs a run directory (its run.json names the data the "
                        "parent trained on), not a bare artifact")
    status = layout.run_json().get("status")
    if status not in ("finished", "trained"):
        raise DataError(f"{layout.run_dir}: the parent run's status is {status!r}; improve needs a finished run")
    artifact = layout.load_artifact()
    meta = artifact.metadata or {}
    if artifact.kind not in TRAINABLE_KINDS or meta.get("peft_adapter") or meta.get("ensemble_size"):
        raise DataError(f"{layout.artifact_dir}: a {artifact.kind} artifact (model.mode={meta.get('mode')}); improve "
                        "continues a transformers sequence classifier (modes full, lora, adalora, ia3, distill)")
    return artifact


class ImproveRunner(Runner):
    """The child's lifecycle: :meth:`Runner.run` with the data stage building the child's data and base model
    from the parent, and run.json carrying ``lineage`` (and, once decided, ``promotion``)."""

    def __init__(self, pm: PluginManager, config: RunConfig, *, parent: RunLayout, parent_artifact: Artifact,
                 feedback: str, lineage: dict[str, Any], parent_data: DataBundle | None = None,
                 feedback_data: DataBundle | None = None) -> None:
        super().__init__(pm, config)
        self.parent = parent
        self.parent_artifact = parent_artifact
        self.feedback = feedback
        self.lineage = lineage
        self.parent_data = parent_data
        self.feedback_data = feedback_data
        self.plan: ImprovePlan | None = None
        self.ctx: RunContext | None = None

    def context(self, domain: str, run_dir: Path | None = None) -> RunContext:
        ctx = super().context(domain, run_dir)
        ctx.state["lineage"] = self.lineage
        self.ctx = ctx
        return ctx

    def load_data(self, ctx: RunContext, source: str | None = None) -> DataBundle:
        from domainfm.benefit.overrides import check_override_names
        from domainfm.fingerprints import data_fingerprints

        data = self.stage(ctx, "data", lambda: self._prepare(ctx))
        ctx.state["data_fingerprints"] = data_fingerprints(data)
        check_override_names(ctx, data.group_columns)
        return data

    def _prepare(self, ctx: RunContext) -> DataBundle:
        from domainfm.continual.head import prepare_parent_base
        from domainfm.data import reading_feedback

        parent = self.parent_data or self.pm.hooks.load_data(ctx, ctx.domain, str(ctx.config.data))
        with reading_feedback():  # one label is a whole feedback file (corrections, or a new intent's examples)
            feedback = self.feedback_data or self.pm.hooks.load_data(ctx, ctx.domain, self.feedback)
        if parent is None or feedback is None:
            raise DataError(f"no loaded plugin reads data for domain {ctx.domain!r}")
        seed = ctx.config.train.seed
        self.plan = build_plan(parent, feedback, self.parent_artifact.label_names or [],
                               replay_ratio=float(ctx.option("replay_ratio", DEFAULT_REPLAY_RATIO)),
                               replay_per_label=int(ctx.option("replay_per_label", DEFAULT_REPLAY_PER_LABEL)),
                               holdout=float(ctx.option("feedback_holdout", 0.2)), seed=seed)
        imprint, reference = self._imprint_examples(str(ctx.option("head_init", "imprint")))
        base = prepare_parent_base(Path(self.parent_artifact.path), self.plan.labels, ctx.run_dir / PARENT_BASE,
                                   seed=seed, trust_remote_code=ctx.config.model.trust_remote_code,
                                   imprint=imprint, reference=reference, max_length=ctx.config.model.max_length,
                                   served_dir=ctx.run_dir / PARENT_SERVED)
        ctx.config.model.base = str(base)
        if ctx.config.train.class_weights == "prior" and not ctx.config.train.class_prior:
            ctx.config.train.class_prior = label_mix(self.plan.full)
        reg = ctx.config.train.regularisation
        if reg.ewc > 0 or (reg.l2sp > 0 and reg.anchor is None):
            from domainfm.continual.regularisers import write_parent_anchor

            train = self.plan.child.tables["train"]
            n_feedback = len(self.plan.naive.tables["train"])  # the child's rows: feedback first, then the replay
            replay = train.select(range(n_feedback, len(train))) if len(train) > n_feedback else train
            label = self.plan.child.label_column or "label"
            ids = [self.plan.labels.index(str(v)) for v in replay[label]]
            reg.anchor = str(write_parent_anchor(base, list(replay[self.plan.child.text_column or "text"]), ids,
                                                 ctx.run_dir / ANCHOR_FILE, with_fisher=reg.ewc > 0,
                                                 max_length=ctx.config.model.max_length))
        ctx.state["continual_sizes"] = self.plan.sizes()
        return self.plan.child

    def _imprint_examples(self, head_init: str) -> tuple[dict[str, list[str]], list[str]]:
        """(new label -> its feedback training texts, up to IMPRINT_REFERENCE texts of the parent's labels from
        the child's training rows) for ``head_init=imprint``; nothing for ``random``."""
        if head_init not in ("imprint", "random"):
            raise ConfigError(f"options.head_init: {head_init!r} is not one of imprint, random")
        assert self.plan is not None
        if head_init == "random" or not self.plan.new_labels:
            return {}, []
        train = self.plan.child.tables["train"]
        text, label = self.plan.child.text_column or "text", self.plan.child.label_column or "label"
        new = set(self.plan.new_labels)
        examples: dict[str, list[str]] = {name: [] for name in self.plan.new_labels}
        reference: list[str] = []
        for t, y in zip(train[text], train[label], strict=True):
            if str(y) in new:
                examples[str(y)].append(str(t))
            elif len(reference) < IMPRINT_REFERENCE:
                reference.append(str(t))
        return examples, reference

    def train(self, ctx: RunContext, data: DataBundle) -> Artifact:
        """The domain's training from the grown parent; the artifact then names the base model the chain started
        from (the grown parent is scratch, deleted after the run) and the artifact it continued."""
        artifact = super().train(ctx, data)
        root = self.lineage.get("base_model")
        if root and ctx.variant is None and Path(artifact.path) == ctx.artifact_dir:
            artifact.base_model = str(root)
            artifact.metadata["continued_from"] = str(self.parent_artifact.path)
            artifact.save_metadata()
        return artifact

    def write_run_json(self, ctx: RunContext, status: str, error: str | None = None) -> None:
        super().write_run_json(ctx, status, error)
        update_run_json(ctx.run_dir, lineage=ctx.state.get("lineage"), promotion=ctx.state.get("promotion"),
                        continual=ctx.state.get("continual"))


def label_mix(bundle: DataBundle) -> dict[str, float]:
    """Each label's share of ``bundle``'s training rows."""
    labels = [str(v) for v in bundle.tables["train"][bundle.label_column or "label"]]
    counts = Counter(labels)
    return {k: n / len(labels) for k, n in sorted(counts.items())}


def improve(
    pm: PluginManager,
    parent_ref: str | Path,
    feedback: str,
    overrides: tuple[str, ...] | list[str] = (),
    *,
    force: bool = False,
    compare: bool = True,
    variant: str | None = None,
    output_dir: str | Path = "runs",
    progress: Callable[[str], None] | None = None,
    parent_data: DataBundle | None = None,
    feedback_data: DataBundle | None = None,
) -> ImproveResult:
    """Train, measure and gate a child of ``parent_ref`` on ``feedback`` (see the module docstring).
    ``parent_data`` / ``feedback_data`` stand in for reading the parent's source and ``feedback`` through the
    domain's reader (benchmarks pass pinned splits)."""
    say = progress or (lambda _msg: None)
    layout = resolve_model(parent_ref, variant=variant, output_dir=output_dir)
    artifact = check_parent(layout)
    config = parent_config(layout, overrides)
    assert layout.run_dir is not None
    config.output_dir = layout.run_dir.parent.parent  # beside the parent: the resolver weighs them together
    reg = config.train.regularisation
    ratio = float(config.options.get("replay_ratio", DEFAULT_REPLAY_RATIO))
    lineage = lineage_record(layout, feedback, replay_ratio=ratio,
                             regulariser={"l2sp": reg.l2sp, "ewc": reg.ewc}, seed=config.train.seed)
    runner = ImproveRunner(pm, config, parent=layout, parent_artifact=artifact, feedback=feedback, lineage=lineage,
                           parent_data=parent_data, feedback_data=feedback_data)
    say(f"improving {layout.run_dir} with {feedback}")
    try:
        result = runner.run(artifact.domain, progress=say)  # a failure here is recorded in run.json by the Runner
        ctx = result.ctx
        assert runner.plan is not None
        try:
            models, decision = _measure_and_gate(runner, ctx, result, layout, artifact, runner.plan, lineage, force,
                                                 compare, say)
        except BaseException as exc:
            runner.write_run_json(ctx, status="failed", error=f"{type(exc).__name__}: {exc}")
            raise
    finally:
        if runner.ctx is not None:  # the grown parent and the comparison models are scratch
            shutil.rmtree(runner.ctx.run_dir / PARENT_BASE, ignore_errors=True)
            shutil.rmtree(runner.ctx.run_dir / PARENT_SERVED, ignore_errors=True)
            if not runner.ctx.flag("keep_comparison_models", False):
                shutil.rmtree(runner.ctx.run_dir / COMPARISONS, ignore_errors=True)
    return ImproveResult(run=result, plan=runner.plan, models=models, decision=decision)


def _measure_and_gate(runner: ImproveRunner, ctx: RunContext, result: RunResult, layout: RunLayout,
                      artifact: Artifact, plan: ImprovePlan, lineage: dict[str, Any], force: bool, compare: bool,
                      say: Callable[[str], None]) -> tuple[dict[str, dict[str, Any]], Decision]:
    from domainfm import benefit

    label = plan.child.label_column or "label"
    assert result.artifact is not None
    say("measuring the parent and the child on the parent's test split and the held-out feedback")
    models: dict[str, dict[str, Any]] = {}
    parent_predictor = runner.load_predictor(_side(ctx, "parent"), artifact)
    models["parent"] = {**_accuracies(runner, ctx, parent_predictor, plan, label), "train_seconds": None}
    child_predictor = runner.load_predictor(ctx, result.artifact)
    models["replay"] = {**_accuracies(runner, ctx, child_predictor, plan, label),
                        "train_seconds": ctx.resources.train_seconds}
    if compare:
        for name, data, updates in (
            ("naive", plan.naive, {}),
            ("full_retrain", plan.full, {"model.base": lineage.get("base_model")}),
        ):
            say(f"training the {name.replace('_', ' ')} comparison")
            models[name] = _train_and_measure(runner, ctx, name, data, updates, plan, label)
    for figures in models.values():
        figures.update(gain_and_forgetting(models["parent"], figures))
    say("scoring the parent on the child's test items for the promotion gate")
    parent_standing, note = _parent_standing(runner, ctx, layout, artifact, plan)
    child_standing = standing(result.report)
    max_forgetting = ctx.option("max_forgetting")
    decision = decide(parent_standing, child_standing, force=force,
                      min_gain=float(ctx.option("promotion_min_gain", 0.0)),
                      forgetting=models["replay"].get("forgetting_on_old"),
                      max_forgetting=None if max_forgetting is None else float(max_forgetting))
    if note:
        decision.reasons.insert(0, note)
    continual = {
        "lineage": lineage,
        "sizes": plan.sizes(),
        "new_labels": plan.new_labels,
        "models": models,
        "measured_on": {"old": f"the parent's test split ({len(plan.old_test)} items)",
                        "new": f"held-out feedback ({len(plan.new_test)} items)"},
        "promotion": decision.as_dict(),
    }
    ctx.state["promotion"] = {**decision.as_dict(), "decided_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    ctx.state["continual"] = {k: v for k, v in continual.items() if k not in ("lineage", "promotion")}
    if result.report is not None:
        result.report.continual = continual
        result.paths.update(benefit.write_report(result.report, ctx.run_dir))
    runner.write_run_json(ctx, status="finished")
    return models, decision


def _side(ctx: RunContext, name: str, updates: dict[str, Any] | None = None) -> RunContext:
    """A context for a comparison model: the child's settings with ``updates``, its own folder under
    ``comparisons/``, untracked."""
    data = ctx.config.model_dump(by_alias=True)
    for key, value in (updates or {}).items():
        section, _, field = key.rpartition(".")
        (data.setdefault(section, {}) if section else data)[field] = value
    data.setdefault("train", {})["report_to"] = []
    data["train"].setdefault("regularisation", {}).update({"l2sp": 0.0, "ewc": 0.0, "anchor": None})
    config = RunConfig.model_validate(data)
    run_dir = ctx.run_dir / COMPARISONS / name
    run_dir.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(ctx, run_dir=run_dir, config=config, variant=None, resources=ResourceUsage(),
                               state=dict(ctx.state))


def _accuracies(runner: Runner, ctx: RunContext, predictor: Any, plan: ImprovePlan, label: str) -> dict[str, Any]:
    def predict(records: Any) -> list[Any]:
        return runner.pm.hooks.predict(ctx, ctx.domain, predictor, records) or []

    return old_new_overall(predict, plan.old_test, plan.new_test, label)


def _train_and_measure(runner: Runner, ctx: RunContext, name: str, data: DataBundle, updates: dict[str, Any],
                       plan: ImprovePlan, label: str) -> dict[str, Any]:
    from domainfm.engine.distill import RUN_DATA

    side = _side(ctx, name, updates)
    side.state[RUN_DATA] = data
    artifact = runner.train(side, data)
    predictor = runner.load_predictor(side, artifact)
    figures = {**_accuracies(runner, side, predictor, plan, label), "train_seconds": side.resources.train_seconds}
    if not ctx.flag("keep_comparison_models", False):
        shutil.rmtree(side.run_dir, ignore_errors=True)
    return figures


def _parent_standing(runner: Runner, ctx: RunContext, layout: RunLayout, artifact: Artifact,
                     plan: ImprovePlan) -> tuple[Standing, str | None]:
    """The parent's benefit standing on the child's test items. With new labels the parent is scored as it would
    serve them: its own weights and calibration, the grown head's new rows silenced (it never predicts a label
    it was not trained on), through the domain's predictor."""
    side = _side(ctx, "parent")
    scored = artifact
    if plan.new_labels:
        scored = _grown_parent_artifact(ctx, layout, artifact, plan, side.run_dir / "artifact")
    try:
        predictor = runner.load_predictor(side, scored)
        evaluation = runner.evaluate(side, predictor, plan.child, ctx.config.eval_split)
        runner.measure_serving(side, predictor, plan.child)
        evaluation.extra["resources"] = side.resources.as_dict()
        report = runner.benefit(side, {"parent": evaluation})
    except (DataError, ConfigError, OSError, ValueError) as exc:
        return Standing(objective=None, failed_constraints=[]), f"the parent could not be scored on these items: {exc}"
    finally:
        shutil.rmtree(side.run_dir, ignore_errors=True)
    return standing(report), None


def _grown_parent_artifact(ctx: RunContext, layout: RunLayout, artifact: Artifact, plan: ImprovePlan,
                           out: Path) -> Artifact:
    """The parent as a servable artifact over the grown label set: links to the grown weights and to the parent
    artifact's other files (a domain's indexes, thresholds), the parent's metadata with a per-class calibration
    replaced by its temperature."""
    out.mkdir(parents=True, exist_ok=True)
    for item in (ctx.run_dir / PARENT_SERVED).iterdir():  # the grown weights and tokenizer (scratch, like this folder)
        (out / item.name).symlink_to(item.resolve())
    for item in Path(artifact.path).iterdir():
        if not (out / item.name).exists() and item.name not in OWN_FILES:
            (out / item.name).symlink_to(item.resolve())
    meta = {k: v for k, v in (artifact.metadata or {}).items() if k != "inference_dtype"}  # float32, no int8 cache
    calibrator = meta.get("calibrator") or {}
    if calibrator.get("kind") == "vector":
        meta["calibrator"] = {"kind": "temperature", "temperature": float(meta.get("temperature", 1.0))}
    grown = artifact.model_copy(update={"path": out, "label_names": list(plan.labels), "metadata": meta})
    grown.save_metadata()
    return grown
