"""Test helpers for plugin authors (a pytest plugin, auto-registered through the ``pytest11`` entry point).

Fixtures (``pytest --fixtures`` shows their docstrings):

- ``tiny_model_dir`` (session): a random-init 2-layer BERT (hidden size 32) with a WordPiece tokenizer, saved in
  ``save_pretrained`` layout; loads with transformers and sentence-transformers.
- ``plugin_manager`` (function): a fresh :class:`~domainfm.manager.PluginManager` with built-ins and installed
  plugins; ``session_plugin_manager`` (session) for read-only tests.
- ``shared_data_dir`` (session): ``../shared/data`` (or ``$DOMAINFM_SHARED_DATA``); skips the test when absent.

Functions:

- :func:`build_tiny_model` builds the tiny model anywhere;
- :func:`build_tiny_classifier_artifact` saves it as a ready classifier artifact (random head, a chosen calibrator);
- :func:`check_plugin_contract` runs every stage of a domain on small data and validates each result.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
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


class HashingEncoder:
    """A deterministic bag-of-words sentence encoder (no torch) for retrieval and index tests: words hashed into
    ``dim`` buckets, rows L2-normalised, as ``encode(texts) -> float32`` of a real encoder."""

    name = "hashing-test-encoder"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        import hashlib
        import re

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


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


def build_tiny_classifier_artifact(
    path: str | Path,
    *,
    labels: tuple[str, ...] = ("negative", "neutral", "positive"),
    calibrator: dict[str, Any] | None = None,
    domain: str = "text_classification",
    logit_scale: float = 2.0,
    max_length: int = 32,
) -> Path:
    """A ready ``hf-sequence-classification`` artifact (no training): the tiny BERT with a random head whose weights
    are drawn with scale ``logit_scale`` (so confidences spread over (1/K, 1) instead of sitting at 1/K), its tokenizer,
    and ``domainfm-artifact.json`` with ``calibrator`` (default: temperature 2.5). Loads like a trained model."""
    import torch
    from transformers import BertForSequenceClassification

    path = Path(path)
    base = build_tiny_model(path.parent / f".{path.name}-base")
    torch.manual_seed(1)
    model = BertForSequenceClassification.from_pretrained(
        str(base), num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}
    )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model.eval()
    with torch.no_grad():
        # a random head sees pooled features that barely differ between texts; centring and scaling it on the tiny
        # corpus gives logits of spread ``logit_scale``, so texts get different labels and confidences
        pooled = model.bert(**tokenizer(TINY_CORPUS, padding=True, return_tensors="pt")).pooler_output
        centre = pooled.mean(0)
        weight = torch.randn(len(labels), pooled.shape[1])
        spread = ((pooled - centre) @ weight.T).std()
        model.classifier.weight.copy_(weight * logit_scale / spread)
        model.classifier.bias.copy_(-(model.classifier.weight @ centre))
    model.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))
    Artifact(
        path=path, domain=domain, kind="hf-sequence-classification", base_model=str(base), label_names=list(labels),
        device="cpu", metadata={"mode": "full", "max_length": max_length, "text_column": "text",
                                "inference_dtype": "float32",
                                "calibrator": calibrator or {"kind": "temperature", "temperature": 2.5}},
    ).save_metadata()
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init 2-layer BERT (hidden 32) and a WordPiece tokenizer in ``save_pretrained`` layout,
    built once per test session; pass it as ``model.base=<dir>`` so the engine trains in seconds."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def plugin_manager() -> PluginManager:
    """A fresh :class:`~domainfm.manager.PluginManager` with the built-ins and every installed plugin
    loaded. Fresh per test, so a plugin a test registers or an exclusion it causes does not leak."""
    return PluginManager().load()


@pytest.fixture(scope="session")
def session_plugin_manager() -> PluginManager:
    """One loaded :class:`~domainfm.manager.PluginManager` for the whole session, for read-only tests
    (domain declarations, hook listings); register nothing on it."""
    return PluginManager().load()


def shared_data_path() -> Path:
    """Where the shared data is (:func:`domainfm.shared_data.shared_data_dir`), else where it was looked for."""
    from domainfm.shared_data import shared_data_dir as find_shared_data

    found = find_shared_data()
    return found if found is not None else Path(os.environ.get("DOMAINFM_SHARED_DATA") or "../shared/data")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data`` (or ``$DOMAINFM_SHARED_DATA``), the public data sets; the test is skipped with
    the reason when it is absent (a fresh clone without the data)."""
    path = shared_data_path()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set DOMAINFM_SHARED_DATA); real-data tests need it")
    return path


