from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest


class HashingEncoder:
    """A deterministic bag-of-words encoder (no torch): lets retrieval tests run in milliseconds."""

    name = "hashing-test-encoder"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def encode(self, texts, batch_size: int = 64) -> np.ndarray:  # noqa: ANN001
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


@pytest.fixture
def hashing_encoder() -> HashingEncoder:
    return HashingEncoder()


@pytest.fixture(scope="session")
def regex_masker():
    from domainfm.privacy.masker import Masker

    return Masker(use_ner=False)
