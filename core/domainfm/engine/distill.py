"""Knowledge distillation for text classifiers (``model.mode=distill``): a large teacher's quality at a small
student's speed.

1. The teacher (``model.teacher``): a trained artifact directory is reused as it is; a model id or local model
   is first fine-tuned with the domain's own recipe (the ``domainfm_train`` hook at ``model.mode=full``, so a
   plugin's recipe applies; the engine's ``full`` mode on the domain's columns when the engine was handed a
   bundle the domain derived, or there is no plugin manager) into ``variants/teacher/artifact`` of the run,
   where a re-run finds it again.
2. The teacher's logits on the training split and on optional unlabelled in-domain text
   (``options.unlabelled``: a ``.txt`` file with one text per line, or a CSV/JSONL/Parquet table with the
   domain's text column, and its pair column for text pairs).
3. The student (``model.base``, default the packaged MiniLM; ``model.distill_student``: a sequence classifier, or
   the sentence encoder under a linear probe fitted on its frozen embeddings as in LP-FT) is fine-tuned under the
   Hugging Face Trainer
   (:mod:`domainfm.engine.hf_trainer`: checkpoints, resume, early stopping on validation macro-F1) on
   ``(1 - alpha) * T^2 * KL(teacher_T || student_T) + alpha * CE(gold)`` for labelled rows (Hinton et al., 2015;
   T = ``model.distill_temperature``, alpha = ``model.distill_alpha``) and the KL term alone for unlabelled rows.
4. The student artifact is an ordinary ``hf-sequence-classification`` artifact (the head kind with its encoder
   for an ``lpft`` student), calibrated on validation like
   any other; :func:`record_comparison` adds both models' validation quality, their speed measured side by side
   at one precision, and energy per 1,000 predictions under ``metadata["distillation"]``, and the teacher's
   artifact path under ``metadata["teacher_artifact"]``, which makes the runner evaluate the teacher as a second
   candidate (:func:`evaluate_companions`) for the benefit report to choose between.

torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.data import text_key
from domainfm.errors import ConfigError, DataError, DomainfmError
from domainfm.types import ARTIFACT_METADATA, Artifact, DataBundle, ResourceUsage, RunContext

TEACHER_VARIANT = "teacher"
RUN_DATA = "run_data"
"""``ctx.state`` key: the runner's own data bundle (the teacher trains through the domain's hook only on it)."""
TEACHER_COLUMN = "teacher_logits"
IGNORE_LABEL = -100
SPEED_ROUNDS = 3


# ------------------------------------------------------------------------------------------ teacher


def obtain_teacher(
    ctx: RunContext, data: DataBundle, labels: list[str], fine_tune: Callable[[RunContext], Artifact]
) -> tuple[Artifact, bool]:
    """The teacher artifact and whether this run trained it. The domain's ``domainfm_train`` hook trains it when
    the engine got the run's own data bundle (a domain that reshapes its data first, e.g. into text pairs, hands
    the engine a derived bundle its hook would not accept); otherwise ``fine_tune(teacher_ctx)``, the engine's
    ``full`` mode on the bundle and columns the domain gave. A calibrated teacher already in the run's teacher
    folder is reused (resume)."""
    teacher = ctx.config.model.teacher
    if not teacher:
        raise ConfigError("model.teacher: required with model.mode=distill (a model id or a trained artifact directory)")
    given = Path(teacher).expanduser()
    if (given / ARTIFACT_METADATA).is_file():
        return _checked(Artifact.load(given), labels, str(given)), False
    tctx = teacher_context(ctx)
    done = tctx.artifact_dir / ARTIFACT_METADATA
    artifact: Artifact | None
    if done.is_file():
        artifact = Artifact.load(tctx.artifact_dir)
        if "temperature" in artifact.metadata or "calibrator" in artifact.metadata:  # trained before a kill
            return _checked(artifact, labels, str(tctx.artifact_dir)), True
    if ctx.pm is not None and ctx.state.get(RUN_DATA) is data:
        artifact = ctx.pm.hooks.train(tctx, ctx.domain, data)
        if artifact is None:
            raise ConfigError(f"model.teacher: no plugin trains domain {ctx.domain!r} to make the teacher")
    else:
        artifact = fine_tune(tctx)
    artifact.metadata.setdefault("role", TEACHER_VARIANT)
    artifact.save_metadata()
    shutil.rmtree(tctx.checkpoint_dir, ignore_errors=True)  # the artifact is saved; a base model's are GBs
    ctx.state["teacher_resources"] = tctx.resources.as_dict()
    return _checked(artifact, labels, teacher), True


def teacher_context(ctx: RunContext) -> RunContext:
    """The run context the teacher trains in: the run's ``variants/teacher`` folder, full fine-tuning of
    ``model.teacher`` with every other setting of the run."""
    return ctx.for_variant(TEACHER_VARIANT, **{"model.mode": "full", "model.base": ctx.config.model.teacher,
                                               "model.teacher": None})


def _checked(artifact: Artifact, labels: list[str], where: str) -> Artifact:
    if list(artifact.label_names or []) != labels:
        raise ConfigError(f"model.teacher: {where} predicts labels {artifact.label_names}, the data has {labels}")
    return artifact


# ------------------------------------------------------------------------------------------ transfer data


def unlabelled_texts(ctx: RunContext, value: Any, data: DataBundle, columns: dict[str, Any]
                     ) -> tuple[list[str], list[str] | None]:
    """Texts (and pairs) of ``options.unlabelled``: a file (:func:`read_unlabelled`), or else a data source the
    domain reads (``tfns``, ``banking77``, ``hf:...``), every split of it with its labels dropped, less each
    row whose text is anywhere in the task's own data (so no validation or test text reaches the student through
    the teacher) and less repeats.

    :raises DataError: neither a file nor a source of the domain, or nothing of the source is left.
    """
    text_column, pair_column = columns["text_column"], columns["text_pair_column"]
    if Path(str(value)).expanduser().is_file() or ctx.pm is None:
        return read_unlabelled(value, text_column, pair_column)
    try:
        bundle = ctx.pm.hooks.load_data(ctx, ctx.domain, str(value))
    except (DomainfmError, OSError) as exc:
        raise DataError(f"options.unlabelled={value!r}: not a file, and domain {ctx.domain} could not read it as a "
                        f"source: {exc}") from exc
    if bundle is None:
        raise DataError(f"options.unlabelled={value!r}: no such file, and domain {ctx.domain} reads no such source")
    seen = {text_key(t) for table in data.tables.values() for t in table[text_column]}
    texts: list[str] = []
    pairs: list[str] | None = [] if pair_column else None
    for table in bundle.tables.values():
        missing = [c for c in (text_column, pair_column) if c and c not in table.column_names]
        if missing:
            raise DataError(f"options.unlabelled={value!r}: its tables lack the column {missing[0]!r}")
        column = list(table[text_column])
        pair_values = list(table[pair_column]) if pair_column else []
        for i, text in enumerate(column):
            key = text_key(text)
            if key in seen or not key:
                continue
            seen.add(key)
            texts.append(str(text))
            if pairs is not None:
                pairs.append(str(pair_values[i]))
    if not texts:
        raise DataError(f"options.unlabelled={value!r}: every one of its texts is in the task's own data")
    return texts, pairs


def read_unlabelled(path_value: Any, text_column: str, pair_column: str | None) -> tuple[list[str], list[str] | None]:
    """Texts (and pairs) of ``options.unlabelled``: a ``.txt`` file, one text per line, or a table."""
    path = Path(str(path_value)).expanduser()
    if not path.is_file():
        raise DataError(f"options.unlabelled: {path}: no such file")
    if path.suffix.lower() == ".txt":
        if pair_column:
            raise DataError(f"options.unlabelled: {path}: text pairs need a table (CSV/JSONL/Parquet) with columns "
                            f"{text_column!r} and {pair_column!r}")
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return texts, None
    from domainfm.data import read_table

    rows = read_table(path, required=(text_column, *((pair_column,) if pair_column else ())))
    texts = []
    pairs: list[str] | None = [] if pair_column else None
    for row in rows:
        text = str(row[text_column] or "").strip()
        pair = str(row[pair_column] or "").strip() if pair_column else ""
        if not text or (pair_column and not pair):
            raise DataError(f"{path}:{row.get('_line', '?')}: empty {text_column!r}" + (f" or {pair_column!r}" if pair_column else ""))
        texts.append(text)
        if pairs is not None:
            pairs.append(pair)
    return texts, pairs


# ------------------------------------------------------------------------------------------ student


def fit_student(
    ctx: RunContext,
    data: DataBundle,
    base_path: Path,
    labels: list[str],
    columns: dict[str, Any],
    train: tuple[list[str], list[str] | None, list[int]],
    valid: tuple[list[str], list[str] | None, list[int]],
    fine_tune_teacher: Callable[[RunContext], Artifact],
) -> dict[str, Any]:
    """Train (or reuse) the teacher, then the student; saves the student to ``ctx.artifact_dir`` and returns its
    metadata (the fields :func:`domainfm.engine.text_classifier.fine_tune_text_classifier` records for any mode)."""
    from transformers import set_seed

    from domainfm.engine.class_weights import training_class_weights
    from domainfm.engine.classifier_predictor import TextClassifierPredictor
    from domainfm.engine.hf_trainer import (
        build_trainer,
        count_parameters,
        save_log_history,
        tokenized_dataset,
        train_with_resume,
        training_record,
    )
    from domainfm.engine.loss_terms import terms_from_config
    from domainfm.engine.precision import training_autocast
    from domainfm.io import atomic_directory

    cfg = ctx.config
    x_train, p_train, y_train = train
    x_valid, p_valid, y_valid = valid
    started = time.perf_counter()
    teacher_artifact, trained = obtain_teacher(ctx, data, labels, fine_tune_teacher)
    teacher_seconds = time.perf_counter() - started

    unlabelled = ctx.option("unlabelled")
    x_extra, p_extra = unlabelled_texts(ctx, unlabelled, data, columns) if unlabelled else ([], None)
    if p_train is not None and unlabelled and p_extra is None:
        raise DataError("options.unlabelled: text pairs need a table with both columns")
    texts = x_train + x_extra
    pairs = (p_train + (p_extra or [])) if p_train is not None else None
    gold = y_train + [IGNORE_LABEL] * len(x_extra)

    started = time.perf_counter()
    teacher = TextClassifierPredictor.load(teacher_artifact, ctx.device)
    soft = teacher.predict_logits(texts, pairs)
    soft_seconds = time.perf_counter() - started
    soft_precision = teacher.precision  # the teacher's own validated inference precision
    del teacher

    set_seed(cfg.train.seed)
    model, tokenizer, probe_meta = _student_model(ctx, base_path, labels, (x_train, p_train, y_train),
                                                  (x_valid, p_valid, y_valid))
    total, trainable = count_parameters(model)
    train_ds = tokenized_dataset(tokenizer, texts, pairs, gold, cfg.model.max_length,
                                 extra={TEACHER_COLUMN: soft.astype(np.float32).tolist()})
    valid_ds = tokenized_dataset(tokenizer, x_valid, p_valid, y_valid, cfg.model.max_length) if x_valid else None
    lr = cfg.train.learning_rate or 5e-5
    autocast = training_autocast(ctx.device, cfg.train.mixed_precision)
    weights = training_class_weights(cfg.train, y_train, labels)
    trainer = build_trainer(
        ctx, model, tokenizer, train_ds, valid_ds, learning_rate=lr, autocast=autocast, class_weights=None,
        head_learning_rate=cfg.train.head_learning_rate,
        trainer_class=distillation_trainer_class(cfg.model.distill_temperature, cfg.model.distill_alpha, weights,
                                                 terms_from_config(cfg.train)),
        data_collator=TeacherLogitsCollator(tokenizer),
    )
    student_started = time.perf_counter()
    train_with_resume(ctx, trainer)
    student_seconds = time.perf_counter() - student_started
    if trainer.is_world_process_zero():
        with atomic_directory(ctx.artifact_dir) as tmp:
            if probe_meta:
                from domainfm.engine import lpft

                lpft.save(trainer.model, tmp, never_seen=sorted(set(range(len(labels))) - set(y_train)))
            else:
                trainer.model.save_pretrained(str(tmp), safe_serialization=True)
                tokenizer.save_pretrained(str(tmp))
        save_log_history(ctx, trainer)
    return {
        **training_record(ctx, trainer, parameters=total, trainable=trainable, learning_rate=lr, autocast=autocast,
                          class_weights=weights),
        **probe_meta,
        "distill_student": cfg.model.distill_student,
        "teacher_artifact": str(Path(teacher_artifact.path).resolve()),
        "distillation": {
            "teacher": ctx.config.model.teacher,
            "teacher_base_model": teacher_artifact.base_model,
            "teacher_trained_by_this_run": trained,
            "teacher_seconds": round(teacher_seconds, 2),
            "teacher_train_seconds": teacher_artifact.metadata.get("train_seconds"),
            "teacher_logits_seconds": round(soft_seconds, 2),
            "teacher_logits_precision": soft_precision,
            "student_train_seconds": round(student_seconds, 2),
            "temperature": cfg.model.distill_temperature,
            "alpha": cfg.model.distill_alpha,
            "labelled_examples": len(x_train),
            "unlabelled_examples": len(x_extra),
            "unlabelled_source": str(unlabelled) if unlabelled else None,
            "loss": "labelled: (1 - alpha) * T^2 * KL(teacher_T || student_T) + alpha * CE(gold); unlabelled: T^2 * KL",
        },
    }


def _student_model(ctx: RunContext, base_path: Path, labels: list[str],
                   train: tuple[list[str], list[str] | None, list[int]],
                   valid: tuple[list[str], list[str] | None, list[int]]) -> tuple[Any, Any, dict[str, Any]]:
    """The student to train, its tokenizer, and (``model.distill_student=lpft``) the probe's metadata: a sequence
    classifier, or the base sentence encoder under a linear probe fitted on its frozen embeddings (LP-FT's start)."""
    from domainfm.engine.hf_trainer import load_sequence_classifier

    cfg = ctx.config
    if cfg.model.distill_student == "full":
        model, tokenizer = load_sequence_classifier(base_path, labels, trust_remote_code=cfg.model.trust_remote_code)
        return model, tokenizer, {}
    if train[1] is not None:
        raise ConfigError("model.distill_student=lpft reads single texts through the sentence encoder's pooling; "
                          "for text pairs use model.distill_student=full")
    from domainfm.engine.text_classifier import probe_then_model

    return probe_then_model(ctx, base_path, len(labels), train[0], train[2], valid[0], valid[2])


class TeacherLogitsCollator:
    """Pads token ids like ``DataCollatorWithPadding`` and stacks the ``teacher_logits`` column when present."""

    def __init__(self, tokenizer: Any) -> None:
        from transformers import DataCollatorWithPadding

        self._pad = DataCollatorWithPadding(tokenizer)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = [dict(f) for f in features]
        soft = [row.pop(TEACHER_COLUMN) for row in rows] if TEACHER_COLUMN in rows[0] else None
        batch = self._pad(rows)
        if soft is not None:
            batch[TEACHER_COLUMN] = torch.tensor(soft, dtype=torch.float32)
        return batch


def distillation_loss(logits: Any, labels: Any, teacher_logits: Any, temperature: float, alpha: float,
                      class_weights: Any = None) -> Any:
    """Per-batch mean of ``(1 - alpha) T^2 KL + alpha CE`` on labelled rows and ``T^2 KL`` on unlabelled rows
    (label ``-100``); all in float32 whatever the autocast dtype."""
    import torch.nn.functional as F

    logits = logits.float()
    t = float(temperature)
    student_log = F.log_softmax(logits / t, dim=-1)
    teacher_log = F.log_softmax(teacher_logits.float() / t, dim=-1)
    kl = (teacher_log.exp() * (teacher_log - student_log)).sum(dim=-1) * (t * t)
    labelled = labels != IGNORE_LABEL
    ce = F.cross_entropy(logits, labels.clamp(min=0), weight=class_weights, reduction="none") * labelled
    per_item = kl * (1.0 - alpha * labelled.float()) + alpha * ce
    return per_item.mean()


def distillation_trainer_class(temperature: float, alpha: float, class_weights: list[float] | None,
                               terms: list[Any] | None = None) -> type:
    """A ``Trainer`` whose loss is :func:`distillation_loss` on batches with teacher logits (training) and the
    gold labels' cross-entropy on batches without (validation): the composable loss of
    :mod:`domainfm.engine.loss_terms` with distillation as its criterion, so ``terms`` (token cutoff, mixup,
    R-Drop, adversarial training from ``train.*``) apply to the student as they do to any fine-tuning."""
    import torch

    from domainfm.engine.loss_terms import cross_entropy_criterion, loss_trainer_class

    weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
    gold = cross_entropy_criterion(class_weights)

    def criterion(logits: Any, targets: dict[str, Any]) -> Any:
        soft = targets.get(TEACHER_COLUMN)
        if soft is None:
            return gold(logits, targets)
        w = None if weights is None else weights.to(logits.device)
        return distillation_loss(logits, targets["labels"], soft, temperature, alpha, w)

    return loss_trainer_class(terms or [], criterion, columns=(TEACHER_COLUMN,))


# ------------------------------------------------------------------------------------------ comparison


def record_comparison(ctx: RunContext, student: Artifact, x_valid: list[str], p_valid: list[str] | None,
                      y_valid: list[int]) -> Artifact:
    """Both models' validation quality, speed side by side (same texts, same precision, alternating rounds, the
    best round counts) and energy per 1,000 predictions, into ``student.metadata["distillation"]``."""
    from domainfm.engine.classifier_predictor import TextClassifierPredictor
    from domainfm.metrics import classification_metrics

    teacher_artifact = Artifact.load(student.metadata["teacher_artifact"])
    teacher = TextClassifierPredictor.load(teacher_artifact, ctx.device)
    precision = teacher.precision  # the teacher's validated precision, applied to both
    student_p = TextClassifierPredictor.load(student, ctx.device, precision=precision)
    models = {"teacher": teacher, "student": student_p}
    texts = x_valid or []
    pairs = p_valid if x_valid else None
    info: dict[str, Any] = dict(student.metadata.get("distillation") or {})
    if texts:
        probs = {name: m.predict_proba(texts, pairs) for name, m in models.items()}
        for name, p in probs.items():
            metrics = classification_metrics(y_valid, p.argmax(1).tolist(), list(range(len(student.label_names or []))))
            info[f"{name}_validation"] = {k: round(float(metrics[k]), 4) for k in (
                "accuracy", "macro_f1", "accuracy_ci95_low", "accuracy_ci95_high", "macro_f1_ci95_low", "macro_f1_ci95_high")}
        info["validation_agreement"] = round(float(np.mean(probs["teacher"].argmax(1) == probs["student"].argmax(1))), 4)
        rates = _side_by_side(models, texts, pairs)
        info["speed"] = {"texts": len(texts), "rounds": SPEED_ROUNDS, "precision": precision,
                         "teacher_texts_per_s": round(rates["teacher"], 1), "student_texts_per_s": round(rates["student"], 1),
                         "speedup": round(rates["student"] / rates["teacher"], 2),
                         "how": "predict_proba on the validation texts, alternating rounds in one process, best round"}
        if ctx.config.benefit.energy_tracking:
            for name, model in models.items():
                info.setdefault("energy_kwh_per_1000_predictions", {})[name] = _energy_per_1000(ctx, model, texts, pairs)
    info["teacher_parameters"] = teacher_artifact.metadata.get("parameters")
    info["student_parameters"] = student.metadata.get("parameters")
    student.metadata["distillation"] = info
    student.save_metadata()
    return student


def _side_by_side(models: dict[str, Any], texts: list[str], pairs: list[str] | None) -> dict[str, float]:
    from domainfm.benchmarking import alternating_seconds

    for model in models.values():
        model.predict_proba(texts[:8], pairs[:8] if pairs is not None else None)
    runs = {name: (lambda m=model: m.predict_proba(texts, pairs)) for name, model in models.items()}
    return {name: len(texts) / max(min(seconds), 1e-9)
            for name, seconds in alternating_seconds(runs, SPEED_ROUNDS).items()}


def _energy_per_1000(ctx: RunContext, model: Any, texts: list[str], pairs: list[str] | None) -> float | None:
    """codecarbon's estimate for one pass over ``texts``, per 1,000 predictions (None when it cannot measure)."""
    from domainfm.benefit.resources import EnergyTracker

    scratch = replace(ctx, resources=ResourceUsage(), state={})
    with EnergyTracker(scratch) as tracker:
        model.predict_proba(texts, pairs)
    return None if tracker.energy_kwh is None else float(tracker.energy_kwh) * 1000.0 / len(texts)


# ------------------------------------------------------------------------------------------ the runner's side


def companion_artifacts(artifact: Artifact) -> list[tuple[str, Artifact]]:
    """Other candidates an artifact brings along: a distilled student's teacher."""
    path = artifact.metadata.get("teacher_artifact")
    if not path or not (Path(path) / ARTIFACT_METADATA).is_file():
        return []
    return [(TEACHER_VARIANT, Artifact.load(path))]


def inference_figures(artifact: Artifact, role: str) -> dict[str, Any]:
    """Texts/s and energy per 1,000 predictions of ``role`` (teacher or student) recorded in a student artifact."""
    info = artifact.metadata.get("distillation") or {}
    speed = info.get("speed") or {}
    energy = info.get("energy_kwh_per_1000_predictions") or {}
    return {"role": role, "texts_per_s": speed.get(f"{role}_texts_per_s"), "speed_precision": speed.get("precision"),
            "energy_kwh_per_1000_predictions": energy.get(role)}


def evaluate_companions(runner: Any, ctx: RunContext, vctx: RunContext, artifact: Artifact, data: DataBundle,
                        evaluations: dict[str, Any]) -> None:
    """Evaluate every companion of ``artifact`` (a distilled student's teacher) as one more candidate of the run,
    through the domain's own load and evaluate hooks, with its own latency and the side-by-side figures."""
    companions = companion_artifacts(artifact)
    if not companions:
        return
    student_name = next((name for name, ev in evaluations.items() if ev.extra.get("artifact_path") == str(artifact.path)), None)
    if student_name is not None:
        evaluations[student_name].extra["inference"] = inference_figures(artifact, "student")
    for role, companion in companions:
        cctx = ctx.for_variant(role)
        cctx.resources.train_seconds = companion.metadata.get("train_seconds")
        cctx.resources.parameters = companion.metadata.get("parameters")
        cctx.resources.trainable_parameters = companion.metadata.get("trainable_parameters")
        predictor = runner.load_predictor(cctx, companion)
        evaluation = runner.evaluate(cctx, predictor, data)
        runner.measure_serving(cctx, predictor, data)
        evaluation.extra["resources"] = cctx.resources.as_dict()
        evaluation.extra["artifact_path"] = str(companion.path)
        evaluation.extra["inference"] = inference_figures(artifact, role)
        evaluations[role] = evaluation
        ctx.state.setdefault("variant_resources", {})[role] = cctx.resources.as_dict()
