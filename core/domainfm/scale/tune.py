"""``domainfm tune DOMAIN --space FILE --trials N``: hyper-parameter search where every trial is a normal run.

A trial builds the run configuration from the base one plus the trial's values (``--set``-style dotted keys), runs
:class:`~domainfm.runner.Runner` into its own run directory (tracking, benefit report and all), and scores the
run's evaluation on ``metric``. Validation metrics the Trainer computes while training are reported as the trial's
intermediate results, which is what ASHA stops trials on.

With Ray installed: Ray Tune, Optuna's TPE as the searcher, ASHA as the scheduler. Without it: the same trials one
after another with Optuna (its median pruner on the same intermediate results). The result (best values, best run
directory, every trial) is written to ``OUTPUT_DIR/DOMAIN/tune-<name>.json``.

The space file (YAML or JSON) maps a config key to a distribution::

    train.learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-3}
    train.batch_size: {type: choice, values: [16, 32]}
    train.epochs: {type: int, low: 1, high: 3}
    model.lora_r: {type: uniform, low: 4, high: 16}
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domainfm import hookimpl
from domainfm.errors import ConfigError

KINDS = ("loguniform", "uniform", "int", "choice")
Reporter = Callable[[dict[str, float]], None]


@dataclass
class TuneResult:
    best_params: dict[str, Any]
    best_value: float
    best_run: str
    trials: list[dict[str, Any]] = field(default_factory=list)
    engine: str = "optuna"
    path: Path | None = None


def load_space(path: str | Path) -> dict[str, dict[str, Any]]:
    """A search space file, checked: every entry names a known distribution with its bounds or values."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such search space file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML/JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: expected a mapping of config keys to distributions")
    for key, dist in raw.items():
        where = f"{path}: {key}"
        if not isinstance(dist, dict) or dist.get("type") not in KINDS:
            raise ConfigError(f"{where}: needs type, one of {', '.join(KINDS)}")
        if dist["type"] == "choice":
            if not isinstance(dist.get("values"), list) or not dist["values"]:
                raise ConfigError(f"{where}: a choice needs a non-empty values list")
        elif not all(isinstance(dist.get(b), (int, float)) for b in ("low", "high")) or dist["low"] >= dist["high"]:
            raise ConfigError(f"{where}: needs numbers low < high")
        elif dist["type"] == "loguniform" and dist["low"] <= 0:
            raise ConfigError(f"{where}: loguniform needs low > 0")
    return raw


def suggest(trial: Any, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The values an Optuna trial draws from ``space``."""
    values: dict[str, Any] = {}
    for key, dist in space.items():
        kind = dist["type"]
        if kind == "choice":
            values[key] = trial.suggest_categorical(key, dist["values"])
        elif kind == "int":
            values[key] = trial.suggest_int(key, int(dist["low"]), int(dist["high"]))
        else:
            values[key] = trial.suggest_float(key, float(dist["low"]), float(dist["high"]), log=kind == "loguniform")
    return values


def ray_space(space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The same space in Ray Tune's search-space API (OptunaSearch converts it)."""
    from ray import tune

    out: dict[str, Any] = {}
    for key, dist in space.items():
        kind = dist["type"]
        out[key] = (tune.choice(dist["values"]) if kind == "choice"
                    else tune.randint(int(dist["low"]), int(dist["high"]) + 1) if kind == "int"
                    else tune.loguniform(dist["low"], dist["high"]) if kind == "loguniform"
                    else tune.uniform(dist["low"], dist["high"]))
    return out


class _IntermediateReports:
    """A plugin object for one trial's run: hands the Trainer a callback that reports each validation evaluation
    (read through ``ctx.state["trainer_callbacks"]`` by :func:`domainfm.engine.hf_trainer.build_trainer`)."""

    def __init__(self, metric: str, report: Reporter) -> None:
        self.metric = metric
        self.report = report

    @hookimpl
    def domainfm_stage_started(self, ctx: Any, stage: str) -> None:
        if stage != "train":
            return
        from transformers import TrainerCallback

        metric, report = self.metric, self.report

        class Report(TrainerCallback):
            def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                            **kwargs: Any) -> None:
                value = (metrics or {}).get(f"eval_{metric}")
                if value is not None and state.is_world_process_zero:
                    report({metric: float(value), "epoch": float(state.epoch or 0.0)})

        ctx.state["trainer_callbacks"] = [Report()]


def run_trial(domain: str, params: Mapping[str, Any], *, config_path: str | None, overrides: tuple[str, ...],
              run_name: str, metric: str, report: Reporter | None = None) -> tuple[float, str]:
    """One trial: a normal run with the base configuration plus ``params``; (its ``metric``, its run directory)."""
    from domainfm.config import build_config
    from domainfm.manager import PluginManager
    from domainfm.runner import Runner

    sets = (*overrides, *(f"{k}={v}" for k, v in params.items()), f"run_name={run_name}")
    config = build_config(config_path, sets)
    pm = PluginManager().load()
    if report is not None:
        pm.register(_IntermediateReports(metric, report), name=f"domainfm-tune-{run_name}", builtin=True)
    result = Runner(pm, config).run(domain)
    return trial_value(result, metric), str(result.ctx.run_dir)


def trial_value(result: Any, metric: str) -> float:
    """The run's ``metric`` on its evaluation split (the variant its benefit report chose, else the first)."""
    chosen = getattr(getattr(result, "report", None), "chosen_variant", None)
    evaluation = result.evaluations.get(chosen) if chosen else None
    evaluation = evaluation or next(iter(result.evaluations.values()), None)
    if evaluation is None or metric not in evaluation.metrics:
        known = sorted(evaluation.metrics) if evaluation else []
        raise ConfigError(f"--metric {metric}: the run has no such metric; it has {', '.join(known) or 'none'}")
    return float(evaluation.metrics[metric])


