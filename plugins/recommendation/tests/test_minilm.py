"""Integration with the packaged MiniLM (slow): a cold item with only text reaches the lists at once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_cold_item_with_minilm_on_demo(tmp_path: Path) -> None:
    from domainfm.config import build_config
    from domainfm.manager import PluginManager
    from domainfm.runner import Runner
    from domainfm_recommendation.predictor import RecommendationPredictor

    config = build_config(None, ["data=demo", "device=cpu", "options.quick=true", "benefit.energy_tracking=false",
                                 "model.base=sentence-transformers/all-MiniLM-L6-v2"])
    runner = Runner(PluginManager(select=["recommendation"]).load(), config)
    artifact = runner.train_run("recommendation", run_dir=tmp_path / "model").artifact
    assert artifact is not None
    assert artifact.metadata["validation"]["ndcg_at_10"] > 0
    pred = RecommendationPredictor.load(artifact.path)
    history = ["w16", "w17", "w18", "w19"]  # every astronomy workshop
    assert pred.add_items([{"item": "w99", "title": "Comets and the Night Sky",
                            "text": "Spot comets with binoculars and a telescope; astronomy for beginners."}]) == 1
    ranking = [r.id for r in pred.predict([{"user": "new-user", "history": history, "k": 10}])[0].ranking]
    assert "w99" in ranking
    similar = [r.id for r in pred.predict([{"item": "w99", "k": 3}])[0].ranking]
    assert set(similar) & set(history)
