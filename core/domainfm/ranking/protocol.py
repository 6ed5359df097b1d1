"""A pinned evaluation protocol for ranking from interaction logs: cleaning, temporal leave-one-out split, tables.

Fixed in code, not configurable, so every model and baseline of a domain sees the same split:

1. Clean: events are ordered by timestamp; ties are broken by a seeded hash of (user, item) (not by file
   order, which in MovieLens follows item id and would favour new films); a repeated (user, item) keeps
   its latest event only (recommendation = items the user has not interacted with yet).
2. Split per user: the latest event is ``test``, the one before is ``validation``, the rest is ``train``.
   Users with fewer than three events stay in ``train`` only and are not evaluated.
3. Model selection (weights, baseline hyper-parameters, calibration) uses ``validation`` with ``train`` as
   history; the final test run refits on ``train`` + ``validation``.
4. Ranking is over the full catalogue (no sampled negatives), excluding items in the user's history
   (:mod:`domainfm.ranking.metrics`).

``prepare(interactions, items)`` runs all of it; ``events_to_dataset`` / ``items_to_dataset`` (and back) carry
the split in a :class:`~domainfm.types.DataBundle`.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from domainfm.errors import DataError

from domainfm.ranking.interactions import Interaction, ItemRecord

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

PROTOCOL_SEED = 20240611
PROTOCOL = "temporal-leave-one-out/full-ranking/seen-excluded"
INTERACTION_COLUMNS = ("user", "item", "rating", "timestamp")
ITEM_COLUMNS = ("item", "title", "text", "creator")

__all__ = [
    "INTERACTION_COLUMNS", "ITEM_COLUMNS", "PROTOCOL", "PROTOCOL_SEED", "CleanReport", "Split", "clean",
    "complete_catalogue", "dataset_to_events", "dataset_to_items", "events_to_dataset", "items_to_dataset", "prepare",
    "temporal_leave_one_out",
]


@dataclass
class CleanReport:
    """What cleaning changed; reported in ``DataBundle.meta``."""

    rows_in: int = 0
    duplicates_dropped: int = 0
    out_of_order_rows: int = 0
    unknown_items_added: int = 0
    items_without_text: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _tiebreak(user: str, item: str, seed: int) -> int:
    digest = hashlib.blake2b(f"{seed}\x1f{user}\x1f{item}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def clean(interactions: list[Interaction], seed: int = PROTOCOL_SEED) -> tuple[list[Interaction], CleanReport]:
    """Order events in time (seeded tie-break), keep the latest event of each (user, item)."""
    report = CleanReport(rows_in=len(interactions))
    last_ts: dict[str, float] = {}
    for ev in interactions:  # out-of-order: earlier than some previous row of the same user
        if ev.user in last_ts and ev.timestamp < last_ts[ev.user]:
            report.out_of_order_rows += 1
        last_ts[ev.user] = max(ev.timestamp, last_ts.get(ev.user, ev.timestamp))
    ordered = sorted(interactions, key=lambda e: (e.timestamp, _tiebreak(e.user, e.item, seed), e.order))
    latest: dict[tuple[str, str], int] = {}
    for pos, ev in enumerate(ordered):
        latest[(ev.user, ev.item)] = pos
    keep = sorted(latest.values())
    report.duplicates_dropped = len(ordered) - len(keep)
    return [ordered[p] for p in keep], report


def complete_catalogue(
    interactions: list[Interaction], items: list[ItemRecord], report: CleanReport | None = None
) -> list[ItemRecord]:
    """Add items that appear in interactions but not in the catalogue (no text: has_text is False)."""
    known = {it.item for it in items}
    extra = sorted({ev.item for ev in interactions} - known)
    if report is not None:
        report.unknown_items_added = len(extra)
    out = list(items) + [ItemRecord(item, "", "") for item in extra]
    if report is not None:
        report.items_without_text = sum(not it.has_text for it in out)
    return out


@dataclass
class Split:
    """The protocol's split: time-ordered train events and one validation/test event per user."""

    train: list[Interaction]
    validation: list[Interaction]
    test: list[Interaction]
    items: list[ItemRecord]
    report: dict[str, Any] = field(default_factory=dict)

    def held_out_pairs(self) -> set[tuple[str, str]]:
        return {(e.user, e.item) for e in self.validation + self.test}


def temporal_leave_one_out(events: list[Interaction], items: list[ItemRecord]) -> Split:
    """Split cleaned, time-ordered ``events``: per user, last → test, second last → validation."""
    per_user: dict[str, list[Interaction]] = defaultdict(list)
    for ev in events:
        per_user[ev.user].append(ev)
    train: list[Interaction] = []
    validation: list[Interaction] = []
    test: list[Interaction] = []
    too_short = 0
    for user in sorted(per_user):
        seq = per_user[user]
        if len(seq) < 3:
            too_short += 1
            train.extend(seq)
            continue
        train.extend(seq[:-2])
        validation.append(seq[-2])
        test.append(seq[-1])
    if not test:
        raise DataError("no user has at least 3 distinct interactions; nothing to evaluate")
    order = {id(ev): i for i, ev in enumerate(events)}
    train.sort(key=lambda e: order[id(e)])
    report = {"protocol": PROTOCOL, "seed": PROTOCOL_SEED, "users": len(per_user), "users_not_evaluated": too_short}
    return Split(train, validation, test, items, report)


def prepare(interactions: list[Interaction], items: list[ItemRecord]) -> Split:
    """Clean, complete the catalogue and split: the whole pinned protocol in one call."""
    events, report = clean(interactions)
    catalogue = complete_catalogue(events, items, report)
    split = temporal_leave_one_out(events, catalogue)
    split.report.update(report.as_dict())
    return split


# ----------------------------------------------------------------------------- DataBundle conversion


def events_to_dataset(events: list[Interaction]) -> Dataset:
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "user": [e.user for e in events],
            "item": [e.item for e in events],
            "rating": [float(e.rating) for e in events],
            "timestamp": [float(e.timestamp) for e in events],
        }
    )


def items_to_dataset(items: list[ItemRecord]) -> Dataset:
    from datasets import Dataset

    return Dataset.from_dict({c: [getattr(it, c) for it in items] for c in ITEM_COLUMNS})


def dataset_to_events(table: Any) -> list[Interaction]:
    """Back from a table (already cleaned and ordered by the protocol) to events."""
    cols = table.to_dict() if hasattr(table, "to_dict") else table
    return [
        Interaction(str(u), str(i), float(r), float(t), n)
        for n, (u, i, r, t) in enumerate(zip(cols["user"], cols["item"], cols["rating"], cols["timestamp"], strict=True))
    ]


def dataset_to_items(table: Any) -> list[ItemRecord]:
    cols = table.to_dict() if hasattr(table, "to_dict") else table
    creators = cols.get("creator") or [""] * len(cols["item"])
    return [
        ItemRecord(str(i), str(t or ""), str(x or ""), str(c or ""))
        for i, t, x, c in zip(cols["item"], cols["title"], cols["text"], creators, strict=True)
    ]
