"""The negative pool: texts that are not customer-service questions of this deployment.

``options.negative_pool`` is a comma-separated list of sources: ``demo`` (the default: the texts the other
installed domainfm plugins ship as demo data: financial news, symptom descriptions, exam questions and
answers, catalogue items), ``none``, or a file of unlabelled texts (``.txt``: one per line; a table
(CSV/TSV/JSONL/Parquet): its ``text`` column). The pool teaches the ``oos_class`` scorer what "none of our
intents" looks like, and its held-out half is the out-of-scope side of the validation data the escalation
method is chosen on.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from domainfm.errors import DataError

# (package, demo file, fields holding free text) of the other plugins' demo data
DEMO_SOURCES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("domainfm_finance_sentiment", "finance_demo.jsonl", ("text",)),
    ("domainfm_healthcare", "symptoms_demo.csv", ("text",)),
    ("domainfm_education", "grading_demo.jsonl", ("question", "student_answer")),
    ("domainfm_recommendation", "items.csv", ("title", "text")),
)
TEXT_SUFFIXES = (".txt",)
MIN_CHARS = 8


def demo_texts() -> tuple[list[str], list[str]]:
    """Texts from the installed plugins' demo data, and the names of the sources used."""
    from domainfm.data import read_table

    texts: list[str] = []
    used: list[str] = []
    for package, name, fields in DEMO_SOURCES:
        try:
            path = Path(str(resources.files(package) / "demo_data" / name))
        except ModuleNotFoundError:
            continue
        if not path.is_file():
            continue
        for row in read_table(path):
            texts.extend(str(row[f]) for f in fields if row.get(f))
        used.append(f"{package}:{name}")
    return texts, used


def read_pool_file(path: str | Path) -> list[str]:
    """Unlabelled texts from ``path``: a ``.txt`` file (one per line) or a table with a ``text`` column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"options.negative_pool: {path} is not a file")
    if path.suffix.lower() in TEXT_SUFFIXES:
        try:
            return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
    from domainfm.data import read_table

    return [str(row["text"]) for row in read_table(path, required=("text",)) if row.get("text")]


def negative_pool(option: Any, exclude: set[str] | None = None) -> tuple[list[str], list[str]]:
    """The pool ``options.negative_pool`` names (default ``demo``): unique texts of at least a few characters,
    none of them in ``exclude`` (the deployment's own utterances), and the sources used."""
    spec = "demo" if option is None else str(option)
    texts: list[str] = []
    sources: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item or item.lower() == "none":
            continue
        if item.lower() == "demo":
            found, used = demo_texts()
            texts += found
            sources += used
        else:
            texts += read_pool_file(item)
            sources.append(item)
    seen = set(exclude or ())
    out = []
    for text in (" ".join(t.split()) for t in texts):
        if len(text) >= MIN_CHARS and text not in seen:
            seen.add(text)
            out.append(text)
    return out, sources


def split_pool(texts: list[str], seed: int, held_out: float = 0.5) -> tuple[list[str], list[str]]:
    """A seeded split of the pool: (texts the scorers train on, held-out texts they are validated on)."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(texts))
    cut = int(round(len(texts) * (1.0 - held_out)))
    return [texts[i] for i in order[:cut]], [texts[i] for i in order[cut:]]
