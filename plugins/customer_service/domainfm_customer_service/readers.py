"""Readers for intent-labelled utterances, knowledge bases, question→answer pairs and the demo set.

Every error names the file and, for text formats, the line. Tables are CSV, TSV, JSONL or Parquet (read
by :func:`domainfm.data.read_table`); a knowledge base may also be a folder of Markdown/text files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from domainfm.data import require_labels
from domainfm.errors import DataError
from domainfm.hf import is_hf_source
from domainfm.readers import (
    TABLE_SUFFIXES,
    check_suffix,
    find_file,
    optional_text,
    read_json_object,
    read_text_document,
    require_columns,
    row_where,
    text_field,
)
from domainfm.shared_data import shared_data_path

from domainfm.engine.documents import Document

INTENT_COLUMNS = ("intent", "category", "label")
KB_FILE_SUFFIXES = (".md", ".markdown", ".txt")


@dataclass
class CustomerServiceData:
    """Everything a customer-service deployment learns from, before splitting."""

    utterances: list[dict[str, Any]]
    documents: list[Document] = field(default_factory=list)
    qa_pairs: list[dict[str, Any]] = field(default_factory=list)
    templates: dict[str, str] = field(default_factory=dict)
    test_utterances: list[dict[str, Any]] | None = None  # an official test split, when the source has one
    source: str = ""


def demo_dir() -> Path:
    """The packaged demo set of the fictional Harbourlight Bank."""
    return Path(str(resources.files("domainfm_customer_service") / "demo_data"))


def read_intents(path: str | Path, group_columns: tuple[str, ...] = ("channel", "segment")) -> list[dict[str, Any]]:
    """Read ``text,intent`` rows (the intent column may also be named ``category`` or ``label``).

    Returns dicts with ``text``, ``intent`` and any of ``group_columns`` present in the file.
    """
    from domainfm.data import read_table

    if not is_hf_source(str(path)):  # hf:<dataset>[:<split>] is read by the core (domainfm.hf)
        path = Path(path)
        check_suffix(path, TABLE_SUFFIXES, "utterance table")
    rows = read_table(path)
    header = require_columns(rows, path, ("text",))
    intent_col = next((c for c in INTENT_COLUMNS if c in header), None)
    if intent_col is None:
        raise DataError(f"{path}: missing an intent column (one of {list(INTENT_COLUMNS)}); found {sorted(header)}")
    groups = [c for c in group_columns if c in header]
    out = []
    for row in rows:
        where = row_where(path, row)
        rec = {
            "text": text_field(row.get("text"), where, "text"),
            "intent": text_field(row.get(intent_col), where, intent_col, max_chars=None),
        }
        for g in groups:
            rec[g] = optional_text(row.get(g)) or "unknown"
        out.append(rec)
    return out


def read_knowledge_base(path: str | Path) -> list[Document]:
    """Read a knowledge base: a CSV/TSV/JSONL/Parquet table ``id,title,text[,intent,url]`` or a folder
    of ``.md``/``.txt`` files (id = path relative to the folder, title = first Markdown heading or the
    file name). Duplicate ids are an error naming both places.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    docs: list[Document] = []
    seen: dict[str, str] = {}
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"{path}: empty knowledge-base folder")
        for file in files:
            check_suffix(file, KB_FILE_SUFFIXES, "knowledge-base document")
            doc = _read_text_document(file, str(file.relative_to(path).with_suffix("")))
            _remember(seen, doc.id, str(file))
            docs.append(doc)
        return docs
    from domainfm.data import read_table

    check_suffix(path, TABLE_SUFFIXES, "knowledge base")
    rows = read_table(path)
    require_columns(rows, path, ("id", "text"))
    for row in rows:
        where = row_where(path, row)
        doc = Document(
            id=text_field(row.get("id"), where, "id", max_chars=None),
            title=optional_text(row.get("title")) or "",
            text=text_field(row.get("text"), where, "text", max_chars=None),
            intent=optional_text(row.get("intent")),
            url=optional_text(row.get("url")),
        )
        _remember(seen, doc.id, where)
        docs.append(doc)
    return docs


def _remember(seen: dict[str, str], doc_id: str, where: str) -> None:
    if doc_id in seen:
        raise DataError(f"{where}: duplicate document id {doc_id!r} (first seen at {seen[doc_id]})")
    seen[doc_id] = where


