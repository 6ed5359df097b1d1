"""Test helpers for plugin authors (a pytest plugin, auto-registered through the ``pytest11`` entry point).

Fixtures:

- ``tiny_model_dir``: a random-init 2-layer BERT (hidden size 32) with a WordPiece tokenizer trained in the
  test session, saved in ``save_pretrained`` layout; loads with transformers and sentence-transformers.
- ``plugin_manager``: a fresh :class:`~domainfm.manager.PluginManager` with built-ins and installed plugins.
- ``shared_data_dir``: ``../shared/data`` (or ``$DOMAINFM_SHARED_DATA``); skips the test when absent.

Functions:

- :func:`build_tiny_model` builds the tiny model anywhere;
- :func:`check_plugin_contract` runs every stage of a domain on small data and validates each result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from domainfm.config import RunConfig, build_config
from domainfm.manager import PluginManager
from domainfm.types import Artifact, Constraint, DataBundle, DomainSpec, Evaluation, ItemBatch, Prediction

TINY_CORPUS = [
    "the market rallied after strong earnings",
    "profits fell sharply and shares dropped",
    "the bank raised its outlook for the year",
    "customers reported a delayed card payment",
    "my parcel arrived late and damaged",
    "the patient reports fever and a dry cough",
    "students answered the question about photosynthesis",
    "a new movie about space travel and friendship",
    "revenue was flat compared with last quarter",
    "please reset my password and unlock my account",
]


def build_tiny_model(path: str | Path, hidden_size: int = 32, layers: int = 2, vocab_size: int = 400) -> Path:
    """Save a random-init BERT classifier-ready encoder and a WordPiece tokenizer whose vocabulary is counted from
    :data:`TINY_CORPUS` (every character, its ``##`` continuation, then the most frequent words) to ``path``;
    the same files in every process."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # The vocabulary is counted here rather than by tokenizers' WordPieceTrainer: the trainer breaks ties in
    # its counts in a per-process random order, so every test process got a different tiny model (and, with a
    # near-tie head, tests that compare precisions flipped labels now and then).
    counts: dict[str, int] = {}
    for text in TINY_CORPUS:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[word] = counts.get(word, 0) + 1
    chars = sorted({c for word in counts for c in word})
    pieces = [*special, *chars, *(f"##{c}" for c in chars)]
    words = sorted((w for w in counts if w not in pieces), key=lambda w: (-counts[w], w))
    vocab = {piece: i for i, piece in enumerate([*pieces, *words][:vocab_size])}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
        model_max_length=128,
    )
    fast.save_pretrained(str(path))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=hidden_size * 2, max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(str(path), safe_serialization=True)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def plugin_manager() -> PluginManager:
    return PluginManager().load()


def shared_data_path() -> Path:
    env = os.environ.get("DOMAINFM_SHARED_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "data"


@pytest.fixture
def shared_data_dir() -> Path:
    path = shared_data_path()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set DOMAINFM_SHARED_DATA); real-data tests need it")
    return path


# --------------------------------------------------------------------------------------- contract check


@dataclass
class ContractReport:
    domain: str
    spec: DomainSpec
    data: DataBundle
    artifact: Artifact
    predictions: list[Prediction]
    evaluation: Evaluation
    contributions: list[Any]
    stages: list[str] = field(default_factory=list)


def check_plugin_contract(
    pm: PluginManager,
    domain: str,
    *,
    source: str | None = None,
    config: RunConfig | None = None,
    overrides: list[str] | None = None,
    output_dir: Path,
    n_predict: int = 3,
) -> ContractReport:
    """Run every stage of ``domain`` and assert each result honours the hook contract."""
    from domainfm.runner import Runner

    cfg = config or build_config(None, [f"output_dir={output_dir}", *(overrides or [])])
    runner = Runner(pm, cfg)
    spec = pm.domain(domain)
    ctx = runner.context(domain)
    seen: list[str] = []
    pm.register(_StageRecorder(seen), name=f"contract-recorder-{ctx.run_id}")
    try:
        data = runner.load_data(ctx, source)
        assert isinstance(data, DataBundle) and data.tables, "load_data must return a non-empty DataBundle"
        artifact = runner.train(ctx, data)
        assert Path(artifact.path).is_dir(), "train must write the artifact directory"
        assert (Path(artifact.path) / "domainfm-artifact.json").is_file(), "artifact metadata must be saved"
        reloaded = Artifact.load(artifact.path)
        assert reloaded.domain == domain
        predictor = runner.load_predictor(ctx, reloaded)
        split = cfg.eval_split if cfg.eval_split in data.tables else next(iter(data.tables))
        records = [dict(data.tables[split][i]) for i in range(min(n_predict, len(data.tables[split])))]
        predictions = runner.predict(ctx, predictor, records)
        assert len(predictions) == len(records), "predict must return one Prediction per record"
        evaluation = runner.evaluate(ctx, predictor, data, split)
        assert evaluation.key_metric in evaluation.metrics
        if evaluation.outcomes is not None:
            assert len(evaluation.outcomes) == evaluation.n_items, "outcomes must have one entry per item"
        contributions = pm.hooks.benefit_terms(ctx, domain, evaluation)
        if evaluation.outcomes is not None:
            batch = item_batch(evaluation, threshold=0.0, resources=ctx.resources)
            for item in contributions:
                if isinstance(item, Constraint):
                    value = item.measure(batch)
                    assert value is None or np.isfinite(value), f"constraint {item.name} returned {value}"
                else:
                    values = np.asarray(item.utility(batch), dtype=float)
                    assert values.shape == (len(batch),), f"term {item.name}: utility must give one value per item"
    finally:
        pm.unregister(f"contract-recorder-{ctx.run_id}")
    return ContractReport(domain, spec, data, artifact, predictions, evaluation, contributions, seen)


def item_batch(evaluation: Evaluation, threshold: float, resources: Any = None) -> ItemBatch:
    """The :class:`ItemBatch` of an evaluation at a confidence threshold (automate at or above it)."""
    from domainfm.types import ResourceUsage

    assert evaluation.outcomes is not None
    conf, quality = evaluation.outcomes.arrays()
    return ItemBatch(
        confidence=conf,
        quality=quality,
        automated=conf >= threshold,
        groups={k: np.asarray(v) for k, v in evaluation.outcomes.groups.items()},
        extra={k: np.asarray(v, dtype=object) for k, v in evaluation.outcomes.extra.items()},
        threshold=threshold,
        evaluation=evaluation,
        resources=resources or ResourceUsage(),
    )


class _StageRecorder:
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    from domainfm import hookimpl as _hookimpl

    @_hookimpl
    def domainfm_stage_finished(self, ctx: Any, stage: str, result: Any, seconds: float) -> None:
        self.seen.append(stage)
