"""Token attributions with captum's layer integrated gradients on the word-embedding layer.

Works for both artifact kinds of the engine's text classifier: a fine-tuned sequence-classification model
and a frozen sentence encoder with a linear head (mean or CLS pooling); an ensemble is explained through its
first member (one model's reasons, not the average's). The baseline keeps [CLS]/[SEP]
and replaces every other token by [PAD]; attributions are summed over the embedding dimension, word
pieces are merged into words, and scores are normalised so that their absolute values sum to 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class TokenAttributor:
    """Integrated-gradients attributions of the (temperature-scaled) logit of a chosen label."""

    def __init__(self, predictor: Any, n_steps: int = 16, top_n: int = 8) -> None:
        predictor = getattr(predictor, "members", [predictor])[0]  # an ensemble is explained through its first member
        self.predictor = predictor
        self.n_steps = n_steps
        self.top_n = top_n
        self.device = predictor.device
        self.temperature = float(predictor.temperature)
        if not predictor.is_head:
            self.model = predictor.torch_model
            self.tokenizer = predictor.tokenizer
            self.embeddings = self.model.get_input_embeddings()
            self._forward = self._forward_hf
        else:
            import torch

            st = predictor.torch_model  # the head kind's SentenceTransformer
            self.model = st[0].auto_model
            self.tokenizer = st.tokenizer
            self.embeddings = self.model.get_input_embeddings()
            pooling = st[1].get_config_dict().get("pooling_mode", "mean") if len(st) > 1 else "mean"
            if pooling not in ("mean", "cls"):
                raise ValueError(f"attributions support mean or cls pooling, not {pooling!r}")
            self.pooling = pooling
            self.normalize = any(type(m).__name__ == "Normalize" for m in st)
            self.weight = torch.as_tensor(predictor.head["weight"], device=self.device)
            self.bias = torch.as_tensor(predictor.head["bias"], device=self.device)
            self._forward = self._forward_head
        self.max_length = int(predictor.max_length)

    def _forward_hf(self, input_ids: Any, attention_mask: Any) -> Any:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits / self.temperature

    def _forward_head(self, input_ids: Any, attention_mask: Any) -> Any:
        import torch

        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return (pooled @ self.weight.T + self.bias) / self.temperature

    def attribute(self, text: str, label_indices: list[int]) -> dict[int, list[dict[str, Any]]]:
        """For each label index, the ``top_n`` words by absolute attribution: ``[{"token", "score"}]``."""
        import torch
        from captum.attr import LayerIntegratedGradients

        enc = self.tokenizer(text, truncation=True, max_length=self.max_length, return_tensors="pt").to(self.device)
        input_ids, attention_mask = enc["input_ids"], enc["attention_mask"]
        special = set(self.tokenizer.all_special_ids)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        baseline = input_ids.clone()
        is_special = torch.tensor([[t in special for t in input_ids[0].tolist()]], device=input_ids.device)
        baseline[~is_special] = pad
        tokens = self.tokenizer.convert_ids_to_tokens(input_ids[0].tolist())
        lig = LayerIntegratedGradients(self._forward, self.embeddings)
        out: dict[int, list[dict[str, Any]]] = {}
        was_training = self.model.training
        self.model.eval()
        k = len(label_indices)
        try:
            with torch.enable_grad():
                # One pass for all labels: the input repeated once per label, each row with its own target.
                attr = lig.attribute(
                    inputs=input_ids.repeat(k, 1),
                    baselines=baseline.repeat(k, 1),
                    additional_forward_args=(attention_mask.repeat(k, 1),),
                    target=[int(i) for i in label_indices],
                    n_steps=self.n_steps,
                    internal_batch_size=k * self.n_steps,
                )
            scores = attr.sum(-1).detach().float().cpu().numpy()
            for row, idx in enumerate(label_indices):
                out[int(idx)] = _top_words(tokens, scores[row], is_special[0].cpu().numpy(), self.top_n)
        finally:
            self.model.train(was_training)
        return out


def _top_words(tokens: list[str], scores: np.ndarray, special: np.ndarray, top_n: int) -> list[dict[str, Any]]:
    """Merge WordPiece continuations (``##``) into words and keep the strongest ``top_n``."""
    words: list[tuple[str, float]] = []
    for tok, score, sp in zip(tokens, scores, special, strict=True):
        if sp:
            continue
        if tok.startswith("##") and words:
            word, total = words[-1]
            words[-1] = (word + tok[2:], total + float(score))
        else:
            words.append((tok, float(score)))
    norm = sum(abs(s) for _, s in words) or 1.0
    ranked = sorted(words, key=lambda w: -abs(w[1]))[:top_n]
    return [{"token": w, "score": round(s / norm, 4)} for w, s in ranked]
