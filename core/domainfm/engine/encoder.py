"""Sentence embeddings with sentence-transformers, on the best available device."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.device import resolve_device
from domainfm.models import resolve_model


class TextEncoder:
    """Encode texts into L2-normalised float32 vectors.

    ``model`` is a hub id, a local directory or an already-loaded ``SentenceTransformer``. Encoding sorts
    texts by length inside sentence-transformers, so padding waste stays small.
    """

    def __init__(self, model: Any = "sentence-transformers/all-MiniLM-L6-v2", device: str = "auto", max_length: int | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        self.device = resolve_device(device)
        if isinstance(model, SentenceTransformer):
            self.model = model.to(self.device)
            self.name = getattr(model, "model_card_data", None) and str(model) or "in-memory"
        else:
            resolved = resolve_model(str(model)) if not Path(str(model)).is_dir() else None
            path = str(resolved.path) if resolved else str(model)
            self.model = SentenceTransformer(path, device=self.device, trust_remote_code=False)
            self.name = str(model)
        if max_length is not None:
            self.model.max_seq_length = max_length

    @property
    def dim(self) -> int:
        dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") else None
        if dim is None:
            dim = self.model.get_sentence_embedding_dimension()
        return int(dim)

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=show_progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
