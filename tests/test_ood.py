"""Out-of-scope scorers (domainfm.engine.ood) on synthetic embeddings: four known classes, a fifth held out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domainfm.engine.ood import (
    METHODS,
    HeldOut,
    OodScorer,
    auroc,
    compare_methods,
    energy,
    fit_scorer,
    knn_distance,
    threshold_for_rate,
)

DIM = 16


def _cluster(rng: np.random.Generator, centre: np.ndarray, n: int, spread: float = 0.35) -> np.ndarray:
    x = centre[None, :] + spread * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def clusters() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = np.eye(DIM)[:6] * 1.0
    train = np.vstack([_cluster(rng, centres[c], 40) for c in range(4)])
    valid = np.vstack([_cluster(rng, centres[c], 20) for c in range(4)])
    held_out_class = _cluster(rng, centres[4], 40)  # a class never trained on
    negatives = _cluster(rng, centres[5], 40)  # the negative pool: another region again
    return {"train": train, "y": np.repeat(np.arange(4), 40), "valid": valid, "held_out": held_out_class, "neg": negatives}


def test_threshold_for_rate_flags_at_most_the_rate() -> None:
    scores = np.arange(100, dtype=float)
    t = threshold_for_rate(scores, 0.05)
    assert (scores > t).sum() == 5
    already = np.zeros(100, dtype=bool)
    already[:3] = True  # three items flagged by another rule use three of the five
    t = threshold_for_rate(scores, 0.05, already)
    assert ((scores > t) | already).sum() == 5
    already[:6] = True  # the other rule alone is over budget: this score flags nothing
    assert threshold_for_rate(scores, 0.05, already) == float("inf")
    assert threshold_for_rate(np.zeros(0), 0.05) == float("inf")


def test_ties_at_the_threshold_are_not_flagged() -> None:
    scores = np.array([0.0] * 90 + [1.0] * 10)
    t = threshold_for_rate(scores, 0.05)
    assert (scores > t).mean() <= 0.05


@pytest.mark.parametrize("method", ["knn", "mahalanobis", "oos_class"])
def test_embedding_scorers_separate_a_held_out_class(clusters: dict[str, np.ndarray], method: str) -> None:
    scorer = fit_scorer(method, train_features=clusters["train"], train_labels=clusters["y"], negative_features=clusters["neg"], k=5)
    s_in = scorer.score(features=clusters["valid"])
    s_out = scorer.score(features=clusters["held_out"])
    if method == "oos_class":
        # trained on a pool from elsewhere, it still ranks the unseen class above the known ones on average
        assert s_out.mean() > s_in.mean()
    else:
        assert auroc(s_in, s_out) > 0.95


def test_logit_scorers_follow_their_definitions() -> None:
    logits = np.array([[5.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    msp = fit_scorer("msp").score(probs=probs)
    assert np.allclose(msp, 1 - probs.max(1)) and msp[1] > msp[0]
    e = fit_scorer("energy").score(logits=logits)
    assert np.allclose(e, -np.log(np.exp(logits).sum(1))) and e[1] > e[0]
    assert np.allclose(energy(logits + 1000.0), e - 1000.0)  # stable for large logits
    with pytest.raises(ValueError, match="needs logits"):
        fit_scorer("energy").score(probs=probs)


def test_knn_distance_is_one_minus_the_kth_similarity() -> None:
    bank = np.eye(3, dtype=np.float32)
    x = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    assert knn_distance(x, bank, 1)[0] == pytest.approx(0.0)
    assert knn_distance(x, bank, 2)[0] == pytest.approx(1.0)
    assert knn_distance(x, bank, 50)[0] == pytest.approx(1.0)  # k is capped at the bank's size


def test_saved_scorers_score_the_same(clusters: dict[str, np.ndarray], tmp_path: Path) -> None:
    for method in METHODS:
        scorer = fit_scorer(method, train_features=clusters["train"], train_labels=clusters["y"], negative_features=clusters["neg"])
        path = tmp_path / f"{method}.safetensors"
        scorer.save(path)
        again = OodScorer.load(scorer.spec(), path)
        logits = clusters["valid"] @ np.eye(DIM, 4, dtype=np.float32) * 5
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        kwargs = {"probs": probs, "logits": logits, "features": clusters["valid"]}
        assert np.allclose(scorer.score(**kwargs), again.score(**kwargs))
    with pytest.raises(FileNotFoundError, match="missing"):
        OodScorer.load({"method": "knn", "params": {"k": 3}}, tmp_path / "absent.safetensors")
    with pytest.raises(ValueError, match="not one of"):
        OodScorer("cosine")


def test_compare_methods_keeps_the_best_recall_at_the_rate() -> None:
    rng = np.random.default_rng(1)
    good = HeldOut(rng.normal(0, 1, 400), rng.normal(4, 1, 100))
    weak = HeldOut(rng.normal(0, 1, 400), rng.normal(1, 1, 100))
    chosen, report = compare_methods({"pool": {"weak": weak, "good": good}}, 0.05, fallback="weak")
    assert chosen == "good"
    assert report["good"]["pool"]["out_of_scope_recall"] > report["weak"]["pool"]["out_of_scope_recall"]
    for method in ("good", "weak"):
        assert report[method]["pool"]["in_scope_flag_rate"] <= 0.05
    # without out-of-scope examples nothing can be compared: the fallback is kept, thresholds still respect the rate
    chosen, report = compare_methods({"pool": {"weak": HeldOut(weak.in_scores, np.zeros(0)), "good": HeldOut(good.in_scores, np.zeros(0))}},
                                     0.05, fallback="weak")
    assert chosen == "weak" and report["weak"]["mean_recall"] is None


def test_a_near_source_counts_as_much_as_a_large_far_one() -> None:
    rng = np.random.default_rng(2)
    in_scores = rng.normal(0, 1, 400)
    # "far" (1,000 easy items): both methods catch everything; "near" (40 items): only "b" catches them
    far = {"a": HeldOut(in_scores, rng.normal(8, 1, 1000)), "b": HeldOut(in_scores, rng.normal(8, 1, 1000))}
    near = {"a": HeldOut(in_scores, rng.normal(0.5, 1, 40)), "b": HeldOut(in_scores, rng.normal(4, 1, 40))}
    chosen, report = compare_methods({"far": far, "near": near}, 0.05, fallback="a")
    assert chosen == "b"
    assert report["b"]["mean_recall"] == pytest.approx((report["b"]["far"]["out_of_scope_recall"] + report["b"]["near"]["out_of_scope_recall"]) / 2)


def test_a_combination_flags_what_either_component_sees(clusters: dict[str, np.ndarray], tmp_path: Path) -> None:
    from domainfm.engine.ood import combine, combine_held

    knn = fit_scorer("knn", train_features=clusters["train"], train_labels=clusters["y"], k=5)
    msp = fit_scorer("msp")
    # the classifier hesitates on `near` (flat probabilities) but it sits inside a known cluster; `far` is the reverse
    near_x, far_x = clusters["valid"][:20], clusters["held_out"][:20]
    confident, flat = np.tile([0.97, 0.01, 0.01, 0.01], (20, 1)), np.full((20, 4), 0.25)
    in_x, in_p = clusters["valid"][20:], np.tile([0.9, 0.04, 0.03, 0.03], (60, 1))
    in_p[::7] = [0.6, 0.2, 0.1, 0.1]
    held = {m: HeldOut(s.score(probs=in_p, features=in_x), np.r_[s.score(probs=flat, features=near_x), s.score(probs=confident, features=far_x)])
            for m, s in (("msp", msp), ("knn", knn))}
    both = combine_held([held["msp"], held["knn"]])
    chosen, report = compare_methods({"v": {**held, "msp+knn": both}}, 0.05, fallback="msp")
    alone = max(report["msp"]["v"]["out_of_scope_recall"], report["knn"]["v"]["out_of_scope_recall"])
    assert chosen == "msp+knn" and report["msp+knn"]["v"]["out_of_scope_recall"] >= 0.85 > 0.6 >= alone
    scorer = combine([msp, knn], [held["msp"].in_scores, held["knn"].in_scores])
    assert scorer.method == "msp+knn" and scorer.needs_features
    assert np.allclose(scorer.score(probs=in_p, features=in_x), both.in_scores)
    scorer.save(tmp_path / "c.safetensors")
    again = OodScorer.load(scorer.spec(), tmp_path / "c.safetensors")
    assert np.allclose(again.score(probs=flat, features=near_x), scorer.score(probs=flat, features=near_x))
    with pytest.raises(ValueError, match="combination"):
        OodScorer("msp+msp")
