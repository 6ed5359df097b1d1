"""The short-answer grader: a cross-encoder over (reference answer, student answer) pairs.

Training pairs each answer with its closest reference (term overlap, :mod:`domainfm_education.feedback`)
and fine-tunes the base model through the core engine
(:func:`domainfm.engine.text_classifier.fine_tune_text_classifier` with ``text_pair_column``). How an
answer with several references is graded is chosen on validation macro-F1 among :data:`REFERENCE_RULES`:
the closest reference (the pairing training used), the best match (every reference scored, the highest
expected grade kept) or the mean over references; it decides the label, the continuous score, and the
reference the feedback is relative to. With ``options.question_in_input=true`` (default false: it doubles the
input length and the CPU time) the first segment is ``reference [SEP] question`` (the tokenizer's separator), so
the model sees what was asked; truncation then cuts the question before the reference. Records without a
question are then graded on the reference alone. The
human-review threshold is chosen on validation data for a target precision (``options.target_precision``,
default 0.9) and stored in the artifact.

With ``options.int8_inference=true`` (default false) the fine-tuned model's linear layers are dynamically
quantized to int8 for grading on a CPU (about twice as fast; the flag is stored in the artifact and ignored on
GPU); the engine's temperature is still fitted on the float model.

Graded-answer memory (``options.answer_memory``, default true; :class:`domainfm.engine.label_memory.LabelMemory`
over the questions): the
training answers' embeddings and labels are kept per question, and an answer to a question the memory knows
is graded by the cross-encoder blended with its nearest graded answers, with the blend chosen on validation
(kept only when it raises validation macro-F1). Answers graded with and without that evidence each get a
review threshold chosen on validation grades of their own kind.

Defined behaviour for bad requests: no reference answers → routed to human review (``abstained``, no
label); a blank answer → graded the lowest class by rule, with the rule named in ``extra``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from domainfm.errors import DataError
from domainfm.types import Artifact, DataBundle, Evaluation, Prediction, RunContext
from domainfm.engine.label_memory import LabelMemory, table_column
from domainfm.text_terms import closest_reference, missing_terms
from domainfm_education.feedback import feedback_text
from domainfm_education.grading_data import parse_references

REFERENCE_COLUMN = "reference"
ANSWER_COLUMN = "student_answer"
MEMORY_FILE = "answer_memory.npz"
NO_THRESHOLD = 1.01  # confidence never reaches it: everything goes to review
REFERENCE_RULES: tuple[str, ...] = ("closest", "best_match", "mean")


def first_segment(reference: str, question: str | None, separator: str | None) -> str:
    """The cross-encoder's first segment: the reference, followed by the question when ``separator`` is set."""
    if separator and question and str(question).strip():
        return f"{reference} {separator} {' '.join(str(question).split())}"
    return reference


def pair_table(table: Any, separator: str | None = None) -> Any:
    """One (closest reference [+ question], answer, label) row per answer, for training the cross-encoder."""
    from datasets import Dataset

    questions = table["question"] if separator and "question" in table.column_names else [None] * len(table)
    refs, answers, labels = [], [], []
    for row_refs, answer, label, question in zip(table["reference_answers"], table["student_answer"], table["label"],
                                                 questions, strict=True):
        refs.append(first_segment(row_refs[closest_reference(row_refs, answer)], question, separator))
        answers.append(answer)
        labels.append(label)
    return Dataset.from_dict({REFERENCE_COLUMN: refs, ANSWER_COLUMN: answers, "label": labels})


def segment_separator(ctx: RunContext) -> str | None:
    """The base tokenizer's separator token when ``options.question_in_input`` is on, else None (default)."""
    if not ctx.flag("question_in_input"):
        return None
    from transformers import AutoTokenizer

    from domainfm.config import DEFAULT_BASE_MODEL
    from domainfm.models import resolve_model

    cfg = ctx.config.model
    resolved = resolve_model(cfg.base or DEFAULT_BASE_MODEL, revision=cfg.revision)
    tokenizer = AutoTokenizer.from_pretrained(str(resolved.path), trust_remote_code=cfg.trust_remote_code)
    return tokenizer.sep_token or "|"


def label_values(label_names: Sequence[str]) -> np.ndarray:
    """The grade of each class in [0, 1]: 1 for ``correct`` (0 otherwise), or points / max points."""
    if all(name.isdigit() for name in label_names):
        top = max(int(n) for n in label_names) or 1
        return np.asarray([int(n) / top for n in label_names], dtype=float)
    return np.asarray([1.0 if name == "correct" else 0.0 for name in label_names], dtype=float)


