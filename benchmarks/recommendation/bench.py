"""Recommendation benchmark on MovieLens ml-latest-small with the plugin's pinned protocol.

Runs, in one process and on one split: the text-aware model (mix chosen on validation), every baseline
(most-popular, item-kNN, implicit ALS, implicit BPR; each tuned on validation), ablations (no text term,
no recency, no user tags in item text) as leakage/attribution checks, and throughput: recommendations/s
on the real catalogue and with 1M items in the FAISS index.

    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/recommendation/bench.py            # full
    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/recommendation/bench.py --smoke    # quick

Writes benchmarks/recommendation/results.json (the smoke run writes results.smoke.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.benchmarking import DEFAULT_PACKAGES, machine_info, package_versions

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "plugins" / "recommendation"))


def embed(texts: list[str], base_model: str, device: str, cache: Path | None) -> tuple[np.ndarray, float, str]:
    from domainfm.engine.encoder import TextEncoder

    from domainfm_recommendation.pipeline import embed_items

    import hashlib

    digest = hashlib.sha256("\x1e".join([base_model, *texts]).encode("utf-8")).hexdigest()
    stamp = cache.with_suffix(".sha256") if cache is not None else None
    if cache is not None and stamp is not None and cache.is_file() and stamp.is_file():
        if stamp.read_text(encoding="utf-8").strip() == digest:  # same model and texts, else re-embed
            return np.load(cache), float("nan"), "cache"
    started = time.perf_counter()
    encoder = TextEncoder(base_model, device=device, max_length=128)
    vectors = embed_items(texts, encoder, batch_size=64)
    seconds = time.perf_counter() - started
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
        assert stamp is not None
        stamp.write_text(digest, encoding="utf-8")
    return vectors, seconds, encoder.device


def throughput_real(model: Any, ix: Any, n_users: int) -> float:
    """Lists of 10 per second through the serving path (one request at a time) on the real catalogue."""
    users = ix.users[:n_users]
    started = time.perf_counter()
    for u in users:
        model.recommend(model.histories[u], 10)
    return len(users) / (time.perf_counter() - started)


def throughput_1m(model: Any, n_items: int, n_users: int, kinds: list[str], seed: int = 0) -> dict[str, Any]:
    """Recommendations/s with ``n_items`` in the FAISS index (real items + noisy copies of their vectors)."""
    from domainfm.engine.vector_index import VectorIndex

    from domainfm_recommendation.model import TextRecommender

    rng = np.random.default_rng(seed)
    base = model.embeddings
    extra = n_items - model.n_items
    out: dict[str, Any] = {"n_items": n_items}
    chunks = []
    for start in range(0, extra, 100_000):
        size = min(100_000, extra - start)
        src = base[rng.integers(0, model.n_items, size)]
        noisy = src + 0.15 * rng.standard_normal(src.shape).astype(np.float32)
        chunks.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    synthetic = np.vstack(chunks).astype(np.float32)
    big = TextRecommender(
        model.item_ids + [f"syn{i}" for i in range(extra)], model.titles + [""] * extra,
        np.vstack([base, synthetic]), model.similarity, np.concatenate([model.popularity, np.zeros(extra)]),
        model.weights, model.histories, model.calibration, model.base_model, dense_limit=50_000,
    )
    users = sorted(model.histories)[:n_users]
    for kind in kinds:
        started = time.perf_counter()
        index = VectorIndex.create(big.dim, kind=kind, metric="ip", nlist=1024, nprobe=16)  # type: ignore[arg-type]
        if kind == "ivf":
            sample = big.embeddings[rng.choice(big.n_items, min(100_000, big.n_items), replace=False)]
            index.train(sample)
        index.add(np.arange(big.n_items), big.embeddings)
        build = time.perf_counter() - started
        big.index = index
        big.recommend(big.histories[users[0]], 10)  # warm-up
        n = n_users if kind != "flat" else max(10, n_users // 4)
        started = time.perf_counter()
        for u in users[:n]:  # one request at a time (latency-bound serving)
            big.recommend(big.histories[u], 10)
        single = n / (time.perf_counter() - started)
        started = time.perf_counter()
        lists = big.recommend_many([big.histories[u] for u in users], 10)  # batch job: one FAISS search
        batch = len(lists) / (time.perf_counter() - started)
        out[kind] = {"recs_per_s_single_request": single, "recs_per_s_batch": batch, "index_build_seconds": build,
                     "users_timed_single": n, "users_timed_batch": len(users), "index_device": index.device}
        big.index = None
        del index
    return out


# Written by sequential_bench.py; kept when this benchmark rewrites the file. When the served model is the
# sequential one (headline_model), the headline ndcg_at_10 / gini are its figures, not the text mix's.
SEQUENTIAL_KEYS = ("sequential", "best_sequential_baseline", "best_sequential_baseline_ndcg_at_10",
                   "best_sequential_baseline_gini", "cold_item_recall_at_20", "cold_item_users",
                   "text_sequential_ndcg_at_10", "text_sequential_gini", "sequential_target_met", "headline_model")
HEADLINE_METRICS = ("ndcg_at_10", "hr_at_10", "recall_at_20", "mrr", "gini", "coverage", "novelty", "long_tail_share")
HEADLINE_NOTE = ("headline metrics are the served text-aware sequential model's (sequential_bench.py); the text mix's "
                 "are table.text_recommender, and best_baseline / relative_ndcg_gain_over_best_baseline / target_met "
                 "compare the text mix with the non-sequential baselines")


def keep_sequential_keys(path: Path, results: dict[str, Any]) -> dict[str, Any]:
    """``results`` plus the sequential benchmark's keys from the file at ``path`` (if any)."""
    if not path.is_file():
        return results
    previous = json.loads(path.read_text(encoding="utf-8"))
    merged = {**results, **{k: previous[k] for k in SEQUENTIAL_KEYS if k in previous}}
    served = previous.get("sequential", {}).get("table", {}).get("text_sequential")
    if previous.get("headline_model") == "text_sequential" and served:
        merged.update({k: served[k] for k in HEADLINE_METRICS})
        merged["headline_note"] = HEADLINE_NOTE
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small grids, 100k-item scale check, cached embeddings")
    parser.add_argument("--data", default=None, help="MovieLens directory (default: shared data)")
    parser.add_argument("--base-model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--scale-items", type=int, default=None, help="items in the scale check (default 1M, smoke 100k)")
    parser.add_argument("--no-tag-ablation", action="store_true", help="skip re-embedding without user tags")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from domainfm.device import describe_device, resolve_device
    from domainfm.io import atomic_write_json

    from domainfm_recommendation.evaluation import all_metrics
    from domainfm_recommendation.model import MixWeights
    from domainfm_recommendation.pipeline import (
        evaluate_scorer, fit_model, index_split, run_baselines, test_popularity, train_recommender,
    )
    from domainfm_recommendation.sources import load_split, movielens_dir

    started_all = time.perf_counter()
    device = resolve_device(args.device)
    data_dir = Path(args.data) if args.data else movielens_dir()
    if not data_dir.is_dir():
        sys.exit(f"MovieLens not found at {data_dir}; pass --data or set DOMAINFM_SHARED_DATA")
    split = load_split(str(data_dir))
    ix = index_split(split)
    work = HERE / "work"
    cache = work / "embeddings.npy" if args.smoke else None
    embeddings, embed_seconds, embed_device = embed(ix.texts, args.base_model, device, cache)
    print(f"items {ix.n_items}, users {len(ix.users)}, embedded in {embed_seconds:.1f}s on {embed_device}", flush=True)

    t0 = time.perf_counter()
    model, report = train_recommender(ix, embeddings, args.base_model, quick=args.smoke)
    train_seconds = time.perf_counter() - t0
    popularity = test_popularity(ix)
    result = evaluate_scorer(model.score, ix, "test")
    model_metrics = all_metrics(result, popularity, len(ix.users))
    print("model", report.weights, json.dumps(model_metrics), flush=True)

    t0 = time.perf_counter()
    baselines = run_baselines(ix, quick=args.smoke)
    baseline_seconds = time.perf_counter() - t0
    table = {"text_recommender": model_metrics}
    for name, b in baselines.items():
        table[name] = b["metrics"]
        print(name, b["params"], json.dumps(b["metrics"]), flush=True)
    best_name = max(baselines, key=lambda n: baselines[n]["metrics"]["ndcg_at_10"])
    best = baselines[best_name]["metrics"]

    # Ablations with the selected weights: where does the gain come from? (a leakage check)
    ablations: dict[str, Any] = {}
    w = report.weights
    for name, weights in {
        "no_text_term": MixWeights(0.0, w.collab, w.popularity, w.half_life, w.neighbours),
        "no_recency": MixWeights(w.text, w.collab, w.popularity, float("inf"), w.neighbours),
        "text_only_recency": MixWeights(w.text, 0.0, 0.0, w.half_life, w.neighbours),
    }.items():
        abl = fit_model(ix, embeddings, weights, "test", args.base_model)
        ablations[name] = all_metrics(evaluate_scorer(abl.score, ix, "test"), popularity, len(ix.users))
        print("ablation", name, json.dumps(ablations[name]), flush=True)
    if not args.no_tag_ablation and not args.smoke:
        plain = [it.text for it in split.items]  # rebuilt below without tags
        from domainfm_recommendation.readers import read_movielens

        ml = read_movielens(data_dir)
        untagged = {it.item: it.text for it in ml.items}
        plain = [untagged.get(i, "") for i in ix.item_ids]
        emb_plain, _, _ = embed(plain, args.base_model, device, None)
        abl = fit_model(ix, emb_plain, w, "test", args.base_model)
        ablations["no_user_tags_in_text"] = all_metrics(evaluate_scorer(abl.score, ix, "test"), popularity, len(ix.users))
        print("ablation no_user_tags_in_text", json.dumps(ablations["no_user_tags_in_text"]), flush=True)

    model.build_index()
    real_rate = throughput_real(model, ix, 200 if not args.smoke else 50)
    scale_items = args.scale_items or (100_000 if args.smoke else 1_000_000)
    scale = throughput_1m(model, scale_items, 200 if not args.smoke else 30, ["ivf", "flat"])
    print("throughput", real_rate, json.dumps(scale), flush=True)

    gain = model_metrics["ndcg_at_10"] / best["ndcg_at_10"] - 1.0 if best["ndcg_at_10"] > 0 else float("nan")
    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": package_versions(
            [*DEFAULT_PACKAGES, "domainfm-recommendation", "faiss-cpu", "implicit", "scipy"]
        ),
        "device": describe_device(device),
        "embedding_device": embed_device,
        "mode": "smoke" if args.smoke else "full",
        "dataset": "MovieLens ml-latest-small (610 users, 9742 movies, 100836 ratings)",
        "protocol": "temporal leave-one-out per user (last event = test, previous = validation), full ranking over "
        "all 9742 items, seen items excluded; ties by seeded hash; all choices on validation, test once",
        "settings": {
            "base_model": args.base_model, "max_length": 128, "item_text": "title + genres + user tags "
            "(tags from held-out user-item pairs dropped)", "weight_grid": "quick" if args.smoke else "full",
            "selected_weights": {k: (v if v != float("inf") else None) for k, v in w.__dict__.items()},
            "fine_tuning": "none (frozen base model; two-tower fine-tuning not implemented)",
        },
        "ndcg_at_10": model_metrics["ndcg_at_10"],
        "hr_at_10": model_metrics["hr_at_10"],
        "recall_at_20": model_metrics["recall_at_20"],
        "mrr": model_metrics["mrr"],
        "gini": model_metrics["gini"],
        "coverage": model_metrics["coverage"],
        "novelty": model_metrics["novelty"],
        "long_tail_share": model_metrics["long_tail_share"],
        "best_baseline": best_name,
        "best_baseline_ndcg_at_10": best["ndcg_at_10"],
        "best_baseline_gini": best["gini"],
        "relative_ndcg_gain_over_best_baseline": gain,
        "target_met": bool(gain >= 0.10 and model_metrics["gini"] <= best["gini"]),
        "recs_per_s": scale["ivf"]["recs_per_s_batch"],
        "recs_per_s_note": f"top-10 lists/s for a batch of users (one FAISS search, then per-user re-ranking with "
        f"reasons), {scale_items} items in a FAISS IVF index (nlist 1024, nprobe 16) + kNN + popular candidates; "
        "'scale' also has one-request-at-a-time rates and the exact flat index",
        "recs_per_s_real_catalogue": real_rate,
        "scale": scale,
        "table": table,
        "baseline_params": {n: b["params"] for n, b in baselines.items()},
        "baseline_validation_ndcg_at_10": {n: b["validation_ndcg_at_10"] for n, b in baselines.items()},
        "model_validation": report.validation,
        "ablations": ablations,
        "timings_seconds": {
            "embed_items": embed_seconds, "train_model": train_seconds, "baselines_with_tuning": baseline_seconds,
            "baseline_fit": {n: b["fit_seconds"] for n, b in baselines.items()},
            "total": time.perf_counter() - started_all,
        },
        "split_report": split.report,
    }
    out = args.out or (HERE / ("results.smoke.json" if args.smoke else "results.json"))
    results = keep_sequential_keys(out, results)
    atomic_write_json(out, results)
    print(f"wrote {out}: NDCG@10 {model_metrics['ndcg_at_10']:.4f} vs {best_name} {best['ndcg_at_10']:.4f} "
          f"({gain:+.1%}), gini {model_metrics['gini']:.3f} vs {best['gini']:.3f}")


if __name__ == "__main__":
    main()
