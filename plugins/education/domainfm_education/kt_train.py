"""Train a knowledge-tracing model for the ``knowledge_tracing`` domain and save it as an artifact.

Options: ``kt_model`` (``akt`` or ``dkt``), ``kt_epochs`` (default 10), ``kt_max_len`` (200),
``kt_batch_size`` (32), ``kt_lr`` (3e-3), ``catalogue`` (prerequisite CSV; the demo has its own).
"""

from __future__ import annotations

from typing import Any

from domainfm.types import Artifact, DataBundle, RunContext
from domainfm_education.kt_predictor import CONFIG_FILE, KIND, save_kt_artifact


def _sequences(table: Any) -> list[tuple[list[int], list[int]]]:
    return [(list(s), list(c)) for s, c in zip(table["skills"], table["correct"], strict=True)]


def train_kt(ctx: RunContext, data: DataBundle) -> Artifact:
    """Fit the configured model with early stopping on validation AUC; save weights, config, skill graph."""
    from domainfm.model_size import record_parameters
    from domainfm_education.kt_fit import fit, make_windows
    from domainfm_education.recommend import SkillGraph

    kind = str(ctx.option("kt_model", "akt"))
    max_len = int(ctx.option("kt_max_len", 200))
    keys = list(data.meta["skill_keys"])
    titles = list(data.meta.get("skill_titles") or keys)
    train_seq = _sequences(data.split("train"))
    valid_seq = _sequences(data.tables["validation"]) if "validation" in data.tables else []
    result = fit(
        kind, len(keys), make_windows(train_seq, max_len), make_windows(valid_seq, max_len),
        device=ctx.device, epochs=int(ctx.option("kt_epochs", 10)), batch_size=int(ctx.option("kt_batch_size", 32)),
        lr=float(ctx.option("kt_lr", 3e-3)), seed=ctx.config.train.seed,
    )
    graph = SkillGraph.from_sequences(train_seq, len(keys), titles,
                                      min_students=max(3, min(30, len(train_seq) // 10)))
    catalogue = ctx.option("catalogue") or data.meta.get("catalogue")
    if catalogue:
        graph = graph.with_catalogue(catalogue)
    params = {"hidden": 200, "embed": 200} if kind == "dkt" else {}
    config = {"model": kind, "params": params, "max_len": max_len, "skill_names": keys, "graph": graph.as_json(),
              "pseudonymised_students": True}
    save_kt_artifact(ctx.artifact_dir, result.model, config)
    size = record_parameters(ctx, result.model)  # the training time is the Runner's (its train stage)
    artifact = Artifact(
        path=ctx.artifact_dir, domain=ctx.domain, kind=KIND, base_model=f"domainfm-education/{kind}",
        device=ctx.device,
        metadata={"kt_model": kind, "variant": f"kt-{kind}", "config_file": CONFIG_FILE, "best_epoch": result.best_epoch,
                  "validation_auc": result.best_valid_auc, "history": result.history,
                  "parameters": size["parameters"], "max_len": max_len,
                  "data_notes": data.meta.get("notes", {})},
    )
    artifact.save_metadata()
    return artifact
