"""Knowledge-tracing networks in torch (import this module only inside functions).

Both models share one interface: ``forward(skills, correct, feats)`` returns, for every position ``t`` of
a window, the logit that the answer at ``t`` is correct given only the answers before ``t``; and
``mastery(skills, correct, feats_all)`` returns the probability of a correct next answer on every skill.

- :class:`DKT`: Piech et al. (2015) LSTM over one-hot (skill, answer) interactions; the baseline.
- :class:`AKT`: an AKT-style attention model (Ghosh et al., 2020): a knowledge encoder (LSTM by default,
  or causal self-attention) and a knowledge retriever in which the current question attends to past
  questions and reads their encoded knowledge. Attention is monotonic: scores decay with the distance in
  steps at a learned per-head rate (AKT's forgetting). The output layer also sees the student's history on
  the target skill (attempts, successes, last answer, steps since the last attempt), as in PFA/DKT with
  forgetting features (Nagatani et al., 2019).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

N_FEATURES = 7


# ------------------------------------------------------------------------------------- features


def history_features(skills: Sequence[int], correct: Sequence[int]) -> np.ndarray:
    """Per position ``t``: features of the student's answers before ``t`` on skill ``skills[t]`` (and overall)."""
    n = len(skills)
    out = np.zeros((n, N_FEATURES), dtype=np.float32)
    attempts: dict[int, int] = {}
    successes: dict[int, int] = {}
    last: dict[int, tuple[int, int]] = {}
    total = right = 0
    for t in range(n):
        s = int(skills[t])
        a, c = attempts.get(s, 0), successes.get(s, 0)
        prev = last.get(s)
        out[t] = _feature_row(a, c, prev, t, total, right)
        attempts[s] = a + 1
        successes[s] = c + int(correct[t])
        last[s] = (t, int(correct[t]))
        total += 1
        right += int(correct[t])
    return out


def _feature_row(a: int, c: int, prev: tuple[int, int] | None, t: int, total: int, right: int) -> list[float]:
    return [
        math.log1p(a) / 4.0,
        math.log1p(c) / 4.0,
        (c + 1.0) / (a + 2.0),
        float(prev[1]) if prev else 0.5,
        1.0 if prev else 0.0,
        math.log1p(t - prev[0]) / 4.0 if prev else 0.0,
        (right + 1.0) / (total + 2.0),
    ]


def next_step_features(skills: Sequence[int], correct: Sequence[int], n_skills: int) -> np.ndarray:
    """Features for a next answer on each of ``n_skills`` skills after the whole history, shape (S, F)."""
    attempts = np.zeros(n_skills, dtype=int)
    successes = np.zeros(n_skills, dtype=int)
    last: dict[int, tuple[int, int]] = {}
    for t, (s, c) in enumerate(zip(skills, correct, strict=True)):
        attempts[s] += 1
        successes[s] += int(c)
        last[int(s)] = (t, int(c))
    t, total, right = len(skills), len(skills), int(sum(correct))
    return np.asarray(
        [_feature_row(int(attempts[s]), int(successes[s]), last.get(s), t, total, right) for s in range(n_skills)],
        dtype=np.float32,
    )


# ------------------------------------------------------------------------------------- DKT


