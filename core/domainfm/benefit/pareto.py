"""Decision rules over operating points: Pareto front, constrained optimum, constraint cost."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_TIE = 1e-12


def pareto_front(r_t: Sequence[float], r_s: Sequence[float], candidates: Sequence[int] | None = None) -> list[int]:
    """Indices of the points not dominated in (R_T, R_S), both maximised, sorted by R_T.

    A point is dominated when another is at least as good on both axes and better on one. Of exact
    duplicates only the first index is kept.
    """
    idx = list(range(len(r_t))) if candidates is None else list(candidates)
    t = np.asarray(r_t, dtype=float)
    s = np.asarray(r_s, dtype=float)
    # sweep by R_T descending (ties: R_S descending); a point is on the front iff its R_S beats all before
    order = sorted(idx, key=lambda i: (-t[i], -s[i], i))
    front: list[int] = []
    best_s = -np.inf
    for i in order:
        if s[i] > best_s + _TIE:
            front.append(i)
            best_s = s[i]
    return sorted(front, key=lambda i: (t[i], i))


def objective_values(r_t: Sequence[float], r_s: Sequence[float], lam: float) -> np.ndarray:
    """J = R_T + lambda * R_S per point."""
    return np.asarray(r_t, dtype=float) + lam * np.asarray(r_s, dtype=float)


def argmax_objective(
    r_t: Sequence[float], r_s: Sequence[float], lam: float, feasible: Sequence[bool]
) -> int | None:
    """The feasible point maximising R_T + lambda * R_S, or None when no point is feasible.

    Ties (within 1e-12) go to the higher R_T, then to the lower index (the earlier variant and the lower
    threshold), so the choice is deterministic.
    """
    j = objective_values(r_t, r_s, lam)
    t = np.asarray(r_t, dtype=float)
    best: int | None = None
    for i in range(len(j)):
        if not feasible[i]:
            continue
        if best is None or j[i] > j[best] + _TIE or (abs(j[i] - j[best]) <= _TIE and t[i] > t[best] + _TIE):
            best = i
    return best
