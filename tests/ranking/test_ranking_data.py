"""domainfm.ranking.interactions and .protocol: aliases, bad input, duplicates, ordering, the split's properties."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domainfm.errors import DataError
from domainfm.ranking.interactions import Interaction, ItemRecord, parse_rating, read_interactions, read_items
from domainfm.ranking.protocol import clean, complete_catalogue, prepare, temporal_leave_one_out


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_aliases_and_implicit_clicks(tmp_path: Path) -> None:
    p = _write(tmp_path / "log.csv", "userId,movieId,click,ts\n1,10,,5\n1,11,1,2024-01-01T00:00:00\n")
    events = read_interactions(p)
    assert [(e.user, e.item, e.rating) for e in events] == [("1", "10", 1.0), ("1", "11", 1.0)]
    assert events[1].timestamp > 1.7e9


def test_non_numeric_rating_names_file_line_and_field(tmp_path: Path) -> None:
    p = _write(tmp_path / "log.csv", "user,item,rating,timestamp\nu,a,4,1\nu,b,great,2\n")
    with pytest.raises(DataError, match=r"log.csv:3: field 'rating' is not a number"):
        read_interactions(p)


def test_missing_item_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path / "log.csv", "user,item\nu,a\nu,\n")
    with pytest.raises(DataError, match=r"log.csv:3: field 'item' is empty"):
        read_interactions(p)


def test_missing_columns_listed(tmp_path: Path) -> None:
    p = _write(tmp_path / "log.csv", "who,what\nu,a\n")
    with pytest.raises(DataError, match="needs a user column"):
        read_interactions(p)


def test_parquet_interactions_and_items(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"user": ["u", "u"], "item": [1, 2], "rating": [3.0, 4.0], "timestamp": [1, 2]}), tmp_path / "i.parquet")
    pq.write_table(pa.table({"item": ["1", "2"], "title": ["A", "B"], "genres": ["x|y", None]}), tmp_path / "c.parquet")
    events = read_interactions(tmp_path / "i.parquet")
    items = read_items(tmp_path / "c.parquet")
    assert [e.item for e in events] == ["1", "2"]
    assert items[0].text == "A. genres: x, y" and items[1].text == "B"


def test_items_without_text_and_unknown_items_are_defined() -> None:
    events = [Interaction("u", "a", 1, 1, 0), Interaction("u", "ghost", 1, 2, 1)]
    catalogue = complete_catalogue(events, [ItemRecord("a", "", "")])
    assert [(it.item, it.has_text) for it in catalogue] == [("a", False), ("ghost", False)]


def test_duplicate_item_in_catalogue_is_an_error(tmp_path: Path) -> None:
    p = _write(tmp_path / "items.csv", "item,title\na,A\na,B\n")
    with pytest.raises(DataError, match="duplicate item 'a'"):
        read_items(p)


def test_clean_orders_in_time_and_keeps_latest_duplicate() -> None:
    events = [
        Interaction("u", "b", 1, 30, 0),
        Interaction("u", "a", 1, 10, 1),
        Interaction("u", "b", 5, 20, 2),  # earlier duplicate of (u, b): dropped
        Interaction("u", "c", 1, 25, 3),
    ]
    out, report = clean(events)
    assert [(e.item, e.timestamp) for e in out] == [("a", 10), ("c", 25), ("b", 30)]
    assert report.duplicates_dropped == 1 and report.out_of_order_rows == 3


def test_parse_rating_rejects_nan() -> None:
    with pytest.raises(DataError, match="not finite"):
        parse_rating("nan", "f:1")


@st.composite
def _logs(draw: st.DrawFn) -> list[Interaction]:
    n = draw(st.integers(1, 60))
    users = st.sampled_from(["u1", "u2", "u3", "u4"])
    items = st.sampled_from([f"i{k}" for k in range(8)])
    times = st.integers(0, 20)
    return [Interaction(draw(users), draw(items), 1.0, float(draw(times)), k) for k in range(n)]


@settings(max_examples=60, deadline=None)
@given(_logs())
def test_split_properties(log: list[Interaction]) -> None:
    """Held-out events are each user's latest; no (user, item) appears twice; nothing is lost."""
    events, _ = clean(log)
    try:
        split = temporal_leave_one_out(events, [])
    except DataError:
        assert all(sum(e.user == u for e in events) < 3 for u in {e.user for e in events})
        return
    pairs = [(e.user, e.item) for e in split.train + split.validation + split.test]
    assert len(pairs) == len(set(pairs)) == len(events)
    for ev in split.test:
        mine = [e for e in split.train + split.validation if e.user == ev.user]
        assert all(e.timestamp <= ev.timestamp for e in mine)
    for ev in split.validation:
        assert all(e.timestamp <= ev.timestamp for e in split.train if e.user == ev.user)


def test_prepare_splits_a_log_read_from_a_file(tmp_path: Path) -> None:
    rows = "".join(f"u{u},i{k},1,{10 * u + k}\n" for u in range(3) for k in range(4))
    log = _write(tmp_path / "log.csv", "user,item,rating,timestamp\n" + rows)
    split = prepare(read_interactions(log), read_items(_write(tmp_path / "items.csv", "item,title\ni0,Zero\n")))
    assert [(e.user, e.item) for e in split.test] == [("u0", "i3"), ("u1", "i3"), ("u2", "i3")]
    assert [e.item for e in split.validation] == ["i2"] * 3 and len(split.train) == 6
    assert [it.item for it in split.items] == ["i0", "i1", "i2", "i3"] and split.report["unknown_items_added"] == 3
