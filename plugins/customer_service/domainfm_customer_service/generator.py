"""Optional answer phrasing with a causal language model the user points to (``--generator PATH``).

The default assistant answers with the intent's template or the best passage and needs no generator. With
one, the chosen answer and the top passages go into a short grounded prompt and the model phrases a reply;
greedy decoding keeps it deterministic. The generated text is returned next to the retrieved answer, never
instead of it, so an agent can always see what it was grounded on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROMPT = (
    "You are a bank's support assistant. Answer the customer's question using only the passages.\n\n"
    "Passages:\n{passages}\n\nQuestion: {question}\nAnswer:"
)


class AnswerGenerator:
    """A causal LM (local path or hub id) that phrases answers from retrieved passages."""

    def __init__(self, model: str | Path, device: str = "cpu", max_new_tokens: int = 80) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from domainfm.models import resolve_model

        path = str(model) if Path(str(model)).is_dir() else str(resolve_model(str(model)).path)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True).to(device).eval()
        self.device = device
        self.max_new_tokens = max_new_tokens
        self._torch = torch

    def phrase(self, question: str, passages: Sequence[str], max_passages: int = 3) -> str:
        """A reply to ``question`` grounded on ``passages`` (empty string if the model says nothing)."""
        prompt = PROMPT.format(passages="\n".join(f"- {p}" for p in passages[:max_passages]), question=question)
        limit = getattr(self.model.config, "max_position_embeddings", None) or getattr(self.model.config, "n_positions", 1024)
        enc = self.tokenizer(prompt, return_tensors="pt", truncation=True, max_length=max(16, limit - self.max_new_tokens))
        enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with self._torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad)
        new_tokens = out[0, enc["input_ids"].shape[1] :]
        return self.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


def maybe_generator(model: Any, device: str) -> AnswerGenerator | None:
    """An :class:`AnswerGenerator` when ``model`` names one, else None."""
    return AnswerGenerator(model, device=device) if model else None
