"""Readers, validation, de-identification on load and near-duplicate-aware splits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from domainfm.errors import DataError
from domainfm_healthcare.deid import Deidentifier
from domainfm_healthcare.readers import (
    MAX_TEXT_CHARS,
    load_demo,
    load_medical_abstracts,
    load_source,
    load_symptom2disease,
    looks_non_english,
)
from domainfm_healthcare.splits import (
    cross_split_near_duplicates,
    group_stratified_split_indices,
    near_duplicate_clusters,
)

FAST = Deidentifier(use_ner=False)
CONDITIONS = {
    "flu": ["fever and aching muscles", "chills and a high temperature", "sore body and fever"],
    "sprain": ["swollen ankle after a fall", "twisted my wrist playing tennis", "bruised swollen knee joint"],
    "reflux": ["burning chest after meals", "sour taste and heartburn at night", "acid coming up my throat"],
}


def _rows(n_per_label: int = 6) -> list[dict[str, str]]:
    rows = []
    for label, phrases in CONDITIONS.items():
        for i in range(n_per_label):
            rows.append({"text": f"I have {phrases[i % 3]} for {i + 2} days", "label": label})
    return rows


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_text_label_formats_load_and_split(tmp_path: Path, fmt: str) -> None:
    rows = _rows()
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        _write_csv(path, rows)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    bundle = load_source(str(path), FAST)
    assert bundle.label_names == sorted(CONDITIONS)
    assert sum(bundle.sizes().values()) == len(rows)
    for table in bundle.tables.values():
        assert set(table["label"]) == set(CONDITIONS)  # stratified: every label in every split


def test_identifiers_are_removed_on_load_and_extra_columns_dropped(tmp_path: Path) -> None:
    rows = _rows()
    rows[0]["text"] = "My name is Ana Lima, call (555) 123-4567, I have a fever"
    for r in rows:
        r["contact"] = "ana.lima@example.com"
    bundle = load_source(str(_write_csv(tmp_path / "d.csv", rows)), FAST)
    everything = json.dumps({n: t.to_list() for n, t in bundle.tables.items()})
    assert "Ana Lima" not in everything and "123-4567" not in everything and "example.com" not in everything
    assert "<PERSON>" in everything and "<PHONE>" in everything
    assert "contact" not in bundle.split("train").column_names
    assert bundle.meta["identifier_columns"] == {"contact": len(rows)}
    assert bundle.meta["identifiers_removed"] == {"PERSON": 1, "PHONE": 1}


def test_empty_text_error_names_file_and_line(tmp_path: Path) -> None:
    rows = _rows()
    rows[4]["text"] = "   "
    path = _write_csv(tmp_path / "d.csv", rows)
    with pytest.raises(DataError, match=r"d\.csv:6: field 'text' is empty"):
        load_source(str(path), FAST)


def test_too_long_text_is_rejected(tmp_path: Path) -> None:
    rows = _rows()
    rows[1]["text"] = "cough " * (MAX_TEXT_CHARS // 5)
    with pytest.raises(DataError, match=r"d\.csv:3: .*characters; the limit is"):
        load_source(str(_write_csv(tmp_path / "d.csv", rows)), FAST)


def test_label_outside_set_is_rejected_without_echoing_identifiers(tmp_path: Path) -> None:
    rows = _rows()
    rows[2]["label"] = "asthma"
    path = _write_csv(tmp_path / "d.csv", rows)
    with pytest.raises(DataError, match=r"d\.csv:4: field 'label': 'asthma' is not one of"):
        load_source(str(path), FAST, labels=sorted(CONDITIONS))
    rows[2]["label"] = "jo@example.com"
    path = _write_csv(tmp_path / "d.csv", rows)
    with pytest.raises(DataError, match=r"d\.csv:4: field 'label' looks like an identifier \(EMAIL\)") as info:
        load_source(str(path), FAST)
    assert "jo@example.com" not in str(info.value)


def test_missing_column_and_rare_label_errors(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("body,label\nfever,flu\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing column"):
        load_source(str(path), FAST)
    rows = _rows()
    rows.append({"text": "a rare thing", "label": "rare"})
    with pytest.raises(DataError, match="fewer than 3 rows"):
        load_source(str(_write_csv(tmp_path / "r.csv", rows)), FAST)


def test_split_directory_rejects_labels_unseen_in_training(tmp_path: Path) -> None:
    rows = _rows()
    _write_csv(tmp_path / "train.csv", rows)
    _write_csv(tmp_path / "test.csv", [{"text": "wheezing at night", "label": "asthma"}])
    with pytest.raises(DataError, match="not among the training labels"):
        load_source(str(tmp_path), FAST)


def test_unknown_source_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="no such file or directory"):
        load_source("no-such-source", FAST)


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("I have had a cough and a sore throat for three days", False),
        ("Tengo fiebre y dolor de cabeza desde hace tres días y no puedo dormir", True),
        ("У меня болит голова и температура уже три дня", True),
        ("fever", False),
    ],
)
def test_non_english_is_flagged(text: str, flag: bool) -> None:
    assert looks_non_english(text) is flag


def test_demo_set_loads_with_groups() -> None:
    bundle = load_demo(FAST)
    assert len(bundle.label_names) == 8
    assert bundle.group_columns == ["age_band"]
    assert set(bundle.split("test")["age_band"]) == {"adult", "child", "older"}
    assert sum(bundle.sizes().values()) == 120


def test_near_duplicates_cluster_and_stay_on_one_side() -> None:
    base = ["my skin is itchy and red with scaly patches on my elbows", "i have a burning pain when i pass urine"]
    texts, labels = [], []
    for i in range(30):
        texts.append(base[i % 2] + ("" if i < 10 else f" for {i} days now"))
        labels.append("skin" if i % 2 == 0 else "uti")
    texts += [f"unique description number {w} of a headache" for w in "abcdefghijklmnopqrst"]
    labels += ["head"] * 20
    clusters = near_duplicate_clusters(texts, 0.7)
    assert len(set(clusters[:30:2])) == 1  # the rephrasings of one description are one cluster
    parts = group_stratified_split_indices(labels, clusters, (0.8, 0.1, 0.1), seed=1)
    owner = {}
    for p, idx in enumerate(parts):
        for i in idx:
            owner.setdefault(int(clusters[i]), set()).add(p)
    assert all(len(v) == 1 for v in owner.values())
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(texts)))
    again = group_stratified_split_indices(labels, clusters, (0.8, 0.1, 0.1), seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


@pytest.mark.shared_data
def test_symptom2disease_split_has_no_cross_split_near_duplicates(shared_data_dir: Path) -> None:
    bundle = load_symptom2disease(FAST)
    assert len(bundle.label_names) == 24
    assert sum(bundle.sizes().values()) == 1200
    for name in ("validation", "test"):
        assert len(set(bundle.split(name)["label"])) == 24
        assert cross_split_near_duplicates(list(bundle.split("train")["text"]), list(bundle.split(name)["text"])) == 0
    assert "near-duplicate-aware" in bundle.meta["split"]


@pytest.mark.shared_data
def test_medical_abstracts_labels_and_subsample(shared_data_dir: Path) -> None:
    bundle = load_medical_abstracts(FAST, max_train=500)
    assert bundle.label_names == [
        "neoplasms",
        "digestive system diseases",
        "nervous system diseases",
        "cardiovascular diseases",
        "general pathological conditions",
    ]
    assert bundle.sizes()["train"] == pytest.approx(500, abs=5)
    assert bundle.meta["train_rows_available"] > 2000
    assert set(bundle.split("test")["label"]) == set(bundle.label_names)


def test_split_directory_may_hold_a_calibration_split(tmp_path: Path) -> None:
    rows = _rows()
    for name in ("train", "validation", "calibration", "test"):
        _write_csv(tmp_path / f"{name}.csv", rows)
    bundle = load_source(str(tmp_path), FAST)
    assert set(bundle.tables) == {"train", "validation", "calibration", "test"}


@pytest.mark.shared_data
def test_medical_abstracts_with_a_calibration_split(shared_data_dir: Path) -> None:
    shares = {"train": 0.5, "validation": 0.1, "calibration": 0.1, "test": 0.3}
    bundle = load_medical_abstracts(FAST, fractions=shares)
    sizes = bundle.sizes()
    assert list(sizes) == ["train", "validation", "calibration", "test"]
    assert sum(sizes.values()) == 2888 and sizes["test"] == pytest.approx(866, abs=5)
    ids = [set(bundle.split(n)["id"]) for n in sizes]
    assert all(a.isdisjoint(b) for i, a in enumerate(ids) for b in ids[i + 1 :])
    assert "50/10/10/30 train/validation/calibration/test" in bundle.meta["split"]
    with pytest.raises(DataError, match="sum to 1"):
        load_medical_abstracts(FAST, fractions={"train": 0.5, "validation": 0.1, "test": 0.3})
    with pytest.raises(DataError, match="unknown split"):
        load_medical_abstracts(FAST, fractions={"train": 0.7, "validation": 0.1, "holdout": 0.2})
