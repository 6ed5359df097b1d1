"""The recommender on a hand-made catalogue with controlled embeddings (no encoder needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domainfm_recommendation.baselines import ImplicitMF, ItemKNN, MostPopular
from domainfm_recommendation.model import MixWeights, TextRecommender, recency_weights
from domainfm_recommendation.predictor import RecommendationPredictor

DIM = 8


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def model() -> TextRecommender:
    """Two topics (items 0-4 on axis 0, items 5-9 on axis 1); users stick to one topic."""
    rng = np.random.default_rng(0)
    emb = np.zeros((10, DIM), dtype=np.float32)
    emb[:5, 0] = 1.0
    emb[5:, 1] = 1.0
    emb = _unit(emb + 0.05 * rng.standard_normal(emb.shape))
    histories = [np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([5, 6, 7]), np.array([6, 7, 8]), np.array([0, 2, 4])]
    users = ["a", "b", "c", "d", "e"]
    return TextRecommender.fit([f"i{k}" for k in range(10)], [f"title {k}" for k in range(10)], emb, users,
                               histories, MixWeights(text=0.5, collab=1.0, popularity=0.1, half_life=3.0, neighbours=5))


def test_recency_weights() -> None:
    w = recency_weights(4, 1.0)
    assert w.tolist() == [0.125, 0.25, 0.5, 1.0]
    assert recency_weights(3, float("inf")).tolist() == [1.0, 1.0, 1.0]


def test_recommends_same_topic_excluding_seen(model: TextRecommender) -> None:
    recs = model.recommend(model.histories["c"], k=3)
    ids = [r.item for r in recs]
    assert ids[0] in {"i8", "i9"} and not {"i5", "i6", "i7"} & set(ids)
    assert "i" in recs[0].reason


def test_cold_item_is_recommendable_at_once(model: TextRecommender) -> None:
    vec = np.zeros((1, DIM), dtype=np.float32)
    vec[0, 1] = 1.0
    assert model.add_items(["new"], ["brand new"], vec) == 1
    recs = [r.item for r in model.recommend(model.histories["c"], k=3)]
    assert "new" in recs
    assert "new" not in [r.item for r in model.recommend(model.histories["a"], k=3)]


def test_dense_and_candidate_paths_agree(model: TextRecommender) -> None:
    model.build_index()
    dense = [r.item for r in model.recommend(model.histories["a"], k=4)]
    model.dense_limit = 1  # force FAISS candidate retrieval
    assert [r.item for r in model.recommend(model.histories["a"], k=4)] == dense


def test_save_load_roundtrip(model: TextRecommender, tmp_path: Path) -> None:
    model.save(tmp_path / "m")
    loaded = TextRecommender.load(tmp_path / "m")
    h = model.histories["d"]
    assert np.allclose(loaded.score(["d"], [h]), model.score(["d"], [h]))
    assert loaded.weights == model.weights


def test_predictor_bad_requests_are_defined(model: TextRecommender) -> None:
    pred = RecommendationPredictor(model)
    unknown_user, new_user, bad_item, empty, bad_k, similar = pred.predict([
        {"user": "nobody", "k": 3},
        {"user": "nobody", "history": ["i5", "ghost"], "k": 3},
        {"item": "ghost"},
        {},
        {"user": "a", "k": "ten"},
        {"item": "i0", "k": 2},
    ])
    assert unknown_user.extra["fallback"] == "popularity" and len(unknown_user.ranking) == 3
    assert new_user.extra["unknown_history_items"] == ["ghost"] and new_user.ranking[0].id in {"i6", "i7", "i8", "i9"}
    assert bad_item.abstained and "unknown item" in bad_item.explanation["error"]
    assert empty.abstained and bad_k.abstained
    assert [r.id for r in similar.ranking][0] in {"i1", "i2", "i3", "i4"}
    assert 0.0 <= pred.predict([{"user": "a"}])[0].confidence <= 1.0


def test_baselines_on_toy_data() -> None:
    histories = [np.array([0, 1]), np.array([0, 1, 2]), np.array([0, 3])]
    pop = MostPopular().fit(["a", "b", "c"], histories, 5).score(["x"], [np.array([])])
    assert pop[0].tolist() == [3, 2, 1, 1, 0]
    knn = ItemKNN(neighbours=None).fit(["a", "b", "c"], histories, 5)
    s = knn.score(["u"], [np.array([1])])[0]
    assert s[0] == pytest.approx(2 / np.sqrt(3 * 2)) and s[4] == 0
    als = ImplicitMF("als", factors=4, iterations=3).fit(["a", "b", "c"], histories, 5)
    assert als.score(["a", "zz"], histories[:2]).shape == (2, 5)
    assert np.all(als.score(["zz"], [np.array([])]) == 0)


def test_http_route(model: TextRecommender, tmp_path: Path) -> None:
    """``POST /recommendation/recommend`` through the server (record model, micro-batcher, domainfm_predict)."""
    from fastapi.testclient import TestClient

    from domainfm.config import RunConfig
    from domainfm.manager import PluginManager
    from domainfm.serve.app import create_app
    from domainfm.serve.settings import ServeSettings
    from domainfm.types import Artifact

    from domainfm_recommendation.plugin import ARTIFACT_KIND, DOMAIN

    path = model.save(tmp_path / "artifact")
    Artifact(path=path, domain=DOMAIN, kind=ARTIFACT_KIND, base_model="none").save_metadata()
    app = create_app(PluginManager(select=[DOMAIN]).load(), RunConfig(device="cpu", output_dir=tmp_path),
                     {DOMAIN: path}, ServeSettings(runs_dir=tmp_path))
    with TestClient(app) as client:
        batch = client.post(f"/{DOMAIN}/recommend", json={"records": [{"user": "a", "k": 2}, {"item": "zz"}]})
        one = client.post(f"/{DOMAIN}/recommend", json={"user": "c", "k": 3})
        bad = client.post(f"/{DOMAIN}/recommend", json={"records": [{"user": "a", "k": 0}, {"k": 2}]})
        batching = client.get("/health").json()["domains"][DOMAIN]["batching"]
    first, second = batch.json()["predictions"]
    assert len(first["ranking"]) == 2 and second["abstained"] is True
    assert [r["id"] for r in one.json()["predictions"][0]["ranking"]][0] in {"i8", "i9"}
    assert bad.status_code == 422
    assert [e["loc"] for e in bad.json()["detail"]] == [["body", "records", 0, "k"], ["body", "records", 1]]
    assert batching["requests"] == 2 and batching["records"] == 3  # both answered through the micro-batcher
