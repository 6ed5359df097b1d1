"""An example third-party plugin: a new domain, plus an override and a wrapper for every stage of another.

- adds ``keyword_sentiment``, a lexicon classifier with no neural network (the contract is not tied to
  transformers);
- when ``options.example_override`` is true, overrides every stage of ``text_classification`` with
  ``tryfirst`` implementations that delegate to its own lexicon model;
- wraps every ``domainfm_train`` and ``domainfm_load_data`` of every domain (new-style wrappers) and
  records that it did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domainfm import hookimpl
from domainfm.types import (
    Artifact,
    Assumption,
    BenefitTerm,
    Constraint,
    DataBundle,
    DomainSpec,
    Evaluation,
    Outcomes,
    Prediction,
    RunContext,
)

DOMAIN = "keyword_sentiment"
POSITIVE = {"great", "love", "excellent", "quick", "friendly", "easier", "perfectly", "lovely", "better", "neat"}
NEGATIVE = {"broken", "late", "rude", "crashes", "terrible", "never", "soaked", "cancelled", "twice", "shrank"}
CALLS: list[str] = []


@hookimpl
def domainfm_domains() -> list[DomainSpec]:
    return [
        DomainSpec(
            name=DOMAIN,
            description="Lexicon sentiment: a non-neural domain written from the plugin docs.",
            tasks=["classification"],
            output_space="labels",
            default_data="demo",
            default_model="lexicon",
            metrics=["accuracy"],
            key_metric="accuracy",
        )
    ]


def _mine(ctx: RunContext, domain: str) -> bool:
    return domain == DOMAIN or (domain == "text_classification" and bool(ctx.option("example_override")))


@hookimpl(tryfirst=True)
def domainfm_load_data(ctx: RunContext, domain: str, source: str) -> DataBundle | None:
    if not _mine(ctx, domain):
        return None
    from datasets import Dataset

    rows = [
        {"text": "great service and friendly staff", "label": "positive"},
        {"text": "the parcel was broken and late", "label": "negative"},
        {"text": "I love it, excellent", "label": "positive"},
        {"text": "rude agent, terrible", "label": "negative"},
    ]
    table = Dataset.from_list(rows)
    return DataBundle(tables={"train": table, "test": table}, source="example", label_names=["negative", "positive"])


@hookimpl(tryfirst=True)
def domainfm_train(ctx: RunContext, domain: str, data: DataBundle) -> Artifact | None:
    if not _mine(ctx, domain):
        return None
    ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
    (ctx.artifact_dir / "lexicon.json").write_text(json.dumps({"pos": sorted(POSITIVE), "neg": sorted(NEGATIVE)}))
    artifact = Artifact(path=ctx.artifact_dir, domain=domain, kind="lexicon", base_model="lexicon",
                        label_names=["negative", "positive"], device=ctx.device)
    artifact.save_metadata()
    return artifact


class LexiconPredictor:
    def __init__(self, domain: str, path: Path) -> None:
        self.domain = domain
        self.device = "cpu"
        lex = json.loads((path / "lexicon.json").read_text())
        self.pos, self.neg = set(lex["pos"]), set(lex["neg"])

    def predict(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        out = []
        for rec in records:
            words = set(str(rec["text"]).lower().replace(",", " ").split())
            score = len(words & self.pos) - len(words & self.neg)
            p_pos = 1.0 / (1.0 + np.exp(-score))
            label = "positive" if p_pos >= 0.5 else "negative"
            out.append(Prediction(label=label, scores={"negative": 1 - p_pos, "positive": p_pos},
                                  confidence=float(max(p_pos, 1 - p_pos))))
        return out


@hookimpl(tryfirst=True)
def domainfm_load_predictor(ctx: RunContext, domain: str, artifact: Artifact) -> Any:
    if not _mine(ctx, domain):
        return None
    return LexiconPredictor(domain, Path(artifact.path))


@hookimpl(tryfirst=True)
def domainfm_predict(ctx: RunContext, domain: str, predictor: Any, records: Sequence[Mapping[str, Any]]) -> Any:
    if not _mine(ctx, domain):
        return None
    preds = predictor.predict(records)
    for p in preds:
        p.extra["via"] = "example"
    return preds


@hookimpl(tryfirst=True)
def domainfm_evaluate(ctx: RunContext, domain: str, predictor: Any, data: DataBundle, split: str) -> Evaluation | None:
    if not _mine(ctx, domain):
        return None
    table = data.tables[split]
    preds = predictor.predict([dict(r) for r in table])
    correct = [float(p.label == y) for p, y in zip(preds, table["label"])]
    return Evaluation(
        domain=domain, split=split, metrics={"accuracy": float(np.mean(correct))}, key_metric="accuracy",
        n_items=len(correct),
        outcomes=Outcomes(ids=[str(i) for i in range(len(correct))], confidence=[p.confidence for p in preds],
                          quality=correct),
    )


@hookimpl
def domainfm_benefit_terms(ctx: RunContext, domain: str, evaluation: Evaluation) -> list[Any]:
    # Adds a term to EVERY domain: third-party plugins may contribute to any domain's report.
    return [
        BenefitTerm(name="example_review_minutes", objective="social", unit="minutes",
                    description="Reviewer minutes freed by automation (example).",
                    assumptions=[Assumption(name="minutes", value=0.5, unit="min", source="example")],
                    utility=lambda b: b.automated * 0.5),
        Constraint(name="example_min_accuracy", kind="safety", unit="accuracy", description="example",
                   limit=0.0, direction="min", measure=lambda b: float(b.quality.mean()) if len(b) else None),
    ]


@hookimpl(wrapper=True, specname="domainfm_train")
def wrap_every_training(ctx: RunContext, domain: str, data: DataBundle) -> Any:
    CALLS.append(f"train:{domain}")
    artifact = yield
    if artifact is not None:
        artifact.metadata["wrapped_by"] = "example"
        artifact.save_metadata()
    return artifact


@hookimpl(wrapper=True, specname="domainfm_load_data")
def wrap_every_data_load(ctx: RunContext, domain: str, source: str) -> Any:
    CALLS.append(f"data:{domain}")
    bundle = yield
    if bundle is not None:
        bundle.meta["seen_by_example"] = True
    return bundle
