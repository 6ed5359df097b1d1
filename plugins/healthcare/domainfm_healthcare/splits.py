"""Near-duplicate-aware splits: cluster texts by TF-IDF cosine, then split whole clusters per label.

Symptom2Disease is templated (47 exact duplicates, many more rephrasings of one description), so a row
split would put copies of test descriptions in training. Here every connected component of the
"cosine >= threshold" graph goes to one side, and clusters are assigned per label so every condition is
represented in every split. The protocol is pinned: same data + seed + threshold = same split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NEAR_DUPLICATE_THRESHOLD = 0.7


def near_duplicate_clusters(texts: Sequence[str], threshold: float = NEAR_DUPLICATE_THRESHOLD) -> np.ndarray:
    """Cluster id per text: connected components of pairs with TF-IDF (word 1-2 gram) cosine >= ``threshold``."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(texts) == 0:
        return np.zeros(0, dtype=int)
    matrix = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True).fit_transform(list(texts))
    rows, cols, sims = [], [], []
    block = 2048  # bounded memory: one block of rows against all rows at a time
    for start in range(0, matrix.shape[0], block):
        sim = (matrix[start : start + block] @ matrix.T).tocoo()
        keep = (sim.data >= threshold) & (sim.row + start != sim.col)
        rows.append(sim.row[keep] + start)
        cols.append(sim.col[keep])
        sims.append(sim.data[keep])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = csr_matrix((np.ones_like(r, dtype=np.int8), (r, c)), shape=(len(texts), len(texts)))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(int)


def group_stratified_split_indices(
    labels: Sequence[str],
    groups: Sequence[int],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 42,
) -> list[np.ndarray]:
    """Split indices so that each group is on one side and each label is spread over all parts.

    A group is assigned with the label of its majority; within a label, shuffled groups fill the parts in
    order up to each part's share of that label's rows.
    """
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions}")
    labels_arr = np.asarray([str(x) for x in labels])
    groups_arr = np.asarray(groups)
    rng = np.random.default_rng(seed)
    members: dict[int, np.ndarray] = {int(g): np.flatnonzero(groups_arr == g) for g in np.unique(groups_arr)}
    by_label: dict[str, list[int]] = {}
    for g, idx in members.items():
        values, counts = np.unique(labels_arr[idx], return_counts=True)
        by_label.setdefault(str(values[counts.argmax()]), []).append(g)
    parts: list[list[int]] = [[] for _ in fractions]
    for label in sorted(by_label):
        gids = sorted(by_label[label])
        rng.shuffle(gids)
        total = sum(len(members[g]) for g in gids)
        # Fill the evaluation parts (last first) up to their share, the rest goes to the first part (train),
        # so that small labels still reach validation and test.
        quotas = [fractions[p] * total for p in range(len(fractions))]
        part = len(fractions) - 1
        for g in gids:
            while part > 0 and quotas[part] < 0.5:
                part -= 1
            parts[part].extend(members[g].tolist())
            quotas[part] -= len(members[g])
    return [np.sort(np.asarray(p, dtype=int)) for p in parts]


def cross_split_near_duplicates(
    texts_a: Sequence[str], texts_b: Sequence[str], threshold: float = NEAR_DUPLICATE_THRESHOLD
) -> int:
    """How many texts of ``texts_b`` have a near-duplicate (cosine >= threshold) in ``texts_a``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not texts_a or not texts_b:
        return 0
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(list(texts_a) + list(texts_b))
    sim = vec.transform(list(texts_b)) @ vec.transform(list(texts_a)).T
    return int((sim.max(axis=1).toarray().ravel() >= threshold).sum())
