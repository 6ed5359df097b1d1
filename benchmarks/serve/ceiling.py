"""The model's own batching gain, in process: what the HTTP throughput ratio is made of.

The plain server runs each request's record alone; the batching server merges up to 64 and runs them through
the same ``BatchRunner`` (length-sorted passes of 32). With ``m1`` the model's seconds per record alone and
``m64`` per record in merged batches, the plain server can do at most ``1/m1`` requests/s (its worker runs one
record at a time; HTTP work overlaps it on the other core) and the batching server at most ``1/m64`` (the model
fills both cores, and HTTP work takes its share from them). The HTTP ratio is therefore about ``m1 / m64``:
above it only when HTTP work slows the plain server's model runs, below it by the batching server's HTTP share.
This measures ``m1 / m64`` on the served artifact with the server's own runner and settings, in alternating
rounds (the machine's speed drifts over minutes, see README).

    .venv/bin/python benchmarks/serve/ceiling.py --artifact PATH [--rounds 4] [--records 640]

``bench.py`` runs it on its artifact before the HTTP points and records it under ``model_batching_ceiling``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def _runner(domain: str, artifact: Path, forward_batch: int, torch_threads: int, threads_min_records: int,
            precision: str) -> Callable[[Sequence[dict[str, Any]]], list[Any]]:
    """The server's predict path without HTTP: the registry's shared predictor behind a ``BatchRunner``."""
    import torch
    from domainfm.config import RunConfig
    from domainfm.manager import get_plugin_manager
    from domainfm.serve.artifacts import resolve_artifacts
    from domainfm.serve.predictors import PredictorRegistry
    from domainfm.serve.runtime import BatchRunner

    torch.set_num_threads(torch_threads)
    config = RunConfig()
    artifacts = resolve_artifacts([domain], {domain: artifact}, Path(config.output_dir))  # a run dir or an artifact
    registry = PredictorRegistry(get_plugin_manager(), config, artifacts)
    device = str(getattr(registry.get(domain), "device", "cpu"))  # autocast's device type, as the server's
    return BatchRunner(lambda records: registry.predict(domain, records), forward_batch=forward_batch,
                       torch_threads=torch_threads, threads_min_records=threads_min_records, precision=precision,
                       device=device)


def _records_per_s(run: Callable[[Sequence[dict[str, Any]]], list[Any]], records: list[dict[str, Any]],
                   batch: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(records), batch):
        run(records[i : i + batch])
    return len(records) / (time.perf_counter() - started)


def measure(domain: str, artifact: Path, texts: list[str], *, rounds: int = 4, n_records: int = 640,
            merged: int = 64, forward_batch: int = 32, torch_threads: int = 2, threads_min_records: int = 16,
            precision: str = "fp32", seed: int = 0) -> dict[str, Any]:
    """Records/s one at a time and in merged batches of ``merged``, alternating for ``rounds`` rounds."""
    run = _runner(domain, artifact, forward_batch, torch_threads, threads_min_records, precision)
    rng = random.Random(seed)
    records = [{"text": rng.choice(texts)} for _ in range(n_records)]
    _records_per_s(run, records[:64], 1)  # warm-up, both shapes
    _records_per_s(run, records[:128], merged)
    per_round = []
    for r in range(rounds):
        order = (1, merged) if r % 2 == 0 else (merged, 1)
        rate = {size: _records_per_s(run, records, size) for size in order}
        per_round.append({"one_at_a_time_per_s": round(rate[1], 1), f"merged_{merged}_per_s": round(rate[merged], 1),
                          "ratio": round(rate[merged] / rate[1], 2)})
        print(json.dumps({"round": r, **per_round[-1]}), flush=True)
    ratios = [p["ratio"] for p in per_round]
    return {
        "what": "in-process model throughput through the server's BatchRunner, one record per call vs merged "
                f"batches of {merged} (passes of {forward_batch} sorted by length): the gain the HTTP ratio is made of",
        "records": n_records, "rounds": per_round, "median_ratio": round(statistics.median(ratios), 2),
        "max_ratio": max(ratios),
        "settings": {"forward_batch": forward_batch, "torch_threads": torch_threads,
                     "threads_min_records": threads_min_records, "precision": precision},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", required=True, help="artifact (or run dir) of the domain to measure")
    parser.add_argument("--domain", default="finance_sentiment")
    parser.add_argument("--texts", help="JSON list of texts (default: the domain's demo texts, as bench.py uses)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--records", type=int, default=640)
    parser.add_argument("--forward-batch", type=int, default=32)
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--threads-min-records", type=int, default=16)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    if args.texts:
        texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    else:
        from bench import load_texts

        texts = load_texts(args.domain)
    print(json.dumps(measure(args.domain, Path(args.artifact), texts, rounds=args.rounds, n_records=args.records,
                             forward_batch=args.forward_batch, torch_threads=args.torch_threads,
                             threads_min_records=args.threads_min_records, precision=args.precision)))


if __name__ == "__main__":
    main()
