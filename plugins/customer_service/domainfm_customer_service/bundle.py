"""Turning customer-service data into a :class:`~domainfm.types.DataBundle` with pinned, seeded splits.

Protocol (fixed in code): a source with an official test split (BANKING77) keeps it and takes a
stratified 10% of its training data as validation; any other source is split 60/20/20 stratified by
intent. Feedback rows join the training split only. Texts are PII-masked before anything else sees them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domainfm.errors import DataError
from domainfm.types import DataBundle

from domainfm_customer_service.readers import CustomerServiceData

MIN_PER_INTENT = 3


def _rows_to_table(rows: Sequence[dict[str, Any]], groups: Sequence[str]) -> Any:
    from domainfm.data import records_to_dataset

    return records_to_dataset(
        [{"text": r["text"], "label": r["intent"], **{g: r.get(g, "unknown") for g in groups}} for r in rows],
        columns=["text", "label", *groups],
    )


def build_bundle(
    data: CustomerServiceData,
    *,
    seed: int = 42,
    masker: Any = None,
    feedback_rows: Sequence[dict[str, Any]] = (),
    label_names: Sequence[str] | None = None,
) -> DataBundle:
    """Split, mask and package ``data``; ``label_names`` defaults to the sorted intents seen."""
    from domainfm.data import records_to_dataset, require_labels, stratified_split_indices

    rows = list(data.utterances)
    require_labels([r["intent"] for r in rows], data.source or "customer-service data")
    test_rows = list(data.test_utterances) if data.test_utterances is not None else None
    if masker is not None:
        for group in (rows, test_rows or []):
            masked = masker.mask_many([r["text"] for r in group])
            for r, m in zip(group, masked, strict=True):
                r["text"] = m
    labels = list(label_names) if label_names else sorted({r["intent"] for r in rows})
    unknown = sorted({r["intent"] for r in rows + (test_rows or [])} - set(labels))
    if unknown:
        raise DataError(f"{data.source}: intents {unknown[:5]} are not in the label set")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["intent"]] = counts.get(r["intent"], 0) + 1
    rare = sorted(k for k, v in counts.items() if v < MIN_PER_INTENT)
    if rare:
        raise DataError(f"{data.source}: intents {rare[:5]} have fewer than {MIN_PER_INTENT} examples; add more or drop them")
    groups = [g for g in ("channel", "segment") if rows and g in rows[0]]
    intents = [r["intent"] for r in rows]
    if test_rows is not None:
        train_idx, valid_idx = stratified_split_indices(intents, (0.9, 0.1), seed)
        parts = {"train": [rows[i] for i in train_idx], "validation": [rows[i] for i in valid_idx], "test": test_rows}
    else:
        tr, va, te = stratified_split_indices(intents, (0.6, 0.2, 0.2), seed)
        parts = {"train": [rows[i] for i in tr], "validation": [rows[i] for i in va], "test": [rows[i] for i in te]}
    extra = [r for r in feedback_rows if r["intent"] in labels]
    if extra:
        parts["train"] = parts["train"] + [{**r, **{g: r.get(g, "feedback") for g in groups}} for r in extra]
    tables = {name: _rows_to_table(part, groups) for name, part in parts.items()}
    if data.documents:
        docs = [d.as_dict() for d in data.documents]
        if masker is not None:
            for doc in docs:
                doc["text"] = masker.mask(doc["text"])
        tables["kb"] = records_to_dataset(docs, columns=["id", "title", "text", "intent", "url"])
    if data.qa_pairs:
        qa = [dict(q) for q in data.qa_pairs]
        if masker is not None:
            for q in qa:
                q["question"], q["answer"] = masker.mask(q["question"]), masker.mask(q["answer"])
        tables["qa"] = records_to_dataset(qa, columns=["question", "answer", "intent"])
    return DataBundle(
        tables=tables,
        source=data.source,
        label_names=labels,
        text_column="text",
        label_column="label",
        group_columns=groups,
        meta={"templates": dict(data.templates), "feedback_rows": len(extra), "protocol": "official test + 10% val" if test_rows is not None else "60/20/20 stratified"},
    )


def feedback_bundle(rows: Sequence[dict[str, Any]], source: str, masker: Any = None) -> DataBundle:
    """A feedback store's labelled rows as one training table, for ``domainfm improve --feedback STORE``
    (the improvement plan splits the feedback itself)."""
    from domainfm.data import require_labels

    if not rows:
        raise DataError(f"{source}: no labelled feedback in this store (a corrected intent, or a thumbs-up on a "
                        "predicted one, labels a query)")
    require_labels([r["intent"] for r in rows], source)
    texts = [r["text"] for r in rows]
    if masker is not None:
        texts = masker.mask_many(texts)
    rows = [{**r, "text": t} for r, t in zip(rows, texts, strict=True)]
    groups = ["channel"]
    return DataBundle(
        tables={"train": _rows_to_table(rows, groups), "validation": _rows_to_table([], groups),
                "test": _rows_to_table([], groups)},
        source=source, label_names=sorted({r["intent"] for r in rows}), text_column="text", label_column="label",
        group_columns=groups, meta={"feedback_rows": len(rows), "protocol": "feedback store: every row in train"},
    )


def documents_from_bundle(bundle: DataBundle) -> list[Any]:
    """The knowledge-base documents of a bundle (empty when it has none)."""
    from domainfm.engine.documents import Document

    if "kb" not in bundle.tables:
        return []
    return [
        Document(id=str(r["id"]), title=r.get("title") or "", text=str(r["text"]), intent=r.get("intent"), url=r.get("url"))
        for r in bundle.tables["kb"]
    ]
