"""Sequential recommenders on the recommendation benchmark's own split: RecBole's SASRec, GRU4Rec and BERT4Rec
against the plugin's text-aware sequential model, with one trial budget for every model.

Same users, same held-out items, same full ranking and the same metric code as ``bench.py``
(``domainfm_recommendation.pipeline.evaluate_scorer`` + ``evaluation.all_metrics``). Per model: the first
``--trials`` configurations of its grid (the grids have the same shape: dropout × learning rate), each trained
on the train histories for at most ``--max-epochs`` epochs with early stopping after ``--patience`` epochs
without validation gain (NDCG@10 on the validation split, our code); the best configuration and epoch count is
refitted on train + validation and tested once.

Setup (once): ``bash benchmarks/recommendation/setup_sequential.sh`` (RecBole 1.2.1 into work/recbole-site).

    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/recommendation/sequential_bench.py
    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/recommendation/sequential_bench.py --smoke

Merges its keys into results.json (the smoke run into results.smoke.json): ``ndcg_at_10`` and ``gini`` become
the text-aware sequential model's when it is the plugin's default, the rest goes under ``sequential``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "plugins" / "recommendation"))
sys.path.insert(0, str(HERE))

BASELINES = ("SASRec", "GRU4Rec", "BERT4Rec")
OURS = "text_sequential"


def grids(max_len: int) -> dict[str, list[dict[str, Any]]]:
    """Candidate configurations per model, in trial order (dropout × learning rate for every model)."""
    out: dict[str, list[dict[str, Any]]] = {}
    # RecBole's models: batch 256 prefixes (RecBole's default 2048 gave 49 Adam steps per epoch here; at 256 SASRec
    # reached validation NDCG@10 0.067 in 4 epochs at lr 1e-3, against 0.020 after 2 epochs at 2048 / 3e-3)
    order = [(0.2, 1e-3), (0.5, 1e-3), (0.2, 3e-3), (0.5, 3e-3)]
    batch = {"train_batch_size": 256}
    out["SASRec"] = [{"hidden_size": 64, "inner_size": 256, "n_layers": 2, "n_heads": 2, "hidden_dropout_prob": d,
                      "attn_dropout_prob": d, "learning_rate": lr, **batch} for d, lr in order]
    out["GRU4Rec"] = [{"embedding_size": 64, "hidden_size": 128, "num_layers": 1, "dropout_prob": d,
                       "learning_rate": lr, **batch} for d, lr in order]
    out["BERT4Rec"] = [{"hidden_size": 64, "inner_size": 256, "n_layers": 2, "n_heads": 2, "hidden_dropout_prob": d,
                        "attn_dropout_prob": d, "mask_ratio": 0.2, "learning_rate": lr, **batch} for d, lr in order]
    out[OURS] = [{"dim": 64, "layers": 2, "heads": 2, "max_len": max_len, "dropout": d, "lr": lr} for d, lr in order]
    return out


def cold_item_stats(result: Any, ix: Any, refit: bool) -> dict[str, Any]:
    """Recall@20 on the users whose test item has no interaction in the models' training histories (train, or
    train + validation with ``refit``)."""
    from domainfm_recommendation.seqtrain import warm_items

    warm = warm_items(ix.full_hist if refit else ix.train_hist, ix.n_items)
    cold = ~warm[ix.test_targets]
    ranks = result.ranks[cold]
    return {"cold_item_users": int(cold.sum()),
            "cold_item_recall_at_20": float(np.mean(ranks <= 20)) if ranks.size else None,
            "cold_item_hits_at_20": int(np.sum(ranks <= 20))}


def log(msg: str) -> None:
    print(f"[{datetime.now(timezone.utc).strftime('%H:%M:%S')}] {msg}", flush=True)


def run_recbole(name: str, trials: list[dict[str, Any]], ix: Any, folders: dict[str, Path], max_len: int,
                max_epochs: int, patience: int, seed: int, trial_seconds: float, refit: bool) -> dict[str, Any]:
    import recbole_runner as rr

    from domainfm_recommendation.evaluation import accuracy_metrics
    from domainfm_recommendation.pipeline import evaluate_scorer

    rows = []
    best: tuple[float, dict[str, Any], int] | None = None
    started = time.perf_counter()
    for params in trials:
        config, dataset, train_data = rr.build(name, folders["validation"], params, max_len, seed)

        def evaluate(model: Any, dataset: Any = dataset) -> float:
            scorer = rr.RecBoleScorer(model, dataset, ix.item_ids, max_len)
            return accuracy_metrics(evaluate_scorer(scorer, ix, "validation"))["ndcg_at_10"]

        trial_model, trial_log = rr.train(name, config, dataset, train_data, max_epochs, evaluate, patience,
                                          deadline=time.perf_counter() + trial_seconds)
        rows.append({"params": params, "best_epoch": trial_log.best_epoch, "epochs_run": trial_log.epochs_run,
                     "validation_ndcg_at_10": trial_log.best_validation_ndcg_at_10,
                     "validation_curve": trial_log.validation_curve, "seconds": trial_log.seconds})
        log(f"{name} {params} -> val NDCG@10 {trial_log.best_validation_ndcg_at_10:.4f} at epoch "
            f"{trial_log.best_epoch}/{trial_log.epochs_run} ({trial_log.seconds:.0f}s)")
        if best is None or trial_log.best_validation_ndcg_at_10 > best[0] + 1e-12:
            best = (trial_log.best_validation_ndcg_at_10, params, trial_log.best_epoch)
            chosen = (trial_model, dataset)  # its best epoch's weights
    assert best is not None
    selection_seconds = time.perf_counter() - started
    final_seconds = 0.0
    model, dataset = chosen
    if refit:
        config, dataset, train_data = rr.build(name, folders["test"], best[1], max_len, seed)
        model, final_log = rr.train(name, config, dataset, train_data, max(1, best[2]))  # the chosen epoch count
        final_seconds = final_log.seconds
    scorer = rr.RecBoleScorer(model, dataset, ix.item_ids, max_len)
    result = evaluate_scorer(scorer, ix, "test")
    return {"result": result, "params": best[1], "epochs": best[2], "validation_ndcg_at_10": best[0],
            "trials": rows, "selection_seconds": selection_seconds, "final_fit_seconds": final_seconds}


def run_ours(trials: list[dict[str, Any]], ix: Any, embeddings: np.ndarray, max_epochs: int, patience: int,
             seed: int, base_model: str, trial_seconds: float, refit: bool) -> dict[str, Any]:
    from domainfm_recommendation.evaluation import accuracy_metrics
    from domainfm_recommendation.pipeline import WEIGHT_GRID_FULL, evaluate_scorer, fit_model, select_weights
    from domainfm_recommendation.seqnet import SeqConfig
    from domainfm_recommendation.seqpipeline import fused_scorer, select_epochs, select_mix_weight, train_sequential
    from domainfm_recommendation.fresh import with_fresh_slots
    from domainfm_recommendation.seqmodel import FRESH_POSITION, FRESH_SLOTS
    from domainfm_recommendation.seqtrain import SeqScorer

    rows = []
    best: tuple[float, SeqConfig] | None = None
    chosen: tuple[Any, np.ndarray, int] | None = None
    started = time.perf_counter()
    for params in trials:
        cfg = SeqConfig(**params, epochs=max_epochs, patience=patience, seed=seed)
        net, warm, trial_log = select_epochs(ix, embeddings, cfg, deadline=time.perf_counter() + trial_seconds)
        rows.append({"params": params, "best_epoch": trial_log.best_epoch, "epochs_run": trial_log.epochs_run,
                     "validation_ndcg_at_10": trial_log.best_validation_ndcg_at_10,
                     "validation_curve": trial_log.validation_curve, "seconds": trial_log.seconds})
        log(f"{OURS} {params} -> val NDCG@10 {trial_log.best_validation_ndcg_at_10:.4f} at epoch "
            f"{trial_log.best_epoch}/{trial_log.epochs_run} ({trial_log.seconds:.0f}s)")
        if best is None or trial_log.best_validation_ndcg_at_10 > best[0] + 1e-12:
            best = (trial_log.best_validation_ndcg_at_10, cfg)
            chosen = (net, warm, trial_log.best_epoch)
    assert best is not None and chosen is not None
    # the mix and its weight in the ranking, chosen on validation exactly as the plugin's train_sequential does
    mix = select_weights(ix, embeddings, WEIGHT_GRID_FULL)
    val_mix = fit_model(ix, embeddings, mix.weights, "validation", base_model)
    net_scorer = SeqScorer(chosen[0], embeddings, chosen[1])
    mix_weight, by_weight, _ = select_mix_weight(ix, net_scorer, val_mix)
    selection_seconds = time.perf_counter() - started
    network_alone = accuracy_metrics(evaluate_scorer(net_scorer, ix, "test"))["ndcg_at_10"]
    out: dict[str, Any] = {"params": {k: v for k, v in best[1].as_dict().items()}, "validation_ndcg_at_10": best[0],
                           "mix_weight": mix_weight, "validation_ndcg_at_10_by_mix_weight": by_weight,
                           "ablation_network_alone_test_ndcg_at_10": network_alone, "trials": rows,
                           "selection_seconds": selection_seconds}
    if refit:  # the plugin's own training path with the chosen configuration (epochs chosen again on validation)
        t0 = time.perf_counter()
        model, report = train_sequential(ix, embeddings, base_model, best[1],
                                         deadline=time.perf_counter() + trial_seconds)
        ranking, fresh = model.score, model.fresh_items()
        out.update(epochs=report.selection.best_epoch, plugin_train_seconds=time.perf_counter() - t0, model=model)
    else:
        ranking, fresh = fused_scorer(net_scorer, val_mix, mix_weight), ~chosen[1]
        out["epochs"] = chosen[2]
    # the list a user is shown: the plugin's new-arrival slots (places FRESH_POSITION.. of every list)
    out["result"] = evaluate_scorer(with_fresh_slots(ranking, fresh, FRESH_SLOTS, FRESH_POSITION), ix, "test")
    out["result_without_fresh_slots"] = evaluate_scorer(ranking, ix, "test")
    out["fresh_slots"] = {"slots": FRESH_SLOTS, "first_position": FRESH_POSITION}
    return out


def write(args: argparse.Namespace, table: dict[str, Any], details: dict[str, Any], budget: dict[str, Any],
          recbole_version: str, started_all: float) -> None:
    """Merge this run's models into the results file (models not rerun keep their earlier entries)."""
    from domainfm.benchmarking import DEFAULT_PACKAGES, machine_info, package_versions
    from domainfm.io import atomic_write_json

    from domainfm_recommendation.seqmodel import DEFAULT_MODEL_KIND

    section: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": {**package_versions([*DEFAULT_PACKAGES, "domainfm-recommendation"]), "recbole": recbole_version},
        "mode": "smoke" if args.smoke else "full",
        "protocol": "the benchmark's split (temporal leave-one-out, full ranking over the catalogue, history "
        "excluded), scored by the plugin's evaluate_scorer/all_metrics for every model",
        "trial_budget": budget,
        "recbole_notes": "RecBole 1.2.1 models, data pipeline and losses (CE over the catalogue); pre-split "
        "atomic files via benchmark_filename; own epoch loop (Trainer._train_epoch's body, Adam) so no "
        "tensorboard and no pickled checkpoints; numpy-2 aliases and a tensorboard stand-in (recbole_compat.py)",
        "table": table,
        "runs": details,
        "seconds_this_run": time.perf_counter() - started_all,
    }
    out_path = args.out or (HERE / ("results.smoke.json" if args.smoke else "results.json"))
    results = json.loads(out_path.read_text(encoding="utf-8")) if out_path.is_file() else {}
    section["table"] = {**results.get("sequential", {}).get("table", {}), **table}
    section["runs"] = {**results.get("sequential", {}).get("runs", {}), **details}
    table = section["table"]
    base_done = [m for m in BASELINES if m in table]
    best_name = max(base_done, key=lambda m: table[m]["ndcg_at_10"]) if base_done else None
    section["best_sequential_baseline"] = best_name
    results["sequential"] = section
    if best_name is not None:
        results["best_sequential_baseline"] = best_name
        results["best_sequential_baseline_ndcg_at_10"] = table[best_name]["ndcg_at_10"]
        results["best_sequential_baseline_gini"] = table[best_name]["gini"]
    if OURS in table:
        ours = table[OURS]
        results["cold_item_recall_at_20"] = ours["cold_item_recall_at_20"]
        results["cold_item_users"] = ours["cold_item_users"]
        results["text_sequential_ndcg_at_10"] = ours["ndcg_at_10"]
        results["text_sequential_gini"] = ours["gini"]
        if DEFAULT_MODEL_KIND == "sequential" and not args.smoke:  # the headline figures are the served model's
            from bench import HEADLINE_METRICS, HEADLINE_NOTE

            results.update({k: ours[k] for k in HEADLINE_METRICS})
            results["headline_model"] = OURS
            results["headline_note"] = HEADLINE_NOTE
        if best_name is not None:
            best = table[best_name]
            results["sequential_target_met"] = bool(
                ours["ndcg_at_10"] >= 1.05 * best["ndcg_at_10"] and ours["gini"] <= best["gini"]
                and (ours["cold_item_recall_at_20"] or 0.0) > 0.0
            )
    atomic_write_json(out_path, results)
    log(f"wrote {out_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="1 trial, 2 epochs per model")
    parser.add_argument("--data", default=None, help="MovieLens directory (default: shared data)")
    parser.add_argument("--models", default=",".join([*BASELINES, OURS]))
    parser.add_argument("--trials", type=int, default=2, help="configurations tried per model (same for all)")
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--trial-minutes", type=float, default=8.0,
                        help="wall-clock cap per trial (training stops after the epoch that passes it)")
    parser.add_argument("--max-len", type=int, default=50, help="history length (RecBole MAX_ITEM_LIST_LENGTH)")
    parser.add_argument("--finish-by", default=None, metavar="HH:MM",
                        help="UTC time to be done by: each trial's cap shrinks to fit the trainings left; a model "
                        "whose trials would get under a minute each is skipped (and says so)")
    parser.add_argument("--refit", action="store_true",
                        help="refit the chosen configuration on train + validation before testing (default: test the "
                        "model chosen on validation, as RecBole's own leave-one-out protocol does)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base-model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.smoke:
        args.trials, args.max_epochs = 1, 2

    import warnings

    import pandas as pd
    import torch

    from bench import embed
    from recbole_compat import import_recbole

    from domainfm_recommendation.evaluation import all_metrics
    from domainfm_recommendation.pipeline import index_split, test_popularity
    from domainfm_recommendation.sources import load_split, movielens_dir

    torch.set_num_threads(args.threads)
    # RecBole's fillna(inplace=True) under pandas 3: a no-op warning; the atomic files have no missing values
    warnings.filterwarnings("ignore", category=pd.errors.ChainedAssignmentError)
    recbole_version = import_recbole()
    import recbole_runner as rr

    started_all = time.perf_counter()
    data_dir = Path(args.data) if args.data else movielens_dir()
    if args.data != "demo" and not data_dir.is_dir():  # demo: the plugin's packaged set, for a quick check
        sys.exit(f"MovieLens not found at {data_dir}; pass --data or set DOMAINFM_SHARED_DATA")
    ix = index_split(load_split("demo" if args.data == "demo" else str(data_dir)))
    popularity = test_popularity(ix)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - {*BASELINES, OURS})
    if unknown:
        sys.exit(f"--models: unknown {unknown}; choose from {[*BASELINES, OURS]}")
    grid = grids(args.max_len)
    finish_by = None
    if args.finish_by:
        hour, minute = (int(x) for x in args.finish_by.split(":"))
        finish_by = datetime.now(timezone.utc).replace(hour=hour, minute=minute, second=0, microsecond=0)
    budget = {"trials_per_model": args.trials, "max_epochs": args.max_epochs, "patience": args.patience,
              "trial_minutes_cap": args.trial_minutes,
              "selection": "validation NDCG@10 (train histories) per epoch, best configuration and epoch count "
              + ("refitted on train + validation and tested once" if args.refit else "kept; that model is tested "
                 "once on the test histories (train + validation as input, no refit: RecBole's leave-one-out)"),
              "refit": args.refit, "max_len": args.max_len, "seed": args.seed,
              "threads": args.threads}
    table: dict[str, Any] = {}
    details: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="recbole-split-") as tmp:
        folders = {run: Path(tmp) / run for run in ("validation", "test")}
        if any(m in BASELINES for m in models):
            for run, folder in folders.items():
                rr.write_atomic_files(folder, ix, run, args.max_len)
        skipped: dict[str, str] = {}
        for n, name in enumerate(models):
            t0 = time.perf_counter()
            trial_seconds = args.trial_minutes * 60
            if finish_by is not None:
                slots = sum(args.trials + (2 if m == OURS else 1) for m in models[n:])
                trial_seconds = min(trial_seconds, (finish_by - datetime.now(timezone.utc)).total_seconds() / slots)
                if trial_seconds < 60:
                    skipped[name] = f"not run: under a minute per trial left before --finish-by {args.finish_by}"
                    log(f"{name} {skipped[name]}")
                    details[name] = {"not_run": skipped[name]}
                    write(args, table, details, budget, recbole_version, started_all)
                    continue
            if name == OURS:
                cache = None if args.data == "demo" else HERE / "work" / "embeddings.npy"
                embeddings, embed_seconds, _ = embed(ix.texts, args.base_model, "cpu", cache)
                out = run_ours(grid[name][: args.trials], ix, embeddings, args.max_epochs, args.patience, args.seed,
                               args.base_model, trial_seconds, args.refit)
                out["embed_seconds"] = embed_seconds
            else:
                out = run_recbole(name, grid[name][: args.trials], ix, folders, args.max_len, args.max_epochs,
                                  args.patience, args.seed, trial_seconds, args.refit)
            result = out.pop("result")
            out.pop("model", None)
            metrics = all_metrics(result, popularity, len(ix.users))
            metrics.update(cold_item_stats(result, ix, args.refit))
            plain = out.pop("result_without_fresh_slots", None)
            if plain is not None:
                out["without_fresh_slots"] = {**all_metrics(plain, popularity, len(ix.users)),
                                              **cold_item_stats(plain, ix, args.refit)}
            out["seconds"] = time.perf_counter() - t0
            out["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            out["trial_budget"] = {**budget, "trial_seconds_cap": trial_seconds}
            table[name] = metrics
            details[name] = out
            log(f"{name} test {json.dumps(metrics)}")
            write(args, table, details, budget, recbole_version, started_all)  # after every model: partial results




if __name__ == "__main__":
    main()
