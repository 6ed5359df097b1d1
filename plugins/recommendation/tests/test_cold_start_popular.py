"""A user without history gets the items most users interacted with (issue 22 item 4), in the CLI and over HTTP.

The mix weights put 0 on popularity (what the validation grid picked on the demo set), which used to make
every score 0 and return the first catalogue items instead of the popular ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from domainfm_recommendation.model import MixWeights, TextRecommender

# item -> number of users who interacted with it: i07 > i03 > i05 > everything else
COUNTS = {"i07": 6, "i03": 5, "i05": 4, "i01": 1, "i02": 1}


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from domainfm.types import Artifact

    items = [f"i{n:02d}" for n in range(10)]
    pos = {it: i for i, it in enumerate(items)}
    users: list[str] = []
    histories: list[np.ndarray] = []
    for u in range(6):  # user u interacted with every item whose count is > u
        users.append(f"u{u}")
        histories.append(np.asarray([pos[it] for it, c in COUNTS.items() if c > u], dtype=np.int64))
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((len(items), 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    model = TextRecommender.fit(items, [f"title {it}" for it in items], emb, users, histories,
                                MixWeights(text=1.0, collab=1.0, popularity=0.0, half_life=3.0, neighbours=5))
    out = tmp_path_factory.mktemp("rec-artifact")
    model.save(out)
    Artifact(path=out, domain="recommendation", kind="text-recommender", base_model="none").save_metadata()
    return out


def test_model_popular_ignores_zero_popularity_weight(artifact_dir: Path) -> None:
    model = TextRecommender.load(artifact_dir)
    assert model.weights.popularity == 0.0
    recs = model.recommend(np.zeros(0, dtype=np.int64), k=3)
    assert [r.item for r in recs] == ["i07", "i03", "i05"]
    assert recs[0].score == pytest.approx(1.0) and recs[0].score > recs[1].score > recs[2].score > 0
    assert "6 users" in recs[0].reason


def test_cli_unknown_user_gets_most_popular(artifact_dir: Path) -> None:
    from domainfm_recommendation.cli import rec

    out = CliRunner().invoke(rec, ["recommend", "u001", "-k", "3", "--artifact", str(artifact_dir), "--json"])
    assert out.exit_code == 0, out.output
    pred = json.loads(out.output)
    assert [r["id"] for r in pred["ranking"]] == ["i07", "i03", "i05"]
    assert all(r["score"] > 0 for r in pred["ranking"]) and pred["extra"]["fallback"] == "popularity"


def test_http_unknown_user_gets_most_popular(artifact_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from domainfm.manager import PluginManager
    from domainfm.serve.app import create_app

    app = create_app(PluginManager(select=["recommendation"]).load(), artifacts={"recommendation": artifact_dir})
    with TestClient(app) as client:
        resp = client.post("/recommendation/recommend", json={"user": "u001", "k": 3})
        assert resp.status_code == 200, resp.text
        ranking = resp.json()["predictions"][0]["ranking"]
        assert [r["id"] for r in ranking] == ["i07", "i03", "i05"]
        # a known user's seen items are still excluded; the popular fallback is for empty histories only
        known = client.post("/recommendation/recommend", json={"user": "u0", "k": 3}).json()["predictions"][0]
        assert not {"i07", "i03", "i05", "i01", "i02"} & {r["id"] for r in known["ranking"]}
