"""The plugin end to end on the demo set with a tiny random-init encoder, and the ``rec`` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from domainfm.testing import check_plugin_contract


def test_registration_does_not_import_torch() -> None:
    code = (
        "import sys, click\n"
        "from domainfm.manager import PluginManager\n"
        "pm = PluginManager(select=['recommendation']).load()\n"
        "assert 'recommendation' in pm.domains, pm.plugins\n"
        "g = click.Group('x'); pm.hook.domainfm_register_commands(cli=g)\n"
        "assert 'rec' in g.commands\n"
        "bad = [m for m in ('torch', 'faiss', 'transformers', 'implicit', 'datasets') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def contract(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from domainfm.manager import PluginManager

    pm = PluginManager(select=["recommendation"]).load()
    return check_plugin_contract(
        pm, "recommendation", source="demo", output_dir=tmp_path_factory.mktemp("runs"),
        overrides=[f"model.base={tiny_model_dir}", "device=cpu", "options.quick=true", "options.baselines=quick"],
    )


def test_contract_on_demo(contract) -> None:  # type: ignore[no-untyped-def]
    ev = contract.evaluation
    assert ev.key_metric == "ndcg_at_10" and 0.0 <= ev.metrics["ndcg_at_10"] <= 1.0
    assert set(ev.baselines) == {"most_popular", "item_knn", "implicit_als", "implicit_bpr"}
    assert ev.n_items == 60 and len(ev.outcomes.ids) == 60
    assert ev.extra["artifact_user_fields"] == 0
    assert all(p.ranking for p in contract.predictions)
    names = {c.name for c in contract.contributions}
    assert {"clicks_lift_over_most_popular", "exposure_gini", "artifact_user_fields"} <= names
    assert set(contract.data.tables) == {"train", "validation", "test", "items"}


def test_no_test_event_in_training_tables(contract) -> None:  # type: ignore[no-untyped-def]
    tables = contract.data.tables
    train = set(zip(tables["train"]["user"], tables["train"]["item"], strict=True))
    test = set(zip(tables["test"]["user"], tables["test"]["item"], strict=True))
    val = set(zip(tables["validation"]["user"], tables["validation"]["item"], strict=True))
    assert not train & test and not train & val and not val & test


def test_cli_commands(contract, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from domainfm_recommendation.cli import rec

    art = str(contract.artifact.path)
    runner = CliRunner()
    out = runner.invoke(rec, ["recommend", "u01", "-k", "5", "--artifact", art])
    assert out.exit_code == 0, out.output
    assert len([line for line in out.output.splitlines() if line.strip() and not line.startswith("#")]) == 5
    out = runner.invoke(rec, ["similar", "w01", "-k", "3", "--artifact", art, "--json"])
    assert out.exit_code == 0 and len(json.loads(out.output)["ranking"]) == 3
    out = runner.invoke(rec, ["similar", "nope", "--artifact", art])
    assert out.exit_code != 0 and "unknown item 'nope'" in out.output
    target = tmp_path / "all.jsonl"
    out = runner.invoke(rec, ["batch", "-k", "4", "--artifact", art, "--out", str(target)])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == 60 and all(len(r["items"]) == 4 for r in rows)
    out = runner.invoke(rec, ["recommend", "stranger", "--artifact", art])
    assert out.exit_code == 0 and "popular" in out.output
    out = runner.invoke(rec, ["recommend", "u01"])
    assert out.exit_code != 0 and "--artifact" in out.output


def test_cold_item_added_through_predictor(contract) -> None:  # type: ignore[no-untyped-def]
    from domainfm_recommendation.predictor import RecommendationPredictor

    pred = RecommendationPredictor.load(contract.artifact.path)
    pred._encoder = _StubEncoder()  # the tiny encoder's geometry is random: steer it explicitly
    history = ["w16", "w17"]
    pos, _ = pred.model.history_of(None, history)
    target = pred.model.embeddings[pos].mean(axis=0)
    _StubEncoder.vector = target / (float((target**2).sum()) ** 0.5)
    assert pred.add_items([{"item": "w99", "title": "Comets", "text": "comets in the night sky"}]) == 1
    full = pred.predict([{"history": history, "k": 1000}])[0].ranking
    assert "w99" in [r.id for r in full] and len(full) == 43 - 2  # in the ranking at once, seen excluded
    cold_user = pred.predict([{"history": ["w99"], "k": 5}])[0]
    assert len(cold_user.ranking) == 5 and "w99" not in [r.id for r in cold_user.ranking]


class _StubEncoder:
    vector = None
    dim = 0

    def encode(self, texts, batch_size: int = 64):  # type: ignore[no-untyped-def]
        import numpy as np

        return np.tile(np.asarray(self.vector, dtype=np.float32), (len(texts), 1))


@pytest.mark.shared_data
def test_movielens_reader(shared_data_dir: Path) -> None:
    from domainfm_recommendation.sources import load_split

    path = shared_data_dir / "recommendation" / "ml-latest-small"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    split = load_split(str(path))
    assert len(split.test) == len(split.validation) == 610
    assert len(split.items) == 9742 and len(split.train) == 100836 - 2 * 610
    held = split.held_out_pairs()
    assert not {(e.user, e.item) for e in split.train} & held
    assert any("tags:" in it.text for it in split.items)
