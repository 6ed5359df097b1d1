"""The sequential benchmark's RecBole shims (benchmarks/recommendation/recbole_compat.py) and its split feed.

The shims are tested on their own; the end-to-end check (the pinned split through RecBole's atomic files and
back into our ranking) runs only where the benchmark's setup step installed RecBole.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "recommendation"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_rec_bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def compat() -> ModuleType:
    return _load("recbole_compat")


def test_numpy_aliases_added_once(compat: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    for old in compat.NUMPY_ALIASES:
        monkeypatch.delattr(np, old, raising=False)
    assert sorted(compat.install_numpy_aliases()) == sorted(compat.NUMPY_ALIASES)
    assert np.float_ is np.float64 and np.complex_ is np.complex128 and np.unicode_ is np.str_  # type: ignore[attr-defined]
    assert compat.install_numpy_aliases() == []


def test_pandas_agg_len_is_per_row(compat: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pd.Series, "agg", pd.Series.agg)  # restored after the test
    monkeypatch.setattr(pd.Series, "aggregate", pd.Series.aggregate)
    series = pd.Series([np.array([1, 2]), np.array([3]), np.array([4, 5, 6])])
    compat.install_pandas_agg_len()
    assert series.agg(len).tolist() == [2, 1, 3]
    assert series.agg(np.concatenate).tolist() == [1, 2, 3, 4, 5, 6]  # whole-Series meaning kept
    assert pd.Series([1.0, 3.0]).agg("mean") == 2.0
    assert compat.install_pandas_agg_len() is False  # already per row: no second patch


def test_tensorboard_stub_only_when_absent(compat: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else object())
    assert compat.install_tensorboard_stub() is True
    stub = sys.modules["torch.utils.tensorboard"]
    with pytest.raises(RuntimeError, match="tensorboard is not installed"):
        stub.SummaryWriter("x")
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    assert compat.install_tensorboard_stub() is False


def test_anomaly_mode_switched_back_off(compat: ModuleType) -> None:
    import torch

    torch.autograd.set_detect_anomaly(True)  # what importing RecBole's sine model does
    try:
        assert compat.undo_anomaly_mode() is True
        assert not torch.is_anomaly_enabled()
        assert compat.undo_anomaly_mode() is False
    finally:
        torch.autograd.set_detect_anomaly(False)


@pytest.mark.slow
def test_pinned_split_round_trips_through_recbole(compat: ModuleType, tmp_path: Path) -> None:
    if not (compat.SITE / "recbole").is_dir():
        pytest.skip(f"RecBole not installed at {compat.SITE} (bash benchmarks/recommendation/setup_sequential.sh)")
    compat.import_recbole()
    import torch

    assert not torch.is_anomaly_enabled()  # RecBole's sine module turned it on at import
    sys.path.insert(0, str(BENCH))
    try:
        import recbole_runner as rr
    finally:
        sys.path.remove(str(BENCH))
    from domainfm_recommendation.pipeline import evaluate_scorer, index_split
    from domainfm_recommendation.protocol import prepare
    from domainfm_recommendation.readers import Interaction, ItemRecord

    rng = np.random.default_rng(0)
    items = [ItemRecord(f"m{k}", f"movie {k}", f"text {k}") for k in range(30)]  # m29: no interaction
    events = [Interaction(f"u{u}", f"m{int(i)}", 1.0, float(t), u * 100 + t)
              for u in range(12) for t, i in enumerate(rng.choice(29, size=8, replace=False))]
    ix = index_split(prepare(events, items))
    rr.write_atomic_files(tmp_path / "validation", ix, "validation", max_len=5)
    config, dataset, train_data = rr.build("SASRec", tmp_path / "validation", {"learning_rate": 1e-3}, 5, 0)
    # every training row: a prefix of a user's train history (last 5 items) -> its next item, same ids as ours
    seqs = dataset.inter_feat["item_id_list"].numpy()
    lengths = dataset.inter_feat["item_length"].numpy()
    tokens = dataset.field2id_token["item_id"]
    expected = sum(len(h) - 1 for h in ix.train_hist)
    assert len(train_data.dataset) == expected
    u0 = [ix.item_ids[p] for p in ix.train_hist[0]]
    first_rows = {tuple(tokens[s[:n]]) for s, n in zip(seqs[: len(u0) - 1], lengths[: len(u0) - 1], strict=True)}
    assert first_rows == {tuple(u0[max(0, t - 5) : t]) for t in range(1, len(u0))}
    model, log = rr.train("SASRec", config, dataset, train_data, epochs=1)
    scorer = rr.RecBoleScorer(model, dataset, ix.item_ids, 5)
    scores = scorer(ix.eval_users[:3], ix.hist("validation")[:3])
    seen = np.isin(ix.item_ids, sorted({ev.item for ev in events}))  # m29 and any item no user drew
    assert scores.shape == (3, 30) and not seen[29]
    assert np.isneginf(scores[:, ~seen]).all() and np.isfinite(scores[:, seen]).all()
    result = evaluate_scorer(scorer, ix, "validation")
    assert len(result.ranks) == 12 and (result.ranks >= 1).all()