SMALL_DATA = 500  # below this many training answers, unset epochs/batch size get small-data defaults
SMALL_DATA_EPOCHS = 10.0
SMALL_DATA_BATCH = 16


def apply_small_data_defaults(ctx: RunContext, n_train: int) -> None:
    """With fewer than ``SMALL_DATA`` answers (the demo), 3 epochs of 32 are a handful of optimiser steps and
    the model learns nothing; unless the user set them, use 10 epochs of 16 (recorded in run.json)."""
    train = ctx.config.train
    if n_train >= SMALL_DATA or train.max_steps:
        return
    if "epochs" not in train.model_fields_set:
        train.epochs = SMALL_DATA_EPOCHS
    if "batch_size" not in train.model_fields_set:
        train.batch_size = min(train.batch_size, SMALL_DATA_BATCH)


def train_grader(ctx: RunContext, data: DataBundle) -> Artifact:
    """Fine-tune the cross-encoder, then choose the review threshold on the validation split."""
    from domainfm.engine.text_classifier import fine_tune_text_classifier

    apply_small_data_defaults(ctx, len(data.split("train")))
    label_names = list(data.label_names or [])
    separator = segment_separator(ctx)
    tables = {"train": pair_table(data.split("train"), separator)}
    if "validation" in data.tables and len(data.tables["validation"]):
        tables["validation"] = pair_table(data.tables["validation"], separator)
    pairs = DataBundle(tables=tables, source=data.source, label_names=label_names)
    artifact = fine_tune_text_classifier(
        ctx, pairs, label_names=label_names, text_column=REFERENCE_COLUMN, text_pair_column=ANSWER_COLUMN
    )
    target = float(ctx.option("target_precision", 0.9))
    artifact.metadata["target_precision"] = target
    artifact.metadata["question_separator"] = separator
    artifact.metadata["int8_inference"] = ctx.flag("int8_inference")
    artifact.metadata["grading_mode"] = "scores" if all(n.isdigit() for n in label_names) else "labels"
    if "validation" in tables:
        predictor = GraderPredictor.load(artifact, ctx.device)
        valid = data.tables["validation"]
        y = np.asarray([label_names.index(v) for v in valid["label"]])
        probs = choose_reference_rule(artifact, predictor, valid, y)
        set_review_threshold(artifact, "review_threshold", probs, y, target)
        if ctx.flag("answer_memory", True):
            blended = attach_answer_memory(ctx, artifact, predictor, data.split("train"), valid, probs, y)
            if blended is not None:
                set_review_threshold(artifact, "review_threshold_memory", blended, y, target)
    artifact.save_metadata()
    return artifact


def choose_reference_rule(artifact: Artifact, predictor: GraderPredictor, valid: Any, y: np.ndarray) -> np.ndarray:
    """Set the artifact's (and ``predictor``'s) reference rule to the one with the best validation macro-F1
    (ties go to the earlier rule in :data:`REFERENCE_RULES`); returns the validation probabilities under it."""
    from sklearn.metrics import f1_score

    scores: dict[str, float] = {}
    probs_by_rule: dict[str, np.ndarray] = {}
    for rule in REFERENCE_RULES:
        predictor.reference_rule = rule
        probs_by_rule[rule] = predictor.grade_table(valid)["probs"]
        scores[rule] = float(f1_score(y, probs_by_rule[rule].argmax(1), average="macro",
                                      labels=range(len(predictor.labels)), zero_division=0))
    chosen = max(REFERENCE_RULES, key=lambda rule: (scores[rule], -REFERENCE_RULES.index(rule)))
    predictor.reference_rule = chosen
    artifact.metadata["reference_rule"] = chosen
    artifact.metadata["validation_macro_f1_by_reference_rule"] = scores
    return probs_by_rule[chosen]


def set_review_threshold(artifact: Artifact, key: str, probs: np.ndarray, y: np.ndarray, target: float) -> None:
    """The lowest confidence at which validation answers reach ``target`` precision, as ``metadata[key]``."""
    from domainfm.engine.calibration import threshold_for_precision

    correct = (probs.argmax(1) == y).astype(float)
    threshold = threshold_for_precision(probs.max(1), correct, target)
    artifact.metadata[key] = float(min(threshold, NO_THRESHOLD))
    artifact.metadata[f"{key}_reaches_target"] = bool(np.isfinite(threshold))


