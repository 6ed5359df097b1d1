"""The label memory (domainfm.engine.label_memory): nearest labelled examples per group (here: graded answers per
question), the blend chosen on validation, storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from domainfm.errors import DataError
from domainfm.engine.label_memory import MEMORY_FILE, LabelMemory, group_keys

LABELS = ["correct", "contradictory", "incorrect"]


class WordEncoder:
    """A deterministic stand-in for the sentence encoder: one axis per known word, L2-normalised."""

    def __init__(self, words: list[str]) -> None:
        self.words = words

    @property
    def dim(self) -> int:
        return len(self.words)

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                out[i, self.words.index(word)] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


ENCODER = WordEncoder(["light", "food", "dark", "water", "sun", "rock"])


def _memory() -> LabelMemory:
    table = Dataset.from_dict({
        "question_id": ["q1", "q1", "q1", "q2"],
        "question": ["What do plants need?", "What do plants need?", "What do plants need?", "Why rain?"],
        "student_answer": ["light food", "dark", "rock", "water"],
        "label": ["correct", "contradictory", "incorrect", "correct"],
    })
    return LabelMemory.build(ENCODER, "word-encoder", table["student_answer"], table["label"], table["question_id"],
                             table["question"], LABELS)


def test_nearest_graded_answers_of_the_same_question_decide() -> None:
    memory = _memory()
    answers = ["light food", "dark", "water", "light food"]
    probs, covered = memory.distributions(ENCODER.encode(answers), ["q1", None, "q1", "q9"],
                                          ["", "  what do  PLANTS need? ", "", "Unknown?"], k=1)
    assert covered.tolist() == [True, True, True, False]
    assert probs[0].argmax() == 0 and probs[1].argmax() == 1  # the second is found by its question text
    # "water" was graded for q2 only: among q1's answers nothing is similar, so the tie goes to the first row
    assert probs[2].sum() == pytest.approx(1.0)
    assert not probs[3].any()


def test_similarity_weighting_and_k() -> None:
    memory = _memory()
    emb = ENCODER.encode(["light food"])
    sharp, _ = memory.distributions(emb, ["q1"], [None], k=3, temperature=0.02)
    flat, _ = memory.distributions(emb, ["q1"], [None], k=3, temperature=100.0)
    assert sharp[0, 0] > 0.99
    assert flat[0] == pytest.approx(np.full(3, 1 / 3), abs=0.01)


def test_group_keys() -> None:
    assert group_keys("7", " What  is X? ") == ("id:7", "text:what is x?")
    assert group_keys(None, None) == (None, None)
    assert group_keys("", "") == (None, None)


def test_choose_takes_the_memory_only_when_it_helps() -> None:
    memory = _memory()
    answers = ["light food", "dark", "rock", "light", "dark"]
    y = np.asarray([0, 1, 2, 0, 1])
    emb = ENCODER.encode(answers)
    qids = ["q1"] * 5
    useless = np.full((5, 3), 1 / 3) + np.asarray([0, 0, 1e-3])  # always "incorrect"
    choice = memory.choose(useless, emb, qids, [None] * 5, y)
    assert choice.weight > 0 and choice.validation_macro_f1 == pytest.approx(1.0)
    assert choice.validation_macro_f1_without < 0.5 and choice.covered_share == 1.0

    perfect = np.eye(3)[y] * 0.9 + 0.1 / 3
    again = _memory()
    choice = again.choose(perfect, emb, qids, [None] * 5, y)
    assert choice.weight == 0.0 and again.weight == 0.0  # a tie keeps the cross-encoder alone


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    memory = _memory()
    memory.k, memory.temperature, memory.weight = 3, 0.05, 0.4
    memory.save(tmp_path)
    loaded = LabelMemory.load(tmp_path)
    assert loaded is not None
    assert (loaded.k, loaded.temperature, loaded.weight, loaded.encoder) == (3, 0.05, 0.4, "word-encoder")
    assert loaded.rows_for("q1", None) == [0, 1, 2] and loaded.rows_for(None, "why rain?") == [3]
    assert np.allclose(loaded.embeddings, memory.embeddings, atol=1e-3)
    assert LabelMemory.load(tmp_path / "nowhere") is None
    (tmp_path / MEMORY_FILE).write_bytes(b"not an npz file")
    with pytest.raises(DataError, match=MEMORY_FILE):
        LabelMemory.load(tmp_path)


def test_the_text_is_never_stored(tmp_path: Path) -> None:
    memory = _memory()
    memory.weight = 0.5
    data = (memory.save(tmp_path)).read_bytes()
    assert b"light food" not in data and b"rock" not in data
