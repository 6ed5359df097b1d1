"""A memory of labelled examples, grouped by what they respond to, as evidence beside a classifier.

When the same item comes back again and again (an exam question answered by a whole class, a product reviewed by
many, a form field filled in by many users), the examples already labelled for that item are strong evidence for
a new one: a teacher marking a stack of scripts compares each new answer with the ones already marked for that
question. :class:`LabelMemory` keeps, per group, the sentence embeddings (L2-normalised) and labels of the
training examples, and for a new example of a known group gives a label distribution from its ``k`` most
similar labelled examples (similarity-weighted, ``softmax(cosine / temperature)``). It is blended with the
classifier: ``p = (1 - weight) * p_classifier + weight * p_memory``; ``k``, ``temperature`` and ``weight`` are
chosen on validation data (:meth:`LabelMemory.choose`, whose examples are not in the memory while choosing), and
``weight`` stays 0 unless the blend raises validation macro-F1. Examples of groups the memory has never seen are
left to the classifier alone::

    memory = LabelMemory.build(encoder, "all-MiniLM-L6-v2", texts, labels, group_ids, group_texts, label_names)
    choice = memory.choose(valid_probs, encoder.encode(valid_texts), valid_group_ids, valid_group_texts, valid_y)
    probs = memory.blend(probs, *memory.distributions(embeddings, group_ids, group_texts))

Only embeddings, labels and group keys are stored (one ``.npz`` file, written atomically), never the examples'
text. A group is found by its id when the example has one (two questions may share a text such as "Explain
why."), else by its whitespace-normalised, lower-cased text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.errors import DataError

MEMORY_FILE = "label_memory.npz"
K_GRID = (1, 3, 5, 10, 20)
TEMPERATURE_GRID = (0.02, 0.05, 0.1)
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))


def group_keys(group_id: Any, group_text: Any) -> tuple[str | None, str | None]:
    """The two keys a group is found by: ``id:<group id>`` and ``text:<normalised group text>``."""
    gid = f"id:{group_id}" if group_id is not None and str(group_id).strip() else None
    text = " ".join(str(group_text).lower().split()) if group_text is not None else ""
    return gid, (f"text:{text}" if text else None)


@dataclass
class MemoryChoice:
    """The blend chosen on validation, with the validation macro-F1 of every grid point's best."""

    k: int
    temperature: float
    weight: float
    validation_macro_f1: float
    validation_macro_f1_without: float
    covered_share: float


class LabelMemory:
    """Embeddings and labels of labelled examples, grouped by the item they respond to."""

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
    def build(cls, encoder: Any, encoder_name: str, texts: Sequence[str], labels: Sequence[str],
              group_ids: Sequence[Any], group_texts: Sequence[Any], label_names: Sequence[str]) -> LabelMemory:
        """A memory of every example ``texts[i]`` labelled ``labels[i]`` (one of ``label_names``), in the group
        ``group_ids[i]`` / ``group_texts[i]`` (either may be None), embedded with ``encoder`` (anything with
        ``encode(texts)``, e.g. a :class:`domainfm.engine.encoder.TextEncoder`) named ``encoder_name``."""
        index = {name: i for i, name in enumerate(label_names)}
        keys = [group_keys(g, t) for g, t in zip(group_ids, group_texts, strict=True)]
        return cls(
            encoder.encode(list(texts)),
            np.asarray([index[v] for v in labels]),
            [k[0] for k in keys],
            [k[1] for k in keys],
            len(label_names),
            encoder_name,
        )

    def rows_for(self, group_id: Any, group_text: Any) -> list[int]:
        """Memory rows of a group: by its id when it has one (two questions may share a text, e.g. "Explain
        why."), else by its text."""
        qid, text = group_keys(group_id, group_text)
        if qid is not None:
            return self._rows.get(qid, [])
        return self._rows.get(text, []) if text is not None else []

    def distributions(self, embeddings: np.ndarray, group_ids: Sequence[Any], group_texts: Sequence[Any],
                      k: int | None = None, temperature: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Label distributions ``(n, n_labels)`` from each example's ``k`` nearest labelled examples of the same
        group, and a mask of the examples whose group the memory knows."""
        k = self.k if k is None else k
        temperature = self.temperature if temperature is None else temperature
        out = np.zeros((len(embeddings), self.n_labels))
        covered = np.zeros(len(embeddings), dtype=bool)
        for i, (gid, text) in enumerate(zip(group_ids, group_texts, strict=True)):
            rows = self.rows_for(gid, text)
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
        """``probs`` with the memory's distribution mixed in at ``weight`` (default: the chosen one) where covered."""
        weight = self.weight if weight is None else weight
        blended = probs.copy()
        blended[covered] = (1 - weight) * probs[covered] + weight * memory_probs[covered]
        return blended

    def choose(self, probs: np.ndarray, embeddings: np.ndarray, group_ids: Sequence[Any],
               group_texts: Sequence[Any], y: np.ndarray) -> MemoryChoice:
        """Set ``k``, ``temperature`` and ``weight`` to the grid point with the best macro-F1 on these
        (validation) examples, ``probs`` being the classifier's; ties go to the smaller weight, then the smaller
        ``k``."""
        from sklearn.metrics import f1_score

        labels = list(range(self.n_labels))

        def macro_f1(p: np.ndarray) -> float:
            return float(f1_score(y, p.argmax(1), average="macro", labels=labels, zero_division=0))

        without = macro_f1(probs)
        best = (without, 0.0, self.k, self.temperature)
        covered_share = 0.0
        for k in K_GRID:
            for temperature in TEMPERATURE_GRID:
                memory_probs, covered = self.distributions(embeddings, group_ids, group_texts, k, temperature)
                covered_share = float(covered.mean()) if len(covered) else 0.0
                for weight in WEIGHT_GRID[1:]:
                    score = macro_f1(self.blend(probs, memory_probs, covered, weight))
                    if score > best[0] + 1e-12:
                        best = (score, weight, k, temperature)
        self.weight, self.k, self.temperature = best[1], best[2], best[3]
        return MemoryChoice(self.k, self.temperature, self.weight, best[0], without, covered_share)

    def save(self, directory: str | Path, filename: str = MEMORY_FILE) -> Path:
        """Write ``filename`` into ``directory`` atomically."""
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
        path = Path(directory) / filename
        atomic_write_bytes(path, buffer.getvalue())
        return path

    @classmethod
    def load(cls, directory: str | Path, filename: str = MEMORY_FILE) -> LabelMemory | None:
        """The memory saved as ``filename`` in ``directory``, or None when there is none."""
        path = Path(directory) / filename
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
            raise DataError(f"{path}: not a readable label memory ({exc})") from exc
        memory.k, memory.temperature, memory.weight = int(k), float(temperature), float(weight)
        return memory


def table_column(table: Any, name: str) -> list[Any]:
    """A column of a ``datasets.Dataset`` as a list, or Nones when the table has no such column."""
    return list(table[name]) if name in table.column_names else [None] * len(table)
