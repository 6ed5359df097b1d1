"""Out-of-scope handling: the second half of the escalation decision, next to the calibrated confidence.

Training (:func:`fit_out_of_scope`) scores validation questions with every method of
:mod:`domainfm.engine.ood` (``msp``, ``energy``, ``knn``, ``mahalanobis``, ``oos_class``). The in-scope side is
the validation split's in-scope questions. Out-of-scope validation comes from two sources, weighted equally:
the validation split's questions labelled out-of-scope (if the data has that label) plus the held-out half of
the negative pool (:mod:`domainfm_customer_service.negatives`): far from the domain; and the validation
questions of a few known intents left out of a refitted stand-in (:func:`held_out_intents_fold`): near it.
Each method's threshold is the lowest that, together with the low-confidence rule, escalates at most
``options.max_false_escalation`` (default 0.05) of the in-scope validation questions; the method escalating
the most out-of-scope validation questions at that rate is kept, refitted on every intent.

Options: ``max_false_escalation`` (0.05), ``oos_methods`` (comma list, default all), ``negative_pool``
(``demo``, ``none`` or files), ``oos_pseudo_intents`` (known intents the near fold leaves out; default a
tenth, 0 turns it off), ``oos_combine`` (false; true also tries each logit score with each embedding score,
:func:`domainfm.engine.ood.combine`: not yet measured on the benchmark, hence off), ``oos_fallback`` (the method kept when there is no out-of-scope validation data,
default ``knn``), ``oos_knn_k`` (10).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.engine.ood import (
    COMBINE_SEP,
    FEATURE_METHODS,
    METHODS,
    HeldOut,
    OodScorer,
    combine,
    combine_held,
    compare_methods,
    fit_scorer,
    pairs,
)
from domainfm.errors import ConfigError
from domainfm.types import DataBundle, RunContext

SCORER_FILE = "oos_scorer.safetensors"
DEFAULT_MAX_FALSE_ESCALATION = 0.05
# With no out-of-scope validation data nothing can be compared. 1 - calibrated confidence needs nothing fitted and
# had the best held-out-intent AUROC of the single scores with MiniLM in benchmarks/customer_service (oos part,
# 2026-12-06: 0.886 over 3 draws; energy 0.880, knn 0.853, oos_class 0.820, mahalanobis 0.771).
DEFAULT_FALLBACK = "msp"


def rate_option(ctx: RunContext) -> float:
    raw = ctx.option("max_false_escalation", DEFAULT_MAX_FALSE_ESCALATION)
    try:
        rate = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"options.max_false_escalation: {raw!r} is not a number (a rate such as 0.05)") from None
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"options.max_false_escalation: {rate} is outside [0, 1)")
    return rate


def methods_option(ctx: RunContext) -> list[str]:
    raw = ctx.option("oos_methods", None)
    names = list(METHODS) if raw in (None, "", "all") else [m.strip() for m in str(raw).split(",") if m.strip()]
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise ConfigError(f"options.oos_methods: {bad[0] if bad else raw!r} is not one of {', '.join(METHODS)}")
    return names


class ScoreInputs:
    """Logits, calibrated probabilities and (on demand) sentence features of a classifier for a batch of texts.

    A head classifier's features are its own embeddings (one encoder pass gives both); for a fine-tuned
    sequence classifier they come from ``feature_encoder`` (the base sentence encoder).
    """

    def __init__(self, classifier: Any, feature_encoder: Any = None) -> None:
        self.classifier = classifier
        self.feature_encoder = feature_encoder

    @property
    def feature_source(self) -> str:
        return "classifier" if getattr(self.classifier, "is_head", False) else "base_encoder"

    def run(self, texts: Sequence[str], need_features: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        texts = list(texts)
        features = None
        if need_features and self.feature_source == "classifier":
            features = self.classifier.features(texts)
            logits = self.classifier.logits_from_features(features)
        else:
            logits = self.classifier.predict_logits(texts)
            if need_features:
                if self.feature_encoder is None:
                    raise ValueError("the out-of-scope scorer needs sentence features and no feature encoder is loaded")
                features = self.feature_encoder.encode(texts)
        return logits, self.classifier.calibrator.apply(logits), features


def base_feature_encoder(classifier: Any, device: str, max_length: int | None) -> Any:
    """The base model's sentence encoder, for classifiers without embeddings of their own (else None)."""
    if getattr(classifier, "is_head", False):
        return None
    from domainfm.engine.encoder import TextEncoder
    from domainfm.models import resolve_model

    return TextEncoder(str(resolve_model(classifier.artifact.base_model).path), device=device, max_length=max_length)


def score_batch(scorer: OodScorer, logits: np.ndarray, probs: np.ndarray, features: np.ndarray | None,
                in_scope: np.ndarray) -> np.ndarray:
    """The scorer's out-of-scope scores over the in-scope label columns."""
    return scorer.score(probs=probs[:, in_scope], logits=logits[:, in_scope], features=features)


