"""``--data hf:<dataset>[:<split>]``: one core reader for every domain that reads a text table (issue 22 item 13)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from domainfm.errors import DataError
from domainfm.hf import parse_hf_source, read_hf_records
from domainfm.io import read_records

TEXTS = {
    "billing": ["charged twice for one order", "refund has not arrived", "invoice shows a wrong amount",
                "card was debited two times", "my payment failed but money left", "where is my refund"],
    "delivery": ["parcel never came", "package arrived broken", "courier lost my box",
                 "delivery is a week late", "tracking has not moved", "wrong address on the parcel"],
}


@pytest.fixture
def hf_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local dataset folder (what a hub dataset looks like once downloaded) with a ClassLabel column."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")  # keep ~/.cache clean
    names = sorted(TEXTS)
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    rows = [(text, names.index(label)) for label, texts in TEXTS.items() for text in texts]
    folder = tmp_path / "support_tickets"
    (folder / "data").mkdir(parents=True)
    for split, part in (("train", rows), ("test", rows[:2] + rows[-2:])):
        ds = datasets.Dataset.from_dict({"text": [r[0] for r in part], "label": [r[1] for r in part]}, features=features)
        ds.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


def test_sources_parse_with_train_as_the_default_split() -> None:
    assert parse_hf_source("hf:takala/financial_phrasebank") == ("takala/financial_phrasebank", "train")
    assert parse_hf_source("hf:org/name:test") == ("org/name", "test")
    with pytest.raises(DataError, match=r"name a dataset after 'hf:'"):
        parse_hf_source("hf:")


def test_offline_and_not_cached_fails_in_one_line_saying_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        read_records("hf:someorg/a-dataset-that-is-not-cached")
    message = str(err.value)
    assert message.startswith("hf:someorg/a-dataset-that-is-not-cached: offline (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE")
    assert "not in the local Hugging Face cache" in message and "\n" not in message


def test_a_dataset_reads_as_rows_with_label_names(hf_folder: Path) -> None:
    rows = read_hf_records(f"hf:{hf_folder}")
    assert len(rows) == 12 and rows[0] == {"text": "charged twice for one order", "label": "billing", "_line": 1}
    test = read_records(f"hf:{hf_folder}:test", required=("text", "label"))
    assert [r["label"] for r in test] == ["billing", "billing", "delivery", "delivery"]
    with pytest.raises(DataError, match=r"cannot load split 'nope'"):
        read_hf_records(f"hf:{hf_folder}:nope")


def _ctx(tmp_path: Path, domain: str) -> Any:
    from domainfm.config import RunConfig
    from domainfm.types import RunContext

    return RunContext(run_id="t", domain=domain, config=RunConfig(), run_dir=tmp_path, device="cpu")


def test_text_classification_reads_an_hf_source(hf_folder: Path, tmp_path: Path) -> None:
    from domainfm.builtin import text_classification as tc

    bundle = tc.domainfm_load_data(_ctx(tmp_path, tc.DOMAIN), tc.DOMAIN, f"hf:{hf_folder}")
    assert sum(bundle.sizes().values()) == 12 and bundle.label_names == ["billing", "delivery"]
    assert bundle.source == f"hf:{hf_folder}"


def test_plugins_that_read_one_text_table_read_hf_sources(hf_folder: Path) -> None:
    source = f"hf:{hf_folder}"
    cs = pytest.importorskip("domainfm_customer_service.readers")
    data = cs.load_source(source)
    assert len(data.utterances) == 12 and {u["intent"] for u in data.utterances} == set(TEXTS)
    health = pytest.importorskip("domainfm_healthcare.readers")
    bundle = health.load_source(source)
    assert sum(bundle.sizes().values()) == 12 and bundle.label_names == ["billing", "delivery"]
    finance = pytest.importorskip("domainfm_finance_sentiment.readers")
    with pytest.raises(DataError, match=rf"^{source} row 1: field 'label': 'billing' is not one of"):
        finance.read_source(source)  # read through the core; finance's own labels are checked after
