"""The text-aware sequential recommender on tiny synthetic sequences where the next item is fixed by order.

Users walk a hidden cycle over the catalogue (item → its successor); each history is an arc of the cycle and
the held-out item is the next one. Without order, the item before the arc and the item after it are equally
likely (both co-occur with the arc), so popularity, item-kNN and ALS can at best guess; the sequential model
must learn the direction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from domainfm_recommendation.baselines import ImplicitMF, ItemKNN, MostPopular  # noqa: E402
from domainfm_recommendation.evaluation import rank_users  # noqa: E402
from domainfm_recommendation.model import MixWeights, TextRecommender  # noqa: E402
from domainfm_recommendation.seqmodel import SequentialRecommender, fuse, load_recommender  # noqa: E402
from domainfm_recommendation.seqnet import SeqConfig, SeqNet, attention_mask, right_align  # noqa: E402
from domainfm_recommendation.seqtrain import SeqScorer, fit_seqnet, training_windows  # noqa: E402

N_ITEMS = 24
N_USERS = 200
ARC = 6  # history length; the 7th item is held out


def _cycle_data(seed: int = 0) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(N_ITEMS)
    successor = np.empty(N_ITEMS, dtype=np.int64)
    successor[perm] = np.roll(perm, -1)
    walks = []
    for _ in range(N_USERS):
        walk = [int(rng.integers(N_ITEMS))]
        for _ in range(ARC):
            walk.append(int(successor[walk[-1]]))
        walks.append(np.asarray(walk, dtype=np.int64))
    text = rng.standard_normal((N_ITEMS, 16)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    return text, [w[:-1] for w in walks], np.asarray([w[-1] for w in walks]), successor


CFG = SeqConfig(dim=32, layers=1, heads=2, max_len=8, dropout=0.1, id_dropout=0.5, lr=3e-3, epochs=25,
                batch_size=32, seed=0)


@pytest.fixture(scope="module")
def trained() -> tuple[SeqNet, np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
    torch.set_num_threads(1)
    text, hist, targets, _ = _cycle_data()
    net, warm, log = fit_seqnet(text, hist, CFG)
    assert log.epochs_run == CFG.epochs and log.losses[-1] < log.losses[0]
    return net, warm, text, hist, targets


def _hit1(scorer, hist: list[np.ndarray], targets: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    users = [f"u{i}" for i in range(len(hist))]
    return float(np.mean(rank_users(scorer, users, hist, targets, N_ITEMS).ranks == 1))


def test_sequential_model_learns_the_order_that_unordered_baselines_cannot(trained) -> None:  # type: ignore[no-untyped-def]
    net, warm, text, hist, targets = trained
    assert _hit1(SeqScorer(net, text, warm), hist, targets) >= 0.95
    users = [f"u{i}" for i in range(len(hist))]
    for baseline in (MostPopular(), ItemKNN(20), ImplicitMF("als", 16, 0.01, iterations=15)):
        baseline.fit(users, hist, N_ITEMS)
        assert _hit1(baseline.score, hist, targets) <= 0.7, type(baseline).__name__


def test_cold_item_is_reached_through_its_text(trained) -> None:  # type: ignore[no-untyped-def]
    """An item with no training interaction whose text is the true next item's ranks near the top."""
    net, warm, text, hist, targets = trained
    twin_rank = []
    for h, t in zip(hist[:20], targets[:20], strict=True):
        scores = SeqScorer(net, np.vstack([text, text[t][None]]), np.append(warm, False))(["u"], [h])[0]
        scores[h] = -np.inf
        twin_rank.append(int((scores > scores[N_ITEMS]).sum()) + 1)
    assert np.median(twin_rank) <= 2 and max(twin_rank) <= 5, twin_rank


def test_fuse_adds_the_weighted_mix_to_the_networks_log_probabilities() -> None:
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    mix = np.array([[0.0, 1.0, 0.5], [0.2, 0.0, 0.1]])
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(fuse(logits, mix, 0.0), log_p)
    np.testing.assert_allclose(fuse(logits, mix, 2.0), log_p + 2.0 * mix)
    np.testing.assert_allclose(fuse(logits + 7.0, mix, 2.0), fuse(logits, mix, 2.0))  # shift-free per row


class _Split:
    """The parts of an IndexedSplit that validation ranking reads."""

    def __init__(self, hist: list[np.ndarray], targets: np.ndarray, n_items: int) -> None:
        self.eval_users = [f"u{i}" for i in range(len(hist))]
        self._hist, self._targets, self.n_items = hist, targets, n_items

    def hist(self, which: str) -> list[np.ndarray]:
        return self._hist

    def targets(self, which: str) -> np.ndarray:
        return self._targets


