"""Domain shift: a Financial PhraseBank model improved with Twitter Financial News tweets as feedback.

The parent is a fresh ``text_classification`` run on PhraseBank 50 %-agree (the finance plugin's protocol: its
reader, duplicates dropped, stratified 80/10/10 with seed 42). The TFNS training file (read by the finance
plugin's reader: bearish → negative, bullish → positive, neutral) is split once, stratified and seeded
(``--seed``, default 2027), into a feedback part (``--feedback-rows``) and a held-out part (``--heldout-rows``)
that no model trains on. Two children of the parent, through ``domainfm improve``:

- **replay**: the feedback plus ``options.replay_ratio`` replayed PhraseBank training rows per feedback row;
- **naive** fine-tuning: the feedback alone (replay ratio 0).

Figures: accuracy on the held-out tweets (gain over the parent) and on the PhraseBank test split (change from the
parent; ``phrasebank_forgetting`` = parent − child, positive = forgotten).

    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/continual/domain_shift.py
    .venv/bin/python benchmarks/continual/domain_shift.py --smoke    # small subsets, results-domain-shift-smoke.json
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import HERE, accuracy, config, log, make_bundle, merge_headline, predict_labels, train_fresh  # noqa: E402

LABELS = ["negative", "neutral", "positive"]


def pinned_tfns(rows: list[dict[str, Any]], n_feedback: int, n_heldout: int, seed: int
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A stratified, seeded feedback part and held-out part of the TFNS training file."""
    from domainfm.data import stratified_split_indices

    n = len(rows)
    fb_share, held_share = n_feedback / n, n_heldout / n
    fb, held, _rest = stratified_split_indices([r["label"] for r in rows], (fb_share, held_share, 1 - fb_share - held_share), seed)
    return [rows[i] for i in fb], [rows[i] for i in held]


