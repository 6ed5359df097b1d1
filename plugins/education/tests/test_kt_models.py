"""Knowledge-tracing models: causality, shapes, features, and learning a simple pattern."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from domainfm_education.kt_fit import auc, fit, make_windows, predict_windows  # noqa: E402
from domainfm_education.kt_models import AKT, DKT, build_model, history_features, next_step_features  # noqa: E402


@pytest.mark.parametrize("model", [DKT(5, hidden=8, embed=8), AKT(5, d=8, heads=2), AKT(5, d=8, heads=2, encoder="attention")])
def test_predictions_never_see_the_answer_they_predict(model) -> None:  # type: ignore[no-untyped-def]
    model.eval()
    torch.manual_seed(0)
    skills = torch.randint(0, 5, (2, 12))
    correct = torch.randint(0, 2, (2, 12))
    feats = torch.from_numpy(np.stack([history_features(s.tolist(), c.tolist()) for s, c in zip(skills, correct)]))
    base = model(skills, correct, feats)
    assert base.shape == (2, 12)
    flipped = correct.clone()
    flipped[:, 7:] = 1 - flipped[:, 7:]
    feats2 = torch.from_numpy(np.stack([history_features(s.tolist(), c.tolist()) for s, c in zip(skills, flipped)]))
    out = model(skills, flipped, feats2)
    assert torch.allclose(out[:, :8], base[:, :8], atol=1e-5)  # position 7 uses answers 0..6 only
    assert not torch.allclose(out[:, 8:], base[:, 8:])


def test_mastery_shapes_and_empty_history() -> None:
    for model in (DKT(4, hidden=8, embed=8), AKT(4, d=8, heads=2)):
        model.eval()
        with torch.no_grad():
            m = model.mastery(torch.tensor([[0, 1]]), torch.tensor([[1, 0]]),
                              torch.from_numpy(next_step_features([0, 1], [1, 0], 4)))
            empty = model.mastery(torch.zeros((1, 0), dtype=torch.long), torch.zeros((1, 0), dtype=torch.long),
                                  torch.from_numpy(next_step_features([], [], 4)))
        assert m.shape == (4,) and empty.shape == (4,)
        assert bool(((m > 0) & (m < 1)).all()) and bool(((empty > 0) & (empty < 1)).all())


def test_history_features_count_only_the_past() -> None:
    f = history_features([0, 0, 1, 0], [1, 0, 1, 1])
    assert f[0, 4] == 0.0 and f[1, 4] == 1.0 and f[1, 3] == 1.0  # first attempt: no previous; then last = right
    assert f[3, 3] == 0.0  # the last answer on skill 0 before t=3 was wrong
    assert f[2, 4] == 0.0  # skill 1 not seen before
    nxt = next_step_features([0, 0, 1, 0], [1, 0, 1, 1], 3)
    assert nxt.shape == (3, 7) and nxt[2, 4] == 0.0 and nxt[0, 4] == 1.0


def test_windows_drop_single_answers_and_cut_long_histories() -> None:
    windows = make_windows([([1], [0]), (list(range(5)) * 100, [1, 0] * 250)], max_len=200)
    assert [len(w.skills) for w in windows] == [200, 200, 100]
    assert {w.owner for w in windows} == {1}


@pytest.mark.parametrize("kind", ["dkt", "akt"])
def test_models_learn_a_simple_pattern(kind: str) -> None:
    rng = np.random.default_rng(0)
    seqs = []
    for _ in range(60):  # skill 0 always right, skill 1 always wrong, skill 2 repeats the previous answer
        skills = rng.integers(0, 3, 30).tolist()
        correct, prev = [], 0
        for s in skills:
            c = 1 if s == 0 else (0 if s == 1 else prev)
            correct.append(c)
            prev = c
        seqs.append((skills, correct))
    train, valid = make_windows(seqs[:50], 30), make_windows(seqs[50:], 30)
    params = {"hidden": 16, "embed": 16} if kind == "dkt" else {"d": 16, "heads": 2}
    result = fit(kind, 3, train, valid, epochs=15, lr=1e-2, batch_size=16, seed=0, params=params, patience=15)
    p, y, _ = predict_windows(result.model, valid, "cpu")
    assert auc(y, p) > 0.9
    assert result.best_epoch >= 1 and len(result.history) >= result.best_epoch


def test_unknown_model_kind() -> None:
    with pytest.raises(ValueError, match="kt_model"):
        build_model("bkt", 3)
