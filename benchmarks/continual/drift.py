"""Drift benchmark (issue 27): how soon the finance monitor suggests retraining when PhraseBank news turns into tweets.

Protocol (pinned, seeded):

- a ``--mode head`` MiniLM artifact is trained on the plugin's pinned PhraseBank 50 %-agree training split (80 %,
  split seed 42, topics off); the drift reference is that training split's sentence embeddings (the artifact's
  encoder) and, for the label mix, the artifact's predictions on the validation split (``finance drift-reference``
  semantics); thresholds from held-out reference windows at ``--false-alarm-rate`` per test;
- each stream (one per ``--seeds``) is the PhraseBank test split (sentences the model and the reference never saw),
  shuffled, followed at a known switch point by ``--post`` Twitter Financial News tweets (one seeded sample of
  ``sent_train.csv``, reshuffled per seed); events carry no label, so the monitor labels them with the artifact;
- the stream goes through :class:`~domainfm_finance_sentiment.monitor.engine.Monitor` with its SQLite state;
  a ``retrain_suggested`` event whose window ends at or before the switch is a false alarm; the detection delay is
  the number of items after the switch until the first event after it (its window's last item minus the switch).

Also counted: the tests (every ``step`` items) whose window lies wholly before the switch and exceed a threshold
(the per-test false-alarm rate actually seen, next to the stated one).

    flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/continual/drift.py
    .venv/bin/python benchmarks/continual/drift.py --smoke      # small subsets, no results file
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
RESULTS = HERE / "results-drift.json"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DOMAINFM_NO_PROGRESS", "1")
BASE = "sentence-transformers/all-MiniLM-L6-v2"


def train_head(smoke: bool, reuse: bool) -> tuple[Any, Any, dict[str, Any]]:
    """The head artifact on the pinned PhraseBank split (``reuse``: the one a previous run left); returns
    (predictor, data bundle, figures)."""
    from domainfm.config import build_config
    from domainfm.device import resolve_device
    from domainfm.types import RunContext

    from domainfm_finance_sentiment import plugin
    from domainfm_finance_sentiment.model import FinancePredictor

    from domainfm.types import Artifact

    run_dir = WORK / ("drift-head-smoke" if smoke else "drift-head")
    if not reuse:
        shutil.rmtree(run_dir, ignore_errors=True)
    cfg = build_config(None, ["model.mode=head", "options.topics=off", "model.max_length=128"])
    cfg.model.base = BASE
    ctx = RunContext(run_id=uuid.uuid4().hex[:8], domain="finance_sentiment", config=cfg, run_dir=run_dir,
                     device=resolve_device("auto"))
    data = plugin.domainfm_load_data(ctx, "finance_sentiment", "phrasebank")
    assert data is not None
    if smoke:
        rng = random.Random(0)
        sizes = {name: min(len(table), 500 if name == "train" else 120) for name, table in data.tables.items()}
        data.tables = {name: table.select(sorted(rng.sample(range(len(table)), sizes[name])))
                       for name, table in data.tables.items()}
    started = time.perf_counter()
    if reuse and (run_dir / "artifact").is_dir():
        artifact = Artifact.load(run_dir / "artifact")
    else:
        trained = plugin.domainfm_train(ctx, "finance_sentiment", data)
        assert trained is not None
        artifact = trained
    seconds = time.perf_counter() - started
    predictor = FinancePredictor.load(artifact, ctx.device)
    return predictor, data, {"train_seconds": None if reuse else round(seconds, 1),
                             "artifact_fit_seconds": artifact.metadata.get("train_seconds"),
                             "train_examples": len(data.tables["train"]),
                             "validation_accuracy": artifact.metadata.get("validation_accuracy"),
                             "kind": artifact.kind, "base_model": BASE, "device": ctx.device}


class Cache:
    """Embeddings and probabilities of every text computed once (streams of several seeds share texts)."""

    def __init__(self, predictor: Any, path: Path) -> None:
        import numpy as np

        from domainfm_finance_sentiment.monitor.drift import artifact_embedder

        inner = predictor.inner
        self.embed_fn = artifact_embedder(predictor)
        # the head kind's probabilities are its calibrated head on those same embeddings: encode once
        self.proba_fn = ((lambda _texts, feats: inner.calibrator.apply(inner.logits_from_features(feats)))
                         if inner.is_head else (lambda texts, _feats: predictor.predict_proba(texts)))
        self.path = path
        self.emb: dict[str, Any] = {}
        self.proba: dict[str, Any] = {}
        self.seconds = 0.0
        if path.is_file():  # written by an earlier run with this very artifact (--reuse)
            with np.load(path, allow_pickle=False) as npz:
                for t, e, p in zip(npz["texts"].tolist(), npz["emb"], npz["proba"], strict=True):
                    self.emb[t], self.proba[t] = e, p

    def save(self) -> None:
        import numpy as np

        texts = sorted(self.emb)
        with open(self.path, "wb") as fh:
            np.savez(fh, texts=np.asarray(texts), emb=np.stack([self.emb[t] for t in texts]),
                     proba=np.stack([self.proba[t] for t in texts]))

    def fill(self, texts: list[str]) -> None:
        todo = sorted({t for t in texts if t not in self.emb})
        started = time.perf_counter()
        for i in range(0, len(todo), 256):
            chunk = todo[i : i + 256]
            feats = self.embed_fn(chunk)
            for t, e, p in zip(chunk, feats, self.proba_fn(chunk, feats), strict=True):
                self.emb[t], self.proba[t] = e, p
        self.seconds += time.perf_counter() - started

    def embedder(self, texts: Any) -> Any:
        import numpy as np

        self.fill(list(texts))
        return np.stack([self.emb[t] for t in texts])

    def classifier(self, texts: Any) -> Any:
        import numpy as np

        self.fill(list(texts))
        return np.stack([self.proba[t] for t in texts])


def run_stream(reference: Any, cache: Cache, pre: list[str], post: list[str], batch: int) -> dict[str, Any]:
    """One stream through the monitor with its SQLite state; false alarms and delay of retrain_suggested."""
    import numpy as np

    from domainfm_finance_sentiment import LABELS
    from domainfm_finance_sentiment.monitor.detector import DetectorConfig
    from domainfm_finance_sentiment.monitor.engine import Monitor
    from domainfm_finance_sentiment.monitor.store import MonitorStore
    from domainfm_finance_sentiment.monitor.surge_eval import ListSource

    texts = pre + post
    switch = len(pre)
    events = [{"text": t, "timestamp": 1_767_600_000 + 60 * i, "source": "twitter" if i >= switch else "news"}
              for i, t in enumerate(texts)]
    with tempfile.TemporaryDirectory() as tmp:
        store = MonitorStore(Path(tmp) / "monitor.sqlite")
        store.save_drift_reference(*reference.to_state())
        mon = Monitor(store, DetectorConfig(), classifier=cache.classifier, embedder=cache.embedder)
        started = time.perf_counter()
        mon.run(ListSource(events), batch_size=batch)
        seconds = time.perf_counter() - started
        fired = [a for a in store.alerts() if a.get("event") == "retrain_suggested"]
        store.close()
    false_alarms = [a["window"]["last_item"] for a in fired if a["window"]["last_item"] <= switch]
    after = [a for a in fired if a["window"]["last_item"] > switch]
    # every test wholly before the switch, with the same labels the monitor used
    cfg = reference.config
    labels = [int(np.argmax(cache.proba[t])) for t in pre]
    exceeded = tests = 0
    for end in range(cfg.window, switch + 1, cfg.test_every):
        window = pre[end - cfg.window : end]
        result = reference.test(labels[end - cfg.window : end], np.stack([cache.emb[t] for t in window]))
        tests += 1
        exceeded += bool(result["exceeded"])
    return {
        "switch_item": switch, "items": len(texts),
        "false_alarms": len(false_alarms), "false_alarm_items": false_alarms,
        "pre_switch_tests": tests, "pre_switch_tests_exceeding": exceeded,
        "detection_delay": after[0]["window"]["last_item"] - switch if after else None,
        "detected_by": after[0]["statistic"]["exceeded"] if after else None,
        "statistic_at_detection": {k: after[0]["statistic"][k] for k in ("label_mix", "embedding")} if after else None,
        "post_switch_predicted_mix": dict(zip(LABELS, np.bincount(
            [int(np.argmax(cache.proba[t])) for t in post], minlength=3).tolist(), strict=True)),
        "monitor_seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small subsets; prints, writes no results")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--post", type=int, default=1000, help="tweets after the switch")
    parser.add_argument("--windows", default="200,100,50", help="window sizes; the first (the CLI default) is the headline")
    parser.add_argument("--false-alarm-rate", type=float, default=0.01)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="reuse the artifact and encodings of the last run")
    args = parser.parse_args()
    from domainfm.benchmarking import write_results
    from domainfm.engine.drift import DriftConfig

    from domainfm_finance_sentiment.monitor.drift import fit_reference
    from domainfm_finance_sentiment.readers import read_tfns

    started = time.perf_counter()
    predictor, data, model = train_head(args.smoke, args.reuse)
    print(f"[head] {json.dumps(model)}", flush=True)
    cache = Cache(predictor, Path(predictor.inner.artifact.path).parent / "encodings.npz")
    train = data.tables["train"]
    validation = list(data.tables["validation"]["text"])
    held_out = list(data.tables["test"]["text"])
    post_n = 200 if args.smoke else args.post
    tweets = random.Random(1234).sample(sorted({r["text"] for r in read_tfns()}), post_n)
    seeds = 2 if args.smoke else args.seeds
    streams = []
    for seed in range(seeds):  # the same sentences and tweets, in another order per seed
        rng = random.Random(seed)
        pre, post = held_out[:], tweets[:]
        rng.shuffle(pre)
        rng.shuffle(post)
        streams.append((seed, pre, post))
    cache.fill(list(train["text"]) + validation + held_out + [t for _, _, post in streams for t in post])
    cache.save()
    print(f"[encode] {len(cache.emb)} texts in {cache.seconds:.1f}s", flush=True)

    by_window: dict[str, Any] = {}
    for window in [int(w) for w in args.windows.split(",")]:
        config = DriftConfig(window=window, false_alarm_rate=args.false_alarm_rate)
        t0 = time.perf_counter()
        reference = fit_reference(list(train["text"]), list(train["label"]), cache.embedder, config,
                                  classifier=cache.classifier, heldout_texts=validation,
                                  origin="phrasebank:50agree (train split, seed 42)",
                                  encoder={"kind": "artifact", "path": "benchmarks/continual/work/drift-head"})
        fit_seconds = time.perf_counter() - t0
        runs = [{"seed": seed, **run_stream(reference, cache, pre, post, args.batch)} for seed, pre, post in streams]
        delays = [r["detection_delay"] for r in runs]
        found = sorted(d for d in delays if d is not None)
        by_window[str(window)] = {
            "step": config.test_every, "thresholds": reference.thresholds,
            "reference_fit_seconds": round(fit_seconds, 2),
            "detected": f"{len(found)}/{len(runs)}",
            "detection_delay_median": found[len(found) // 2] if found else None,
            "detection_delay_max": max(found) if found else None,
            "false_alarms": sum(r["false_alarms"] for r in runs),
            "pre_switch_items": sum(r["switch_item"] for r in runs),
            "pre_switch_tests": sum(r["pre_switch_tests"] for r in runs),
            "pre_switch_tests_exceeding": sum(r["pre_switch_tests_exceeding"] for r in runs),
            "reference": reference.describe(),
            "streams": runs,
        }
        print(f"[window {window}] " + json.dumps({k: by_window[str(window)][k] for k in (
            "detected", "detection_delay_median", "detection_delay_max", "false_alarms", "pre_switch_tests",
            "pre_switch_tests_exceeding")}) + f" delays={delays}", flush=True)

    head = by_window[args.windows.split(",")[0].strip()]
    figures = {
        "drift_detection_delay": head["detection_delay_median"],
        "drift_detection_delay_max": head["detection_delay_max"],
        "drift_detected": head["detected"],
        "drift_false_alarms": head["false_alarms"],
        "drift_pre_switch_items": head["pre_switch_items"],
        "drift_pre_switch_tests": head["pre_switch_tests"],
        "drift_pre_switch_tests_exceeding": head["pre_switch_tests_exceeding"],
        "drift_stated_false_alarm_rate_per_test": args.false_alarm_rate,
        "drift_window": int(args.windows.split(",")[0]),
        "drift_step": head["step"],
    }
    print(json.dumps(figures), flush=True)
    if args.smoke:
        return
    write_results(
        RESULTS, figures,
        command=" ".join([".venv/bin/python", *sys.argv]),
        settings={"reproduce": "flock /tmp/domainfm-heavy.lock .venv/bin/python benchmarks/continual/drift.py "
                  "(trains the artifact; --reuse then reuses it and its encodings)","seeds": seeds, "post_switch_tweets": post_n, "pre_switch": "PhraseBank 50agree test split "
                  "(split seed 42), shuffled per seed", "label_reference": "predictions on the validation split", "false_alarm_rate_per_test": args.false_alarm_rate,
                  "batch_size": args.batch, "windows": args.windows},
        extra_packages=["scipy", "domainfm-finance-sentiment"],
        model=model, reused_artifact=args.reuse, encode_seconds=round(cache.seconds, 1), by_window=by_window,
        total_seconds=round(time.perf_counter() - started, 1),
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