def pseudo_option(ctx: RunContext, n_intents: int) -> int:
    """How many known intents the held-out-intents fold leaves out (``options.oos_pseudo_intents``; default a
    tenth of the intents, at least one, none below four intents)."""
    raw = ctx.option("oos_pseudo_intents", None)
    if raw is None:
        return max(1, round(0.1 * n_intents)) if n_intents >= 4 else 0
    try:
        n = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"options.oos_pseudo_intents: {raw!r} is not a whole number") from None
    if not 0 <= n < n_intents - 1:
        raise ConfigError(f"options.oos_pseudo_intents: {n} must be between 0 and {n_intents - 2} ({n_intents} intents)")
    return n


def held_out_intents_fold(
    methods: Sequence[str], train_feats: np.ndarray, train_ids: np.ndarray, valid_feats: np.ndarray, valid_ids: np.ndarray,
    neg_feats: np.ndarray | None, n_left: int, c: float, k: int, seed: int,
) -> tuple[dict[str, HeldOut], list[int]]:
    """Near out-of-scope validation from the training data alone: ``n_left`` seeded known intents are left out
    of everything fitted here (a logistic-regression head on the same features standing in for the classifier,
    and every scorer); their validation questions are the out-of-scope side, the other intents' the in-scope
    side. Returns the scores per method and the left-out class ids."""
    from domainfm.engine.calibration import softmax
    from domainfm.engine.lpft import fit_probe

    classes = np.unique(train_ids)
    n_left = min(n_left, len(classes) - 2)  # at least two intents stay for the stand-in classifier
    if n_left <= 0:
        return {}, []
    left = np.sort(np.random.default_rng(seed).choice(classes, n_left, replace=False))
    keep_train, keep_valid = ~np.isin(train_ids, left), ~np.isin(valid_ids, left)
    remaining = classes[~np.isin(classes, left)]
    y = np.searchsorted(remaining, train_ids[keep_train])
    probe = fit_probe(train_feats[keep_train], y.tolist(), None, [], len(remaining), [c], seed)
    logits = valid_feats @ probe["weight"].T + probe["bias"]
    probs = softmax(logits)
    held = {}
    for method in methods:
        if method == "oos_class" and neg_feats is None:
            continue
        scorer = fit_scorer(method, train_features=train_feats[keep_train], train_labels=y, negative_features=neg_feats, k=k, seed=seed)
        scores = scorer.score(probs=probs, logits=logits, features=valid_feats)
        held[method] = HeldOut(scores[keep_valid], scores[~keep_valid])
    return held, left.tolist()