def tune(domain: str, space_path: str | Path, trials: int, *, metric: str = "macro_f1", mode: str = "max",
         config_path: str | None = None, overrides: tuple[str, ...] = (), output_dir: str | Path = "runs",
         name: str | None = None, engine: str = "auto", seed: int = 0, grace_period: int = 1) -> TuneResult:
    """Search ``space_path`` with ``trials`` runs of ``domain``; writes and returns the result."""
    from domainfm.io import atomic_write_json
    from domainfm.run_layout import check_name

    space = load_space(space_path)
    name = name or time.strftime("%Y%m%d-%H%M%S")
    check_name(name, "--name")
    overrides = (*overrides, f"output_dir={Path(output_dir).resolve()}")
    if engine == "auto":
        engine = "ray" if _has_ray() else "optuna"
    runner = _tune_ray if engine == "ray" else _tune_optuna
    result = runner(domain, space, trials, metric=metric, mode=mode, config_path=config_path, overrides=overrides,
                    name=name, seed=seed, grace_period=grace_period)
    path = Path(output_dir) / domain / f"tune-{name}.json"
    result.path = path
    atomic_write_json(path, {"domain": domain, "engine": result.engine, "metric": metric, "mode": mode,
                             "space": space, "trials_requested": trials, "best_params": result.best_params,
                             "best_value": result.best_value, "best_run": result.best_run, "trials": result.trials})
    return result


def _has_ray() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _tune_optuna(domain: str, space: Mapping[str, Mapping[str, Any]], trials: int, *, metric: str, mode: str,
                 config_path: str | None, overrides: tuple[str, ...], name: str, seed: int,
                 grace_period: int) -> TuneResult:
    try:
        import optuna
    except ImportError:
        raise ConfigError("tune needs Optuna (pip install 'domainfm[scale]')") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(n_warmup_steps=grace_period))
    records: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        params = suggest(trial, space)
        step = [0]

        def report(values: dict[str, float]) -> None:
            trial.report(values[metric], step[0])
            step[0] += 1
            if trial.should_prune():
                raise optuna.TrialPruned()

        run_name = f"tune-{name}-trial-{trial.number}"
        try:
            value, run_dir = run_trial(domain, params, config_path=config_path, overrides=overrides,
                                       run_name=run_name, metric=metric, report=report)
        except optuna.TrialPruned:
            records.append({"trial": trial.number, "params": params, "status": "pruned", "run_name": run_name})
            raise
        records.append({"trial": trial.number, "params": params, "status": "finished", "value": value,
                        "run": run_dir})
        return value

    study.optimize(objective, n_trials=trials, catch=())
    finished = [r for r in records if r["status"] == "finished"]
    if not finished:
        raise ConfigError("every trial was pruned; raise --trials or the scheduler's grace period")
    best = max(finished, key=lambda r: r["value"] if mode == "max" else -r["value"])
    return TuneResult(best["params"], best["value"], best["run"], records, "optuna")


def _tune_ray(domain: str, space: Mapping[str, Mapping[str, Any]], trials: int, *, metric: str, mode: str,
              config_path: str | None, overrides: tuple[str, ...], name: str, seed: int,
              grace_period: int) -> TuneResult:
    from domainfm.scale.cluster import ensure_ray

    ensure_ray()
    from ray import tune as ray_tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    def trainable(params: dict[str, Any]) -> None:
        run_name = f"tune-{name}-trial-{ray_tune.get_context().get_trial_id()}"
        value, run_dir = run_trial(domain, params, config_path=config_path, overrides=overrides, run_name=run_name,
                                   metric=metric, report=ray_tune.report)
        ray_tune.report({metric: value, "run": run_dir, "final": 1.0})

    output = next(o.split("=", 1)[1] for o in reversed(overrides) if o.startswith("output_dir="))
    storage = Path(output) / domain / f".tune-{name}"  # Ray Tune's own trial state, beside the runs
    tuner = ray_tune.Tuner(
        ray_tune.with_resources(trainable, {"cpu": 1}),
        param_space=ray_space(space),
        tune_config=ray_tune.TuneConfig(
            metric=metric, mode=mode, num_samples=trials,
            search_alg=OptunaSearch(seed=seed),
            scheduler=ASHAScheduler(grace_period=grace_period, time_attr="training_iteration"),
        ),
        run_config=ray_tune.RunConfig(name=name, storage_path=str(storage.resolve()), verbose=0),
    )
    grid = tuner.fit()
    records: list[dict[str, Any]] = []
    for i in range(len(grid)):
        res = grid[i]
        config, metrics = res.config or {}, res.metrics or {}
        done = bool(metrics.get("final"))
        records.append({"trial": metrics.get("trial_id"), "params": {k: config.get(k) for k in space},
                        "status": "finished" if done else ("failed" if res.error else "stopped early"),
                        "value": metrics.get(metric), "run": metrics.get("run") if done else None,
                        "error": str(res.error).splitlines()[0] if res.error else None})
    finished = [r for r in records if r["status"] == "finished"]
    if not finished:
        errors = [r["error"] for r in records if r["error"]]
        raise ConfigError(f"no trial finished{': ' + errors[0] if errors else ''}")
    best = max(finished, key=lambda r: r["value"] if mode == "max" else -r["value"])
    return TuneResult(best["params"], best["value"], best["run"], records, "ray")
