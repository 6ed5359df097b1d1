"""The serving benchmark's server handle (``domainfm serve`` in a subprocess) and its measurements: load points,
the side-by-side batching ratio, predictions agreement and the RSS soak (used by ``bench.py``)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"


# --------------------------------------------------------------------------------------------- server


def domainfm_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "domainfm.cli.main", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``domainfm serve`` in a subprocess on 127.0.0.1."""

    def __init__(self, domain: str, artifact: Path, batching: bool, args: argparse.Namespace, precision: str | None = None) -> None:
        precision = precision or args.precision
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        flags = ["--plugins", domain] if domain != "text_classification" else ["--no-autoload"]
        cmd = domainfm_cmd(
            *flags, "serve", "--port", str(self.port), "--artifact", f"{domain}={artifact}",
            "--runs-dir", str(WORK / "no-runs"), "--log-level", "warning",
            "--torch-threads", str(args.torch_threads), "--threads-min-records", str(args.threads_min_records),
            "--forward-batch", str(args.forward_batch), "--precision", precision,
            "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms), "--max-queue", str(args.max_queue),
        )
        if not batching:
            cmd.append("--no-batching")
        env = {**os.environ, "DOMAINFM_API_KEYS": "", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
        self.log = open(WORK / f"server-{'batching' if batching else 'plain'}-{precision}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, domain: str, timeout: float = 180) -> dict[str, Any]:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                health = httpx.get(f"{self.base}/health", timeout=5).json()
                state = health["domains"][domain]
                if state["status"] == "ready":
                    return health
                if state["status"] in ("failed", "no_artifact"):
                    raise SystemExit(f"server cannot serve {domain}: {state.get('error')}")
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"server not ready after {timeout} s")

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def batching_stats(self, domain: str) -> dict[str, Any]:
        import httpx

        return dict(httpx.get(f"{self.base}/health", timeout=10).json()["domains"][domain]["batching"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# ------------------------------------------------------------------------------------------- load


def load(server: Server, domain: str, texts_file: Path, clients: int, seconds: float, max_requests: int) -> dict[str, Any]:
    """Closed loop from ``loadgen.py`` in its own process (raw keep-alive HTTP/1.1, uvloop when installed),
    with the server's CPU use over the point and the machine's load average (other processes) around it."""
    import psutil

    proc = psutil.Process(server.proc.pid)
    load_before = os.getloadavg()[0]
    cpu0, wall0 = proc.cpu_times(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(HERE / "loadgen.py"), "--port", str(server.port), "--domain", domain,
         "--texts", str(texts_file), "--clients", str(clients), "--seconds", str(seconds),
         "--max-requests", str(max_requests)],
        capture_output=True, text=True, check=False,
    )
    cpu1, wall1 = proc.cpu_times(), time.perf_counter()
    if done.returncode != 0:
        raise SystemExit(f"load generator failed:\n{done.stderr[-3000:]}")
    point: dict[str, Any] = json.loads(done.stdout)
    point["server_cpu_cores"] = round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (wall1 - wall0), 2)
    point["loadavg_1min_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return point


def measure_mode(domain: str, artifact: Path, texts: Path, batching: bool, args: argparse.Namespace,
                 precision: str | None = None, clients: list[int] | None = None) -> dict[str, Any]:
    precision = precision or args.precision
    server = Server(domain, artifact, batching, args, precision)
    try:
        health = server.wait_ready(domain)
        points = []
        for n_clients in clients or args.clients:
            # warm-up at the point's own concurrency (not measured): batch shapes new to this point would
            # otherwise pay oneDNN kernel creation and allocator growth inside the measurement
            load(server, domain, texts, n_clients, args.warmup, 10_000)
            before = server.batching_stats(domain)
            point = load(server, domain, texts, n_clients, args.seconds, args.max_requests)
            after = server.batching_stats(domain)
            batches = after["batches"] - before["batches"]
            point["mean_batch_records"] = round((after["records"] - before["records"]) / batches, 2) if batches else None
            point["server_rss_mb"] = round(server.rss_mb(), 1)
            print(f"  {'batching' if batching else 'plain   '} {precision} {n_clients:3d} clients: {point['requests_per_s']:8.1f} req/s "
                  f"p50 {point['p50_ms']:7.1f} ms p99 {point['p99_ms']:7.1f} ms batch {point['mean_batch_records']} "
                  f"errors {point['error_rate']}", flush=True)
            points.append(point)
        return {"micro_batching": batching, "precision": precision, "server_runtime": health.get("runtime"),
                "points": points, "demo_predictions": predict_all(server, domain, texts)}
    finally:
        server.stop()


def interleaved_ratio(domain: str, artifact: Path, texts: Path, args: argparse.Namespace, clients: int) -> dict[str, Any]:
    """The micro-batching throughput ratio measured side by side: a plain and a batching server alive together,
    their points at ``clients`` alternating (plain, batching, then batching, plain, ...) for ``--ratio-rounds``
    rounds, so that the machine's speed drifting over minutes (other tenants, thermal) does not land on one mode.
    """
    import statistics

    servers = {"plain": Server(domain, artifact, False, args), "batching": Server(domain, artifact, True, args)}
    rounds: list[dict[str, Any]] = []
    try:
        for server in servers.values():
            server.wait_ready(domain)
        for r in range(args.ratio_rounds):
            order = ("plain", "batching") if r % 2 == 0 else ("batching", "plain")
            points: dict[str, dict[str, Any]] = {}
            for name in order:
                load(servers[name], domain, texts, clients, args.warmup, 10_000)
                points[name] = load(servers[name], domain, texts, clients, args.seconds, args.max_requests)
            ratio = points["batching"]["requests_per_s"] / max(points["plain"]["requests_per_s"], 1e-9)
            rounds.append({"order": list(order), "ratio": round(ratio, 3),
                           **{f"{name}_{key}": points[name][key] for name in order
                              for key in ("requests_per_s", "p50_ms", "p99_ms", "error_rate")}})
            print(f"  side by side round {r + 1}: plain {points['plain']['requests_per_s']:.1f} req/s, batching "
                  f"{points['batching']['requests_per_s']:.1f} req/s (p99 {points['batching']['p99_ms']:.1f} ms), "
                  f"ratio {ratio:.2f}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    ratios = [row["ratio"] for row in rounds]
    p99s = [row["batching_p99_ms"] for row in rounds]
    return {"clients": clients, "rounds": rounds, "median_ratio": round(statistics.median(ratios), 2),
            "min_ratio": min(ratios), "max_ratio": max(ratios), "worst_batching_p99_ms": max(p99s),
            "median_batching_p99_ms": round(statistics.median(p99s), 2)}


def predict_all(server: Server, domain: str, texts: Path) -> list[list[Any]]:
    """Every demo text once through the server (label, topic, abstained): to compare precisions."""
    import httpx

    all_texts = json.loads(texts.read_text(encoding="utf-8"))
    out: list[list[Any]] = []
    for start in range(0, len(all_texts), 128):
        records = [{"id": str(start + i), "text": t} for i, t in enumerate(all_texts[start : start + 128])]
        r = httpx.post(f"{server.base}/{domain}/predict", json={"records": records}, timeout=120)
        r.raise_for_status()
        out += [[p.get("label"), (p.get("extra") or {}).get("topic"), p.get("abstained")] for p in r.json()["predictions"]]
    return out


def agreement(a: list[list[Any]], b: list[list[Any]]) -> dict[str, float]:
    n = min(len(a), len(b))
    return {name: round(sum(x[k] == y[k] for x, y in zip(a, b, strict=False)) / n, 4) if n else 0.0
            for k, name in enumerate(("label", "topic", "abstained"))}


def soak(domain: str, artifact: Path, texts: Path, args: argparse.Namespace) -> dict[str, Any]:
    """64 clients with micro-batching for ``--soak-seconds``; server RSS sampled every few seconds."""
    server = Server(domain, artifact, True, args)
    samples: list[tuple[float, float]] = []
    try:
        server.wait_ready(domain)
        load(server, domain, texts, 64, args.warmup, 10_000)
        result: dict[str, Any] = {}
        worker = threading.Thread(
            target=lambda: result.update(load(server, domain, texts, 64, args.soak_seconds, 10**9)), daemon=True
        )
        began = time.perf_counter()
        worker.start()
        while worker.is_alive():
            samples.append((time.perf_counter() - began, server.rss_mb()))
            worker.join(timeout=args.soak_sample_s)
        samples.append((time.perf_counter() - began, server.rss_mb()))
        if not result:
            raise SystemExit("soak load generator failed")
        result["batching"] = server.batching_stats(domain)
    finally:
        server.stop()
    import numpy as np

    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    half = len(rss) // 2
    slope = float(np.polyfit(t / 60.0, rss, 1)[0]) if len(rss) >= 3 else None
    return {
        "clients": 64,
        "seconds": result["seconds"],
        "requests": result["requests"],
        "requests_per_s": result["requests_per_s"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "error_rate": result["error_rate"],
        "statuses": result["statuses"],
        "server_cpu_cores": result["server_cpu_cores"],
        "loadavg_1min_before_after": result["loadavg_1min_before_after"],
        "mean_batch_records": (result["batching"] or {}).get("mean_batch_records"),
        "rss_mb_first": round(float(rss[0]), 1),
        "rss_mb_last": round(float(rss[-1]), 1),
        "rss_mb_max": round(float(rss.max()), 1),
        "rss_mb_mean_first_half": round(float(rss[:half].mean()), 1) if half else None,
        "rss_mb_mean_second_half": round(float(rss[half:].mean()), 1),
        "rss_growth_fraction_first_to_last": round(float((rss[-1] - rss[0]) / rss[0]), 4),
        "rss_slope_mb_per_min": round(slope, 3) if slope is not None else None,
        "samples": [[round(a, 1), round(b, 1)] for a, b in samples],
    }
