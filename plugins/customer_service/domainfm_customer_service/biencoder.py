"""Fine-tuning the retrieval bi-encoder with sentence-transformers' own trainer.

Pairs are (question, passage that answers it): historical question→answer pairs, and training utterances
paired with the knowledge-base document of their intent. The loss is MultipleNegativesRankingLoss
(contrastive, every other passage in the batch is a negative); the no-duplicates batch sampler keeps two
copies of one passage out of a batch, where they would be false negatives.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domainfm.errors import DataError

from domainfm.engine.documents import Document


def build_pairs(
    utterances: Sequence[dict[str, Any]],
    documents: Sequence[Document],
    qa_pairs: Sequence[dict[str, Any]],
    *,
    max_pairs: int | None = None,
    seed: int = 42,
) -> list[tuple[str, str]]:
    """(anchor, positive) pairs from Q→A history and intent-labelled utterances (training split only)."""
    by_intent: dict[str, list[Document]] = {}
    for doc in documents:
        if doc.intent:
            by_intent.setdefault(doc.intent, []).append(doc)
    pairs = [(qa["question"], qa["answer"]) for qa in qa_pairs]
    for row in utterances:
        for doc in by_intent.get(row["intent"], []):
            pairs.append((row["text"], f"{doc.title}. {doc.text}" if doc.title else doc.text))
    rng = random.Random(seed)
    rng.shuffle(pairs)
    return pairs[:max_pairs] if max_pairs else pairs


def fine_tune_biencoder(
    base_path: str | Path,
    pairs: Sequence[tuple[str, str]],
    output_dir: str | Path,
    *,
    device: str = "cpu",
    epochs: float = 1.0,
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    max_length: int = 128,
    max_steps: int | None = None,
    seed: int = 42,
    checkpoint_dir: str | Path | None = None,
    report_to: str | list[str] = "none",
) -> dict[str, Any]:
    """Train a SentenceTransformer on ``pairs`` and save it to ``output_dir`` (atomically); returns stats.
    ``report_to``: the Trainer's trackers (``domainfm.tracking.trainer_arguments(ctx)``)."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from domainfm.io import atomic_directory

    if len(pairs) < 2:
        raise DataError(f"bi-encoder fine-tuning needs at least 2 question-passage pairs, got {len(pairs)}")
    model = SentenceTransformer(str(base_path), device=device, trust_remote_code=False)
    model.max_seq_length = max_length
    train = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    on_gpu = device.startswith("cuda")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoint_dir or Path(output_dir).with_name(Path(output_dir).name + ".ckpt")),
        num_train_epochs=epochs,
        max_steps=max_steps or -1,
        per_device_train_batch_size=min(batch_size, len(pairs)),
        learning_rate=learning_rate,
        warmup_steps=0.1,
        seed=seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to=report_to,
        logging_steps=50,
        use_cpu=not on_gpu,
        fp16=False,
        bf16=False,
        disable_tqdm=os.environ.get("DOMAINFM_NO_PROGRESS") == "1",
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train, loss=MultipleNegativesRankingLoss(model)
    )
    result = trainer.train()
    with atomic_directory(output_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        # The generated model card quotes training pairs verbatim: customer text must not leave in it.
        (tmp / "README.md").unlink(missing_ok=True)
    return {
        "pairs": len(pairs),
        "steps": int(trainer.state.global_step),
        "train_loss": float(result.training_loss),
        "epochs": float(trainer.state.epoch or 0.0),
    }
