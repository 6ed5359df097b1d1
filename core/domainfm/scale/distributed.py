"""Data-parallel fine-tuning on the Trainer path (:mod:`domainfm.engine.hf_trainer`).

The same worker runs under ``torchrun`` / ``accelerate launch`` (one process per rank, gloo on CPU, NCCL on GPU)
and inside Ray Train's ``TorchTrainer``. ``train.batch_size`` stays the *global* batch: each of the W ranks takes
``batch_size / W`` rows per step (:func:`per_rank_batch_size`), so W processes take the optimiser steps one process
takes, on the same rows, and end at the same loss (up to float reduction order; dropout draws differ per rank).

    torchrun --nproc_per_node 2 -m domainfm.scale.distributed spec.json
    accelerate launch --multi_gpu --num_processes 2 -m domainfm.scale.distributed spec.json   # GPUs

(``accelerate launch`` on CPU, ``--cpu`` or a MULTI_CPU config, started one process with accelerate here: use
torchrun for CPU ranks.)

``spec.json``: ``{"base": MODEL, "data": CSV (text,label), "output": DIR, "result": JSON, "epochs": 2,
"batch_size": 8, "learning_rate": 5e-4, "max_length": 32, "seed": 0}``; rank 0 writes the result (final and
mean training loss, world size, backend).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from domainfm.errors import ConfigError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def per_rank_batch_size(global_batch: int) -> int:
    """The rows one rank takes per step so that all ranks together take ``global_batch``."""
    size = world_size()
    if global_batch % size:
        raise ConfigError(f"train.batch_size={global_batch} does not split over {size} processes; use a multiple of {size}")
    return global_batch // size


def ddp_backend(on_gpu: bool) -> str | None:
    """NCCL between GPUs, gloo between CPU processes; None in a single process."""
    if world_size() <= 1:
        return None
    return "nccl" if on_gpu else "gloo"


def train_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune ``spec["base"]`` on ``spec["data"]`` through :func:`~domainfm.engine.hf_trainer.build_trainer` on
    this rank; every rank returns the run's losses (the Trainer averages logged losses over ranks)."""
    import torch

    from domainfm.config import build_config
    from domainfm.io import read_records
    from domainfm.engine.hf_trainer import build_trainer, load_sequence_classifier, tokenized_dataset
    from domainfm.types import RunContext

    rows = read_records(spec["data"], required=("text", "label"))
    labels = sorted({str(r["label"]) for r in rows})
    config = build_config(None, [
        f"train.batch_size={int(spec.get('batch_size', 8))}", f"train.epochs={float(spec.get('epochs', 2))}",
        f"train.seed={int(spec.get('seed', 0))}", "train.group_by_length=false",
        "train.warmup_ratio=0", "train.weight_decay=0", f"model.max_length={int(spec.get('max_length', 32))}",
    ])
    on_gpu = torch.cuda.is_available() and spec.get("device", "auto") != "cpu"
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if on_gpu else "cpu"
    ctx = RunContext(run_id=f"ddp-{world_size()}", domain="text_classification", config=config,
                     run_dir=Path(spec["output"]), device=device)
    torch.manual_seed(config.train.seed)
    model, tokenizer = load_sequence_classifier(Path(spec["base"]), labels, trust_remote_code=False)
    dataset = tokenized_dataset(tokenizer, [str(r["text"]) for r in rows], None,
                                [labels.index(str(r["label"])) for r in rows], config.model.max_length)
    trainer = build_trainer(ctx, model, tokenizer, dataset, None, learning_rate=float(spec.get("learning_rate", 5e-4)),
                            head_learning_rate=None, autocast=None, class_weights=None)
    initial_loss = full_data_loss(model, dataset, tokenizer)
    model.train()
    trainer.train()
    return {"world_size": world_size(), "backend": ddp_backend(on_gpu) or "none", "device": device,
            "steps": int(trainer.state.global_step), "initial_loss": initial_loss,
            "final_loss": full_data_loss(trainer.model, dataset, tokenizer),
            "per_rank_batch": per_rank_batch_size(config.train.batch_size)}


def full_data_loss(model: Any, dataset: Any, tokenizer: Any, batch_size: int = 64) -> float:
    """Mean cross-entropy of the trained model over every training row, in this process (the Trainer's logged
    loss is per-rank-scaled under DDP, so it is not comparable across world sizes)."""
    import torch
    from transformers import DataCollatorWithPadding

    collate = DataCollatorWithPadding(tokenizer)
    model = getattr(model, "module", model)
    model.eval()
    total, count = 0.0, 0
    columns = [c for c in dataset.column_names if c in ("input_ids", "attention_mask", "token_type_ids", "labels")]
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            rows = dataset.select(range(start, min(start + batch_size, len(dataset)))).select_columns(columns)
            batch = collate(rows.to_list())
            batch = {k: v.to(model.device) for k, v in batch.items()}
            out = model(**batch)
            total += float(out.loss) * len(batch["labels"])
            count += len(batch["labels"])
    return total / count


def train_on_ray(spec: dict[str, Any], num_workers: int = 2, use_gpu: bool = False) -> dict[str, Any]:
    """The same worker on ``num_workers`` Ray Train workers (TorchTrainer sets up the process group)."""
    from domainfm.scale.cluster import ensure_ray

    ensure_ray()
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        _ray_train_loop, train_loop_config=spec,
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(name="domainfm-ddp", storage_path=str(Path(spec["output"]).resolve() / "ray")),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    return dict(result.metrics or {})


def _ray_train_loop(spec: dict[str, Any]) -> None:
    import tempfile

    import ray.train
    from ray.train import Checkpoint

    context = ray.train.get_context()
    # the Trainer (through accelerate) reads the rank layout from the environment
    os.environ.update({"RANK": str(context.get_world_rank()), "WORLD_SIZE": str(context.get_world_size()),
                       "LOCAL_RANK": str(context.get_local_rank())})
    metrics = train_worker({**spec, "output": str(Path(spec["output"]) / f"rank-{context.get_world_rank()}")})
    with tempfile.TemporaryDirectory() as folder:  # Ray Train keeps metrics only with a checkpoint
        (Path(folder) / "result.json").write_text(json.dumps(metrics), encoding="utf-8")
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.exit("usage: torchrun --nproc_per_node N -m domainfm.scale.distributed SPEC.json")
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    result = train_worker(spec)
    if rank() == 0:
        from domainfm.io import atomic_write_json

        atomic_write_json(spec["result"], result)


if __name__ == "__main__":  # pragma: no cover
    main()
