"""The recipe's training curves: every seed's training loss and validation figures per evaluation, in the
artifact's ``training_log.json`` that the benefit report plots."""

from __future__ import annotations

import json
from pathlib import Path

from domainfm.config import build_config
from domainfm.types import RunContext
from domainfm_finance_sentiment import DOMAIN, plugin


def test_the_recipe_saves_each_seeds_curves(tmp_path: Path, tiny_model_dir: Path) -> None:
    from domainfm.benefit.plots import training_curve_svgs
    from domainfm.training_log import curves, find_training_logs, read_training_log
    from domainfm_finance_sentiment.model import train

    config = build_config(None, [f"model.base={tiny_model_dir}", "train.epochs=1", "train.batch_size=16",
                                 "model.max_length=32", "options.topics=off", "train.recipe.seeds=[1, 2]",
                                 "train.recipe.eval_every=0.5", "train.learning_rate=0.001"])
    ctx = RunContext(run_id="t", domain=DOMAIN, config=config, run_dir=tmp_path, device="cpu")
    data = plugin.domainfm_load_data(ctx, DOMAIN, "demo")
    assert data is not None
    artifact = train(ctx, data)
    assert find_training_logs(tmp_path) == {"model": Path(artifact.path) / "training_log.json"}
    log = read_training_log(Path(artifact.path) / "training_log.json")
    series = curves(log)
    per_seed = {r["seed"]: r["history"] for r in artifact.metadata["per_seed"]}
    for seed, history in per_seed.items():
        evals = [h for h in history if "eval_accuracy" in h]
        assert [v for _, v in series[f"eval_accuracy [seed {seed}]"]] == [h["eval_accuracy"] for h in evals]
        assert [s for s, _ in series[f"loss [seed {seed}]"]] == [h["step"] for h in history if "loss" in h]
        assert all(v > 0 for _, v in series[f"loss [seed {seed}]"])
        assert len(evals) == 2  # every half epoch
    assert log["best_metric"] == artifact.metadata["best_validation_accuracy"]
    assert log["best_metric"] >= max(r["accuracy"] for r in artifact.metadata["per_seed"])  # a soup never loses
    ((title, svg),) = training_curve_svgs({"full": log})
    assert title.startswith("Training curve: full (best validation accuracy") and svg.startswith("<svg")
    assert json.loads((Path(artifact.path) / "training_log.json").read_text())["metric_for_best_model"] == "accuracy"
