"""The shared engine on tiny models: fine-tuning modes, calibration, resume after a kill, DDP, FAISS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from domainfm.config import build_config
from domainfm.errors import DataError
from domainfm.engine.calibration import (
    expected_calibration_error,
    fit_temperature,
    precision_at_coverage,
    risk_coverage_curve,
    softmax,
    threshold_for_precision,
)
from domainfm.manager import PluginManager
from domainfm.runner import Runner
from domainfm.types import Artifact


def run_stages(tmp_path: Path, model_dir: Path, mode: str, extra: list[str] | None = None):  # type: ignore[no-untyped-def]
    pm = PluginManager(autoload=False).load()
    cfg = build_config(
        None,
        [f"output_dir={tmp_path}", f"model.base={model_dir}", f"model.mode={mode}", "train.epochs=2",
         "train.batch_size=8", "model.max_length=32", "benefit.energy_tracking=false", *(extra or [])],
    )
    runner = Runner(pm, cfg)
    ctx = runner.context("text_classification")
    data = runner.load_data(ctx)
    artifact = runner.train(ctx, data)
    predictor = runner.load_predictor(ctx, Artifact.load(artifact.path))
    evaluation = runner.evaluate(ctx, predictor, data)
    return ctx, artifact, predictor, evaluation


@pytest.mark.parametrize("mode", ["full", "lora", "head", "lpft", "contrastive"])
def test_fine_tuning_modes_produce_loadable_calibrated_artifacts(tmp_path: Path, tiny_model_dir: Path, mode: str) -> None:
    ctx, artifact, predictor, evaluation = run_stages(tmp_path, tiny_model_dir, mode)
    assert artifact.metadata["mode"] == mode
    assert artifact.metadata["temperature"] > 0
    assert 0 < artifact.metadata["trainable_parameters"] <= artifact.metadata["parameters"]
    if mode == "lora":
        assert artifact.metadata["trainable_parameters"] < artifact.metadata["parameters"] / 2
        assert not list(Path(artifact.path).glob("adapter_*"))  # merged: loads as a plain model
    if mode in ("full", "lora"):
        assert (Path(artifact.path) / "model.safetensors").is_file()
    if mode == "lpft" or (mode == "contrastive" and artifact.metadata["contrastive_steps"] > 0):
        # a head artifact carrying its own fine-tuned encoder
        assert artifact.kind == "embedding-linear-head" and artifact.metadata["encoder"] == "encoder"
        assert (Path(artifact.path) / "encoder" / "model.safetensors").is_file()
    if mode == "lpft":
        assert artifact.metadata["probe_C"] > 0 and "validation_macro_f1_probe" in artifact.metadata
    if mode == "contrastive":
        assert artifact.metadata["head_C"] > 0 and "0" in artifact.metadata["validation_macro_f1_by_step"]
    probs = predictor.predict_proba(["the parcel arrived broken", "great friendly staff"])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1.0)
    assert evaluation.n_items == len(evaluation.outcomes) > 0
    assert set(evaluation.outcomes.groups) == {"channel"}
    assert evaluation.device == ctx.device == "cpu"
    assert ctx.resources.train_seconds and ctx.resources.train_seconds > 0


def test_lpft_starts_from_the_probe_and_serves_its_own_encoder(tmp_path: Path, tiny_model_dir: Path) -> None:
    import torch

    from domainfm.engine import lpft
    from domainfm.engine.encoder import TextEncoder
    from domainfm.engine.text_classifier import TextClassifierPredictor

    texts = ["the parcel arrived broken", "great friendly staff", "refund took three weeks"]
    encoder = TextEncoder(str(tiny_model_dir), device="cpu", max_length=32)
    feats = encoder.encode(texts)
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=(3, feats.shape[1])).astype(np.float32), np.array([0.5, -1e4, 0.0], np.float32)
    model = lpft.build_model(encoder.model, weight, bias).eval()
    batch = encoder.model.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch)["logits"].numpy()
    expected = feats @ weight.T + np.maximum(bias, -30.0)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)  # step 0 = the probe exactly
    out = model(**batch, labels=torch.tensor([0, 2, 0]))
    assert out["loss"].item() > 0

    _, artifact, predictor, _ = run_stages(tmp_path, tiny_model_dir, "lpft", ["train.learning_rate=0.01"])
    assert isinstance(predictor, TextClassifierPredictor) and predictor.is_head
    tuned = predictor.features(texts)
    assert not np.allclose(tuned, encoder.encode(texts), atol=1e-3)  # it runs the fine-tuned encoder


def test_contrastive_tuning_keeps_the_best_validated_step_and_pulls_labels_apart(tmp_path: Path, tiny_model_dir: Path) -> None:
    from domainfm.engine import contrastive
    from domainfm.engine.encoder import TextEncoder

    texts = ["card arrived", "card delivery", "card in the post", "refund please", "money back", "refund status",
             "open an account", "new account", "account sign up"]
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    encoder = TextEncoder(str(tiny_model_dir), device="cpu", max_length=16)
    before = encoder.encode(texts)

    def margin() -> float:  # mean same-label cosine minus mean other-label cosine
        emb = encoder.encode(texts)
        sims = emb @ emb.T
        same = np.equal.outer(labels, labels) & ~np.eye(len(texts), dtype=bool)
        return float(sims[same].mean() - sims[~np.equal.outer(labels, labels)].mean())

    start = margin()
    scores = iter([0.5, 0.9, 0.1, 0.2, 0.3])  # step 10 is the best; patience 3 stops after step 40
    seen: list[int] = []
    state_at: dict[int, np.ndarray] = {}

    def score(step: int) -> float:
        seen.append(step)
        state_at[step] = encoder.encode(texts)
        return next(scores)

    out = contrastive.tune(encoder.model, texts, labels, steps=60, learning_rate=1e-3, pairs_per_step=3, seed=0,
                           device="cpu", score=score, eval_every=10, patience=3)
    assert seen == [0, 10, 20, 30, 40] and out["steps_run"] == 40 and out["best_step"] == 10 and out["pairs_per_step"] == 3
    np.testing.assert_allclose(encoder.encode(texts), state_at[10], atol=1e-5)  # the best step's weights restored
    assert not np.allclose(state_at[10], before, atol=1e-4)
    assert margin() > start  # same-label texts moved together

    with pytest.raises(DataError, match="at least two labels"):
        contrastive.tune(encoder.model, ["a", "b", "c"], [0, 1, 2], steps=2, learning_rate=1e-3, pairs_per_step=2,
                         seed=0, device="cpu")


@pytest.mark.parametrize("mode", ["full"])
def test_an_ensemble_averages_its_members_probabilities(tmp_path: Path, tiny_model_dir: Path, mode: str) -> None:
    from domainfm.engine.ensemble import EnsemblePredictor
    from domainfm.engine.text_classifier import TextClassifierPredictor

    ctx, artifact, predictor, evaluation = run_stages(tmp_path, tiny_model_dir, mode, ["train.ensemble_size=2", "train.epochs=1"])
    assert artifact.kind == "text-classifier-ensemble" and artifact.metadata["members"] == ["members/0", "members/1"]
    assert artifact.metadata["member_seeds"] == [42, 43] and artifact.metadata["mode"] == mode
    assert artifact.metadata["temperature"] > 0 and 0 <= artifact.metadata["best_validation_macro_f1"] <= 1
    assert not (ctx.run_dir / "members").exists()  # the members' training folders are gone once assembled
    assert isinstance(predictor, EnsemblePredictor) and len(predictor.members) == 2
    texts = ["the parcel arrived broken", "great friendly staff", "refund took three weeks"]
    members = [TextClassifierPredictor.load(Path(artifact.path) / m, "cpu") for m in artifact.metadata["members"]]
    member_logits = [m.predict_logits(texts) for m in members]
    assert not np.allclose(member_logits[0], member_logits[1], atol=1e-4)  # different seeds, different models
    expected = np.log(np.mean([softmax(z) for z in member_logits], axis=0))
    np.testing.assert_allclose(predictor.predict_logits(texts), expected, rtol=1e-4, atol=1e-5)
    probs = predictor.predict_proba(texts)
    assert probs.shape == (3, 3) and np.allclose(probs.sum(1), 1.0)
    assert evaluation.n_items > 0
    with pytest.raises(TypeError, match="one torch model per member"):
        _ = predictor.torch_model


def test_an_ensemble_of_frozen_heads_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    from domainfm.errors import ConfigError, PluginError

    with pytest.raises((ConfigError, PluginError), match="members would be identical"):
        run_stages(tmp_path, tiny_model_dir, "head", ["train.ensemble_size=2"])


class _Killed(Exception):
    pass


def test_an_ensemble_run_skips_members_finished_before_a_kill(tmp_path: Path) -> None:
    from domainfm.engine import ensemble
    from domainfm.types import RunContext

    cfg = build_config(None, [f"output_dir={tmp_path}", "train.ensemble_size=3", "train.seed=7"])
    ctx = RunContext(run_id="e", domain="d", config=cfg, run_dir=tmp_path / "run", device="cpu")
    trained: list[int] = []
    kill_at = {8}  # the first call is killed while training the second member (seed 8)

    def train_one(member_ctx: RunContext) -> Artifact:
        trained.append(member_ctx.config.train.seed)
        assert member_ctx.config.train.ensemble_size == 1
        if member_ctx.config.train.seed in kill_at:
            raise _Killed
        artifact = Artifact(path=member_ctx.artifact_dir, domain="d", kind="embedding-linear-head", base_model="tiny", label_names=["a", "b"])
        member_ctx.artifact_dir.mkdir(parents=True)
        artifact.save_metadata()
        return artifact

    with pytest.raises(_Killed):
        ensemble.train_members(ctx, train_one)
    assert trained == [7, 8]
    trained.clear()
    kill_at.clear()
    members = ensemble.train_members(ctx, train_one)
    assert trained == [8, 9] and len(members) == 3  # member 0 (seed 7) was picked up, not retrained
    assert ctx.config.train.seed == 7 and ctx.config.train.ensemble_size == 3  # the caller's config is untouched


@pytest.mark.parametrize("best_step", [0, 2])
def test_contrastive_artifact_carries_an_encoder_only_when_tuning_won(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model_dir: Path, best_step: int
) -> None:
    from domainfm.engine import contrastive

    def fake_tune(encoder, texts, labels, *, score, **kwargs):  # type: ignore[no-untyped-def]
        scores = {str(step): score(step) for step in (0, 2)}
        return {"best_step": best_step, "steps_run": 2, "score_by_step": scores, "pairs_per_step": 3}

    monkeypatch.setattr(contrastive, "tune", fake_tune)
    _, artifact, predictor, _ = run_stages(tmp_path, tiny_model_dir, "contrastive")
    meta = artifact.metadata
    assert meta["contrastive_steps"] == best_step and predictor.is_head
    assert ("encoder" in meta) == (best_step > 0) == (Path(artifact.path) / "encoder").is_dir()
    head_size = predictor.head["weight"].size + predictor.head["bias"].size
    assert meta["trainable_parameters"] == (meta["parameters"] if best_step else head_size)


def test_contrastive_evaluation_steps() -> None:
    from domainfm.engine.contrastive import evaluation_steps, label_groups

    assert evaluation_steps(100, 25) == [0, 25, 50, 75, 100]
    assert evaluation_steps(30, 25) == [0, 25, 30]
    assert label_groups(["a", "b", "c"], [0, 0, 1]) == {0: ["a", "b"]}


def test_lpft_rejects_text_pairs(tmp_path: Path, tiny_model_dir: Path) -> None:
    from domainfm.engine.text_classifier import fine_tune_text_classifier
    from domainfm.types import DataBundle, RunContext

    cfg = build_config(None, [f"output_dir={tmp_path}", f"model.base={tiny_model_dir}", "model.mode=lpft"])
    ctx = RunContext(run_id="pairs", domain="d", config=cfg, run_dir=tmp_path / "r", device="cpu")
    from datasets import Dataset

    table = Dataset.from_dict({"text": ["a b", "c d"], "pair": ["e", "f"], "label": ["x", "y"]})
    data = DataBundle(tables={"train": table}, source="pairs.csv", label_names=["x", "y"])
    with pytest.raises(DataError, match="lpft classifies single texts"):
        fine_tune_text_classifier(ctx, data, label_names=["x", "y"], text_pair_column="pair")


def test_training_is_deterministic_given_the_seed(tmp_path: Path, tiny_model_dir: Path) -> None:
    _, _, p1, _ = run_stages(tmp_path / "a", tiny_model_dir, "full")
    _, _, p2, _ = run_stages(tmp_path / "b", tiny_model_dir, "full")
    texts = ["my order arrived late", "the store opens at nine"]
    assert np.allclose(p1.predict_logits(texts), p2.predict_logits(texts), atol=1e-5)


def _cli(*args: str, env: dict[str, str] | None = None) -> list[str]:
    return [sys.executable, "-m", "domainfm.cli.main", *args]


def test_resume_after_a_killed_training(tmp_path: Path, tiny_model_dir: Path) -> None:
    args = _cli(
        "train", "text_classification", "--base-model", str(tiny_model_dir), "--mode", "full",
        "--output-dir", str(tmp_path), "--set", "run_name=resumable", "--set", "train.max_steps=400",
        "--set", "train.eval_steps=2", "--set", "train.batch_size=4", "--set", "train.early_stopping_patience=1000",
        "--set", "model.max_length=16",
    )
    env = {**os.environ, "DOMAINFM_NO_PROGRESS": "1"}
    run_dir = tmp_path / "text_classification" / "resumable"
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if list((run_dir / "checkpoints").glob("checkpoint-*/domainfm-checkpoint-complete")):
                break
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint was completed within 120 s")
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (run_dir / "artifact" / "domainfm-artifact.json").exists()
    # A fast machine gets many steps past the first checkpoint before the kill lands, so the
    # resumed run's target is set from the newest completed checkpoint rather than a constant.
    completed = sorted(
        int(marker.parent.name.split("-")[-1])
        for marker in (run_dir / "checkpoints").glob("checkpoint-*/domainfm-checkpoint-complete")
    )
    newest = completed[-1]
    target = newest + 4
    short = [a if a != "train.max_steps=400" else f"train.max_steps={target}" for a in args]
    done = subprocess.run(short, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["resumed_from"] and run_json["resumed_from"].endswith(f"checkpoint-{newest}")
    assert Artifact.load(run_dir / "artifact").metadata["global_step"] == target


def test_ddp_with_two_cpu_processes(tmp_path: Path, tiny_model_dir: Path) -> None:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
        "-m", "domainfm.cli.main", "train", "text_classification", "--base-model", str(tiny_model_dir),
        "--mode", "full", "--output-dir", str(tmp_path), "--set", "run_name=ddp", "--epochs", "1",
        "--set", "train.batch_size=4", "--device", "cpu",
    ]
    env = {**os.environ, "DOMAINFM_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    artifact = Artifact.load(tmp_path / "text_classification" / "ddp" / "artifact")
    assert artifact.metadata["world_size"] == 2


# ----------------------------------------------------------------------------------- calibration


def test_temperature_scaling_reduces_ece_of_overconfident_logits() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 2000)
    logits = rng.normal(size=(2000, 3))
    logits[np.arange(2000), y] += 1.0
    logits *= 6.0  # overconfident
    t = fit_temperature(logits, y)
    assert t > 2.0
    assert expected_calibration_error(softmax(logits, t), y) < expected_calibration_error(softmax(logits), y) / 2


def test_threshold_for_precision_and_risk_coverage() -> None:
    conf = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([1, 1, 1, 0, 1, 0])
    assert threshold_for_precision(conf, correct, 1.0) == 0.8
    assert threshold_for_precision(conf, correct, 0.8) == 0.6
    assert threshold_for_precision(conf, np.zeros(6), 0.5) == float("inf")
    curve = risk_coverage_curve(conf, correct)
    assert curve["accuracy"][:3] == [1.0, 1.0, 1.0]
    assert precision_at_coverage(conf, correct, 0.5) == 1.0


# ----------------------------------------------------------------------------------- vector index


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_vector_index_add_remove_search_save_load(tmp_path: Path, kind: str) -> None:
    from domainfm.engine.vector_index import VectorIndex

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex.create(16, kind, nlist=16, nprobe=16)
    index.add(np.arange(2000), vectors)
    scores, ids = index.search(vectors[:5], 3)
    assert ids[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert index.remove([0, 1]) == 2
    _, ids = index.search(vectors[:2], 3)
    assert 0 not in ids[0] and 1 not in ids[1]
    assert len(index) == 1998
    index.save(tmp_path / "idx")
    loaded = VectorIndex.load(tmp_path / "idx")
    assert len(loaded) == 1998
    _, ids2 = loaded.search(vectors[2:4], 1)
    assert ids2[:, 0].tolist() == [2, 3]
    assert loaded.device == "cpu"


def test_corrupted_index_gives_a_clear_error(tmp_path: Path) -> None:
    from domainfm.engine.vector_index import VectorIndex

    index = VectorIndex.create(8)
    index.add([1, 2], np.eye(2, 8, dtype=np.float32))
    index.save(tmp_path / "idx")
    (tmp_path / "idx" / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(DataError, match="corrupted vector index"):
        VectorIndex.load(tmp_path / "idx")


def test_a_run_can_train_and_compare_several_variants(tmp_path: Path, tiny_model_dir: Path) -> None:
    pm = PluginManager(autoload=False).load()
    cfg = build_config(
        None,
        [f"output_dir={tmp_path}", f"model.base={tiny_model_dir}", "variants=[head, full]", "train.epochs=1",
         "model.max_length=32", "benefit.energy_tracking=false"],
    )
    result = Runner(pm, cfg).run("text_classification")
    assert set(result.evaluations) == {"head", "full"}
    for mode in ("head", "full"):
        assert (result.ctx.run_dir / "variants" / mode / "artifact" / "domainfm-artifact.json").is_file()
        assert (result.ctx.run_dir / "evaluations" / f"{mode}.json").is_file()
    run = json.loads((result.ctx.run_dir / "run.json").read_text())
    assert set(run["variant_resources"]) == {"head", "full"}


def test_prior_class_weights_restore_a_label_mix() -> None:
    import numpy as np

    from domainfm.config import TrainConfig
    from domainfm.engine.class_weights import prior_class_weights, training_class_weights
    from domainfm.errors import ConfigError

    y = [0] * 6 + [1] * 2 + [2] * 2  # training mix 0.6 / 0.2 / 0.2
    prior = {"a": 0.2, "b": 0.4, "c": 0.4}
    w = prior_class_weights(y, ["a", "b", "c"], prior)
    weighted = np.bincount(y, weights=np.asarray(w)[y]) / len(y)
    assert weighted == pytest.approx([0.2, 0.4, 0.4])  # the weighted rows have the prior's mix, mean weight 1
    same = prior_class_weights(y, ["a", "b", "c"], {"a": 0.6, "b": 0.2, "c": 0.2})
    assert same == pytest.approx([1.0, 1.0, 1.0])  # already the prior's mix: the plain loss
    assert prior_class_weights([0, 1], ["a", "b", "c"], {"a": 1.0})[1] > 0  # a label the prior lacks keeps a weight
    assert training_class_weights(TrainConfig(class_weights="none"), y, ["a", "b", "c"]) is None
    with pytest.raises(ConfigError, match="class_prior"):
        training_class_weights(TrainConfig(class_weights="prior"), y, ["a", "b", "c"])


def test_balanced_class_weights_and_the_weighted_loss() -> None:
    import torch

    from domainfm.engine.class_weights import balanced_class_weights, weighted_cross_entropy

    weights = balanced_class_weights([0, 0, 0, 1], 3)
    assert weights == pytest.approx([4 / 6, 2.0, 1.0])  # n / (K_present * n_k); an unseen label keeps 1.0
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.2, 0.1]])
    labels = torch.tensor([0, 1, 0])
    loss = weighted_cross_entropy(weights)
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=torch.tensor(weights))
    assert float(loss({"logits": logits}, labels)) == pytest.approx(float(expected), rel=1e-6)
    per_item = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    summed = float((per_item * torch.tensor(weights)[labels]).sum() / 6)
    assert float(loss({"logits": logits}, labels, num_items_in_batch=6)) == pytest.approx(summed, rel=1e-6)
    # with equal weights it is the plain cross-entropy
    plain = weighted_cross_entropy([1.0, 1.0, 1.0])({"logits": logits}, labels)
    assert float(plain) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)), rel=1e-6)


@pytest.mark.parametrize("mode", ["full", "head"])
def test_class_weights_reach_the_training(tmp_path: Path, tiny_model_dir: Path, mode: str) -> None:
    _, artifact, _, _ = run_stages(tmp_path, tiny_model_dir, mode, ["train.class_weights=balanced", "train.epochs=1"])
    assert artifact.metadata["mode"] == mode
    if mode == "full":
        weights = artifact.metadata["class_weights"]
        assert len(weights) == 3 and all(w > 0 for w in weights)
    else:
        assert artifact.metadata["head_class_weight"] == "balanced"
    with pytest.raises(Exception, match="class_weights"):
        build_config(None, ["train.class_weights=sometimes"])


def test_a_balanced_probe_favours_the_rare_label() -> None:
    from domainfm.engine.lpft import fit_probe

    rng = np.random.default_rng(0)
    y = np.asarray([0] * 90 + [1] * 10)
    x = rng.normal(size=(100, 4)) + np.outer(y, [0.8, 0, 0, 0])  # the rare label overlaps the common one
    plain = fit_probe(x, y.tolist(), None, [], 2, [1.0], seed=0)
    balanced = fit_probe(x, y.tolist(), None, [], 2, [1.0], seed=0, class_weight="balanced")

    def rare_predicted(probe: dict) -> int:  # type: ignore[type-arg]
        return int(((x @ probe["weight"].T + probe["bias"]).argmax(1) == 1).sum())

    assert rare_predicted(balanced) > rare_predicted(plain)


@pytest.mark.parametrize("mode", ["full", "contrastive"])
def test_mixed_precision_setting_reaches_the_training(tmp_path: Path, tiny_model_dir: Path, mode: str) -> None:
    from domainfm.engine.precision import bf16_is_fast

    _, artifact, predictor, evaluation = run_stages(tmp_path, tiny_model_dir, mode,
                                                    ["train.mixed_precision=bf16", "train.epochs=1", "train.max_steps=4"])
    assert artifact.metadata["training_autocast"] == ("bfloat16" if bf16_is_fast("cpu") else "float32")
    assert evaluation.n_items > 0  # the bf16-trained weights load and predict
    with pytest.raises(Exception, match="mixed_precision"):
        build_config(None, ["train.mixed_precision=fp8"])
