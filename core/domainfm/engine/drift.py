"""Drift of a stream of classified items against reference (training) data, for any domain.

Two statistics on a window of the ``window`` most recent items:

- **label mix**: Pearson's chi-square of the window's (predicted) label counts against the reference label shares
  (:func:`scipy.stats.chisquare`; shares add-half smoothed so a label the reference never showed is not a 0/0);
- **embeddings**: the unbiased squared maximum mean discrepancy (Gretton et al., 2012) between the window's
  sentence embeddings and a bank of reference embeddings, with an RBF kernel (:func:`sklearn.metrics.pairwise.
  rbf_kernel`) whose bandwidth is the median heuristic on the bank.

Thresholds come from the reference alone (:func:`fit_reference`): the reference is split, seeded, into a *bank*
and a held-out *calibration* part; ``n_windows`` random windows of ``window`` calibration items (without
replacement within a window) give the MMD's distribution on data like the training data. For the label mix
(shares of the training labels, or of a model's predictions on held-out data), ``n_windows`` windows and as many
re-drawn references are sampled from those shares (a parametric double bootstrap: the window's noise and the
reference shares' own estimation noise). Each threshold is the ``1 - false_alarm_rate / 2``
quantile of its statistic over those windows (Bonferroni over the two tests), so ``false_alarm_rate`` is about the
probability that one test of an in-distribution window exceeds either threshold.

:class:`DriftTracker` runs the test every ``step`` items over the last ``window`` items and opens an *episode* at
the first test that exceeds a threshold ``patience`` times in a row: that is the moment to suggest retraining. The
episode closes after ``cooldown`` consecutive tests under both thresholds. Only numpy, scipy and scikit-learn.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

TESTS = ("label_mix", "embedding")
Labels = Sequence[int] | np.ndarray
MIN_LABEL_REFERENCE = 100


@dataclass(frozen=True)
class DriftConfig:
    """Window and calibration settings. ``step`` defaults to a quarter of the window."""

    window: int = 200
    step: int | None = None
    false_alarm_rate: float = 0.01
    n_windows: int = 1000
    bank_size: int = 1000
    calibration_size: int = 2000
    patience: int = 1
    cooldown: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.window < 10:
            raise ValueError(f"drift window must be >= 10 items, got {self.window}")
        if self.step is not None and not 1 <= self.step <= self.window:
            raise ValueError(f"drift step must be in [1, window={self.window}], got {self.step}")
        if not 0.0 < self.false_alarm_rate < 1.0:
            raise ValueError(f"drift false_alarm_rate must be in (0, 1), got {self.false_alarm_rate}")
        if self.n_windows * self.false_alarm_rate / 2 < 1:
            raise ValueError(f"drift n_windows={self.n_windows} is too few for false_alarm_rate="
                             f"{self.false_alarm_rate}: need n_windows >= {int(np.ceil(2 / self.false_alarm_rate))}")
        if self.patience < 1 or self.cooldown < 1:
            raise ValueError("drift patience and cooldown must be >= 1")

    def check_reference(self, n: int) -> int:
        """The number of held-out calibration items of a reference of ``n`` items, or a ValueError saying why
        ``n`` is too few."""
        n_cal = min(self.calibration_size, n // 2)
        if n_cal < 2 * self.window:
            raise ValueError(f"drift reference has {n} items; a window of {self.window} needs at least "
                             f"{4 * self.window} (half of them held out to choose the thresholds)")
        return n_cal

    @property
    def test_every(self) -> int:
        return self.step or max(1, self.window // 4)


@dataclass
class DriftReference:
    """What a window is compared with, and the thresholds chosen on held-out reference windows."""

    config: DriftConfig
    label_names: list[str]
    label_shares: np.ndarray  # smoothed shares of the label reference
    bank: np.ndarray  # (m, d) float32 reference embeddings
    gamma: float  # RBF kernel exp(-gamma * |x - y|^2)
    bank_kernel_mean: float  # mean off-diagonal k(bank_i, bank_j), constant across windows
    thresholds: dict[str, float]
    calibration: dict[str, Any] = field(default_factory=dict)

    def label_statistic(self, labels: Labels) -> tuple[float, float]:
        """Chi-square statistic and its asymptotic p-value (the p-value is for reading, not for deciding)."""
        from scipy.stats import chisquare

        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(self.label_names)).astype(float)
        result = chisquare(counts, self.label_shares * counts.sum())
        return float(result.statistic), float(result.pvalue)

    def witness(self, embeddings: np.ndarray) -> np.ndarray:
        """The MMD witness function at each row of a window: its mean kernel similarity to the window minus that
        to the bank. The highest rows are the items most typical of what drifted."""
        from sklearn.metrics.pairwise import rbf_kernel

        x = np.asarray(embeddings, dtype=np.float32)
        return rbf_kernel(x, gamma=self.gamma).mean(axis=1) - rbf_kernel(x, self.bank, gamma=self.gamma).mean(axis=1)

    def mmd2(self, embeddings: np.ndarray) -> float:
        from sklearn.metrics.pairwise import rbf_kernel

        x = np.asarray(embeddings, dtype=np.float32)
        return _mmd2(rbf_kernel(x, gamma=self.gamma), rbf_kernel(x, self.bank, gamma=self.gamma).mean(),
                     self.bank_kernel_mean)

    def test(self, labels: Labels, embeddings: np.ndarray | None) -> dict[str, Any]:
        """Both statistics of one window (the embedding test only when ``embeddings`` is given)."""
        chi2, p = self.label_statistic(labels)
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(self.label_names))
        out: dict[str, Any] = {"label_mix": {
            "test": "chi_square", "statistic": chi2, "threshold": self.thresholds["label_mix"], "p_value": p,
            "window_shares": dict(zip(self.label_names, (counts / max(1, counts.sum())).round(4).tolist(), strict=True)),
        }}
        if embeddings is not None:
            out["embedding"] = {"test": "mmd2_rbf", "statistic": self.mmd2(embeddings),
                                "threshold": self.thresholds["embedding"], "gamma": self.gamma}
        out["exceeded"] = [t for t in TESTS if t in out and out[t]["statistic"] > out[t]["threshold"]]
        return out

    def describe(self) -> dict[str, Any]:
        """The reference's evidence for an event: sizes, shares, thresholds and how they were chosen."""
        return {
            "label_shares": dict(zip(self.label_names, self.label_shares.round(4).tolist(), strict=True)),
            "bank_items": int(len(self.bank)), "thresholds": self.thresholds, "window": self.config.window,
            "false_alarm_rate": self.config.false_alarm_rate, **self.calibration,
        }

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON parameters and arrays (for any store); :meth:`from_state` reverses it."""
        params = {"config": asdict(self.config), "label_names": self.label_names, "gamma": self.gamma,
                  "bank_kernel_mean": self.bank_kernel_mean, "thresholds": self.thresholds,
                  "calibration": self.calibration}
        return params, {"label_shares": self.label_shares, "bank": self.bank}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> DriftReference:
        return cls(DriftConfig(**params["config"]), list(params["label_names"]), np.asarray(arrays["label_shares"]),
                   np.asarray(arrays["bank"], dtype=np.float32), float(params["gamma"]),
                   float(params["bank_kernel_mean"]), {k: float(v) for k, v in params["thresholds"].items()},
                   dict(params.get("calibration", {})))


def _smoothed(counts: np.ndarray) -> np.ndarray:
    """Add-half shares along the last axis (a label never seen gets a small share, not zero)."""
    counts = np.asarray(counts, dtype=float)
    return (counts + 0.5) / (counts.sum(axis=-1, keepdims=True) + 0.5 * counts.shape[-1])


def _mmd2(k_xx: np.ndarray, k_xy_mean: float, k_yy_mean: float) -> float:
    n = k_xx.shape[0]
    return float((k_xx.sum() - np.trace(k_xx)) / (n * (n - 1)) + k_yy_mean - 2.0 * k_xy_mean)


def fit_reference(
    labels: Labels, embeddings: np.ndarray, label_names: Sequence[str], config: DriftConfig | None = None,
    label_reference: Labels | None = None,
) -> DriftReference:
    """Split the reference into bank and calibration parts and choose both thresholds (see the module docstring).

    ``label_reference``: the labels the label-mix test compares with, when they should not be ``labels``. With
    *predicted* labels, pass the model's predictions on held-out data: on its own training data a model predicts
    its training labels better than it will on new data, so that mix is not what an unchanged stream shows.
    """
    from scipy.stats import chisquare
    from sklearn.metrics.pairwise import euclidean_distances, rbf_kernel

    cfg = config or DriftConfig()
    y = np.asarray(labels, dtype=np.int64)
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"drift reference: {len(y)} labels but embeddings of shape {x.shape}")
    y_mix = y if label_reference is None else np.asarray(label_reference, dtype=np.int64)
    k = len(label_names)
    if len(y_mix) < MIN_LABEL_REFERENCE:
        raise ValueError(f"drift reference: {len(y_mix)} labels for the label mix; need at least {MIN_LABEL_REFERENCE}")
    if y_mix.min() < 0 or y_mix.max() >= k:
        raise ValueError(f"drift reference: label ids must be in [0, {k})")
    n_cal = cfg.check_reference(len(y))
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(y))
    cal, rest = order[:n_cal], order[n_cal:]
    bank = x[rest[: cfg.bank_size]]
    sq = euclidean_distances(bank, squared=True)
    median = float(np.median(sq[np.triu_indices(len(bank), 1)]))
    gamma = 1.0 / (2.0 * median) if median > 0 else 1.0
    k_bb = rbf_kernel(bank, gamma=gamma)
    m = len(bank)
    bank_mean = float((k_bb.sum() - np.trace(k_bb)) / (m * (m - 1)))
    shares = _smoothed(np.bincount(y_mix, minlength=k))
    ref = DriftReference(cfg, list(label_names), shares, bank, gamma, bank_mean, {})

    k_cc = rbf_kernel(x[cal], gamma=gamma)
    k_cb = rbf_kernel(x[cal], bank, gamma=gamma).mean(axis=1)
    windows = np.stack([rng.choice(n_cal, size=cfg.window, replace=False) for _ in range(cfg.n_windows)])
    # label mix, a parametric double bootstrap: a window and a re-drawn reference, both from the reference's mix,
    # so the null carries the window's sampling noise and the reference shares' estimation noise
    mix_rng = np.random.default_rng([cfg.seed, 1])  # its own stream: the MMD windows do not depend on it
    empirical = np.bincount(y_mix, minlength=k) / len(y_mix)
    window_counts = mix_rng.multinomial(cfg.window, empirical, size=cfg.n_windows)
    redrawn = _smoothed(mix_rng.multinomial(len(y_mix), empirical, size=cfg.n_windows))
    null = {"label_mix": chisquare(window_counts, redrawn * cfg.window, axis=1).statistic,
            "embedding": np.array([_mmd2(k_cc[np.ix_(idx, idx)], float(k_cb[idx].mean()), bank_mean)
                                   for idx in windows])}
    alpha = cfg.false_alarm_rate / len(TESTS)
    ref.thresholds = {t: float(np.quantile(v, 1.0 - alpha, method="higher")) for t, v in null.items()}
    ref.calibration = {
        "reference_items": int(len(y)), "calibration_items": int(n_cal), "label_reference_items": int(len(y_mix)),
        "calibration_windows": cfg.n_windows, "per_test_rate": alpha,
        "calibration_median": {t: float(np.median(v)) for t, v in null.items()},
    }
    return ref


@dataclass
class DriftTracker:
    """Sliding-window drift tests over a stream; :meth:`observe` returns a test result when an episode opens."""

    reference: DriftReference
    seen: int = 0
    tests: int = 0
    over_run: int = 0
    quiet: int = 0
    in_episode: bool = False
    episodes: int = 0
    last: dict[str, Any] | None = None
    items: deque[tuple[int, int, np.ndarray | None, Any]] = field(default_factory=deque)  # (seq, label, emb, meta)

    def observe(self, label: int, embedding: np.ndarray | None, meta: Any = None) -> dict[str, Any] | None:
        cfg = self.reference.config
        self.seen += 1
        self.items.append((self.seen, int(label), embedding, meta))
        while len(self.items) > cfg.window:
            self.items.popleft()
        if len(self.items) < cfg.window or (self.seen - cfg.window) % cfg.test_every:
            return None
        embs = [e for _, _, e, _ in self.items if e is not None]
        result = self.reference.test([lab for _, lab, _, _ in self.items],
                                     np.stack(embs) if len(embs) == len(self.items) else None)
        result["first_item"], result["last_item"] = self.items[0][0], self.seen
        self.tests += 1
        self.last = {k: result[k] for k in ("first_item", "last_item", "exceeded")} | {
            t: {"statistic": result[t]["statistic"], "threshold": result[t]["threshold"]} for t in TESTS if t in result}
        if result["exceeded"]:
            self.over_run, self.quiet = self.over_run + 1, 0
        else:
            self.over_run, self.quiet = 0, self.quiet + 1
        if self.in_episode and self.quiet >= cfg.cooldown:
            self.in_episode = False
        if not self.in_episode and self.over_run >= cfg.patience:
            self.in_episode = True
            self.episodes += 1
            return result
        return None

    def window_items(self) -> list[tuple[int, int, np.ndarray | None, Any]]:
        return list(self.items)

    def state(self) -> dict[str, Any]:
        """Scalar state (JSON); the window's items are stored by the caller (see :meth:`restore`)."""
        return {"seen": self.seen, "tests": self.tests, "over_run": self.over_run, "quiet": self.quiet,
                "in_episode": self.in_episode, "episodes": self.episodes, "last": self.last}

    @classmethod
    def restore(cls, reference: DriftReference, state: dict[str, Any] | None,
                items: Sequence[tuple[int, int, np.ndarray | None, Any]] = ()) -> DriftTracker:
        tracker = cls(reference, **(state or {}))
        tracker.items = deque(items, maxlen=None)
        return tracker