def fit_out_of_scope(
    ctx: RunContext,
    classifier: Any,
    data: DataBundle,
    oos_label: str,
    confidence_threshold: float,
    out_dir: Path,
    fitted: dict[str, OodScorer] | None = None,
) -> dict[str, Any]:
    """Fit every requested scorer, choose one on validation, save it into ``out_dir``; return its metadata.
    ``fitted``, when given, receives every fitted scorer by method (benchmarks report them all).

    Two out-of-scope validation sources, weighted equally in the choice: ``validation`` (questions labelled
    out-of-scope plus the held-out half of the negative pool, against the in-scope validation questions, with
    the low-confidence rule sharing the rate) and ``held_out_intents`` (:func:`held_out_intents_fold`: near
    out-of-scope questions, which texts from other domains are not)."""
    from domainfm_customer_service.negatives import negative_pool, split_pool

    rate = rate_option(ctx)
    methods = methods_option(ctx)
    fallback = str(ctx.option("oos_fallback", DEFAULT_FALLBACK))
    if fallback not in methods:
        fallback = methods[0]
    seed = ctx.config.train.seed
    labels = list(classifier.labels)
    in_scope = np.array([lab != oos_label for lab in labels])
    n_left = pseudo_option(ctx, int(in_scope.sum()))

    def rows(split: str) -> tuple[list[str], list[str]]:
        table = data.tables.get(split)
        if table is None or len(table) == 0:
            return [], []
        return [str(t) for t in table["text"]], [str(v) for v in table["label"]]

    train_x, train_y = rows("train")
    valid_x, valid_y = rows("validation")
    test_x, _ = rows("test")
    own = set(train_x) | set(valid_x) | set(test_x)
    pool, sources = negative_pool(ctx.option("negative_pool"), exclude=own)
    pool_train, pool_held = split_pool(pool, seed)
    pool_train += [t for t, y in zip(train_x, train_y, strict=True) if y == oos_label]
    if not pool_train and "oos_class" in methods:
        methods = [m for m in methods if m != "oos_class"] or ["msp"]
        fallback = fallback if fallback in methods else methods[0]
    meta: dict[str, Any] = {
        "max_false_escalation": rate,
        "negative_pool": {"sources": sources, "train": len(pool_train), "held_out": len(pool_held)},
        "methods_compared": methods,
    }
    index = {lab: i for i, lab in enumerate(labels)}
    valid_in = [(t, index[y]) for t, y in zip(valid_x, valid_y, strict=True) if y != oos_label and y in index]
    valid_out = [t for t, y in zip(valid_x, valid_y, strict=True) if y == oos_label] + pool_held
    if not valid_in:
        meta.update(method=fallback, threshold=None, reason="no in-scope validation data: the out-of-scope score is not used")
        return meta

    need_features = n_left > 0 or any(m in FEATURE_METHODS for m in methods)
    inputs = ScoreInputs(classifier, base_feature_encoder(classifier, ctx.device, ctx.config.model.max_length) if need_features else None)
    meta["feature_source"] = inputs.feature_source if need_features else None
    in_train = [(t, index[y]) for t, y in zip(train_x, train_y, strict=True) if y != oos_label and y in index]
    train_feats = inputs.run([t for t, _ in in_train], True)[2] if need_features else None
    # class ids over the in-scope columns only: the scorers never see the out-of-scope label
    column = np.cumsum(in_scope) - 1
    train_ids = column[[i for _, i in in_train]] if in_train else np.zeros(0, dtype=int)
    neg_feats = inputs.run(pool_train, True)[2] if need_features and pool_train and "oos_class" in methods else None
    logits_in, probs_in, feats_in = inputs.run([t for t, _ in valid_in], need_features)
    logits_out, probs_out, feats_out = inputs.run(valid_out, need_features)

    def escalated_already(probs: np.ndarray) -> np.ndarray:
        conf = probs[:, in_scope].max(axis=1)
        return (conf < confidence_threshold) | ~in_scope[probs.argmax(axis=1)]

    held: dict[str, dict[str, HeldOut]] = {"validation": {}}
    scorers: dict[str, OodScorer] = {}
    k = int(ctx.option("oos_knn_k", 10))
    for method in methods:
        scorer = fit_scorer(method, train_features=train_feats, train_labels=train_ids, negative_features=neg_feats, k=k, seed=seed)
        scorers[method] = scorer
        if fitted is not None:
            fitted[method] = scorer
        held["validation"][method] = HeldOut(
            score_batch(scorer, logits_in, probs_in, feats_in, in_scope),
            score_batch(scorer, logits_out, probs_out, feats_out, in_scope),
            escalated_already(probs_in),
            escalated_already(probs_out),
        )
    if n_left and train_feats is not None and feats_in is not None:
        c = float(classifier.artifact.metadata.get("head_C") or classifier.artifact.metadata.get("probe_C") or 8.0)
        valid_ids = column[[i for _, i in valid_in]]
        fold, left = held_out_intents_fold(methods, train_feats, train_ids, feats_in, valid_ids, neg_feats, n_left, c, k, seed)
        if fold:
            held["held_out_intents"] = fold
        in_names = [lab for lab in labels if lab != oos_label]
        meta["held_out_intents"] = {"intents": [in_names[i] for i in left], "head_C": c,
                                    "stand_in": "logistic-regression head on the same features, refitted without them"}
    if ctx.flag("oos_combine", False):
        for name in pairs(methods):
            parts = name.split(COMBINE_SEP)
            for per_source in held.values():
                if all(p in per_source for p in parts):
                    per_source[name] = combine_held([per_source[p] for p in parts])
            scorers[name] = combine([scorers[p] for p in parts], [held["validation"][p].in_scores for p in parts])
            if fitted is not None:
                fitted[name] = scorers[name]
        meta["methods_compared"] = list(held["validation"])
    chosen, report = compare_methods(held, rate, fallback)
    scorer = scorers[chosen]
    scorer.save(out_dir / SCORER_FILE)
    threshold = report[chosen]["validation"]["threshold"]
    meta.update({
        "method": chosen,
        "scorer": scorer.spec(),
        "threshold": threshold if np.isfinite(threshold) else None,
        "threshold_is": "+inf: the low-confidence rule alone uses the rate up" if threshold == float("inf") else None,
        "validation": report,
        "choice_rule": "highest out-of-scope recall at the stated in-scope false-escalation rate, averaged over the "
                       "validation sources (ties: AUROC)" if report[chosen]["mean_recall"] is not None
                       else f"no out-of-scope validation data: fallback {fallback}",
        "validation_out_of_scope": {"labelled": len(valid_out) - len(pool_held), "negative_pool": len(pool_held)},
    })
    return meta


def load_scorer(root: Path, meta: dict[str, Any]) -> OodScorer | None:
    """The fitted scorer an artifact's ``customer_service.oos`` metadata names (None for older artifacts). Its
    threshold may be None (+inf: the low-confidence rule used the whole rate); the score is still reported."""
    spec = meta.get("scorer")
    if not spec:
        return None
    return OodScorer.load(spec, root / SCORER_FILE)