# --------------------------------------------------------------------------------------- contract check


@dataclass
class ContractReport:
    """What :func:`check_plugin_contract` ran: each stage's result, the benefit report and the stages seen."""

    domain: str
    spec: DomainSpec
    data: DataBundle
    artifact: Artifact
    predictions: list[Prediction]
    evaluation: Evaluation
    contributions: list[Any]
    stages: list[str] = field(default_factory=list)
    report: Any = None
    run_dir: Path | None = None


FOREIGN_DOMAIN = "contract_check_foreign_domain"
HEAVY_MODULES = ("torch", "transformers", "datasets", "sentence_transformers", "faiss")


def check_plugin_contract(
    pm: PluginManager,
    domain: str,
    *,
    source: str | None = None,
    config: RunConfig | None = None,
    overrides: list[str] | None = None,
    output_dir: Path,
    n_predict: int = 3,
    check_light_import: bool = True,
) -> ContractReport:
    """Run every stage of ``domain`` as ``domainfm run`` does and assert each result honours the hook contract.

    ``config`` (or ``overrides``, ``--set``-style strings such as ``model.base=<tiny_model_dir>``) configures the
    run; it is written under ``output_dir/<domain>/<run id>/`` with ``run.json``, so commands that take a domain
    name find it as the newest run. Checked, each failure an ``AssertionError`` naming the rule:

    - importing the plugin's module imports none of :data:`HEAVY_MODULES` (``check_light_import``);
    - every stage returns the documented type; the artifact is saved and reloads; one prediction per record;
    - ``Evaluation.outcomes`` is present, one entry per item (the benefit engine reads nothing else);
    - the plugin's own stage hooks return None for a domain that is not theirs;
    - the terms it declares in ``DomainSpec.benefit_terms``, if any, are the terms it returns (name, objective, unit);
    - every term gives one finite value per item, every constraint a finite value or None;
    - the benefit engine scores the evaluation end to end and writes ``benefit.json`` and ``report.html``.
    """
    from domainfm.runner import Runner

    cfg = config or build_config(None, [f"output_dir={output_dir}", *(overrides or [])])
    runner = Runner(pm, cfg)
    spec = pm.domain(domain)
    if check_light_import:
        assert_light_import(pm, spec)
    ctx = runner.context(domain)
    runner.write_run_json(ctx, status="running")
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
        assert evaluation.outcomes is not None, (
            "evaluate must return Evaluation.outcomes (confidence and quality per item): the benefit engine reads them"
        )
        assert len(evaluation.outcomes) == evaluation.n_items, "outcomes must have one entry per item"
        _assert_foreign_domain_is_ignored(pm, spec, ctx, data, reloaded, predictor, records, split)
        contributions = pm.hooks.benefit_terms(ctx, domain, evaluation)
        _assert_declared_terms_are_returned(pm, spec, ctx, evaluation)
        batch = item_batch(evaluation, threshold=0.0, resources=ctx.resources)
        for item in contributions:
            if isinstance(item, Constraint):
                value = item.measure(batch)
                assert value is None or np.isfinite(value), f"constraint {item.name} returned {value}"
            else:
                values = np.asarray(item.utility(batch), dtype=float)
                assert values.shape == (len(batch),), f"term {item.name}: utility must give one value per item"
                assert np.isfinite(values).all(), f"term {item.name}: utility gave a value that is not finite"
        variant = str(reloaded.metadata.get("variant", cfg.model.mode))
        runner.save_evaluations(ctx, {variant: evaluation})
        report = runner.benefit(ctx, {variant: evaluation})
        paths = runner.write_report(ctx, report)
        assert report.verdict in ("pass", "fail", "unverified"), f"unknown verdict {report.verdict!r}"
        assert all(Path(p).is_file() for p in paths.values()), "the benefit report must be written"
    except BaseException as exc:
        runner.write_run_json(ctx, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        pm.unregister(f"contract-recorder-{ctx.run_id}")
    runner.write_run_json(ctx, status="finished")
    return ContractReport(domain, spec, data, artifact, predictions, evaluation, contributions, seen, report, ctx.run_dir)


def assert_light_import(pm: PluginManager, spec: DomainSpec) -> None:
    """Importing the module that implements ``spec`` imports none of :data:`HEAVY_MODULES` (a fresh interpreter)."""
    import subprocess

    module = _plugin_module(pm, spec)
    if module is None:
        return
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert not out, f"importing {module} imports {out}: import heavy modules inside hook functions"


def _plugin_object(pm: PluginManager, spec: DomainSpec) -> Any:
    return pm.original_plugin(spec.plugin) if spec.plugin else None


def _plugin_module(pm: PluginManager, spec: DomainSpec) -> str | None:
    plugin = _plugin_object(pm, spec)
    name = getattr(plugin, "__name__", None) or getattr(type(plugin), "__module__", None)
    return name if isinstance(name, str) and name in sys.modules else None


def _own_impls(pm: PluginManager, spec: DomainSpec, hook: str) -> list[Any]:
    """The plugin's own (non-wrapper) implementations of ``hook``, unguarded."""
    plugin = _plugin_object(pm, spec)
    if plugin is None:
        return []
    impls = []
    for attr in dir(plugin):
        opts = pm.pm.parse_hookimpl_opts(plugin, attr)
        if opts is None or (opts.get("specname") or attr) != hook or opts.get("wrapper") or opts.get("hookwrapper"):
            continue
        impls.append(getattr(plugin, attr))
    return impls


def _assert_foreign_domain_is_ignored(
    pm: PluginManager, spec: DomainSpec, ctx: Any, data: DataBundle, artifact: Artifact, predictor: Any,
    records: list[dict[str, Any]], split: str,
) -> None:
    calls: dict[str, dict[str, Any]] = {
        "domainfm_load_data": {"source": "demo"},
        "domainfm_train": {"data": data},
        "domainfm_load_predictor": {"artifact": artifact},
        "domainfm_predict": {"predictor": predictor, "records": records},
        "domainfm_evaluate": {"predictor": predictor, "data": data, "split": split},
    }
    for hook, kwargs in calls.items():
        for impl in _own_impls(pm, spec, hook):
            result = impl(ctx=ctx, domain=FOREIGN_DOMAIN, **kwargs)
            assert result is None, (
                f"{spec.plugin}.{hook} returned {type(result).__name__} for domain {FOREIGN_DOMAIN!r}: "
                "a stage hook must return None for domains that are not its own"
            )


def _assert_declared_terms_are_returned(pm: PluginManager, spec: DomainSpec, ctx: Any, evaluation: Evaluation) -> None:
    """A hand-written ``DomainSpec.benefit_terms`` must match the returned terms (an empty one is derived from
    them: :mod:`domainfm.benefit.declared`)."""
    from domainfm.benefit.declared import declaration_mismatches

    own = [item for impl in _own_impls(pm, spec, "domainfm_benefit_terms")
           for item in (impl(ctx=ctx, domain=spec.name, evaluation=evaluation) or [])]
    mismatches = declaration_mismatches(spec.benefit_terms, own)
    assert not mismatches, mismatches[0]


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