def measure(artifact_dir: Path, heldout: list[dict[str, Any]], pb_test: list[dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, rows in (("tfns_heldout", heldout), ("phrasebank_test", pb_test)):
        predicted = predict_labels(artifact_dir, [r["text"] for r in rows])
        out[name] = accuracy(predicted, [r["label"] for r in rows])
    return out


def main() -> None:
    from domainfm.continual.plan import DEFAULT_REPLAY_RATIO

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="300 PhraseBank rows, 150 feedback and 150 held-out tweets")
    parser.add_argument("--seed", type=int, default=2027, help="the TFNS feedback / held-out split's seed")
    parser.add_argument("--train-seed", type=int, default=42)
    parser.add_argument("--feedback-rows", type=int, default=2000)
    parser.add_argument("--heldout-rows", type=int, default=1000)
    parser.add_argument("--parent-epochs", type=float, default=2.0)
    parser.add_argument("--child-epochs", type=float, default=1.0)
    parser.add_argument("--replay-ratio", type=float, default=DEFAULT_REPLAY_RATIO, help="improve's default ratio")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--head-learning-rate", type=float, default=1e-3)
    parser.add_argument("--base", help="base model directory (default: the packaged MiniLM; a tiny model checks the "
                        "pipeline quickly)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1 is fastest on a busy shared CPU)")
    parser.add_argument("--work", type=Path, default=HERE / "work" / "domain_shift")
    args = parser.parse_args()

    from domainfm.continual.improve import improve
    from domainfm.data import stratified_split_indices
    from domainfm.manager import get_plugin_manager
    from domainfm.models import resolve_model
    from domainfm_finance_sentiment.readers import read_source

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    base = args.base or str(resolve_model("sentence-transformers/all-MiniLM-L6-v2").path)
    pb_rows, pb_meta = read_source("phrasebank:50agree", {})
    tfns_rows, _ = read_source("tfns", {})
    n_fb, n_held = (150, 150) if args.smoke else (args.feedback_rows, args.heldout_rows)
    fb_rows, heldout = pinned_tfns(tfns_rows, n_fb, n_held, args.seed)
    if args.smoke:
        keep = stratified_split_indices([r["label"] for r in pb_rows], (300 / len(pb_rows), 1 - 300 / len(pb_rows)), 0)[0]
        pb_rows = [pb_rows[i] for i in keep]
    tr, va, te = stratified_split_indices([r["label"] for r in pb_rows], (0.8, 0.1, 0.1), 42)
    pb = {name: [pb_rows[i] for i in idx] for name, idx in (("train", tr), ("validation", va), ("test", te))}
    shutil.rmtree(args.work, ignore_errors=True)
    pm = get_plugin_manager()
    settings = dict(max_length=args.max_length, batch_size=args.batch_size, learning_rate=args.learning_rate,
                    head_learning_rate=args.head_learning_rate, seed=args.train_seed)
    parent_data = make_bundle(pb, LABELS, f"{pb_meta['origin']} (80/10/10, seed 42)")
    log(f"parent: PhraseBank {len(pb['train'])} training rows")
    parent = train_fresh(pm, config(args.work, base=base, epochs=args.parent_epochs, **settings), parent_data)
    assert parent.artifact is not None
    figures_by_model: dict[str, dict[str, Any]] = {
        "parent": {**measure(Path(parent.artifact.path), heldout, pb["test"]),
                   "train_seconds": parent.ctx.resources.train_seconds}}
    log(f"parent: {figures_by_model['parent']}")
    feedback = make_bundle({"train": fb_rows}, LABELS, f"TFNS sent_train.csv, {len(fb_rows)} pinned rows (seed {args.seed})")
    decisions: dict[str, Any] = {}
    for name, ratio in (("replay", args.replay_ratio), ("naive", 0.0)):
        log(f"{name}: improving on {len(fb_rows)} tweets")
        result = improve(pm, parent.ctx.run_dir, "tfns-feedback", [
            f"options.replay_ratio={ratio}", f"train.epochs={args.child_epochs}"],
            compare=False, parent_data=parent_data, feedback_data=feedback)
        assert result.run.artifact is not None
        figures_by_model[name] = {**measure(Path(result.run.artifact.path), heldout, pb["test"]),
                                  "train_seconds": result.run.ctx.resources.train_seconds,
                                  "training_rows": len(result.plan.child.tables["train"])}
        decisions[name] = {"promoted": result.decision.promoted, "reasons": result.decision.reasons,
                           "improve_models": result.models}
        log(f"{name}: {figures_by_model[name]}")
    p = figures_by_model["parent"]
    figures: dict[str, Any] = {"models": figures_by_model, "gates": decisions, "wall_seconds": time.perf_counter() - started}
    for name in ("replay", "naive"):
        m = figures_by_model[name]
        gain = m["tfns_heldout"] - p["tfns_heldout"]
        forgetting = p["phrasebank_test"] - m["phrasebank_test"]
        prefix = "" if name == "replay" else "naive_"
        figures[f"{prefix}tfns_heldout_gain"] = gain
        figures[f"{prefix}phrasebank_forgetting"] = forgetting
    from domainfm.benchmarking import write_results

    out = HERE / ("results-domain-shift-smoke.json" if args.smoke else "results-domain-shift.json")
    write_results(out, figures, settings={
        "smoke": args.smoke, "torch_threads": args.threads, "model": args.base or "sentence-transformers/all-MiniLM-L6-v2 (packaged)", "mode": "full",
        "tfns_split_seed": args.seed, "feedback_rows": len(fb_rows), "heldout_rows": len(heldout),
        "phrasebank": {k: len(v) for k, v in pb.items()}, "replay_ratio": args.replay_ratio,
        "parent_epochs": args.parent_epochs, "child_epochs": args.child_epochs, **settings,
        "improve": "compare=False, feedback_holdout 0.2 (improve's own gate items; the figures use the pinned held-out tweets)",
    }, extra_packages=("domainfm", "domainfm-finance-sentiment"))
    log(f"wrote {out}")
    if not args.smoke:
        merge_headline()


if __name__ == "__main__":
    main()
