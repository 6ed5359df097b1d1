"""The query-encoding serving path: a lean transformer forward for short texts.

``SentenceTransformer.encode`` is built for large batches; for a chat turn it spends most of its time in
per-call overhead (feature dicts, sorting, dataloader-style batching, conversions). :class:`QueryEncoder`
runs the same weights directly: tokenise, one forward pass under ``inference_mode``, the pooling the model
was trained with (read from its ``1_Pooling/config.json``), L2 normalisation. On CPU it can also apply
dynamic int8 quantisation of the linear layers (``quantize=True``).

A single query is encoded with one intra-op thread on CPU (``single_query_threads``): a forward pass over
a dozen tokens is too small to split, and on a busy machine spinning OpenMP workers wait for each other far
longer than the work takes (measured 10-17x slower with 2 threads on the shared 2-core machine).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pooling_mode(model_dir: Path) -> str:
    cfg_path = model_dir / "1_Pooling" / "config.json"
    if not cfg_path.is_file():
        return "mean"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if cfg.get("pooling_mode_cls_token"):
        return "cls"
    if cfg.get("pooling_mode_mean_tokens", True):
        return "mean"
    raise ValueError(f"{cfg_path}: unsupported pooling {cfg}; use the SentenceTransformer path for this model")


class QueryEncoder:
    """Encode queries into L2-normalised float32 vectors matching the SentenceTransformer of ``model_dir``."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "cpu",
        max_length: int = 128,
        quantize: bool = False,
        single_query_threads: int | None = 1,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = Path(model_dir)
        self.name = str(model_dir)
        self.device = device
        self.max_length = max_length
        self.single_query_threads = single_query_threads if device == "cpu" else None
        self.pooling = _pooling_mode(self.model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        model = AutoModel.from_pretrained(str(self.model_dir), use_safetensors=True).eval()
        self.quantized = False
        if quantize and device == "cpu":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            self.quantized = True
        self.model = model.to(device)
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Vectors for ``texts``; batches are sorted by length so padding stays small."""
        import torch

        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                out[idx] = self._forward([texts[i] for i in idx])
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """A (1, dim) vector for one query: the chat-turn path, no padding at all."""
        import torch

        with cpu_threads(self.single_query_threads), torch.inference_mode():
            return self._forward([text])

    def _forward(self, batch: list[str]) -> np.ndarray:
        import torch

        enc = self.tokenizer(batch, truncation=True, max_length=self.max_length, padding=len(batch) > 1, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        hidden = self.model(**enc).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=1)
        return pooled.cpu().numpy().astype(np.float32)


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (None: leave the setting alone), then restore it."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def faiss_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` FAISS OpenMP threads (None: unchanged), then restore the default."""
    if n is None:
        yield
        return
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def load_encoder(model_dir: str | Path, device: str = "cpu", max_length: int = 128, fast: bool = True) -> Any:
    """The encoder used for serving: :class:`QueryEncoder` when ``fast``, else the core's TextEncoder."""
    if fast:
        return QueryEncoder(model_dir, device=device, max_length=max_length)
    from domainfm.engine.encoder import TextEncoder

    return TextEncoder(str(model_dir), device=device, max_length=max_length)