class _Mix:
    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def score(self, users, histories):  # type: ignore[no-untyped-def]
        return self.scores[: len(histories)]


def test_the_mix_weight_is_chosen_on_validation() -> None:
    from domainfm_recommendation.seqpipeline import select_mix_weight

    n_users, n_items = 30, 8
    targets = np.arange(n_users) % (n_items - 1) + 1
    hist = [np.array([0]) for _ in range(n_users)]
    flat = np.zeros((n_users, n_items))  # the network: no preference (ties by position)
    knows = np.zeros((n_users, n_items))
    knows[np.arange(n_users), targets] = 1.0  # the mix: the held-out item on top
    weight, by_weight, result = select_mix_weight(_Split(hist, targets, n_items), lambda u, h: flat[: len(h)],
                                                  _Mix(knows), weights=(0.0, 1.0))
    assert weight == 1.0 and by_weight["1.0"] == 1.0 > by_weight["0.0"] and (result.ranks == 1).all()
    weight, _, _ = select_mix_weight(_Split(hist, targets, n_items), lambda u, h: flat[: len(h)],
                                     _Mix(np.zeros((n_users, n_items))), weights=(0.0, 1.0))
    assert weight == 0.0  # a tie keeps the network alone


def test_padding_does_not_change_a_history_score(trained) -> None:  # type: ignore[no-untyped-def]
    net, warm, text, hist, _ = trained
    scorer = SeqScorer(net, text, warm)
    alone = scorer(["a"], [hist[0][-3:]])
    batched = scorer(["a", "b"], [hist[0][-3:], hist[1]])  # the short history is left-padded here
    assert np.isfinite(batched).all()
    np.testing.assert_allclose(alone[0], batched[0], rtol=1e-4, atol=1e-5)


def test_attention_mask_is_causal_and_hides_padding() -> None:
    seqs, pad = right_align([np.array([5, 6]), np.array([1, 2, 3])], 8)
    assert seqs.tolist() == [[-1, 5, 6], [1, 2, 3]]
    mask = attention_mask(torch.from_numpy(pad), heads=2)
    assert mask.shape == (4, 3, 3)
    blocked = mask[0].numpy()  # row 0 = first user, head 0
    assert blocked[0].tolist() == [False, True, True]  # padding sees itself only
    assert blocked[1].tolist() == [True, False, True] and blocked[2].tolist() == [True, False, False]


def test_training_windows_cover_each_transition_once() -> None:
    windows = training_windows([np.arange(12), np.array([7]), np.array([1, 2])], max_len=4)
    pairs = [(int(w[j]), int(w[j + 1])) for w in windows for j in range(len(w) - 1)]
    assert sorted(pairs) == sorted([(i, i + 1) for i in range(11)] + [(1, 2)])
    assert max(len(w) for w in windows) == 5


def test_sampled_softmax_trains_too() -> None:
    torch.set_num_threads(1)
    text, hist, targets, _ = _cycle_data(seed=1)
    cfg = SeqConfig(**{**CFG.as_dict(), "negatives": 8, "epochs": 30})
    net, warm, _ = fit_seqnet(text, hist, cfg)
    assert _hit1(SeqScorer(net, text, warm), hist, targets) >= 0.8


