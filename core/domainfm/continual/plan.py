"""The data of an improvement: the feedback split three ways, and the training sets of the child, of naive
fine-tuning and of full retraining.

- the feedback (every row the domain's reader returned, whatever split it put it in) is split, stratified by label
  and seeded, into training, validation and a held-out part (``options.feedback_holdout``, default 0.2);
- the **child** trains on the feedback's training part plus a seeded reservoir sample of the parent's training
  split (``options.replay_ratio`` parent rows per feedback row, default 1, but at least
  ``options.replay_per_label`` rows per parent label, default 10);
- **naive** fine-tuning trains on the feedback's training part alone; **full retraining** (from the base model)
  on the parent's whole training split plus that part;
- all three validate on the parent's validation split plus the feedback's validation part (same model selection
  and calibration), and are measured on the parent's test split ("old") and the held-out feedback ("new"); the
  child's run evaluates on both together, and so does its benefit report.

Labels are carried as names; the label list is the parent's, then the new labels (:func:`~domainfm.continual.head.grown_labels`).
Tables a domain keeps beside its splits (a knowledge base, Q&A pairs) come from the parent's data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from domainfm.continual.head import grown_labels
from domainfm.continual.replay import replay_indices
from domainfm.errors import DataError
from domainfm.types import DataBundle

SPLITS = ("train", "validation", "test")
# Replay ratio x feedback rows, but at least DEFAULT_REPLAY_PER_LABEL rows per parent label. Measured
# (benchmarks/continual): a parent with many labels needs them covered (BANKING77, 57 intents + 5 new, 140
# feedback rows: overall 0.726 / 0.763 / 0.787 replaying 280 / 420 / 560 rows); a parent with few labels adapting
# to a new domain needs the feedback to weigh (PhraseBank + 697 tweets: held-out tweets +6.3 points replaying 697
# PhraseBank rows, +0.8 replaying 2,788).
DEFAULT_REPLAY_RATIO = 1.0
DEFAULT_REPLAY_PER_LABEL = 10
VALIDATION_SHARE = 0.1


@dataclass
class ImprovePlan:
    labels: list[str]
    new_labels: list[str]
    child: DataBundle
    naive: DataBundle
    full: DataBundle
    old_test: list[dict[str, Any]]
    new_test: list[dict[str, Any]]
    replayed: list[int] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {"feedback_train": len(self.naive.tables["train"]), "feedback_validation":
                len(self.child.tables["validation"]) - self.parent_validation, "feedback_heldout": len(self.new_test),
                "replayed": len(self.replayed), "parent_test": len(self.old_test), "new_labels": len(self.new_labels)}

    parent_validation: int = 0


def rows_of(bundle: DataBundle, split: str, columns: Sequence[str]) -> list[dict[str, Any]]:
    """A split's rows with ``columns``, labels as names (an integer label is an index into ``label_names``)."""
    table = bundle.tables.get(split)
    if table is None or len(table) == 0:
        return []
    label = bundle.label_column or "label"
    names = bundle.label_names or []
    out = []
    for row in table:
        value = row[label]
        if isinstance(value, int) and not isinstance(value, bool) and names:
            if not 0 <= value < len(names):
                raise DataError(f"{bundle.source}[{split}]: label id {value} outside 0..{len(names) - 1}")
            value = names[value]
        out.append({**{c: row.get(c) for c in columns}, label: str(value)})
    return out


def split_feedback(rows: list[dict[str, Any]], label: str, holdout: float, seed: int, where: str
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(training, validation, held-out) rows of the feedback, stratified by label, seeded."""
    from domainfm.data import stratified_split_indices

    if not 0 < holdout < 0.9:
        raise DataError(f"options.feedback_holdout: {holdout} must be between 0 and 0.9")
    fractions = (1.0 - holdout - VALIDATION_SHARE, VALIDATION_SHARE, holdout)
    parts = stratified_split_indices([r[label] for r in rows], fractions, seed)
    train, valid, held = ([rows[i] for i in idx] for idx in parts)
    if not train or not held:
        raise DataError(f"{where}: {len(rows)} feedback rows are too few to train on and hold out "
                        f"{holdout:.0%} of each label; give at least {int(2 / holdout) + 1} rows of a label")
    return train, valid, held


def build_plan(parent: DataBundle, feedback: DataBundle, parent_labels: Sequence[str], *,
               replay_ratio: float = DEFAULT_REPLAY_RATIO, replay_per_label: int = DEFAULT_REPLAY_PER_LABEL,
               holdout: float = 0.2, seed: int = 42) -> ImprovePlan:
    """The child's, naive fine-tuning's and full retraining's data (see the module docstring)."""
    from domainfm.data import records_to_dataset

    text, label = parent.text_column or "text", parent.label_column or "label"
    if feedback.text_column != text or (feedback.label_column or "label") != label:
        raise DataError(f"{feedback.source}: feedback columns {feedback.text_column!r}/{feedback.label_column!r} differ "
                        f"from the parent's {text!r}/{label!r}")
    fb_columns = set().union(*(t.column_names for name, t in feedback.tables.items() if name in SPLITS))
    groups = [g for g in parent.group_columns if g in fb_columns]
    columns = [text, *groups]
    fb_rows = [r for split in SPLITS for r in rows_of(feedback, split, columns)]
    if not fb_rows:
        raise DataError(f"{feedback.source}: no labelled feedback rows")
    fb_train, fb_valid, fb_held = split_feedback(fb_rows, label, holdout, seed, feedback.source)
    parent_train = rows_of(parent, "train", columns)
    parent_valid = rows_of(parent, "validation", columns)
    parent_test = rows_of(parent, "test", columns)
    labels = grown_labels(parent_labels, [r[label] for r in fb_rows])
    new_labels = labels[len(parent_labels):]
    replayed = replay_indices(len(parent_train), len(fb_train), replay_ratio, seed,
                              at_least=replay_per_label * len(parent_labels))
    table_columns = [text, label, *groups]

    def bundle(train: list[dict[str, Any]], what: str) -> DataBundle:
        parts = {"train": train, "validation": parent_valid + fb_valid, "test": parent_test + fb_held}
        tables = {name: records_to_dataset(rows, columns=table_columns) for name, rows in parts.items()}
        tables.update({name: t for name, t in parent.tables.items() if name not in SPLITS})
        return DataBundle(tables=tables, source=f"{parent.source} + feedback {feedback.source} ({what})",
                          label_names=list(labels), text_column=text, label_column=label, group_columns=groups,
                          meta={**parent.meta, "continual": what}, public_names=list(parent.public_names))

    plan = ImprovePlan(
        labels=labels, new_labels=new_labels,
        child=bundle(fb_train + [parent_train[i] for i in replayed], "replay"),
        naive=bundle(list(fb_train), "naive"),
        full=bundle(parent_train + fb_train, "full retraining"),
        old_test=parent_test, new_test=fb_held, replayed=replayed,
    )
    plan.parent_validation = len(parent_valid)
    return plan
