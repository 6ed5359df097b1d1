"""Serving benchmark: requests/s and p50/p99 latency at 1, 8 and 64 concurrent clients, with and without
micro-batching, against a real ``domainfm serve`` (uvicorn) on 127.0.0.1; then a soak at 64 clients that
samples the server's RSS.

Run it under the global lock (the CPU is shared)::

    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/serve/bench.py            # full
    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/serve/bench.py --smoke    # a quick check

The model is a ``finance_sentiment`` artifact trained with ``domainfm train finance_sentiment --mode head``
on the plugin's demo set (trained once into ``benchmarks/serve/work/``, git-ignored), or ``--artifact PATH``.
If the finance_sentiment plugin is not installed it falls back to the core's ``text_classification`` and
says so in the results. Each request carries one record (``{"id", "text"}``), the online case.
Writes ``benchmarks/serve/results.json`` (the smoke run writes ``results-smoke.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from domainfm.benchmarking import machine_info, package_versions

from servers import HERE, WORK, agreement, domainfm_cmd, interleaved_ratio, measure_mode, soak


# --------------------------------------------------------------------------------------------- setup


def pick_domain() -> str:
    try:
        metadata.distribution("domainfm-finance-sentiment")
        return "finance_sentiment"
    except metadata.PackageNotFoundError:
        return "text_classification"


def ensure_artifact(domain: str, mode: str, given: str | None) -> Path:
    """The artifact to serve: ``--artifact``, or one trained here once (``domainfm train``)."""
    if given:
        return Path(given)
    run_dir = WORK / "runs" / domain / f"bench-{mode}"
    meta_path = run_dir / "artifact" / "domainfm-artifact.json"
    if meta_path.is_file():
        if "validation_seconds_by_dtype" in (json.loads(meta_path.read_text()).get("metadata") or {}) or domain != "finance_sentiment":
            return run_dir
        print("the cached artifact predates timed inference-precision selection: training it again", flush=True)
        shutil.rmtree(run_dir)
    print(f"training {domain} ({mode}) on its demo data into {run_dir} ...", flush=True)
    done = subprocess.run(
        domainfm_cmd("train", domain, "--mode", mode, "--output-dir", str(WORK / "runs"),
                     "--set", f"run_name=bench-{mode}", "--set", "benefit.energy_tracking=false"),
        capture_output=True, text=True, env={**os.environ, "DOMAINFM_NO_PROGRESS": "1"}, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"training failed:\n{done.stderr[-3000:]}")
    return run_dir


def float32_copy(run_dir: Path) -> Path | None:
    """A copy of the run whose artifact is served at float32 (the model as trained), or None when the artifact
    already runs at float32: the side-by-side baseline for the precision chosen on validation."""
    meta_path = run_dir / "artifact" / "domainfm-artifact.json"
    meta = json.loads(meta_path.read_text())
    if (meta.get("metadata") or {}).get("inference_dtype", "float32") == "float32":
        return None
    copy_dir = WORK / "runs" / meta["domain"] / f"{run_dir.name}-float32"
    shutil.rmtree(copy_dir, ignore_errors=True)
    shutil.copytree(run_dir, copy_dir)
    copy_meta = copy_dir / "artifact" / "domainfm-artifact.json"
    meta["metadata"]["inference_dtype"] = "float32"
    meta["path"] = str(copy_dir / "artifact")
    copy_meta.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return copy_dir


def load_texts(domain: str) -> list[str]:
    if domain == "finance_sentiment":
        from importlib import resources

        path = Path(str(resources.files("domainfm_finance_sentiment") / "demo_data" / "finance_demo.jsonl"))
        return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    from domainfm.builtin.text_classification import demo_path
    from domainfm.data import read_table

    return [str(r["text"]) for r in read_table(demo_path(), required=("text",))]


def model_batching_ceiling(domain: str, artifact: Path, texts: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``ceiling.py`` in its own process (this driver stays free of the model): the model's own gain from
    merged batches, which the HTTP ratio follows (see ceiling.py)."""
    cmd = [sys.executable, str(Path(__file__).with_name("ceiling.py")), "--artifact", str(artifact), "--domain", domain,
           "--texts", str(texts), "--rounds", str(args.ceiling_rounds), "--records", "128" if args.smoke else "640",
           "--forward-batch", str(args.forward_batch), "--torch-threads", str(args.torch_threads),
           "--threads-min-records", str(args.threads_min_records), "--precision", args.precision]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "DOMAINFM_NO_PROGRESS": "1"},
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"ceiling.py failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"model batching ceiling: median {result['median_ratio']}x", flush=True)
    return result


