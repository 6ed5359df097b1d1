"""Graded-answer memory: answers a teacher already graded for the same question, as evidence for a new one.

A teacher marking a stack of scripts compares each new answer with the ones already marked for that
question, not only with the reference. The memory does the same: it keeps, per question, the sentence
embeddings (the base sentence encoder, L2-normalised) and labels of the training answers, and for a new
answer to a known question it gives a label distribution from its ``k`` most similar graded answers
(similarity-weighted, ``softmax(cosine / temperature)``). The grader blends it with the cross-encoder:
``p = (1 - weight) * p_cross_encoder + weight * p_memory``; ``k``, ``temperature`` and ``weight`` are chosen
on the validation split (whose answers are not in the memory while choosing). Answers to questions the
memory has never seen (new questions, new domains) are graded by the cross-encoder alone.

Only embeddings, labels and question keys are stored (``answer_memory.npz`` in the artifact), never the
answers' text. A question is found by its ``question_id`` when the answer has one (two questions may
share a text such as "Explain why."), else by its whitespace-normalised, lower-cased text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.errors import DataError

MEMORY_FILE = "answer_memory.npz"
K_GRID = (1, 3, 5, 10, 20)
TEMPERATURE_GRID = (0.02, 0.05, 0.1)
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))


def question_keys(question_id: Any, question: Any) -> tuple[str | None, str | None]:
    """The two keys a question is found by: ``id:<question_id>`` and ``text:<normalised question>``."""
    qid = f"id:{question_id}" if question_id is not None and str(question_id).strip() else None
    text = " ".join(str(question).lower().split()) if question is not None else ""
    return qid, (f"text:{text}" if text else None)


@dataclass
class FusionChoice:
    """The blend chosen on validation, with the validation macro-F1 of every grid point's best."""

    k: int
    temperature: float
    weight: float
    validation_macro_f1: float
    validation_macro_f1_without: float
    covered_share: float