def attach_answer_memory(ctx: RunContext, artifact: Artifact, predictor: GraderPredictor, train: Any, valid: Any,
                         probs: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Build the graded-answer memory from the training answers, choose its blend on validation (``probs``: the
    cross-encoder's validation probabilities), and keep it in the artifact (and ``predictor``) when the blend
    helps (weight > 0). Returns the blended validation probabilities, or None when the memory is not kept."""
    from domainfm.config import DEFAULT_BASE_MODEL
    from domainfm.engine.encoder import TextEncoder

    encoder_name = ctx.config.model.base or DEFAULT_BASE_MODEL
    encoder = TextEncoder(encoder_name, device=ctx.device, max_length=ctx.config.model.max_length)
    memory = LabelMemory.build(encoder, encoder_name, train["student_answer"], train["label"],
                               table_column(train, "question_id"), table_column(train, "question"), predictor.labels)
    question_ids, questions = table_column(valid, "question_id"), table_column(valid, "question")
    embeddings = encoder.encode(list(valid["student_answer"]))
    choice = memory.choose(probs, embeddings, question_ids, questions, y)
    artifact.metadata["answer_memory"] = {
        "answers": len(memory.labels), "encoder": encoder_name, **asdict(choice),
        "used": choice.weight > 0,
    }
    if choice.weight <= 0:
        return None
    memory.save(artifact.path, MEMORY_FILE)
    predictor.attach_memory(memory, encoder)
    return memory.blend(probs, *memory.distributions(embeddings, question_ids, questions))


class GraderPredictor:
    """Grades answers against their references by the artifact's reference rule, blended with the graded-answer
    memory for questions it knows."""

    def __init__(self, inner: Any, artifact: Artifact) -> None:
        self.inner = inner
        self.artifact = artifact
        self.domain = artifact.domain
        self.device = inner.device
        self.labels: list[str] = list(artifact.label_names or [])
        self.values = label_values(self.labels)
        self.separator: str | None = artifact.metadata.get("question_separator")
        self.memory: LabelMemory | None = None
        self._memory_encoder: Any = None
        threshold = artifact.metadata.get("review_threshold")
        self.threshold: float | None = float(threshold) if threshold is not None else None
        memory_threshold = artifact.metadata.get("review_threshold_memory")
        self.threshold_memory: float | None = float(memory_threshold) if memory_threshold is not None else None
        # artifacts from before the rule was chosen on validation graded by the best match
        self.reference_rule: str = artifact.metadata.get("reference_rule", "best_match")
        # a blank answer gets the lowest grade: 'incorrect' in the 3-way scheme, 0 points for scores
        if "incorrect" in self.labels:
            self.lowest: str | None = "incorrect"
        else:
            self.lowest = self.labels[int(np.argmin(self.values))] if self.labels else None

    @classmethod
    def load(cls, artifact: Artifact, device: str = "cpu") -> GraderPredictor:
        from domainfm.engine.text_classifier import TextClassifierPredictor

        int8 = bool(artifact.metadata.get("int8_inference")) and str(device).startswith("cpu")
        inner = TextClassifierPredictor.load(artifact, device, precision="int8" if int8 else None)
        predictor = cls(inner, artifact)
        memory = LabelMemory.load(artifact.path, MEMORY_FILE)
        if memory is not None and memory.weight > 0:
            predictor.attach_memory(memory)
        return predictor

    def attach_memory(self, memory: LabelMemory, encoder: Any = None) -> None:
        """Blend ``memory``'s evidence into grades of answers to questions it knows; ``encoder`` (a
        ``TextEncoder`` of ``memory.encoder``) is loaded on first use when not given."""
        self.memory = memory
        self._memory_encoder = encoder

    def _memory_probs(self, answers: Sequence[str], question_ids: Sequence[Any],
                      questions: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        assert self.memory is not None
        covered = np.asarray([bool(self.memory.rows_for(q, t)) for q, t in zip(question_ids, questions, strict=True)])
        if not covered.any():
            return np.zeros((len(answers), self.memory.n_labels)), covered
        if self._memory_encoder is None:
            from domainfm.engine.encoder import TextEncoder

            self._memory_encoder = TextEncoder(self.memory.encoder, device=self.device)
        embeddings = np.zeros((len(answers), self._memory_encoder.dim), dtype=np.float32)
        embeddings[covered] = self._memory_encoder.encode([a for a, c in zip(answers, covered, strict=True) if c])
        return self.memory.distributions(embeddings, question_ids, questions)

    def grade(self, references: Sequence[Sequence[str]], answers: Sequence[str],
              questions: Sequence[str | None] | None = None,
              question_ids: Sequence[Any] | None = None) -> dict[str, np.ndarray]:
        """Grades by the artifact's reference rule: ``probs`` (n, K), ``best`` (index of the reference the feedback
        is relative to), ``value`` (expected grade in [0, 1]).

        Rules (:data:`REFERENCE_RULES`): ``closest`` scores the answer against its closest reference by term
        overlap (the pairing training used), ``best_match`` against every reference keeping the highest
        expected grade, ``mean`` averages the probabilities over the references.

        ``questions`` are used when the model was trained with the question in its input; ``questions`` and
        ``question_ids`` find the question in the graded-answer memory, when the artifact has one
        (``memory_weight`` in the result: the blend weight applied to each answer, 0 where it was not)."""
        qs = list(questions) if questions is not None else [None] * len(answers)
        qids = list(question_ids) if question_ids is not None else [None] * len(answers)
        flat_refs, flat_answers, owner, ref_index = [], [], [], []
        closest = np.zeros(len(answers), dtype=int)
        for i, (refs, answer, question) in enumerate(zip(references, answers, qs, strict=True)):
            if refs:
                closest[i] = closest_reference(refs, answer)
            scored_refs = [int(closest[i])] if self.reference_rule == "closest" and refs else range(len(refs))
            for j in scored_refs:
                flat_refs.append(first_segment(refs[j], question, self.separator))
                flat_answers.append(answer)
                owner.append(i)
                ref_index.append(j)
        n = len(answers)
        probs = np.zeros((n, len(self.labels)))
        best = closest.copy()
        value = np.full(n, -1.0)
        if flat_refs:
            # identical (reference, answer) pairs are scored once (repeated answers are common in class sets)
            unique: dict[tuple[str, str], int] = {}
            slot = [unique.setdefault(pair, len(unique)) for pair in zip(flat_refs, flat_answers, strict=True)]
            pairs = list(unique)
            scored = self.inner.predict_proba([r for r, _ in pairs], [a for _, a in pairs])
            flat = scored[np.asarray(slot)]
            if self.reference_rule == "mean":
                counts = np.bincount(np.asarray(owner), minlength=n)
                np.add.at(probs, np.asarray(owner), flat)
                graded = counts > 0
                probs[graded] /= counts[graded, None]
                value[graded] = probs[graded] @ self.values
            else:  # "closest" (one row per answer) or "best_match" (the row with the highest expected grade)
                expected = flat @ self.values
                for row, i in enumerate(owner):
                    if expected[row] > value[i]:
                        value[i], probs[i], best[i] = expected[row], flat[row], ref_index[row]
        weight = np.zeros(n)
        if self.memory is not None and n:
            memory_probs, covered = self._memory_probs(answers, qids, qs)
            covered &= value >= 0  # answers that were graded against at least one reference
            probs = self.memory.blend(probs, memory_probs, covered)
            value[covered] = probs[covered] @ self.values
            weight[covered] = self.memory.weight
        return {"probs": probs, "best": best, "value": np.clip(value, 0.0, 1.0), "memory_weight": weight}

    def grade_table(self, table: Any) -> dict[str, np.ndarray]:
        return self.grade(list(table["reference_answers"]), list(table["student_answer"]),
                          table_column(table, "question"), table_column(table, "question_id"))

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        """Grade records with ``reference_answers`` and ``student_answer`` (``question``, ``id`` optional)."""
        out: list[Prediction | None] = [None] * len(records)
        todo: list[tuple[int, tuple[str, ...], str, str | None]] = []
        for i, rec in enumerate(records):
            rid = str(rec["id"]) if rec.get("id") is not None else None
            try:
                refs = parse_references(rec.get("reference_answers"), f"record {i}")
            except DataError as exc:
                out[i] = Prediction(
                    id=rid, abstained=True, confidence=0.0,
                    extra={"review": True, "reason": f"{exc}; routed to human review"},
                )
                continue
            answer = rec.get("student_answer", rec.get("text"))
            if answer is None or not str(answer).strip():
                out[i] = Prediction(
                    id=rid, label=self.lowest, value=0.0, confidence=1.0,
                    scores={name: float(name == self.lowest) for name in self.labels},
                    explanation={"feedback": "No answer was given.", "closest_reference": refs[0]},
                    extra={"review": False, "rule": "blank answer graded the lowest class"},
                )
                continue
            question = rec.get("question")
            todo.append((i, refs, " ".join(str(answer).split()), str(question) if question is not None else None))
        if todo:
            graded = self.grade([t[1] for t in todo], [t[2] for t in todo], [t[3] for t in todo],
                                [records[t[0]].get("question_id") for t in todo])
            for k, (i, refs, answer, _) in enumerate(todo):
                out[i] = self._prediction(records[i], refs, answer, graded["probs"][k], int(graded["best"][k]),
                                          float(graded["value"][k]), bool(graded["memory_weight"][k] > 0))
        return [p for p in out if p is not None]

    def review_threshold(self, memory_used: bool) -> float | None:
        """The review threshold for an answer graded with (or without) the memory's evidence: each was chosen
        on validation grades of its own kind."""
        if memory_used and self.threshold_memory is not None:
            return self.threshold_memory
        return self.threshold

    def _prediction(self, record: Mapping[str, Any], refs: Sequence[str], answer: str, row: np.ndarray,
                    best: int, value: float, memory_used: bool = False) -> Prediction:
        top = int(row.argmax())
        confidence = float(np.clip(row[top], 0.0, 1.0))
        threshold = self.review_threshold(memory_used)
        review = threshold is not None and confidence < threshold
        label = self.labels[top]
        reference = refs[best]
        return Prediction(
            id=str(record["id"]) if record.get("id") is not None else None,
            label=label,
            scores={name: float(p) for name, p in zip(self.labels, row, strict=True)},
            value=value,
            confidence=confidence,
            abstained=bool(review),
            explanation={
                "feedback": feedback_text(label if not label.isdigit() else None, reference, answer),
                "closest_reference": reference,
                "missing": missing_terms(reference, answer),
            },
            extra={"review": bool(review), "graded_answers_used": memory_used},
        )


def evaluate_grader(predictor: GraderPredictor, data: DataBundle, split: str) -> Evaluation:
    """Metrics per split and per corpus, per-item outcomes for the benefit engine, risk-coverage curve."""
    from domainfm.engine.label_evaluation import label_metrics, probability_evaluation

    table = data.split(split)
    if len(table) == 0:
        raise DataError(f"{data.source}[{split}]: no rows to evaluate")
    labels = predictor.labels
    unknown = sorted(set(table["label"]) - set(labels))
    if unknown:
        raise DataError(f"{data.source}[{split}]: labels {unknown} are not in the model's label set {labels}")
    started = time.perf_counter()
    graded = predictor.grade_table(table)
    seconds = time.perf_counter() - started
    probs = graded["probs"]
    y = np.asarray([labels.index(v) for v in table["label"]])
    ordinal = all(name.isdigit() for name in labels)
    y_hat = probs.argmax(1)
    # point scores: partial credit for a near miss; labels: right or wrong
    quality = 1.0 - np.abs(predictor.values[y_hat] - predictor.values[y]) if ordinal else None
    corpora = [str(c) for c in table["corpus"]]
    evaluation = probability_evaluation(
        predictor.domain, split, labels, y, probs, ids=[str(v) for v in table["id"]],
        groups={"question": table["question_id"], "corpus": corpora}, quality=quality, ordinal=ordinal,
        device=predictor.device, seconds=seconds,
        extra={"review_threshold": predictor.threshold, "review_threshold_memory": predictor.threshold_memory,
               "reference_rule": predictor.reference_rule},
    )
    metrics = evaluation.metrics
    if len(set(corpora)) > 1:
        for corpus in sorted(set(corpora)):
            mask = np.asarray([c == corpus for c in corpora])
            sub = label_metrics(labels, y[mask], probs[mask], ordinal=ordinal)["metrics"]
            metrics[f"{corpus.lower()}_macro_f1"] = sub["macro_f1"]
            metrics[f"{corpus.lower()}_accuracy"] = sub["accuracy"]
    if predictor.threshold is not None:
        used = graded["memory_weight"] > 0
        thresholds = np.asarray([predictor.review_threshold(bool(u)) for u in used], dtype=float)
        auto = probs.max(1) >= thresholds
        correct = y_hat == y
        metrics["graded_answers_used_share"] = float(used.mean())
        metrics["auto_graded_share"] = float(auto.mean())
        metrics["auto_graded_accuracy"] = float(correct[auto].mean()) if auto.any() else 0.0
    return evaluation