class DKT(nn.Module):
    """LSTM knowledge tracing over (skill, answer) interaction embeddings."""

    kind = "dkt"

    def __init__(self, n_skills: int, hidden: int = 200, embed: int = 200, dropout: float = 0.2) -> None:
        super().__init__()
        self.n_skills = n_skills
        self.interaction = nn.Embedding(2 * n_skills, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, n_skills)

    def states(self, skills: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        """Hidden state before each position (the state after the previous interactions), (B, L, H)."""
        h, _ = self.lstm(self.interaction(skills + self.n_skills * correct.long()))
        return torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)

    def forward(self, skills: torch.Tensor, correct: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.out(self.dropout(self.states(skills, correct)))
        return logits.gather(-1, skills.unsqueeze(-1)).squeeze(-1)

    def mastery(self, skills: torch.Tensor, correct: torch.Tensor, feats_all: torch.Tensor | None = None,
                candidates: torch.Tensor | None = None) -> torch.Tensor:
        if skills.shape[1] == 0:
            return torch.sigmoid(self.out.bias)
        h, _ = self.lstm(self.interaction(skills + self.n_skills * correct.long()))
        return torch.sigmoid(self.out(h[:, -1]))[0]


# ------------------------------------------------------------------------------------- AKT-style


class DecayAttention(nn.Module):
    """Multi-head attention whose scores decay with the distance between positions (learned per head)."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.rate = nn.Parameter(torch.full((heads,), -2.0))
        self.dropout = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor,
                distance: torch.Tensor) -> torch.Tensor:
        b, lq, d = q.shape
        lk = k.shape[1]
        qh = self.q(q).view(b, lq, self.h, self.dh).transpose(1, 2)
        kh = self.k(k).view(b, lk, self.h, self.dh).transpose(1, 2)
        vh = self.v(v).view(b, lk, self.h, self.dh).transpose(1, 2)
        scores = qh @ kh.transpose(-1, -2) / math.sqrt(self.dh)
        scores = scores - F.softplus(self.rate).view(1, -1, 1, 1) * distance
        scores = scores.masked_fill(~allowed, -1e9)
        attn = self.dropout(torch.softmax(scores, dim=-1))
        return self.o((attn @ vh).transpose(1, 2).reshape(b, lq, d))


class Block(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = DecayAttention(d, heads, dropout)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * d, d))
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor,
                distance: torch.Tensor) -> torch.Tensor:
        x = self.n1(q + self.dropout(self.attn(q, k, v, allowed, distance)))
        return self.n2(x + self.dropout(self.ff(x)))


class AKT(nn.Module):
    """Knowledge encoder + monotonic knowledge retriever + skill-history features.

    The knowledge encoder summarises the interactions before each position: an LSTM by default (fast to
    train on a CPU), or AKT's causal self-attention with ``encoder="attention"``. The retriever lets the
    current question attend to the past questions (keys) and read their encoded knowledge (values), with
    scores decaying in the distance. The head sees the retrieved knowledge, the encoder state, the question
    embedding and the skill-history features.
    """

    kind = "akt"

    def __init__(self, n_skills: int, d: int = 128, heads: int = 4, layers: int = 1, dropout: float = 0.2,
                 encoder: str = "lstm") -> None:
        super().__init__()
        if encoder not in ("lstm", "attention"):
            raise ValueError(f"encoder: {encoder!r} is not 'lstm' or 'attention'")
        self.n_skills = n_skills
        self.encoder = encoder
        self.question = nn.Embedding(n_skills + 1, d)  # last index: the start token
        self.answer = nn.Embedding(2 * n_skills + 1, d)
        if encoder == "lstm":
            self.lstm = nn.LSTM(d, d, batch_first=True)
        else:
            self.k_encoder = nn.ModuleList(Block(d, heads, dropout) for _ in range(layers))
        self.retriever = Block(d, heads, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(
            nn.Linear(3 * d + N_FEATURES, d), nn.GELU(), nn.Dropout(dropout), nn.Linear(d, 1)
        )

    def _encode_past(self, skills: torch.Tensor, correct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys (past questions) and values (knowledge) for [start] + the interactions before each position."""
        b, length = skills.shape
        start = torch.full((b, 1), self.n_skills, dtype=torch.long, device=skills.device)
        past_q = torch.cat([start, skills[:, : length - 1]], dim=1)
        past_a = torch.cat([start * 2, (skills + self.n_skills * correct.long())[:, : length - 1]], dim=1)
        xq = self.question(past_q)
        xa = self.answer(past_a)
        if self.encoder == "lstm":
            xa, _ = self.lstm(xa)
        else:
            allowed, distance = _causal(past_q.shape[1], skills.device)
            xa = xa + xq
            for block in self.k_encoder:
                xa = block(xa, xa, xa, allowed, distance)
        return xq, xa

    def forward(self, skills: torch.Tensor, correct: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        keys, values = self._encode_past(skills, correct)
        length = skills.shape[1]
        query = self.question(skills)
        allowed, distance = _causal(length, skills.device)
        retrieved = self.retriever(query, keys, values, allowed, distance)
        if feats is None:
            feats = torch.zeros(*skills.shape, N_FEATURES, device=skills.device)
        x = torch.cat([retrieved, self.dropout(values), query, feats], dim=-1)
        return self.head(x).squeeze(-1)

    def mastery(self, skills: torch.Tensor, correct: torch.Tensor, feats_all: torch.Tensor | None = None,
                candidates: torch.Tensor | None = None) -> torch.Tensor:
        """P(correct) of a next answer on every skill after the history (one student, batch of 1).

        With ``candidates`` only those skills are computed (the others are NaN)."""
        length = skills.shape[1]
        cand = candidates if candidates is not None else torch.arange(self.n_skills, device=skills.device)
        s = cand.shape[0]
        # the history plus one candidate next question per skill: S sequences sharing the same past
        seq = torch.cat([skills.expand(s, length), cand.unsqueeze(1)], dim=1)
        ans = torch.cat([correct.expand(s, length), torch.zeros_like(cand).unsqueeze(1)], dim=1)
        feats = torch.zeros(s, length + 1, N_FEATURES, device=skills.device)
        if feats_all is not None:
            feats[:, -1] = feats_all[cand]
        out = torch.full((self.n_skills,), float("nan"), device=skills.device)
        out[cand] = torch.sigmoid(self.forward(seq, ans, feats)[:, -1])
        return out


def _causal(length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.arange(length, device=device)
    diff = (idx.view(-1, 1) - idx.view(1, -1)).float()
    return (diff >= 0).view(1, 1, length, length), diff.clamp(min=0).view(1, 1, length, length)


MODELS: dict[str, type[nn.Module]] = {"dkt": DKT, "akt": AKT}


def build_model(kind: str, n_skills: int, **params: int | float) -> nn.Module:
    """A fresh model of ``kind`` (``dkt`` or ``akt``)."""
    if kind not in MODELS:
        raise ValueError(f"kt_model: {kind!r} is not one of {sorted(MODELS)}")
    return MODELS[kind](n_skills, **params)
