"""Readers of the recommendation domain's own data sets: MovieLens (ratings, movies, user tags) and the packaged
demo. Interaction logs and item catalogues in general are read by :mod:`domainfm.ranking.interactions` (aliases,
implicit clicks, ISO times, file:line errors), re-exported here for the plugin and the benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from domainfm.errors import DataError
from domainfm.ranking.interactions import *  # noqa: F403
from domainfm.ranking.interactions import (
    Interaction, ItemRecord, compose_text, interactions_from_rows, items_from_rows, optional_str, parse_id, read_interactions,
    read_items, row_location,
)


# --------------------------------------------------------------------------------------------- MovieLens


@dataclass
class MovieLens:
    """ml-latest-small as read: ratings, movies (title + genres) and user tags (kept apart, see below)."""

    interactions: list[Interaction]
    items: list[ItemRecord]
    tags: list[tuple[str, str, str]]  # (user, item, tag): joined to item text only after the split

    def items_with_tags(self, exclude_pairs: set[tuple[str, str]]) -> list[ItemRecord]:
        """Items whose text adds the tags users applied, except tags from held-out (user, item) pairs.

        A tag is evidence that its user interacted with the item; keeping tags from a held-out pair
        would leak the answer into the item text, so they are dropped.
        """
        per_item: dict[str, list[str]] = {}
        for user, item, tag in self.tags:
            if (user, item) in exclude_pairs:
                continue
            bucket = per_item.setdefault(item, [])
            if tag.lower() not in (t.lower() for t in bucket):
                bucket.append(tag)
        out = []
        for rec in self.items:
            tags = per_item.get(rec.item)
            text = compose_text(rec.text, [f"tags: {', '.join(tags[:20])}"]) if tags else rec.text
            out.append(ItemRecord(rec.item, rec.title, text, rec.creator))
        return out


def read_movielens(directory: str | Path) -> MovieLens:
    """Read MovieLens (``ratings.csv``, ``movies.csv``, optional ``tags.csv``) from ``directory``."""
    from domainfm.data import read_table

    directory = Path(directory)
    ratings_path, movies_path = directory / "ratings.csv", directory / "movies.csv"
    for p in (ratings_path, movies_path):
        if not p.is_file():
            raise DataError(f"{directory}: not a MovieLens directory (missing {p.name})")
    interactions = interactions_from_rows(read_table(ratings_path, required=("userId", "movieId")), ratings_path)
    items = items_from_rows(read_table(movies_path, required=("movieId", "title")), movies_path)
    tags: list[tuple[str, str, str]] = []
    tags_path = directory / "tags.csv"
    if tags_path.is_file():
        for i, row in enumerate(read_table(tags_path, required=("userId", "movieId", "tag"))):
            where = row_location(tags_path, row, i)
            tag = optional_str(row.get("tag"))
            if tag:
                tags.append((parse_id(row["userId"], where, "userId"), parse_id(row["movieId"], where, "movieId"), tag))
    return MovieLens(interactions, items, tags)


# ------------------------------------------------------------------------------------------------ demo


def demo_paths() -> tuple[Path, Path]:
    """Paths of the packaged demo catalogue and interaction log."""
    base = Path(str(resources.files("domainfm_recommendation") / "demo_data"))
    return base / "items.csv", base / "interactions.csv"


def read_demo() -> tuple[list[Interaction], list[ItemRecord]]:
    """The project's own offline demo: a hobby-workshop catalogue and its interaction log."""
    items_path, log_path = demo_paths()
    return read_interactions(log_path), read_items(items_path)
