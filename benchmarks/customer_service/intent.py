"""BANKING77 intent accuracy on full data through the core engine: head-only, full fine-tuning and LP-FT, and
the choice between the fine-tuning variants."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import encoder_of, log, minutes_left, short_name


def probe_step_seconds(model_id: str, max_length: int, batch_size: int) -> float:
    """Seconds per optimiser step of ``model_id`` sequence classification at this batch size, measured now."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from domainfm.models import resolve_model

    path = str(resolve_model(model_id).path)
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


def banking77_bundle(seed: int, limit_train: int | None, limit_test: int | None) -> Any:
    from domainfm_customer_service.bundle import build_bundle
    from domainfm_customer_service.readers import load_source

    data = load_source("banking77")
    if limit_train:
        from domainfm_customer_service.fewshot import sample_per_class

        per = max(3, limit_train // 77)
        texts, labels = sample_per_class([r["text"] for r in data.utterances], [r["intent"] for r in data.utterances], per, seed)
        data.utterances = [{"text": t, "intent": lab} for t, lab in zip(texts, labels, strict=True)]
    if limit_test and data.test_utterances:
        rng = np.random.default_rng(seed)
        idx = sorted(rng.choice(len(data.test_utterances), limit_test, replace=False).tolist())
        data.test_utterances = [data.test_utterances[i] for i in idx]
    # Masking BANKING77 changes nothing the scanner finds worth masking; skipped to keep the protocol comparable.
    return build_bundle(data, seed=seed, masker=None)


def core_fit_and_test(args: argparse.Namespace, device: str, bundle: Any, overrides: list[str]) -> tuple[Any, dict[str, Any], float, float]:
    """Train through the core engine with ``overrides``; return (artifact, test report, train s, predict s)."""
    from domainfm.config import build_config
    from domainfm.engine.text_classifier import TextClassifierPredictor, fine_tune_text_classifier
    from domainfm.metrics import classification_metrics
    from domainfm.types import RunContext

    config = build_config(overrides=overrides)
    config.model.base = encoder_of(args)
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
    report = classification_metrics([str(v) for v in test["label"]], [labels[i] for i in probs.argmax(1)], labels)
    return artifact, report, train_s, predict_s


def ci95(report: dict[str, Any], name: str = "accuracy") -> list[float] | None:
    """The report's 95 % bootstrap interval of ``name`` over the test items (``domainfm.metrics``)."""
    from domainfm.metrics import metric_interval

    bounds = metric_interval(report, name, digits=4)
    return list(bounds) if bounds else None


def bench_intent_full(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """BANKING77 on full data through the core engine, official test split: the frozen-encoder
    logistic-regression head (mode=head, C chosen on validation macro-F1) and full fine-tuning (mode=full)."""
    bundle = banking77_bundle(args.seed, 400 if args.smoke else None, 200 if args.smoke else None)
    n_train, n_valid, n_test = (len(bundle.split(s)) for s in ("train", "validation", "test"))
    protocol = "BANKING77 official test; validation = stratified 10% of the official train (seeded)"
    out: dict[str, Any] = {}

    artifact, report, train_s, predict_s = core_fit_and_test(args, device, bundle, [
        "model.mode=head", "model.max_length=128", "train.eval_batch_size=128", f"train.seed={args.seed}"])
    out.update({
        "accuracy_full_head_only": report["accuracy"],
        "macro_f1_full_head_only": report["macro_f1"],
        "full_head_only_settings": {
            "method": f"core engine fine_tune_text_classifier, mode=head: frozen {short_name(encoder_of(args))} mean-pooled embeddings + "
                      "logistic regression, C from {0.5, 2, 8, 32} by validation macro-F1",
            "head_C": artifact.metadata.get("head_C"), "train_rows": n_train, "validation_rows": n_valid,
            "test_rows": n_test, "protocol": protocol, "train_seconds": round(train_s, 1),
            "test_predict_seconds": round(predict_s, 1),
        },
    })
    log(f"head-only: accuracy {report['accuracy']:.4f}")

    epochs = 1 if args.smoke else args.epochs
    max_steps = None
    budget_note = None
    left = minutes_left(args)
    if left is not None and left < 6:
        raise TimeoutError(f"skipped: --finish-by leaves {left:.1f} min, too little to fine-tune")
    steps_per_epoch = int(np.ceil(n_train / args.batch_size))
    if left is not None:
        step_s = probe_step_seconds(encoder_of(args), args.max_length, args.batch_size)
        affordable = int(max(0.0, left - args.reserve_minutes) * 60 / (step_s * 1.2))  # 1.2: evaluation overhead
        if affordable < epochs * steps_per_epoch:
            max_steps = max(50, affordable)
            budget_note = (f"--finish-by: {left:.0f} min left, {step_s:.2f} s/step measured -> training capped at "
                           f"{max_steps} steps ({max_steps / steps_per_epoch:.2f} epochs); the linear LR schedule "
                           f"decays to 0 at the cap")
            log(budget_note)
    overrides = [
        "model.mode=full", f"model.max_length={args.max_length}", f"train.epochs={epochs}",
        f"train.batch_size={args.batch_size}", f"train.learning_rate={args.lr}", f"train.seed={args.seed}",
        "train.eval_batch_size=256", "train.early_stopping_patience=2", f"train.mixed_precision={args.mixed_precision}",
    ]
    if args.head_lr:
        overrides.append(f"train.head_learning_rate={args.head_lr}")
    if max_steps:
        overrides += [f"train.max_steps={max_steps}", f"train.eval_steps={max(25, min(steps_per_epoch, max_steps // 2))}"]
    artifact, report, train_s, predict_s = core_fit_and_test(args, device, bundle, overrides)
    out.update({
        "accuracy_full": report["accuracy"],
        "macro_f1_full": report["macro_f1"],
        "accuracy_full_ft": report["accuracy"],
        "macro_f1_full_ft": report["macro_f1"],
        "accuracy_full_ft_ci95": ci95(report),
        "full_settings": {
            "method": f"core engine fine_tune_text_classifier, mode=full (all weights; a sequence classifier "
                      f"on the {short_name(encoder_of(args))} body), HF Trainer, dynamic padding, length-grouped batches, linear warm-up 6% "
                      "and decay, evaluation each epoch, best checkpoint by validation macro-F1",
            "train_rows": n_train, "validation_rows": n_valid, "test_rows": n_test, "epochs": epochs,
            "max_steps": max_steps, "budget_note": budget_note, "epochs_run": artifact.metadata.get("epochs_run"),
            "global_step": artifact.metadata.get("global_step"),
            "max_length": args.max_length, "batch_size": args.batch_size, "learning_rate": args.lr,
            "head_learning_rate": args.head_lr, "seed": args.seed, "protocol": protocol,
            "temperature": artifact.metadata.get("temperature"),
            "validation_accuracy": artifact.metadata.get("validation_accuracy"),
            "best_validation_macro_f1": artifact.metadata.get("best_validation_macro_f1"),
            "train_seconds": round(train_s, 1), "test_predict_seconds": round(predict_s, 1),
        },
    })
    return out


def bench_intent_lpft(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """BANKING77 full data with the core engine's LP-FT (mode=lpft): the logistic-regression probe on frozen
    embeddings of ``--base`` (as in head-only), then every weight fine-tuned under it through the encoder's own mean
    pooling."""
    bundle = banking77_bundle(args.seed, 400 if args.smoke else None, 200 if args.smoke else None)
    n_train, n_valid, n_test = (len(bundle.split(s)) for s in ("train", "validation", "test"))
    epochs = 1 if args.smoke else args.lpft_epochs
    overrides = [
        "model.mode=lpft", f"model.max_length={args.max_length}", f"train.epochs={epochs}",
        f"train.batch_size={args.batch_size}", f"train.learning_rate={args.lpft_lr}", f"train.seed={args.seed}",
        "train.eval_batch_size=256", "train.early_stopping_patience=2", f"train.mixed_precision={args.mixed_precision}",
    ]
    artifact, report, train_s, predict_s = core_fit_and_test(args, device, bundle, overrides)
    log(f"lpft: accuracy {report['accuracy']:.4f} (validation {artifact.metadata.get('validation_accuracy')})")
    return {
        "accuracy_full_lpft": report["accuracy"],
        "macro_f1_full_lpft": report["macro_f1"],
        "accuracy_full_lpft_ci95": ci95(report),
        "lpft_settings": {
            "method": f"core engine fine_tune_text_classifier, mode=lpft: logistic-regression probe on frozen "
                      f"{short_name(encoder_of(args))} embeddings (C by validation macro-F1), then all weights fine-tuned under "
                      "it (cross-entropy through the encoder's mean pooling + L2 normalisation), HF Trainer, best epoch by validation macro-F1",
            "train_rows": n_train, "validation_rows": n_valid, "test_rows": n_test, "epochs": epochs,
            "epochs_run": artifact.metadata.get("epochs_run"), "global_step": artifact.metadata.get("global_step"),
            "max_length": args.max_length, "batch_size": args.batch_size, "learning_rate": args.lpft_lr,
            "seed": args.seed, "probe_C": artifact.metadata.get("probe_C"),
            "validation_macro_f1_probe": artifact.metadata.get("validation_macro_f1_probe"),
            "validation_accuracy": artifact.metadata.get("validation_accuracy"),
            "best_validation_macro_f1": artifact.metadata.get("best_validation_macro_f1"),
            "temperature": artifact.metadata.get("temperature"),
            "train_seconds": round(train_s, 1), "test_predict_seconds": round(predict_s, 1),
        },
    }


def choose_full_variant(results: dict[str, Any]) -> None:
    """``accuracy_full`` / ``macro_f1_full``: the fine-tuning variant (full or lpft) with the higher *validation*
    accuracy; the test figures play no part in the choice. Both variants' test figures stay in the results."""
    candidates = {}
    if results.get("full_settings", {}).get("validation_accuracy") is not None and "accuracy_full_ft" in results:
        candidates["full"] = (results["full_settings"]["validation_accuracy"], "accuracy_full_ft", "macro_f1_full_ft")
    if results.get("lpft_settings", {}).get("validation_accuracy") is not None:
        candidates["lpft"] = (results["lpft_settings"]["validation_accuracy"], "accuracy_full_lpft", "macro_f1_full_lpft")
    if not candidates:
        return
    best = max(candidates, key=lambda k: candidates[k][0])
    _, acc_key, f1_key = candidates[best]
    results["accuracy_full"], results["macro_f1_full"] = results[acc_key], results[f1_key]
    results["accuracy_full_ci95"] = results.get(f"{acc_key}_ci95")
    results["full_variant_choice"] = {
        "chosen": best, "rule": "higher validation accuracy (stratified 10% of the official train split)",
        "validation_accuracy": {k: v[0] for k, v in candidates.items()},
        "test_accuracy": {k: results[v[1]] for k, v in candidates.items()},
    }