def _read_text_document(file: Path, doc_id: str) -> Document:
    text = read_text_document(file)
    title = file.stem.replace("_", " ").replace("-", " ")
    body_lines = []
    for line in text.splitlines():
        if line.startswith("# ") and title == file.stem.replace("_", " ").replace("-", " ") and not body_lines:
            title = line[2:].strip()
            continue
        body_lines.append(line)
    body = " ".join(" ".join(body_lines).split())
    if not body:
        raise DataError(f"{file}: empty document")
    return Document(id=doc_id, title=title, text=body)


def read_qa_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Read historical ``question,answer[,intent]`` pairs (a past question and the reply that solved it)."""
    from domainfm.data import read_table

    path = Path(path)
    check_suffix(path, TABLE_SUFFIXES, "question-answer table")
    rows = read_table(path)
    out = []
    for row in rows:
        where = row_where(path, row)
        out.append({
            "question": text_field(row.get("question"), where, "question", max_chars=None),
            "answer": text_field(row.get("answer"), where, "answer", max_chars=None),
            "intent": optional_text(row.get("intent")),
        })
    return out


def read_templates(path: str | Path) -> dict[str, str]:
    """Read ``{intent: answer template}`` from a JSON object."""
    path = Path(path)
    data = read_json_object(path, "intent -> answer")
    if not all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in data.items()):
        raise DataError(f"{path}: expected a JSON object mapping intent names to non-empty answer texts")
    return {k: v.strip() for k, v in data.items()}


def load_source(source: str) -> CustomerServiceData:
    """Interpret a ``--data`` source.

    - ``demo``: the packaged Harbourlight Bank demo;
    - ``banking77``: BANKING77 from the shared data folder (``$DOMAINFM_SHARED_DATA`` or ``../shared/data``);
    - a folder holding ``utterances.*`` (or ``train.*``/``test.*``, or BANKING77's files) and optionally
      ``kb.*`` or a ``kb/`` folder, ``qa_pairs.*`` and ``templates.json``;
    - a single utterance table, or ``hf:<dataset>[:<split>]`` (read by the core, :mod:`domainfm.hf`).
    """
    if source == "demo":
        return load_folder(demo_dir(), source="demo")
    if source == "banking77":
        folder = shared_data_path("customer_service/banking77_train.csv", "BANKING77").parent
        return load_folder(folder, source="banking77")
    path = Path(source)
    if path.is_dir():
        return load_folder(path, source=str(path))
    if path.is_file() or is_hf_source(source):
        rows = read_intents(source if is_hf_source(source) else path)
        require_labels([r["intent"] for r in rows], source)
        return CustomerServiceData(utterances=rows, source=source)
    raise DataError(f"{source}: not 'demo', 'banking77', a folder or a file (or hf:<dataset>[:<split>])")


def load_folder(folder: Path, source: str) -> CustomerServiceData:
    """Load a customer-service folder (see :func:`load_source`)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    test = None
    utter = find_file(folder, ("utterances", "intents"), TABLE_SUFFIXES)
    if utter is None:
        train = find_file(folder, ("train", "banking77_train"), TABLE_SUFFIXES)
        if train is None:
            raise DataError(f"{folder}: no utterances.* or train.* table ({', '.join(TABLE_SUFFIXES)})")
        rows = read_intents(train)
        test_path = find_file(folder, ("test", "banking77_test"), TABLE_SUFFIXES)
        test = read_intents(test_path) if test_path else None
    else:
        rows = read_intents(utter)
    require_labels([r["intent"] for r in rows], str(utter or train))
    kb_path = find_file(folder, ("kb", "knowledge_base"), TABLE_SUFFIXES)
    if kb_path is None and (folder / "kb").is_dir():
        kb_path = folder / "kb"
    qa_path = find_file(folder, ("qa_pairs", "qa"), TABLE_SUFFIXES)
    tpl_path = folder / "templates.json"
    return CustomerServiceData(
        utterances=rows,
        documents=read_knowledge_base(kb_path) if kb_path else [],
        qa_pairs=read_qa_pairs(qa_path) if qa_path else [],
        templates=read_templates(tpl_path) if tpl_path.is_file() else {},
        test_utterances=test,
        source=source,
    )
