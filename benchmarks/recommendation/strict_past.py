"""Leakage check for the recommendation benchmark: re-test with a stricter history.

MovieLens users rate in bursts; 15% of held-out events share their exact second with an earlier event
of the same user. This script removes, for every user, the history events that share the held-out
event's timestamp (from training and from scoring, for every model), then re-tests the model and the
baselines with the settings results.json selected on validation (no re-tuning). If the model's margin
came from simultaneous events, it would shrink here.

    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/recommendation/strict_past.py \
        [--embeddings benchmarks/recommendation/work/embeddings.npy]

Writes benchmarks/recommendation/strict_past.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "plugins" / "recommendation"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embeddings", type=Path, default=None, help="cached item embeddings (.npy) of the same texts")
    args = parser.parse_args()

    from domainfm.io import atomic_write_json

    from domainfm_recommendation.baselines import ImplicitMF, ItemKNN, MostPopular
    from domainfm_recommendation.evaluation import all_metrics
    from domainfm_recommendation.model import MixWeights
    from domainfm_recommendation.pipeline import evaluate_scorer, fit_model, index_split, test_popularity
    from domainfm_recommendation.sources import load_split

    results = json.loads((HERE / "results.json").read_text(encoding="utf-8"))
    split = load_split("movielens")
    ix = index_split(split)
    if args.embeddings is not None and args.embeddings.is_file():
        embeddings = np.load(args.embeddings)
        assert embeddings.shape[0] == ix.n_items, "embedding cache does not match the catalogue"
    else:
        from domainfm.engine.encoder import TextEncoder

        from domainfm_recommendation.pipeline import embed_items

        embeddings = embed_items(ix.texts, TextEncoder(results["settings"]["base_model"], max_length=128))

    pos = {it: i for i, it in enumerate(ix.item_ids)}
    test_ts = {e.user: e.timestamp for e in split.test}
    stamps: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for ev in split.train + split.validation:
        stamps[ev.user].append((pos[ev.item], ev.timestamp))
    removed = 0
    strict_hist = []
    for user in ix.users:
        keep = [p for p, ts in stamps[user] if ts != test_ts.get(user)]
        removed += len(stamps[user]) - len(keep)
        strict_hist.append(np.asarray(keep, dtype=np.int64))
    strict = replace(ix, full_hist=strict_hist)

    w = results["settings"]["selected_weights"]
    weights = MixWeights(w["text"], w["collab"], w["popularity"],
                         float("inf") if w["half_life"] is None else float(w["half_life"]), w["neighbours"])
    popularity = test_popularity(strict)
    params = results["baseline_params"]
    scorers = {
        "text_recommender": fit_model(strict, embeddings, weights, "test", results["settings"]["base_model"]),
        "most_popular": MostPopular().fit(strict.users, strict.full_hist, strict.n_items),
        "item_knn": ItemKNN(params["item_knn"]["neighbours"], params["item_knn"]["shrink"]).fit(
            strict.users, strict.full_hist, strict.n_items),
    }
    for name in ("implicit_als", "implicit_bpr"):
        p = params[name]
        scorers[name] = ImplicitMF(name.split("_")[1], p["factors"], p["regularization"], iterations=p["iterations"],
                                   learning_rate=p["learning_rate"], alpha=p["alpha"], seed=p["seed"]).fit(
            strict.users, strict.full_hist, strict.n_items)
    started = time.perf_counter()
    table = {name: all_metrics(evaluate_scorer(m.score, strict, "test"), popularity, len(strict.users))
             for name, m in scorers.items()}
    best = max((n for n in table if n != "text_recommender"), key=lambda n: table[n]["ndcg_at_10"])
    out = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "check": "history events sharing the held-out event's timestamp removed for every user and model",
        "history_events_removed": removed,
        "users_affected": int(sum(1 for u in ix.users if any(ts == test_ts.get(u) for _, ts in stamps[u]))),
        "table": table,
        "best_baseline": best,
        "ndcg_at_10": table["text_recommender"]["ndcg_at_10"],
        "best_baseline_ndcg_at_10": table[best]["ndcg_at_10"],
        "relative_ndcg_gain_over_best_baseline": table["text_recommender"]["ndcg_at_10"] / table[best]["ndcg_at_10"] - 1,
        "seconds": time.perf_counter() - started,
    }
    atomic_write_json(HERE / "strict_past.json", out)
    print(json.dumps({k: out[k] for k in ("history_events_removed", "users_affected", "best_baseline", "ndcg_at_10",
                                          "best_baseline_ndcg_at_10", "relative_ndcg_gain_over_best_baseline")}))


if __name__ == "__main__":
    main()
