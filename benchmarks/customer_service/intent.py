"""BANKING77 intent accuracy on full data through the core engine: head-only, full fine-tuning and LP-FT, and
the choice between the fine-tuning variants."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from common import BASE, encoder_of, log, minutes_left, short_name

WORK = Path(__file__).resolve().parent / "work"


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


@contextmanager
def run_folder(keep: Path | None) -> Iterator[Path]:
    """``keep`` emptied (its artifact stays after the part), or a temporary folder removed afterwards."""
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="cs-bench-") as tmp:
            yield Path(tmp)
        return
    shutil.rmtree(keep, ignore_errors=True)
    keep.mkdir(parents=True)
    yield keep
    shutil.rmtree(keep / "checkpoints", ignore_errors=True)  # the artifact is saved; a base model's are GBs


def core_fit_and_test(args: argparse.Namespace, device: str, bundle: Any, overrides: list[str], base: str | None = None,
                      keep: Path | None = None) -> tuple[Any, dict[str, Any], float, float]:
    """Train ``base`` (default ``--base``) through the core engine with ``overrides`` in ``keep`` (default a
    temporary folder); return (artifact, test report, train s, predict s)."""
    from domainfm.config import build_config
    from domainfm.engine.text_classifier import TextClassifierPredictor, fine_tune_text_classifier
    from domainfm.types import RunContext

    config = build_config(overrides=overrides)
    config.model.base = base or encoder_of(args)
    with run_folder(keep) as folder:
        ctx = RunContext(run_id="bench", domain="customer_service", config=config, run_dir=folder, device=device)
        started = time.perf_counter()
        artifact = fine_tune_text_classifier(ctx, bundle, label_names=bundle.label_names or [])
        train_s = time.perf_counter() - started
        predictor = TextClassifierPredictor.load(artifact, device)
        report, predict_s = test_report(predictor, bundle)
    return artifact, report, train_s, predict_s


def test_report(predictor: Any, bundle: Any) -> tuple[dict[str, Any], float]:
    """The classification report of ``predictor`` on the bundle's test split, and the seconds predicting took."""
    from domainfm.metrics import classification_metrics

    test = bundle.split("test")
    started = time.perf_counter()
    probs = predictor.predict_proba([str(t) for t in test["text"]])
    predict_s = time.perf_counter() - started
    labels = predictor.labels
    return classification_metrics([str(v) for v in test["label"]], [labels[i] for i in probs.argmax(1)], labels), predict_s


def kept_lpft(args: argparse.Namespace) -> Path:
    """Where the lpft part keeps its artifact (the distill part's teacher)."""
    return WORK / ("smoke" if args.smoke else "") / f"lpft-{short_name(encoder_of(args))}"


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
    artifact, report, train_s, predict_s = core_fit_and_test(args, device, bundle, overrides, keep=kept_lpft(args))
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
            "artifact": str(artifact.path),
        },
    }


