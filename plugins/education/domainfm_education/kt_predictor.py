"""Load a knowledge-tracing artifact; mastery per skill and study-next recommendations per student.

A request record is ``{"id": <student>, "skills": [...], "correct": [...]}`` (skill names as in training,
or integer skill indices as stored in the data tables) or ``{"id": ..., "interactions": [{"skill": ..., "correct": ...}, ...]}``. Defined behaviour:

- an empty history gives the model's prior mastery; one answer is enough for an estimate;
- histories longer than the model's window (``max_len``, 200 by default) use their most recent window
  and say so in ``extra["truncated_to"]`` (10,000 answers cost the same as 200);
- answers on skills the model does not know are ignored and listed in ``extra["unknown_skills"]``;
- a ``correct`` value other than 0/1/true/false, or lists of different lengths, raise a DataError naming
  the record and field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.errors import DataError
from domainfm.types import Artifact, Prediction, RankedItem
from domainfm_education.kt_data import parse_correct
from domainfm_education.recommend import SkillGraph, rank_skills

KIND = "knowledge-tracing"
CONFIG_FILE = "kt_config.json"


def mastery_vector(model: Any, skills: Sequence[int], correct: Sequence[int], device: str,
                   candidates: Sequence[int] | None = None) -> np.ndarray:
    """P(correct next answer) on every skill (or only ``candidates``; others may be NaN) after the history."""
    import torch

    from domainfm_education.kt_models import next_step_features

    n = int(model.n_skills)
    with torch.no_grad():
        s = torch.tensor([list(skills)], dtype=torch.long, device=device)
        c = torch.tensor([list(correct)], dtype=torch.long, device=device)
        feats = torch.from_numpy(next_step_features(list(skills), list(correct), n)).to(device)
        cand = torch.tensor(list(candidates), dtype=torch.long, device=device) if candidates is not None else None
        return model.mastery(s, c, feats, cand).float().cpu().numpy()


def save_kt_artifact(path: Path, model: Any, config: dict[str, Any]) -> None:
    """Weights (safetensors) and ``kt_config.json`` into ``path`` atomically."""
    from domainfm.engine.module_store import save_module

    save_module(path, model, config, config_file=CONFIG_FILE)


class KTPredictor:
    """A loaded knowledge-tracing model plus the skill graph used for recommendations."""

    def __init__(self, artifact: Artifact, model: Any, config: dict[str, Any], device: str) -> None:
        self.artifact = artifact
        self.domain = artifact.domain
        self.device = device
        self.model = model
        self.config = config
        self.max_len = int(config.get("max_len", 200))
        self.graph = SkillGraph.from_json(config["graph"])
        self.skill_names: list[str] = list(config["skill_names"])
        self.skill_index = {name: i for i, name in enumerate(self.skill_names)}

    @classmethod
    def load(cls, artifact: Artifact, device: str = "cpu") -> KTPredictor:
        from domainfm.engine.module_store import load_module
        from domainfm_education.kt_models import build_model

        model, config = load_module(artifact.path, lambda c: build_model(c["model"], len(c["skill_names"]),
                                                                         **c.get("params", {})),
                                    device, config_file=CONFIG_FILE)
        return cls(artifact, model, config, device)

    def encode(self, record: Mapping[str, Any], where: str) -> tuple[list[int], list[int], list[str]]:
        """Skill indices and answers of a record; unknown skills are returned separately."""
        if "interactions" in record:
            pairs = [(x.get("skill", ""), x.get("correct")) for x in record["interactions"] or []]
        else:
            skills, correct = record.get("skills") or [], record.get("correct") or []
            if len(skills) != len(correct):
                raise DataError(f"{where}: fields 'skills' ({len(skills)}) and 'correct' ({len(correct)}) differ in length")
            pairs = list(zip(skills, correct, strict=True))
        out_s, out_c, unknown = [], [], []
        for pos, (skill, value) in enumerate(pairs):
            answer = parse_correct(value, f"{where}: answer #{pos + 1}")
            if isinstance(skill, (int, np.integer)) and not isinstance(skill, bool):
                index = int(skill) if 0 <= int(skill) < len(self.skill_names) else None  # a stored index
            else:
                index = self.skill_index.get(str(skill).strip())
            if index is None:
                unknown.append(str(skill))
            else:
                out_s.append(index)
                out_c.append(answer)
        return out_s, out_c, unknown

    def predict(self, records: Sequence[Mapping[str, Any]], top: int = 5) -> list[Prediction]:
        out = []
        for i, rec in enumerate(records):
            skills, correct, unknown = self.encode(rec, f"record {i}")
            extra: dict[str, Any] = {"history_length": len(skills)}
            if unknown:
                extra["unknown_skills"] = sorted(set(unknown))
                extra["note"] = f"{len(unknown)} answers on skills the model does not know were ignored"
            if len(skills) > self.max_len:
                extra["truncated_to"] = self.max_len
                skills, correct = skills[-self.max_len :], correct[-self.max_len :]
            mastery = mastery_vector(self.model, skills, correct, self.device)
            ranked = rank_skills(mastery, self.graph, top=top)
            extra["mastery"] = {self.skill_names[s]: round(float(m), 4) for s, m in enumerate(mastery)}
            out.append(
                Prediction(
                    id=str(rec.get("id", rec.get("student"))) if rec.get("id", rec.get("student")) is not None else None,
                    value=float(np.mean(mastery)),
                    ranking=[RankedItem(id=self.skill_names[s], score=g, reason=r) for s, g, r in ranked],
                    confidence=float(np.clip(np.mean(np.abs(mastery - 0.5)) * 2, 0.0, 1.0)),
                    extra=extra,
                )
            )
        return out