class AnswerMemory:
    """Embeddings and labels of graded answers, grouped by question."""

    def __init__(self, embeddings: np.ndarray, labels: np.ndarray, id_keys: Sequence[str | None],
                 text_keys: Sequence[str | None], n_labels: int, encoder: str) -> None:
        self.embeddings = np.asarray(embeddings, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n_labels = int(n_labels)
        self.encoder = encoder
        self.k = 5
        self.temperature = 0.05
        self.weight = 0.0
        self._rows: dict[str, list[int]] = {}
        for row, (qid, text) in enumerate(zip(id_keys, text_keys, strict=True)):
            for key in (qid, text):
                if key is not None:
                    self._rows.setdefault(key, []).append(row)
        self.id_keys = list(id_keys)
        self.text_keys = list(text_keys)

    @classmethod
    def build(cls, encoder: Any, encoder_name: str, table: Any, label_names: Sequence[str]) -> AnswerMemory:
        """A memory of every answer in ``table`` (columns ``student_answer``, ``label``, ``question_id`` and/or
        ``question``), embedded with ``encoder`` (a :class:`domainfm.engine.encoder.TextEncoder`)."""
        index = {name: i for i, name in enumerate(label_names)}
        keys = [question_keys(q, t) for q, t in zip(table_column(table, "question_id"), table_column(table, "question"),
                                                     strict=True)]
        return cls(
            encoder.encode(list(table["student_answer"])),
            np.asarray([index[v] for v in table["label"]]),
            [k[0] for k in keys],
            [k[1] for k in keys],
            len(label_names),
            encoder_name,
        )

    def rows_for(self, question_id: Any, question: Any) -> list[int]:
        """Memory rows of a question: by its id when it has one (two questions may share a text, e.g. "Explain
        why."), else by its text."""
        qid, text = question_keys(question_id, question)
        if qid is not None:
            return self._rows.get(qid, [])
        return self._rows.get(text, []) if text is not None else []

    def distributions(self, embeddings: np.ndarray, question_ids: Sequence[Any], questions: Sequence[Any],
                      k: int | None = None, temperature: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Label distributions ``(n, n_labels)`` from each answer's ``k`` nearest graded answers to the same
        question, and a mask of the answers whose question the memory knows."""
        k = self.k if k is None else k
        temperature = self.temperature if temperature is None else temperature
        out = np.zeros((len(embeddings), self.n_labels))
        covered = np.zeros(len(embeddings), dtype=bool)
        for i, (qid, question) in enumerate(zip(question_ids, questions, strict=True)):
            rows = self.rows_for(qid, question)
            if not rows:
                continue
            similarity = self.embeddings[rows] @ embeddings[i]
            top = np.argsort(-similarity, kind="stable")[:k]
            weights = np.exp((similarity[top] - similarity[top].max()) / temperature)
            np.add.at(out[i], self.labels[np.asarray(rows)[top]], weights)
            out[i] /= out[i].sum()
            covered[i] = True
        return out, covered

    def blend(self, probs: np.ndarray, memory_probs: np.ndarray, covered: np.ndarray,
              weight: float | None = None) -> np.ndarray:
        weight = self.weight if weight is None else weight
        blended = probs.copy()
        blended[covered] = (1 - weight) * probs[covered] + weight * memory_probs[covered]
        return blended

    def choose(self, probs: np.ndarray, embeddings: np.ndarray, question_ids: Sequence[Any],
               questions: Sequence[Any], y: np.ndarray) -> FusionChoice:
        """Set ``k``, ``temperature`` and ``weight`` to the grid point with the best macro-F1 on these
        (validation) answers; ties go to the smaller weight, then the smaller ``k``."""
        from sklearn.metrics import f1_score

        labels = list(range(self.n_labels))

        def macro_f1(p: np.ndarray) -> float:
            return float(f1_score(y, p.argmax(1), average="macro", labels=labels, zero_division=0))

        without = macro_f1(probs)
        best = (without, 0.0, self.k, self.temperature)
        covered_share = 0.0
        for k in K_GRID:
            for temperature in TEMPERATURE_GRID:
                memory_probs, covered = self.distributions(embeddings, question_ids, questions, k, temperature)
                covered_share = float(covered.mean()) if len(covered) else 0.0
                for weight in WEIGHT_GRID[1:]:
                    score = macro_f1(self.blend(probs, memory_probs, covered, weight))
                    if score > best[0] + 1e-12:
                        best = (score, weight, k, temperature)
        self.weight, self.k, self.temperature = best[1], best[2], best[3]
        return FusionChoice(self.k, self.temperature, self.weight, best[0], without, covered_share)

    def save(self, directory: str | Path) -> Path:
        """Write ``answer_memory.npz`` into ``directory`` atomically."""
        import io

        from domainfm.io import atomic_write_bytes

        buffer = io.BytesIO()
        np.savez(
            buffer,
            embeddings=self.embeddings.astype(np.float16),
            labels=self.labels,
            id_keys=np.asarray([k or "" for k in self.id_keys], dtype=str),
            text_keys=np.asarray([k or "" for k in self.text_keys], dtype=str),
            settings=np.asarray([self.n_labels, self.k, self.temperature, self.weight], dtype=np.float64),
            encoder=np.asarray(self.encoder),
        )
        path = Path(directory) / MEMORY_FILE
        atomic_write_bytes(path, buffer.getvalue())
        return path

    @classmethod
    def load(cls, directory: str | Path) -> AnswerMemory | None:
        """The memory saved in ``directory``, or None when there is none."""
        path = Path(directory) / MEMORY_FILE
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                n_labels, k, temperature, weight = data["settings"].tolist()
                memory = cls(
                    data["embeddings"].astype(np.float32), data["labels"],
                    [k or None for k in data["id_keys"].tolist()], [k or None for k in data["text_keys"].tolist()],
                    int(n_labels), str(data["encoder"]),
                )
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: not a readable answer memory ({exc})") from exc
        memory.k, memory.temperature, memory.weight = int(k), float(temperature), float(weight)
        return memory


def table_column(table: Any, name: str) -> list[Any]:
    """A column of a ``datasets.Dataset`` as a list, or Nones when the table has no such column."""
    return list(table[name]) if name in table.column_names else [None] * len(table)