def test_save_load_serve_and_add_items(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from domainfm_recommendation.predictor import RecommendationPredictor

    net, warm, text, hist, targets = trained
    ids = [f"i{k}" for k in range(N_ITEMS)]
    users = [f"u{k}" for k in range(len(hist))]
    base = TextRecommender.fit(ids, [f"title {k}" for k in range(N_ITEMS)], text, users, hist,
                               MixWeights(text=1.0, collab=1.0, popularity=0.0, half_life=3.0, neighbours=5))
    model = SequentialRecommender.from_parts(base, net, warm, mix_weight=0.5)
    before = model.score(users[:5], hist[:5])
    np.testing.assert_allclose(before, fuse(SeqScorer(net, text, warm)(users[:5], hist[:5]),
                                            base.score(users[:5], hist[:5]), 0.5), rtol=1e-6)
    model.save(tmp_path / "m")
    loaded = load_recommender(tmp_path / "m")
    assert isinstance(loaded, SequentialRecommender) and loaded.mix_weight == 0.5
    np.testing.assert_allclose(loaded.score(users[:5], hist[:5]), before, rtol=1e-5, atol=1e-6)
    predictor = RecommendationPredictor.load(tmp_path / "m")
    pred = predictor.predict([{"user": "u0", "k": 1}])[0]
    assert pred.ranking[0].id == ids[int(targets[0])] and pred.ranking[0].reason
    cold = predictor.predict([{"user": "nobody", "k": 3}])[0]  # no history: the most popular items
    assert cold.extra["fallback"] == "popularity" and len(cold.ranking) == 3
    # a new item (text only, no ID vector) is scored at once; its text is the next item's text
    assert loaded.add_items(["new"], ["brand new"], text[int(targets[0])][None]) == 1
    top = [r.item for r in loaded.recommend(loaded.histories["u0"], k=3)]
    assert "new" in top
    assert (loaded.fresh_slots, loaded.fresh_position) == (2, 19)  # the plugin's new-arrival slots, saved
    assert loaded.fresh_items()[-1] and not loaded.fresh_items()[: N_ITEMS].any()
    loaded.fresh_slots, loaded.fresh_position = 1, 1  # the first place goes to the best item nobody has seen
    assert loaded.recommend(loaded.histories["u0"], k=3)[0].item == "new"


def test_rec_train_sequential_kind_on_demo_serves_through_cli(tiny_model_dir: Path, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from domainfm_recommendation.cli import rec

    out = tmp_path / "seq"
    result = CliRunner().invoke(rec, ["train", "--data", "demo", "--out", str(out), "--base-model", str(tiny_model_dir),
                                      "--quick", "--device", "cpu", "--model-kind", "sequential",
                                      "--set", "benefit.energy_tracking=false"])
    assert result.exit_code == 0, result.output
    assert "trained sequential model" in result.output
    config = json.loads((out / "artifact" / "config.json").read_text())  # --out is the run directory
    assert config["model_kind"] == "sequential" and (out / "artifact" / "sequential.safetensors").is_file()
    shown = CliRunner().invoke(rec, ["recommend", "u01", "-k", "4", "--artifact", str(out), "--json"])
    assert shown.exit_code == 0, shown.output
    ranking = json.loads(shown.output)["ranking"]
    assert len(ranking) == 4 and len({r["id"] for r in ranking}) == 4


def test_unknown_model_kind_is_one_config_error() -> None:
    from domainfm.errors import ConfigError

    from domainfm_recommendation.plugin import model_kind_option

    assert model_kind_option("sequential") == "sequential"
    with pytest.raises(ConfigError, match=r"options.model_kind: 'sasrec' is not one of"):
        model_kind_option("sasrec")


def test_items_without_training_interactions_are_not_trained_as_negatives() -> None:
    from domainfm_recommendation.seqtrain import _loss

    torch.manual_seed(0)
    net = SeqNet(4, 6, SeqConfig(dim=4, heads=1, layers=1))
    table = torch.randn(6, 4)
    states = torch.randn(2, 3, 4)
    targets = torch.tensor([[-1, 0, 2], [1, 2, 0]])
    warm_ids = torch.tensor([0, 1, 2])  # items 3-5 never occur in training
    loss = _loss(net, table, states, targets, torch.Generator(), warm_ids)
    h = states[targets >= 0]
    expected = torch.nn.functional.cross_entropy(h @ table[:3].T, targets[targets >= 0])
    assert torch.allclose(loss, expected)


def test_http_route_serves_the_sequential_model(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from domainfm.manager import PluginManager
    from domainfm.serve.app import create_app
    from domainfm.types import Artifact

    net, warm, text, hist, targets = trained
    ids = [f"i{k}" for k in range(N_ITEMS)]
    users = [f"u{k}" for k in range(len(hist))]
    base = TextRecommender.fit(ids, ids, text, users, hist, MixWeights(neighbours=5))
    SequentialRecommender.from_parts(base, net, warm).save(tmp_path / "m")
    Artifact(path=tmp_path / "m", domain="recommendation", kind="text-recommender", base_model="none").save_metadata()
    app = create_app(PluginManager(select=["recommendation"]).load(), artifacts={"recommendation": tmp_path / "m"})
    with TestClient(app) as client:
        for u in (0, 1, 2):
            resp = client.post("/recommendation/recommend", json={"user": f"u{u}", "k": 1})
            assert resp.status_code == 200, resp.text
            assert resp.json()["predictions"][0]["ranking"][0]["id"] == ids[int(targets[u])]
        # a new user described by an ordered history: the item after its last one
        walk = [ids[int(i)] for i in hist[3]]
        resp = client.post("/recommendation/recommend", json={"user": "new", "history": walk, "k": 1})
        assert resp.json()["predictions"][0]["ranking"][0]["id"] == ids[int(targets[3])]
