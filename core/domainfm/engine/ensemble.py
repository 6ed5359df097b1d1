"""Deep ensembles of text classifiers (``train.ensemble_size`` > 1).

Lakshminarayanan et al. (NeurIPS 2017, "Simple and Scalable Predictive Uncertainty Estimation using Deep
Ensembles"): the same model fine-tuned from different seeds (different head initialisation and data order),
its members' probabilities averaged, is better calibrated and more accurate than one member, at k times the
training and inference cost. Every fine-tuning mode works: each member is an ordinary artifact of the
configured mode, trained with seed ``train.seed + i`` by :func:`~domainfm.engine.text_classifier.fine_tune_text_classifier`
under ``<artifact>/../members/<i>/`` (its own checkpoints, so a killed run resumes inside the member it was
training and skips finished ones), then copied into the ensemble artifact's ``members/<i>/``.

The ensemble's logits are the log of the mean of the members' softmax probabilities (each member uncalibrated,
temperature 1), so the ensemble artifact's own calibrator (fitted on validation like any artifact's) applies on
top of them, and every caller of :class:`~domainfm.engine.classifier_predictor.TextClassifierPredictor` works
unchanged.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.engine.calibration import softmax
from domainfm.engine.classifier_predictor import KIND_ENSEMBLE, TextClassifierPredictor
from domainfm.errors import DataError
from domainfm.io import atomic_directory
from domainfm.types import ARTIFACT_METADATA, Artifact, RunContext

MEMBERS_DIR = "members"


def member_context(ctx: RunContext, index: int) -> RunContext:
    """The context member ``index`` trains in: seed ``train.seed + index``, size 1, its own run folder."""
    config = ctx.config.model_copy(deep=True)
    config.train.seed = ctx.config.train.seed + index
    config.train.ensemble_size = 1
    return dataclasses.replace(ctx, config=config, run_dir=ctx.artifact_dir.parent / MEMBERS_DIR / str(index), variant=None,
                               state={})


def train_members(ctx: RunContext, train_one: Callable[[RunContext], Artifact]) -> list[Artifact]:
    """Train (or pick up, when a finished artifact is there from an earlier, killed run) every member."""
    members = []
    for index in range(ctx.config.train.ensemble_size):
        member_ctx = member_context(ctx, index)
        done = member_ctx.artifact_dir / ARTIFACT_METADATA
        members.append(Artifact.load(member_ctx.artifact_dir) if done.is_file() else train_one(member_ctx))
    return members


def assemble(ctx: RunContext, members: Sequence[Artifact], metadata: dict[str, Any]) -> Artifact:
    """Copy the members into ``ctx.artifact_dir/members/`` (one atomic rename) and save the ensemble's
    metadata; the members' training folders are removed afterwards."""
    first = members[0]
    with atomic_directory(ctx.artifact_dir) as tmp:
        for index, member in enumerate(members):
            shutil.copytree(member.path, tmp / MEMBERS_DIR / str(index), ignore=shutil.ignore_patterns("onnx"))
    artifact = Artifact(
        path=ctx.artifact_dir,
        domain=ctx.domain,
        kind=KIND_ENSEMBLE,
        base_model=first.base_model,
        label_names=list(first.label_names or []),
        device=ctx.device,
        metadata={
            **metadata,
            "members": [f"{MEMBERS_DIR}/{i}" for i in range(len(members))],
            "member_seeds": [ctx.config.train.seed + i for i in range(len(members))],
            "member_kind": first.kind,
            "member_best_validation_macro_f1": [m.metadata.get("best_validation_macro_f1") for m in members],
            "combination": "log of the mean of the members' softmax probabilities (temperature 1)",
        },
    )
    artifact.save_metadata()
    shutil.rmtree(ctx.artifact_dir.parent / MEMBERS_DIR, ignore_errors=True)
    return artifact


class EnsemblePredictor(TextClassifierPredictor):
    """A loaded ensemble: the members' averaged probabilities, under the ensemble's own calibrator."""

    def __init__(self, artifact: Artifact, device: str, members: Sequence[TextClassifierPredictor]) -> None:
        super().__init__(artifact, device, model=None)
        if not members:
            raise DataError(f"{artifact.path}: an ensemble artifact with no members")
        self.members = list(members)
        self.precision = self.members[0].precision

    @classmethod
    def load_members(cls, artifact: Artifact, device: str = "cpu", precision: str | None = None) -> EnsemblePredictor:
        names = artifact.metadata.get("members") or []
        members = []
        for name in names:
            path = Path(artifact.path) / str(name)
            if not (path / ARTIFACT_METADATA).is_file():
                raise DataError(f"{artifact.path}: metadata field 'members': {name} is not an artifact")
            members.append(TextClassifierPredictor.load(path, device, precision))
        return cls(artifact, device, members)

    @property
    def torch_model(self) -> Any:
        raise TypeError(f"{self.artifact.path}: an ensemble has one torch model per member (see .members)")

    def set_precision(self, dtype: str) -> None:
        for member in self.members:
            member.set_precision(dtype)
        self.precision = dtype

    def predict_logits(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        probs = np.mean([softmax(m.predict_logits(texts, pairs)) for m in self.members], axis=0)
        return np.log(np.clip(probs, 1e-12, None)).astype(np.float32)
