"""Scale benchmark (issue 29): Ray Data batch scoring against the in-process path, a 2-node cluster simulated on
one machine, an IVF-PQ index built shard by shard, and a capacity table from the measured per-core rates.

    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/scale/bench.py --texts 10000 --vectors 1000000

The model is the packaged all-MiniLM-L6-v2 with a classification head (``text_classification --mode head`` on the
core's demo data, trained once into the work folder). Throughputs include the model load of every process/actor
(what a batch job pays); each figure is one measured run. Results: benchmarks/scale/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEMO = ROOT / "core" / "domainfm" / "demo_data" / "feedback_demo.csv"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def train_model(work: Path) -> Path:
    runs = work / "runs"
    run = runs / "text_classification" / "bench"
    if (run / "run.json").is_file() and json.loads((run / "run.json").read_text()).get("status") == "trained":
        return run
    shutil.rmtree(runs, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "domainfm.cli.main", "--no-autoload", "train", "text_classification",
                    "--mode", "head", "--output-dir", str(runs), "--set", "run_name=bench"], check=True)
    return run


def make_texts(work: Path, n: int, shards: int = 8) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from domainfm.io import read_records

    base = [r["text"] for r in read_records(DEMO)]
    folder = work / f"texts-{n}"
    if folder.is_dir():
        return folder
    tmp = folder.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    texts = [f"{base[i % len(base)]} (ticket {i})" for i in range(n)]
    for s, part in enumerate(np.array_split(np.arange(n), shards)):
        pq.write_table(pa.table({"id": [f"t{i}" for i in part], "text": [texts[i] for i in part]}),
                       tmp / f"part-{s:03d}.parquet")
    tmp.rename(folder)
    return folder


def in_process(run: Path, texts: Path, threads: int, batch_size: int) -> dict[str, Any]:
    """The in-process path (what ``domainfm predict`` does) with ``threads`` torch threads, model load included."""
    import pyarrow.parquet as pq
    import torch

    torch.set_num_threads(threads)
    start = time.perf_counter()
    from domainfm.kit import load_run_predictor

    model = load_run_predictor(run, device="cpu")
    rows = [r for shard in sorted(texts.glob("*.parquet")) for r in pq.read_table(shard).to_pylist()]
    count = 0
    for i in range(0, len(rows), batch_size):
        count += len(model.predict(rows[i : i + batch_size]))
    seconds = time.perf_counter() - start
    return {"texts": count, "seconds": round(seconds, 2), "texts_per_s": round(count / seconds, 1), "threads": threads}


def ray_driver(run: Path, texts: Path, out: Path, actors: int, batch_size: int) -> dict[str, Any]:
    """Ray Data scoring in a fresh driver process (a local Ray, or RAY_ADDRESS's cluster)."""
    code = (
        "import json, sys, time\n"
        "from domainfm.scale.cluster import ensure_ray\n"
        f"ray = ensure_ray(num_cpus={actors})\n"
        "from domainfm.scale.ray_predict import predict_with_ray\n"
        "nodes = len([n for n in ray.nodes() if n['Alive']])\n"
        f"s = predict_with_ray({str(run)!r}, {str(texts)!r}, {str(out)!r}, batch_size={batch_size}, "
        f"concurrency={actors}, cpus_per_actor=1, device='cpu', progress=False)\n"
        "print('RESULT', json.dumps({'texts': s.rows, 'seconds': round(s.seconds, 2), "
        "'texts_per_s': round(s.rows / s.seconds, 1), 'actors': s.actors, 'nodes': nodes}))\n"
    )
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def cluster(nodes: int) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """``ray start --head --num-cpus 1`` plus ``nodes - 1`` raylets with one CPU each, on this machine, each in the
    foreground (``--block``) of its own session: stopping them is killing those sessions (never ``ray stop``, which
    would stop every Ray on the machine)."""
    ray_bin = str(Path(sys.executable).parent / "ray")
    port = 6390
    common = ["--num-cpus", "1", "--disable-usage-stats", "--block"]
    procs = [subprocess.Popen([ray_bin, "start", "--head", "--port", str(port), "--include-dashboard=false",
                               *common], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    address = f"127.0.0.1:{port}"
    time.sleep(8)
    for _ in range(nodes - 1):
        procs.append(subprocess.Popen([ray_bin, "start", "--address", address, *common], start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(5 if nodes > 1 else 0)
    return address, procs


def stop_cluster(procs: list[subprocess.Popen[bytes]]) -> None:
    import signal

    for proc in reversed(procs):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with __import__("contextlib").suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def scoring(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    run = train_model(work)
    texts = make_texts(work, args.texts)
    if not args.skip_local:
        by_size = results.setdefault("scoring_by_texts", {})  # earlier sizes' figures stay beside this run's
        if "inprocess" in results and "ray_local" in results:
            by_size.setdefault(str(results["inprocess"]["texts"]), {k: results[k] for k in ("inprocess", "ray_local")})
        log(f"in-process, {args.threads} threads, {args.texts} texts")
        results["inprocess"] = in_process(run, texts, args.threads, args.batch_size)
        log(f"  {results['inprocess']}")
        log(f"Ray Data, local Ray, {args.threads} actors x 1 CPU")
        results["ray_local"] = ray_driver(run, texts, work / "out-ray", args.threads, args.batch_size)
        log(f"  {results['ray_local']}")
        by_size[str(args.texts)] = {k: results[k] for k in ("inprocess", "ray_local")}
    for nodes in (() if args.skip_cluster else (1, 2)):
        # a loopback-only cluster: token authentication off for its raylets and its driver alike (Ray 2.60
        # turns it on by default; a driver joining through RAY_ADDRESS needs the same setting as the cluster)
        os.environ["RAY_AUTH_MODE"] = "disabled"
        address, procs = cluster(nodes)
        try:
            os.environ["RAY_ADDRESS"] = address
            log(f"Ray Data on a simulated {nodes}-node cluster ({nodes} raylets x 1 CPU), {nodes} actor(s)")
            results[f"cluster_{nodes}_node"] = ray_driver(run, texts, work / f"out-{nodes}n", nodes, args.batch_size)
            log(f"  {results[f'cluster_{nodes}_node']}")
        finally:
            os.environ.pop("RAY_ADDRESS", None)
            stop_cluster(procs)
            os.environ.pop("RAY_AUTH_MODE", None)


def synthetic_shards(folder: Path, n: int, dim: int, shard_size: int, seed: int) -> np.ndarray:
    """Clustered unit vectors with a low intrinsic dimension, as sentence embeddings have, written as Parquet
    shards; returns the 1,000 held-out queries drawn from the same distribution.

    Each of 1,024 clusters is a centre (norm ~1) plus a point of its own 16-dimensional subspace (spread ~0.6)
    plus a little isotropic noise (norm ~0.2). Isotropic Gaussian clusters in 384 dimensions (the first version
    of this benchmark) make every point of a cluster nearly equidistant from a query, which no embedding model
    produces and no approximate index can rank (IVF-PQ recall@10 0.19 there)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    clusters, latent = 1024, 16
    centres = (rng.normal(size=(clusters, dim)) / np.sqrt(dim)).astype(np.float32)
    bases = (rng.normal(size=(clusters, latent, dim)) / np.sqrt(dim)).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        c = rng.integers(0, clusters, m)
        z = (0.15 * rng.normal(size=(m, 1, latent))).astype(np.float32)
        x = centres[c] + (z @ bases[c])[:, 0, :] + (0.2 / np.sqrt(dim)) * rng.normal(size=(m, dim)).astype(np.float32)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    queries = draw(1000)
    if not folder.is_dir():
        tmp = folder.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for start in range(0, n, shard_size):
            m = min(shard_size, n - start)
            v = draw(m)
            pq.write_table(pa.table({"vid": pa.array(np.arange(start, start + m), pa.int64()),
                                     "embedding": pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), dim)}),
                           tmp / f"{start // shard_size:05d}.parquet")
        tmp.rename(folder)
    return queries


def ivfpq(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    """Build in a child process, so that its peak resident memory is the build's own."""
    code = (
        "import json, resource, sys\n"
        "from domainfm.scale.ray_index import build_index\n"
        "b = build_index(sys.argv[1], sys.argv[2], ivfpq_threshold=1)\n"
        "print('RESULT', json.dumps({'kind': b.kind, 'vectors': b.vectors, 'dim': b.dim, 'params': b.params,\n"
        "  'train_sample': b.train_sample, 'build_seconds': round(b.seconds, 1),\n"
        "  'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))\n"
    )
    by_size = results.setdefault("ivfpq_by_size", {})  # earlier sizes' figures stay beside this run's
    if "ivfpq" in results:
        by_size.setdefault(str(results["ivfpq"]["vectors"]), results["ivfpq"])
    emb = work / f"vectors-{args.vectors}-{args.dim}-lowrank"
    log(f"synthetic vectors: {args.vectors} x {args.dim}")
    queries = synthetic_shards(emb, args.vectors, args.dim, 100_000, seed=0)
    index_dir = work / "ivfpq"
    shutil.rmtree(index_dir, ignore_errors=True)
    log("IVF-PQ build (train on a sample, fill shard by shard)")
    done = subprocess.run([sys.executable, "-c", code, str(emb), str(index_dir)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    build = json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    log(f"  {build}")
    import faiss

    from domainfm.engine.vector_index import VectorIndex
    from domainfm.scale.ray_index import iter_vectors

    index = VectorIndex.load(index_dir / "index")
    start = time.perf_counter()
    _, got = index.search(queries, 10)
    search_ms = (time.perf_counter() - start) / len(queries) * 1000
    exact = faiss.IndexFlatIP(args.dim)  # exact top-10, shard by shard, merged
    best_s = np.full((len(queries), 10), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), 10), -1, dtype=np.int64)
    for ids, vectors in iter_vectors(emb):
        exact.reset()
        exact.add(vectors)
        s, i = exact.search(queries, 10)
        all_s = np.hstack([best_s, s])
        all_i = np.hstack([best_i, ids[i]])
        order = np.argsort(-all_s, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(all_s, order, 1), np.take_along_axis(all_i, order, 1)
    def recall_of(found: np.ndarray) -> float:
        return float(np.mean([len(set(g) & set(e)) / 10 for g, e in zip(found.tolist(), best_i.tolist(), strict=True)]))

    recall = recall_of(got)
    sweep = {}  # recall against search cost: the index's nprobe is a serving setting
    try:
        inner = faiss.extract_index_ivf(index._index)
    except RuntimeError:  # not an IVF index
        inner = None
    if inner is not None:
        default_nprobe = inner.nprobe
        for nprobe in (16, 64, 256, 512):
            inner.nprobe = nprobe
            start = time.perf_counter()
            _, found = index.search(queries, 10)
            sweep[str(nprobe)] = {"recall_at_10": round(recall_of(found), 4),
                                  "ms_per_query": round((time.perf_counter() - start) / len(queries) * 1000, 3)}
        inner.nprobe = default_nprobe
    results["ivfpq"] = {**build, "recall_at_10": round(recall, 4), "queries": len(queries),
                        "search_ms_per_query": round(search_ms, 3), "nprobe_sweep": sweep,
                        "data": "synthetic: 1,024 clusters, 16-dim subspace per cluster, isotropic noise; unit norm",
                        "index_bytes": sum(p.stat().st_size for p in (index_dir / "index").iterdir())}
    by_size[str(args.vectors)] = results["ivfpq"]
    log(f"  recall@10 {recall:.4f}, {search_ms:.2f} ms/query")


def capacity(results: dict[str, Any], hours: float = 8.0, total: float = 100e6) -> list[dict[str, Any]]:
    """Nodes needed to score ``total`` texts in ``hours`` from the measured per-core rate, discounted by the
    measured 2-node scaling efficiency (assumed to hold at larger node counts: an optimistic assumption)."""
    measured = results.get("ray_local") or results["cluster_1_node"]
    per_core = measured["texts_per_s"] / measured["actors"]  # one actor = one core
    efficiency = min(1.0, results.get("two_node_scaling_efficiency") or 1.0)
    rows = []
    for cores in (2, 8, 16, 32, 64):
        node_rate = per_core * cores * efficiency
        rows.append({"cores_per_node": cores, "texts_per_s_per_node": round(node_rate, 1),
                     "nodes_for_100M_in_8h": int(np.ceil(total / (hours * 3600) / node_rate))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--threads", type=int, default=2, help="in-process torch threads = Ray actors x 1 CPU")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--work", default="/tmp/domainfm-scale-bench", help="models, texts, vectors, outputs")
    parser.add_argument("--skip-scoring", action="store_true")
    parser.add_argument("--skip-local", action="store_true", help="keep the in-process/local Ray figures")
    parser.add_argument("--skip-cluster", action="store_true", help="keep the simulated-cluster figures")
    parser.add_argument("--skip-index", action="store_true")
    args = parser.parse_args()
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("DOMAINFM_NO_PROGRESS", "1")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out_path = HERE / "results.json"
    previous = json.loads(out_path.read_text())["details"] if out_path.is_file() else {}
    results: dict[str, Any] = dict(previous)
    if not args.skip_scoring:
        scoring(args, work, results)
        if "ray_local" in results and "inprocess" in results:
            results["ray_vs_inprocess_throughput"] = round(
                results["ray_local"]["texts_per_s"] / results["inprocess"]["texts_per_s"], 3)
        results["two_node_scaling_efficiency"] = round(
            results["cluster_2_node"]["texts_per_s"] / (2 * results["cluster_1_node"]["texts_per_s"]), 3)
        results["capacity_100M_texts_8h"] = capacity(results)
        save(out_path, args, results)  # a later stage that fails or is cut keeps these
    if not args.skip_index:
        ivfpq(args, work, results)
        save(out_path, args, results)


def save(out_path: Path, args: argparse.Namespace, results: dict[str, Any]) -> None:
    figures = {k: results.get(k) for k in ("ray_vs_inprocess_throughput", "two_node_scaling_efficiency")}
    if "ivfpq" in results:
        figures.update(ivfpq_vectors=results["ivfpq"]["vectors"], ivfpq_recall_at_10=results["ivfpq"]["recall_at_10"],
                       ivfpq_build_seconds=results["ivfpq"]["build_seconds"],
                       ivfpq_peak_rss_mb=results["ivfpq"]["peak_rss_mb"])
    from domainfm.benchmarking import write_results

    write_results(out_path, figures, settings=vars(args), extra_packages=("ray", "optuna", "pyarrow"),
                  details=results)
    log(f"written {out_path}")


if __name__ == "__main__":
    main()