# ------------------------------------------------------------------------------------------- report


def versions() -> dict[str, str]:
    return {"python": platform.python_version(),
            **package_versions(("domainfm", "domainfm-finance-sentiment", "torch", "transformers",
                                "sentence-transformers", "fastapi", "starlette", "uvicorn", "uvloop", "httptools",
                                "httpx", "pydantic"))}


def machine() -> dict[str, Any]:
    return machine_info()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="short points and soak, writes results-smoke.json")
    parser.add_argument("--domain", choices=["auto", "finance_sentiment", "text_classification"], default="auto")
    parser.add_argument("--artifact", help="artifact or run dir to serve (default: train one with --mode)")
    parser.add_argument("--mode", choices=["head", "full", "lora"], default="head")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--seconds", type=float, help="seconds per point (default 20; smoke 4)")
    parser.add_argument("--max-requests", type=int, default=20_000, help="cap per point")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds (default 5; smoke 2)")
    parser.add_argument("--soak-seconds", type=float, help="soak length (default 600; smoke 20; 0 = skip)")
    parser.add_argument("--soak-sample-s", type=float, default=5.0)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--max-queue", type=int, default=256)
    parser.add_argument("--torch-threads", type=int, default=2, help="server's torch threads for large forward passes")
    parser.add_argument("--threads-min-records", type=int, default=16, help="smaller forward passes use 1 thread")
    parser.add_argument("--forward-batch", type=int, default=32, help="records per forward pass (sorted by length)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="server runtime autocast (fp32 = none: the model runs at its artifact's inference_dtype)")
    parser.add_argument("--no-float32-baseline", dest="float32_baseline", action="store_false",
                        help="skip serving the artifact at float32 alongside (when its training chose bf16)")
    parser.add_argument("--ratio-rounds", type=int, default=None,
                        help="side-by-side rounds for the throughput ratio (default 3; smoke 1; 0 = skip)")
    parser.add_argument("--ceiling-rounds", type=int, default=None,
                        help="rounds of the in-process model batching gain, ceiling.py (default 4; smoke 1; 0 = skip)")
    parser.add_argument("--rss-flat-growth", type=float, default=0.05, help="'flat': RSS grows at most this fraction")
    parser.add_argument("--rss-flat-slope", type=float, default=1.0, help="'flat': RSS slope at most this MB/min")
    parser.add_argument("--finish-by", help="UTC ISO time (e.g. 2026-11-29T07:00+00:00) the soak is shortened to end by")
    parser.add_argument("--output", help="results file (default results.json / results-smoke.json)")
    args = parser.parse_args()
    args.seconds = args.seconds or (4.0 if args.smoke else 20.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if args.smoke else 5.0)
    args.soak_seconds = args.soak_seconds if args.soak_seconds is not None else (20.0 if args.smoke else 600.0)
    args.ceiling_rounds = args.ceiling_rounds if args.ceiling_rounds is not None else (1 if args.smoke else 4)
    args.ratio_rounds = args.ratio_rounds if args.ratio_rounds is not None else (1 if args.smoke else 3)

    WORK.mkdir(parents=True, exist_ok=True)
    domain = pick_domain() if args.domain == "auto" else args.domain
    artifact = ensure_artifact(domain, args.mode, args.artifact)
    texts = WORK / f"texts-{domain}.json"
    texts.write_text(json.dumps(load_texts(domain)), encoding="utf-8")
    started = time.perf_counter()
    print(f"serving {domain} from {artifact}", flush=True)
    ceiling = model_batching_ceiling(domain, artifact, texts, args) if args.ceiling_rounds > 0 else None
    modes = [measure_mode(domain, artifact, texts, batching, args) for batching in (False, True)]
    extra: dict[str, Any] | None = None
    fp32_run = float32_copy(Path(artifact)) if args.float32_baseline else None
    if fp32_run is not None:
        top_only = [max(args.clients)]
        alt = measure_mode(domain, fp32_run, texts, True, args, clients=top_only)
        extra = {
            "what": f"micro-batching at {top_only[0]} clients with the same artifact served at float32 (the model as "
                    "trained) instead of the inference precision its training chose on validation",
            "mode": alt,
            "agreement_with_chosen_precision_on_demo_texts": agreement(modes[1]["demo_predictions"], alt["demo_predictions"]),
        }
        alt.pop("demo_predictions", None)
        print(json.dumps({k: v for k, v in extra.items() if k != "mode"}), flush=True)
    plain_vs_batching = agreement(modes[0]["demo_predictions"], modes[1]["demo_predictions"])
    for m in modes:
        m.pop("demo_predictions", None)
    by_mode = {("batching" if m["micro_batching"] else "plain"): {p["clients"]: p for p in m["points"]} for m in modes}
    summary: dict[str, Any] = {}
    top = max(args.clients)
    side_by_side = interleaved_ratio(domain, artifact, texts, args, top) if args.ratio_rounds > 0 else None
    if top in by_mode["batching"] and top in by_mode["plain"]:
        b, p = by_mode["batching"][top], by_mode["plain"][top]
        sequential = round(b["requests_per_s"] / p["requests_per_s"], 2)
        ratio = side_by_side["median_ratio"] if side_by_side else sequential
        p99 = max(b["p99_ms"], side_by_side["worst_batching_p99_ms"]) if side_by_side else b["p99_ms"]
        summary = {
            f"throughput_ratio_batching_vs_plain_at_{top}_clients": ratio,
            "throughput_ratio_from": "median of the side-by-side rounds" if side_by_side else "the sequential points",
            "throughput_ratio_sequential_points": sequential,
            f"p99_ms_batching_at_{top}_clients": p99,
            "p99_from": "worst of the sequential point and the side-by-side rounds" if side_by_side else "the sequential point",
            "target": "ratio >= 3 and p99 < 200 ms at 64 clients",
            "target_met": bool(ratio >= 3 and p99 < 200),
        }
        print(json.dumps(summary), flush=True)
    soak_note = None
    if args.finish_by and args.soak_seconds > 0:
        finish = datetime.fromisoformat(args.finish_by)
        left = (finish - datetime.now(timezone.utc)).total_seconds() - 60  # server start, warm-up, writing
        if left < args.soak_seconds:
            soak_note = f"soak shortened from {args.soak_seconds:.0f} s to fit --finish-by {args.finish_by}"
            args.soak_seconds = max(60.0, left)
            print(soak_note, flush=True)
    measured = {"predictions_agree_plain_vs_batching_on_demo_texts": plain_vs_batching, "float32_baseline": extra,
                "side_by_side": side_by_side, "model_batching_ceiling": ceiling}
    # written before the soak as well, so that a run cut short keeps the points
    write({**report(args, domain, artifact, modes, summary, None, started), **measured,
           "soak_note": "not run yet (partial results)"}, args)
    soak_result = soak(domain, artifact, texts, args) if args.soak_seconds > 0 else None
    if soak_result:
        print(f"soak: rss {soak_result['rss_mb_first']} -> {soak_result['rss_mb_last']} MB, "
              f"slope {soak_result['rss_slope_mb_per_min']} MB/min", flush=True)
    write({**report(args, domain, artifact, modes, summary, soak_result, started), **measured,
           "soak_note": soak_note, "targets": targets(summary, top, soak_result, args)}, args)


def targets(summary: dict[str, Any], top: int, soak_result: dict[str, Any] | None,
            args: argparse.Namespace) -> list[dict[str, Any]]:
    """Issue 9's targets against what was measured (same server settings in both modes)."""
    out: list[dict[str, Any]] = []
    ratio = summary.get(f"throughput_ratio_batching_vs_plain_at_{top}_clients")
    if ratio is not None:
        out.append({"target": f"throughput with micro-batching >= 3x without, at {top} clients",
                    "measured": ratio, "from": summary["throughput_ratio_from"], "met": ratio >= 3})
    p99 = summary.get(f"p99_ms_batching_at_{top}_clients")
    if p99 is not None:
        out.append({"target": f"p99 latency < 200 ms with micro-batching at {top} clients",
                    "measured": p99, "from": summary["p99_from"], "met": p99 < 200})
    if soak_result:
        growth, slope = soak_result["rss_growth_fraction_first_to_last"], soak_result["rss_slope_mb_per_min"]
        out.append({
            "target": f"memory flat over a {soak_result['seconds'] / 60:.0f}-minute soak at 64 clients (issue: 10 minutes); "
                      f"flat = RSS growth first->last <= {args.rss_flat_growth:.0%} and slope <= {args.rss_flat_slope} MB/min",
            "measured": {"rss_mb_first": soak_result["rss_mb_first"], "rss_mb_last": soak_result["rss_mb_last"],
                         "rss_growth_fraction_first_to_last": growth, "rss_slope_mb_per_min": slope},
            "met": growth <= args.rss_flat_growth and slope is not None and slope <= args.rss_flat_slope
                   and soak_result["seconds"] >= 600,
        })
    return out


def report(args: argparse.Namespace, domain: str, artifact: Path, modes: list[dict[str, Any]], summary: dict[str, Any],
           soak_result: dict[str, Any] | None, started: float) -> dict[str, Any]:
    devices = sorted({d for m in modes for p in m["points"] for d in p["devices"]})
    meta_path = Path(artifact) / "artifact" / "domainfm-artifact.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "device": devices[0] if len(devices) == 1 else devices,
        "domain": domain,
        "fallback": None if domain == "finance_sentiment" or args.domain != "auto" else "finance_sentiment plugin not installed: served text_classification",
        "artifact": {"path": str(artifact), "kind": meta.get("kind"), "mode": (meta.get("metadata") or {}).get("mode"),
                     "base_model": meta.get("base_model"),
                     "inference_dtype": (meta.get("metadata") or {}).get("inference_dtype", "float32"),
                     "inference_dtype_choice": {k: v for k, v in (meta.get("metadata") or {}).items()
                                                if k.startswith(("validation_accuracy_by_dtype", "validation_label_changes",
                                                                "validation_other_output_changes", "validation_seconds_by_dtype"))},
                     "trained_with": f"domainfm train {domain} --mode {args.mode} (demo data)" if not args.artifact else None},
        "workload": {
            "request": "POST /{domain}/predict with one record {id, text}; texts drawn from the domain's demo set",
            "clients": args.clients, "seconds_per_point": args.seconds, "max_requests_per_point": args.max_requests,
            "warmup_seconds": args.warmup, "server": "domainfm serve (uvicorn, 1 process) on 127.0.0.1",
            "load_generator": "benchmarks/serve/loadgen.py: closed loop over keep-alive connections (raw HTTP/1.1 on "
                              "asyncio streams, uvloop when installed) in its own process, on the same 2 cores as the server",
            "requests_per_s": "successful (200) answers per second of the point's wall time",
        },
        "settings": {"torch_threads": args.torch_threads, "threads_min_records": args.threads_min_records,
                     "forward_batch": args.forward_batch, "precision": args.precision, "max_batch": args.max_batch,
                     "max_wait_ms": args.max_wait_ms, "max_queue": args.max_queue,
                     "same_settings_in_both_modes": True},
        "modes": modes,
        "summary": summary,
        "soak": soak_result,
        "smoke": args.smoke,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def write(results: dict[str, Any], args: argparse.Namespace) -> None:
    from domainfm.io import atomic_write_json

    out = Path(args.output) if args.output else HERE / ("results-smoke.json" if args.smoke else "results.json")
    atomic_write_json(out, results)
    print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
