"""Topics for financial texts: learned from labelled topics when the data has them, else clusters of embeddings.

- ``labelled``: a multinomial logistic regression on sentence embeddings, trained on the ``topic`` column;
- ``clusters``: k-means on the (L2-normalised) embeddings; each cluster is named after its top terms by
  class-based TF-IDF (the clusters' concatenated texts are the "documents"), e.g. ``loans / credit / bank``.
  Users pin names with ``options.topic_names`` (``{"3": "credit risk"}`` or a list in cluster order).

Both reduce to ``argmax(embeddings @ weight.T + bias)`` so one small safetensors file holds either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TOPIC_DIR = "topics"


@dataclass
class TopicModel:
    """A fitted topic assigner over sentence embeddings."""

    kind: str  # labelled | clusters
    names: list[str]
    weight: np.ndarray
    bias: np.ndarray
    terms: list[list[str]] | None = None

    def assign(self, embeddings: np.ndarray) -> list[str]:
        """The topic name of each embedding row."""
        if len(embeddings) == 0:
            return []
        scores = np.asarray(embeddings, dtype=np.float32) @ self.weight.T + self.bias
        return [self.names[i] for i in scores.argmax(axis=1)]

    def save(self, directory: str | Path) -> Path:
        from domainfm.io import atomic_write_json, save_arrays

        directory = Path(directory) / TOPIC_DIR
        directory.mkdir(parents=True, exist_ok=True)
        save_arrays(directory / "topics.safetensors",
                    {"weight": self.weight.astype(np.float32), "bias": self.bias.astype(np.float32)})
        atomic_write_json(directory / "topics.json", {"kind": self.kind, "names": self.names, "terms": self.terms})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> TopicModel | None:
        """The topic model saved under ``directory/topics``, or None when there is none."""
        from safetensors.numpy import load_file

        directory = Path(directory) / TOPIC_DIR
        if not (directory / "topics.json").is_file():
            return None
        meta = json.loads((directory / "topics.json").read_text(encoding="utf-8"))
        arrays = load_file(str(directory / "topics.safetensors"))
        return cls(meta["kind"], list(meta["names"]), arrays["weight"], arrays["bias"], meta.get("terms"))


def top_terms(texts: Sequence[str], assignment: Sequence[int], k: int, n_terms: int = 3) -> list[list[str]]:
    """Top ``n_terms`` terms of each of ``k`` clusters by class-based TF-IDF."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = [" ".join(t for t, a in zip(texts, assignment, strict=True) if a == c) for c in range(k)]
    vec = TfidfVectorizer(stop_words="english", token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z\-]{2,}\b", sublinear_tf=True)
    try:
        matrix = vec.fit_transform(docs)
    except ValueError:  # every document empty after stop words
        return [[] for _ in range(k)]
    vocab = np.asarray(vec.get_feature_names_out())
    out = []
    for row in range(k):
        dense = matrix[row].toarray().ravel()
        top = np.argsort(-dense, kind="stable")[:n_terms]
        out.append([str(vocab[i]) for i in top if dense[i] > 0])
    return out


def _pinned(names: list[str], pinned: Any) -> list[str]:
    if pinned is None:
        return names
    if isinstance(pinned, Mapping):
        for key, value in pinned.items():
            idx = int(key)
            if not 0 <= idx < len(names):
                raise ValueError(f"options.topic_names: cluster {idx} does not exist (0..{len(names) - 1})")
            names[idx] = str(value)
        return names
    pinned = list(pinned)
    if len(pinned) != len(names):
        raise ValueError(f"options.topic_names: {len(pinned)} names given for {len(names)} clusters")
    return [str(p) for p in pinned]


def fit_topics(
    texts: Sequence[str],
    embeddings: np.ndarray,
    topics: Sequence[str | None] | None = None,
    *,
    n_topics: int | None = None,
    pinned_names: Any = None,
    seed: int = 42,
) -> TopicModel:
    """Fit a topic model: supervised when every text has a topic label, k-means clusters otherwise."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if topics is not None and all(t for t in topics) and len(set(topics)) >= 2:
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=4.0, max_iter=2000, random_state=seed)
        clf.fit(embeddings, list(topics))
        names = [str(c) for c in clf.classes_]
        if len(names) == 2:  # sklearn's binary form has one row; expand to two scores
            weight = np.vstack([-clf.coef_[0], clf.coef_[0]]) / 2
            bias = np.array([-clf.intercept_[0], clf.intercept_[0]]) / 2
        else:
            weight, bias = clf.coef_, clf.intercept_
        return TopicModel("labelled", names, weight.astype(np.float32), bias.astype(np.float32))

    from sklearn.cluster import KMeans

    n = len(texts)
    k = n_topics or int(np.clip(round(np.sqrt(n / 20)), 2, 12))
    k = max(1, min(k, n))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(embeddings)
    centroids = km.cluster_centers_ / np.maximum(np.linalg.norm(km.cluster_centers_, axis=1, keepdims=True), 1e-9)
    terms = top_terms(texts, km.labels_.tolist(), k)
    names = [" / ".join(t) if t else f"topic {i}" for i, t in enumerate(terms)]
    for i, name in enumerate(names):  # names must be unique
        if names.count(name) > 1:
            names[i] = f"{name} ({i})"
    names = _pinned(names, pinned_names)
    # argmax of the dot product with unit centroids is the nearest centroid for unit embeddings
    return TopicModel("clusters", names, centroids.astype(np.float32), np.zeros(k, np.float32), terms)
