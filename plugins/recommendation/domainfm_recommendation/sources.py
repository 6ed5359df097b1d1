"""Resolve a data source name to the protocol's split.

- ``demo``: the packaged demo catalogue and interaction log;
- ``movielens`` / ``ml-latest-small``: ``$DOMAINFM_SHARED_DATA/recommendation/ml-latest-small``;
- a MovieLens directory (``ratings.csv`` + ``movies.csv``);
- a directory with ``interactions.{csv,tsv,jsonl,parquet}`` and optionally ``items.{...}``;
- an interactions file, optionally ``interactions.csv::items.csv`` to name the catalogue too.
"""

from __future__ import annotations

from pathlib import Path

from domainfm.errors import DataError
from domainfm.readers import find_file
from domainfm.shared_data import shared_data_dir

from domainfm_recommendation.protocol import Split, prepare
from domainfm_recommendation.readers import read_demo, read_interactions, read_items, read_movielens

_EXTS = (".csv", ".tsv", ".jsonl", ".parquet")


def movielens_dir() -> Path:
    """Where ml-latest-small is expected: under the core's shared data folder (:mod:`domainfm.shared_data`)."""
    return (shared_data_dir() or Path("shared") / "data") / "recommendation" / "ml-latest-small"


def load_split(source: str) -> Split:
    """Read ``source`` and apply the pinned protocol (clean, complete catalogue, leave-one-out)."""
    if source == "demo":
        interactions, items = read_demo()
        split = prepare(interactions, items)
        split.report["source"] = "demo"
        return split
    if source in ("movielens", "ml-latest-small"):
        path = movielens_dir()
        if not path.is_dir():
            raise DataError(f"{source}: MovieLens not found at {path} (set DOMAINFM_SHARED_DATA)")
        return _movielens(path)
    if "::" in source:
        log, catalogue = source.split("::", 1)
        split = prepare(read_interactions(log), read_items(catalogue))
        split.report["source"] = source
        return split
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "ratings.csv").is_file() and (path / "movies.csv").is_file():
            return _movielens(path)
        log = find_file(path, ("interactions",), _EXTS)
        if log is None:
            raise DataError(f"{path}: expected ratings.csv + movies.csv (MovieLens) or interactions.{{csv,parquet,...}}")
        catalogue = find_file(path, ("items",), _EXTS)
        split = prepare(read_interactions(log), read_items(catalogue) if catalogue else [])
        split.report["source"] = str(path)
        return split
    if path.is_file():
        split = prepare(read_interactions(path), [])
        split.report["source"] = str(path)
        return split
    raise DataError(f"{source}: no such data source (use 'demo', 'movielens', a directory or a file)")


def _movielens(path: Path) -> Split:
    ml = read_movielens(path)
    split = prepare(ml.interactions, ml.items)
    # Tags are joined after the split so that no tag from a held-out (user, item) pair reaches the text.
    tagged = {it.item: it for it in ml.items_with_tags(split.held_out_pairs())}
    split.items = [tagged.get(it.item, it) for it in split.items]
    split.report["source"] = f"movielens:{path}"
    split.report["tags_from_held_out_pairs_dropped"] = True
    return split
