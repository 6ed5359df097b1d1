"""BANKING77 class-incremental: train on 57 intents, then 20 new intents arrive as feedback in 4 batches of 5.

The assignment of intents is pinned (the 77 sorted intents permuted with ``--seed``, default 2027: the first 57
are the starting intents, the next 20 the four batches). After each batch three models are measured on the
official test utterances of every intent seen so far, as accuracy on the 57 old intents, on the new intents seen
so far, and overall:

- **replay**: ``domainfm improve`` of the previous replay model on the batch (its head grown by 5 intents), with
  ``options.replay_ratio`` of the earlier training rows replayed;
- **naive** fine-tuning: ``domainfm improve`` of the previous naive model on the batch alone (replay ratio 0);
- **full retraining**: a fresh run from the base model on every training row seen so far.

Each feedback batch is every official training utterance of its 5 intents; ``improve`` itself holds out 20 % of it
(its gate's "new" items) and validates on 10 %. The parent's data passed to ``improve`` is the training rows the
chain has seen (the 57 intents' split 90/10 into train/validation, plus each earlier batch) and, as its test split,
8 official test utterances per seen intent (what ``improve``'s own gate and old/new figures use; the benchmark's
figures use every official test utterance).

    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/continual/class_incremental.py
    .venv/bin/python benchmarks/continual/class_incremental.py --smoke   # 12 rows per intent, results-...-smoke.json
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import HERE, accuracy, config, log, make_bundle, merge_headline, predict_labels, train_fresh  # noqa: E402

N_OLD, N_BATCHES, PER_BATCH = 57, 4, 5
GATE_TEST_PER_INTENT = 8


def read_banking(shared: Path) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    folder = shared / "customer_service"

    def read(name: str) -> list[dict[str, str]]:
        with open(folder / name, encoding="utf-8", newline="") as fh:
            return [{"text": r["text"], "label": r["category"]} for r in csv.DictReader(fh)]

    return read("banking77_train.csv"), read("banking77_test.csv")


def assignment(intents: list[str], seed: int) -> tuple[list[str], list[list[str]]]:
    order = sorted(intents)
    random.Random(seed).shuffle(order)
    old = sorted(order[:N_OLD])
    new = order[N_OLD:N_OLD + N_BATCHES * PER_BATCH]
    return old, [sorted(new[i * PER_BATCH:(i + 1) * PER_BATCH]) for i in range(N_BATCHES)]


def by_intent(rows: list[dict[str, str]], intents: list[str], cap: int | None, seed: int) -> list[dict[str, str]]:
    keep = set(intents)
    chosen = [r for r in rows if r["label"] in keep]
    if cap is None:
        return chosen
    rng = random.Random(seed)
    out: list[dict[str, str]] = []
    for intent in intents:
        mine = [r for r in chosen if r["label"] == intent]
        rng.shuffle(mine)
        out.extend(mine[:cap])
    return out


def split_90_10(rows: list[dict[str, str]], seed: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    from domainfm.data import stratified_split_indices

    train, valid = stratified_split_indices([r["label"] for r in rows], (0.9, 0.1), seed)
    return [rows[i] for i in train], [rows[i] for i in valid]


def measure(artifact_dir: Path, test: list[dict[str, str]], old: set[str]) -> dict[str, float | None]:
    predicted = predict_labels(artifact_dir, [r["text"] for r in test])
    gold = [r["label"] for r in test]
    is_old = [g in old for g in gold]
    return {"old": accuracy(predicted, gold, is_old), "new": accuracy(predicted, gold, [not o for o in is_old]),
            "overall": accuracy(predicted, gold)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="12 training / 4 test utterances per intent")
    parser.add_argument("--seed", type=int, default=2027, help="the intent assignment's seed")
    parser.add_argument("--train-per-intent", type=int, help="cap on training utterances per intent (pinned draw)")
    parser.add_argument("--test-per-intent", type=int, help="cap on official test utterances per intent (pinned draw)")
    parser.add_argument("--train-seed", type=int, default=42)
    parser.add_argument("--parent-epochs", type=float, default=1.0)
    parser.add_argument("--full-epochs", type=float, default=1.0, help="epochs of each full retraining")
    parser.add_argument("--child-epochs", type=float, default=1.0, help="epochs of each replay / naive improvement")
    parser.add_argument("--replay-ratio", type=float, default=None, help="default: improve's own (ratio 1, at least "
                        "10 replayed rows per parent label)")
    parser.add_argument("--max-length", type=int, default=32, help="BANKING77 utterances average ~16 tokens")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--head-learning-rate", type=float, default=3e-3)
    parser.add_argument("--tag", help="write results-class-incremental-TAG.json (another recipe) and leave results.json")
    parser.add_argument("--base", help="base model directory (default: the packaged MiniLM; a tiny model checks the "
                        "pipeline quickly)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1 is fastest on a busy shared CPU)")
    parser.add_argument("--work", type=Path, default=HERE / "work" / "class_incremental")
    args = parser.parse_args()

    from domainfm.continual.improve import improve
    from domainfm.manager import get_plugin_manager
    from domainfm.models import resolve_model
    from domainfm.testing import shared_data_path

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    base = args.base or str(resolve_model("sentence-transformers/all-MiniLM-L6-v2").path)
    train_rows, test_rows = read_banking(shared_data_path())
    old, batches = assignment(sorted({r["label"] for r in train_rows}), args.seed)
    cap_train, cap_test = (12, 4) if args.smoke else (args.train_per_intent, args.test_per_intent)
    shutil.rmtree(args.work, ignore_errors=True)
    pm = get_plugin_manager()
    settings = dict(max_length=args.max_length, batch_size=args.batch_size, learning_rate=args.learning_rate,
                    head_learning_rate=args.head_learning_rate, seed=args.train_seed)

    def gate_test(intents: list[str]) -> list[dict[str, str]]:
        return by_intent(test_rows, intents, min(GATE_TEST_PER_INTENT, cap_test or GATE_TEST_PER_INTENT), args.seed)

    seen_train, seen_valid = split_90_10(by_intent(train_rows, old, cap_train, args.seed), args.train_seed)
    log(f"parent: {len(old)} intents, {len(seen_train)} training rows")
    parent = train_fresh(pm, config(args.work, base=base, epochs=args.parent_epochs, **settings),
                         make_bundle({"train": seen_train, "validation": seen_valid, "test": gate_test(old)}, old,
                                     "banking77 57 intents"))
    assert parent.artifact is not None
    old_set = set(old)
    seen = list(old)
    test_seen = by_intent(test_rows, seen, cap_test, args.seed)
    parent_figures = measure(Path(parent.artifact.path), test_seen, old_set)
    log(f"parent: {parent_figures}, {parent.ctx.resources.train_seconds:.0f} s")
    chains = {"replay": parent.ctx.run_dir, "naive": parent.ctx.run_dir}
    ratios = {"replay": args.replay_ratio, "naive": 0.0}  # None: improve's default
    per_batch: list[dict[str, Any]] = []
    for k, batch in enumerate(batches, start=1):
        fb_rows = by_intent(train_rows, batch, cap_train, args.seed)
        feedback = make_bundle({"train": fb_rows}, batch, f"banking77 batch {k}: {', '.join(batch)}")
        parent_data = make_bundle({"train": seen_train, "validation": seen_valid, "test": gate_test(seen)}, seen,
                                  f"banking77 seen before batch {k}")
        seen = seen + batch
        test_seen = by_intent(test_rows, seen, cap_test, args.seed)
        row: dict[str, Any] = {"batch": k, "intents": batch, "feedback_rows": len(fb_rows)}
        for name in ("replay", "naive"):
            log(f"batch {k}: {name}")
            ratio = [] if ratios[name] is None else [f"options.replay_ratio={ratios[name]}"]
            result = improve(pm, chains[name], f"banking77-batch-{k}", [*ratio, f"train.epochs={args.child_epochs}"],
                compare=False, parent_data=parent_data, feedback_data=feedback)
            assert result.run.artifact is not None
            row[name] = {**measure(Path(result.run.artifact.path), test_seen, old_set),
                         "train_seconds": result.run.ctx.resources.train_seconds,
                         "training_rows": len(result.plan.child.tables["train"]),
                         "gate": "promoted" if result.decision.promoted else "not promoted",
                         "gate_reasons": result.decision.reasons}
            if chains[name] != parent.ctx.run_dir:
                shutil.rmtree(chains[name] / "artifact", ignore_errors=True)  # disk: only the chain's head is needed
            chains[name] = result.run.ctx.run_dir
            log(f"batch {k}: {name} {row[name]}")
        fb_train, fb_valid = split_90_10(fb_rows, args.train_seed)
        seen_train, seen_valid = seen_train + fb_train, seen_valid + fb_valid
        log(f"batch {k}: full retraining on {len(seen_train)} rows")
        full = train_fresh(pm, config(args.work, base=base, epochs=args.full_epochs, **settings),
                           make_bundle({"train": seen_train, "validation": seen_valid, "test": gate_test(seen)}, seen,
                                       f"banking77 every row up to batch {k}"))
        assert full.artifact is not None
        row["full_retrain"] = {**measure(Path(full.artifact.path), test_seen, old_set),
                               "train_seconds": full.ctx.resources.train_seconds, "training_rows": len(seen_train)}
        shutil.rmtree(full.ctx.run_dir / "artifact", ignore_errors=True)
        log(f"batch {k}: full retraining {row['full_retrain']}")
        per_batch.append(row)

    last = per_batch[-1]
    replay_time = sum(r["replay"]["train_seconds"] for r in per_batch)
    full_time = sum(r["full_retrain"]["train_seconds"] for r in per_batch)
    figures = {
        "replay_overall_accuracy": last["replay"]["overall"],
        "full_retrain_overall_accuracy": last["full_retrain"]["overall"],
        "naive_overall_accuracy": last["naive"]["overall"],
        "replay_minus_full_retrain_points": 100 * (last["replay"]["overall"] - last["full_retrain"]["overall"]),
        "replay_time_fraction": replay_time / full_time,
        "replay_time_fraction_last_batch": last["replay"]["train_seconds"] / last["full_retrain"]["train_seconds"],
        "naive_forgetting_on_old": parent_figures["old"] - last["naive"]["old"],
        "replay_forgetting_on_old": parent_figures["old"] - last["replay"]["old"],
        "full_retrain_change_on_old": last["full_retrain"]["old"] - parent_figures["old"],
        "parent": parent_figures,
        "parent_train_seconds": parent.ctx.resources.train_seconds,
        "per_batch": per_batch,
        "goal": "replay within 1.5 points of full retraining overall after the last batch, at <= 25 % of its "
                "training time (replay_time_fraction: the four replay trainings over the four full retrainings)",
        "goal_met": bool(last["replay"]["overall"] >= last["full_retrain"]["overall"] - 0.015  # above it counts
                         and replay_time / full_time <= 0.25),
        "wall_seconds": time.perf_counter() - started,
    }
    from domainfm.benchmarking import write_results

    name = "smoke" if args.smoke else args.tag
    out = HERE / (f"results-class-incremental-{name}.json" if name else "results-class-incremental.json")
    write_results(out, figures, settings={
        "smoke": args.smoke, "torch_threads": args.threads, "model": args.base or "sentence-transformers/all-MiniLM-L6-v2 (packaged)", "mode": "full",
        "assignment_seed": args.seed, "old_intents": old, "batches": batches, "replay_ratio": args.replay_ratio if args.replay_ratio is not None else "improve's default (1, at least 10 rows per parent label)",
        "parent_epochs": args.parent_epochs, "child_epochs": args.child_epochs, "full_epochs": args.full_epochs,
        "rows_per_intent_cap": cap_train, "test_rows_per_intent_cap": cap_test, **settings,
        "improve": "compare=False (the three chains are run explicitly), feedback_holdout 0.2",
    }, extra_packages=("domainfm",))
    log(f"wrote {out}")
    if not args.smoke and not args.tag:
        merge_headline()


if __name__ == "__main__":
    main()