def bench_intent_distill(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """A MiniLM student distilled from the lpft part's ``--base`` artifact (the teacher): one student per
    ``--student-forms`` entry (``model.distill_student``), the one with the higher validation accuracy reported;
    then the teacher's and that student's test accuracy and their speed side by side in this process."""
    from domainfm.engine.text_classifier import TextClassifierPredictor
    from domainfm.types import ARTIFACT_METADATA, Artifact

    if encoder_of(args) == BASE:
        raise ValueError("the distill part distils the --base model's lpft artifact into MiniLM: pass --base-size")
    teacher_dir = kept_lpft(args) / "artifact"
    if not (teacher_dir / ARTIFACT_METADATA).is_file():
        raise FileNotFoundError(f"{teacher_dir}: no teacher; run the lpft part first (--parts lpft,distill)")
    teacher_artifact = Artifact.load(teacher_dir)
    bundle = banking77_bundle(args.seed, 400 if args.smoke else None, 200 if args.smoke else None)
    epochs = 1 if args.smoke else args.student_epochs
    common = [
        "model.mode=distill", f"model.teacher={teacher_dir.resolve()}", f"model.max_length={args.max_length}",
        f"train.epochs={epochs}", f"train.batch_size={args.batch_size}", f"train.seed={args.seed}",
        "train.eval_batch_size=256", "train.early_stopping_patience=2", f"train.mixed_precision={args.mixed_precision}",
        f"model.distill_temperature={args.distill_temperature}", f"model.distill_alpha={args.distill_alpha}",
    ]
    # each form with MiniLM's own recipe of that form: full as the full part (body and head rates), lpft as the
    # lpft part measured with MiniLM (5e-5, the probe's head at the body's rate)
    rates = {"full": [f"train.learning_rate={args.lr}", f"train.head_learning_rate={args.head_lr}"],
             "lpft": [f"train.learning_rate={args.student_lpft_lr}"]}
    students: dict[str, Any] = {}
    for form in args.student_forms.split(","):
        keep = WORK / ("smoke" if args.smoke else "") / f"distill-{form}"
        artifact, report, train_s, _ = core_fit_and_test(
            args, device, bundle, [*common, *rates[form], f"model.distill_student={form}"], base=BASE, keep=keep)
        students[form] = (artifact, report, train_s)
        log(f"student {form}: test accuracy {report['accuracy']:.4f} (validation {artifact.metadata.get('validation_accuracy')})")
    chosen = max(students, key=lambda f: students[f][0].metadata.get("validation_accuracy") or 0.0)
    artifact, report, train_s = students[chosen]
    teacher = TextClassifierPredictor.load(teacher_artifact, device)
    student = TextClassifierPredictor.load(artifact, device)
    teacher_report, _ = test_report(teacher, bundle)
    texts = [str(t) for t in bundle.split("test")["text"]][: 200 if args.smoke else 1000]
    speed = side_by_side(teacher, student, texts, rounds=1 if args.smoke else 3)
    teacher_acc, student_acc = teacher_report["accuracy"], report["accuracy"]
    return {
        "student_accuracy_full": student_acc,
        "student_macro_f1_full": report["macro_f1"],
        "student_accuracy_full_ci95": ci95(report),
        "teacher_accuracy_full_in_distill_run": teacher_acc,
        "student_minus_teacher_points": round(100 * (student_acc - teacher_acc), 2),
        "teacher_student_speedup": speed["teacher_student_speedup"],
        "distill_settings": {
            "method": f"core engine model.mode=distill: student {short_name(BASE)} trained on the {short_name(encoder_of(args))} "
                      "LP-FT teacher's temperature-scaled soft labels plus the gold labels, (1 - alpha) T^2 KL + alpha CE, "
                      "HF Trainer, best epoch by validation macro-F1, calibrated on validation",
            "teacher_artifact": str(teacher_dir), "teacher_validation_accuracy": teacher_artifact.metadata.get("validation_accuracy"),
            "student_forms": {f: {"validation_accuracy": a.metadata.get("validation_accuracy"), "test_accuracy": r["accuracy"],
                                  "train_seconds": round(t, 1), "epochs_run": a.metadata.get("epochs_run")}
                              for f, (a, r, t) in students.items()},
            "chosen_form": chosen, "rule": "the higher validation accuracy (the test figures play no part)",
            "epochs": epochs, "learning_rates": rates, "batch_size": args.batch_size,
            "max_length": args.max_length, "temperature": args.distill_temperature, "alpha": args.distill_alpha,
            "unlabelled": None, "distillation": artifact.metadata.get("distillation"),
        },
        "distill_speed": speed,
    }


def side_by_side(teacher: Any, student: Any, texts: list[str], rounds: int) -> dict[str, Any]:
    """Texts/s of both predictors as loaded, alternating rounds in this process; the best round counts."""
    from domainfm.benchmarking import alternating_seconds

    teacher.predict_proba(texts[:8])
    student.predict_proba(texts[:8])
    times = alternating_seconds({"teacher": lambda: teacher.predict_proba(texts),
                                 "student": lambda: student.predict_proba(texts)}, rounds)
    rate = {name: len(texts) / min(ts) for name, ts in times.items()}
    return {"texts": len(texts), "rounds": rounds, "teacher_texts_per_s": round(rate["teacher"], 1),
            "student_texts_per_s": round(rate["student"], 1),
            "teacher_student_speedup": round(rate["student"] / rate["teacher"], 2),
            "teacher_precision": teacher.precision, "student_precision": student.precision,
            "seconds_per_round": {k: [round(v, 3) for v in ts] for k, ts in times.items()},
            "how": "TextClassifierPredictor.predict_proba as loaded, the first test utterances"}


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
