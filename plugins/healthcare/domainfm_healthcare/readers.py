"""Readers: ``text,label`` files, Symptom2Disease, Medical Abstracts and the project's demo set.

Every text is validated (empty, too long, labels outside the set) and de-identified *here*, before it is
put in a table, so nothing downstream (training, indexing, logs, artifacts) ever sees an identifier.
Columns other than text, label and declared group columns are dropped; when they held identifiers the
bundle's ``meta["identifier_columns"]`` says which (never the values). Error messages never echo a raw
value that could be an identifier.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from domainfm.data import check_split, clean_text, require_labels
from domainfm.errors import DataError
from domainfm.hf import is_hf_source
from domainfm.shared_data import shared_data_path
from domainfm.types import DataBundle
from domainfm_healthcare.deid import Deidentifier, default_deidentifier, redact_for_message

MAX_TEXT_CHARS = 20_000
DEMO_FILE = "symptoms_demo.csv"
S2D_FILE = Path("healthcare") / "symptom2disease" / "Symptom2Disease.csv"
MEDABS_FILE = Path("healthcare") / "medical_abstracts_tc" / "medical_tc_test.csv.gz"
MEDABS_LABELS_FILE = Path("healthcare") / "medical_abstracts_tc" / "medical_tc_labels.csv"
SOURCE_ALIASES = {
    "demo": "demo",
    "symptom2disease": "symptom2disease",
    "s2d": "symptom2disease",
    "medical_abstracts": "medical_abstracts",
    "medabs": "medical_abstracts",
}
SPLIT_NAMES = ("train", "validation", "test")
ALL_SPLIT_NAMES = ("train", "validation", "calibration", "test")
DEFAULT_MEDABS_FRACTIONS: dict[str, float] = {"train": 0.7, "validation": 0.1, "test": 0.2}

_EN_COMMON = frozenset(
    "the and of to in a i my is have has with for on it was been that this are be at or as by from not but me "
    "am had were we our after since when after than which who into also there no can pain feel feeling".split()
)
# Frequent function words of other languages written in Latin script (Spanish, French, German, Italian,
# Portuguese, Dutch).
_OTHER_COMMON = frozenset(
    "de la el y que en los las del por con una es le les et des du est je pas und der die das ist nicht ich mit "
    "ein eine di il che non per sono ho mi tengo hace desde muy pero meu minha não com uma para het een van ik "
    "niet zijn mijn dolor douleur schmerzen depuis seit".split()
)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def looks_non_english(text: str) -> bool:
    """A cheap language check: mostly non-Latin letters, or (for 5+ words) more common words of other
    European languages than of English, or almost no common English words."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return True
    if sum(1 for c in letters if ord(c) > 0x24F) / len(letters) > 0.3:
        return True
    words = _WORD.findall(text.lower())
    if len(words) < 5:
        return False
    english = sum(w in _EN_COMMON for w in words)
    other = sum(w in _OTHER_COMMON for w in words)
    return other > english or english / len(words) < 0.08


# ------------------------------------------------------------------------------------- row cleaning


class RowCleaner:
    """Validates and de-identifies rows; collects what was removed, dropped or flagged."""

    def __init__(
        self,
        deid: Deidentifier,
        *,
        text_column: str = "text",
        label_column: str = "label",
        group_columns: Sequence[str] = (),
        label_names: Sequence[str] | None = None,
    ) -> None:
        self.deid = deid
        self.scanner = Deidentifier(use_ner=False)
        self.text_column = text_column
        self.label_column = label_column
        self.group_columns = list(group_columns)
        self.label_names = list(label_names) if label_names is not None else None
        self.removed: Counter[str] = Counter()
        self.identifier_columns: Counter[str] = Counter()
        self.non_english = 0

    def clean(self, row: dict[str, Any], where: str, row_id: str) -> dict[str, Any]:
        missing = [c for c in (self.text_column, self.label_column, *self.group_columns) if c not in row]
        if missing:
            raise DataError(f"{where}: missing field(s) {missing}")
        # the core's checks (missing, JSON object/array, empty, too long); their messages never echo a value
        text = clean_text(row[self.text_column], where, self.text_column, max_chars=MAX_TEXT_CHARS)
        label = clean_text(row[self.label_column], where, self.label_column)
        found = self.scanner.detect(label)
        if found:
            kinds = sorted({s.kind for s in found})
            raise DataError(f"{where}: field {self.label_column!r} looks like an identifier ({', '.join(kinds)})")
        if self.label_names is not None and label not in self.label_names:
            raise DataError(
                f"{where}: field {self.label_column!r}: {redact_for_message(label)!r} is not one of {self.label_names}"
            )
        result = self.deid.deidentify(text)
        self.removed.update(result.counts)
        out: dict[str, Any] = {"id": row_id, "text": result.text, "label": label}
        for col in self.group_columns:
            out[col] = self.deid.deidentify(str(row[col])).text
        for col, value in row.items():
            if col in (self.text_column, self.label_column, "_line", *self.group_columns) or value is None:
                continue
            if isinstance(value, str) and self.scanner.detect(value):
                self.identifier_columns[col] += 1
        flag = looks_non_english(result.text)
        self.non_english += flag
        out["non_english"] = bool(flag)
        return out

    def meta(self) -> dict[str, Any]:
        return {
            "identifiers_removed": dict(self.removed),
            "identifier_columns": dict(self.identifier_columns),
            "non_english_rows": self.non_english,
        }


def read_labelled_file(
    path: str | Path,
    cleaner: RowCleaner,
    id_prefix: str | None = None,
) -> list[dict[str, Any]]:
    """Read a CSV/TSV/JSONL/Parquet ``text,label`` file into cleaned, de-identified rows."""
    from domainfm.data import read_table

    path = Path(path)
    rows = read_table(path, required=(cleaner.text_column, cleaner.label_column))
    if not rows:
        raise DataError(f"{path}: no rows")
    prefix = id_prefix or path.stem
    out = []
    for i, row in enumerate(rows):
        line = row.get("_line")
        where = f"{path}:{line}" if line is not None else f"{path}: row {i}"
        out.append(cleaner.clean(row, where, f"{prefix}-{i}"))
    return out


# ------------------------------------------------------------------------------------- bundles


def _dataset(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Any:
    from domainfm.data import records_to_dataset

    return records_to_dataset(list(rows), columns=list(columns))


def _bundle(
    parts: dict[str, list[dict[str, Any]]],
    source: str,
    label_names: Sequence[str],
    group_columns: Sequence[str],
    meta: dict[str, Any],
) -> DataBundle:
    columns = ["id", "text", "label", *group_columns, "non_english"]
    for name, rows in parts.items():
        bad = sorted({r["label"] for r in rows} - set(label_names))
        if bad:
            raise DataError(f"{source}[{name}]: label(s) {[redact_for_message(b) for b in bad]} not in {list(label_names)}")
    tables = {name: _dataset(rows, columns) for name, rows in parts.items()}
    meta = {**meta, "sizes": {n: len(r) for n, r in parts.items()}}
    return DataBundle(
        tables=tables,
        source=source,
        label_names=list(label_names),
        text_column="text",
        label_column="label",
        group_columns=list(group_columns),
        meta=meta,
    )


def _stratified(
    rows: list[dict[str, Any]], fractions: tuple[float, float, float], seed: int, where: str = "data"
) -> dict[str, list[dict[str, Any]]]:
    from domainfm.data import stratified_split_indices

    labels = [r["label"] for r in rows]
    parts = stratified_split_indices(labels, fractions, seed)
    check_split(labels, parts, SPLIT_NAMES, where)  # warns where too-rare labels went; one train label raises
    return {name: [rows[i] for i in idx] for name, idx in zip(SPLIT_NAMES, parts, strict=True)}


def _subsample(rows: list[dict[str, Any]], limit: int | None, seed: int) -> list[dict[str, Any]]:
    """At most ``limit`` rows, stratified by label (seeded)."""
    if limit is None or len(rows) <= limit:
        return rows
    from domainfm.data import stratified_split_indices

    keep, _ = stratified_split_indices([r["label"] for r in rows], (limit / len(rows), 1 - limit / len(rows)), seed)
    return [rows[i] for i in keep]


def load_demo(deid: Deidentifier | None = None, seed: int = 42) -> DataBundle:
    """The project-authored demo set: 8 conditions x 15 descriptions, with an ``age_band`` group column."""
    ref = resources.files("domainfm_healthcare").joinpath("demo_data", DEMO_FILE)
    with resources.as_file(ref) as path:
        cleaner = RowCleaner(deid or default_deidentifier(), group_columns=["age_band"])
        rows = read_labelled_file(path, cleaner, id_prefix="demo")
    labels = sorted({r["label"] for r in rows})
    parts = _stratified(rows, (0.6, 0.2, 0.2), seed)
    meta = {"dataset": "demo", "split": "stratified 60/20/20, seed %d" % seed, **cleaner.meta()}
    return _bundle(parts, "demo", labels, ["age_band"], meta)


def load_symptom2disease(
    deid: Deidentifier | None = None, seed: int = 42, path: str | Path | None = None, threshold: float | None = None
) -> DataBundle:
    """Symptom2Disease (24 conditions) with a near-duplicate-aware 80/10/10 split (see :mod:`splits`)."""
    from domainfm_healthcare.splits import (
        NEAR_DUPLICATE_THRESHOLD,
        cross_split_near_duplicates,
        group_stratified_split_indices,
        near_duplicate_clusters,
    )

    threshold = NEAR_DUPLICATE_THRESHOLD if threshold is None else threshold
    file = Path(path) if path else shared_data_path(S2D_FILE, "Symptom2Disease")
    cleaner = RowCleaner(deid or default_deidentifier())
    rows = read_labelled_file(file, cleaner, id_prefix="s2d")
    labels = sorted({r["label"] for r in rows}, key=str.lower)
    clusters = near_duplicate_clusters([r["text"] for r in rows], threshold)
    idx = group_stratified_split_indices([r["label"] for r in rows], clusters, (0.8, 0.1, 0.1), seed)
    parts = {name: [rows[i] for i in ix] for name, ix in zip(SPLIT_NAMES, idx, strict=True)}
    train_texts = [r["text"] for r in parts["train"]]
    meta = {
        "dataset": "symptom2disease",
        "split": (
            f"near-duplicate-aware: TF-IDF (word 1-2 gram) cosine >= {threshold} clusters kept on one side, "
            f"80/10/10 per label, seed {seed}"
        ),
        "near_duplicate_clusters": int(clusters.max() + 1) if len(clusters) else 0,
        "test_rows_with_near_duplicate_in_train": cross_split_near_duplicates(
            train_texts, [r["text"] for r in parts["test"]], threshold
        ),
        **cleaner.meta(),
    }
    return _bundle(parts, "symptom2disease", labels, [], meta)


def medical_abstracts_label_names(path: str | Path | None = None) -> dict[str, str]:
    """``condition_label`` id -> condition name, from ``medical_tc_labels.csv``."""
    from domainfm.data import read_table

    file = Path(path) if path else shared_data_path(MEDABS_LABELS_FILE, "Medical Abstracts labels")
    rows = read_table(file, required=("condition_label", "condition_name"))
    return {str(r["condition_label"]).strip(): str(r["condition_name"]).strip() for r in rows}


def load_medical_abstracts(
    deid: Deidentifier | None = None,
    seed: int = 42,
    max_train: int | None = None,
    path: str | Path | None = None,
    labels_path: str | Path | None = None,
    fractions: Mapping[str, float] | None = None,
) -> DataBundle:
    """Medical Abstracts (5 classes; only the published test split exists here), split stratified by label.

    ``fractions`` maps split names (``train``, ``validation``, optional ``calibration``, ``test``) to shares
    summing to 1; the default is 70/10/20 train/validation/test. A ``calibration`` split, when present, is
    where :func:`~domainfm_healthcare.training.train_classifier` fits the temperature and the abstention
    threshold (held out from training *and* from checkpoint selection). ``max_train`` caps the training rows
    (a stratified, seeded subsample) to fit a CPU time budget.
    """
    from domainfm.data import read_table, stratified_split_indices

    names = medical_abstracts_label_names(labels_path)
    file = Path(path) if path else shared_data_path(MEDABS_FILE, "Medical Abstracts")
    raw = read_table(file, required=("condition_label", "medical_abstract"))
    cleaner = RowCleaner(deid or default_deidentifier(), label_names=list(names.values()))
    rows = []
    for i, row in enumerate(raw):
        where = f"{file}:{row.get('_line', i)}"
        key = str(row["condition_label"]).strip()
        if key not in names:
            raise DataError(f"{where}: field 'condition_label': {redact_for_message(key)!r} is not one of {sorted(names)}")
        rows.append(cleaner.clean({"text": row["medical_abstract"], "label": names[key]}, where, f"medabs-{i}"))
    shares = _check_fractions(fractions or DEFAULT_MEDABS_FRACTIONS)
    idx = stratified_split_indices([r["label"] for r in rows], tuple(shares.values()), seed)
    parts = {name: [rows[i] for i in ix] for name, ix in zip(shares, idx, strict=True)}
    full_train = len(parts["train"])
    parts["train"] = _subsample(parts["train"], max_train, seed)
    described = "/".join(f"{round(100 * v):d}" for v in shares.values())
    meta = {
        "dataset": "medical_abstracts",
        "split": (
            f"stratified {described} {'/'.join(shares)} of the published test split "
            f"({len(rows):,} abstracts), seed {seed}"
        ),
        "train_rows_available": full_train,
        "train_rows_used": len(parts["train"]),
        **cleaner.meta(),
    }
    return _bundle(parts, "medical_abstracts", list(names.values()), [], meta)


def _check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    """Validated split shares, in the canonical order train, validation, calibration, test."""
    unknown = sorted(set(fractions) - set(ALL_SPLIT_NAMES))
    if unknown:
        raise DataError(f"unknown split name(s) {unknown}; known: {list(ALL_SPLIT_NAMES)}")
    missing = [n for n in SPLIT_NAMES if not fractions.get(n)]
    if missing:
        raise DataError(f"split fractions need a positive share for {missing}")
    if any(float(v) < 0 for v in fractions.values()) or abs(sum(float(v) for v in fractions.values()) - 1.0) > 1e-6:
        raise DataError(f"split fractions must be >= 0 and sum to 1, got {dict(fractions)}")
    return {n: float(fractions[n]) for n in ALL_SPLIT_NAMES if fractions.get(n)}


def load_user_data(
    source: str | Path,
    deid: Deidentifier | None = None,
    *,
    seed: int = 42,
    text_column: str = "text",
    label_column: str = "label",
    group_columns: Sequence[str] = (),
    label_names: Sequence[str] | None = None,
) -> DataBundle:
    """A ``text,label`` file (split 80/10/10 stratified) or a directory with train/validation/test files
    (and optionally a ``calibration`` file: temperature and abstention threshold are then fitted on it)."""
    path = Path(source)
    deid = deid or default_deidentifier()
    cleaner = RowCleaner(
        deid, text_column=text_column, label_column=label_column, group_columns=group_columns, label_names=label_names
    )
    if path.is_dir():
        parts: dict[str, list[dict[str, Any]]] = {}
        for name in ALL_SPLIT_NAMES:
            found = [p for p in sorted(path.iterdir()) if p.stem.split(".")[0] == name]
            if found:
                parts[name] = read_labelled_file(found[0], cleaner, id_prefix=name)
        if "train" not in parts:
            raise DataError(f"{path}: directory has no train.(csv|tsv|jsonl|parquet)")
        labels = list(label_names) if label_names else sorted({r["label"] for r in parts["train"]})
        require_labels([r["label"] for r in parts["train"]], f"{path}/train")
        for name, rows in parts.items():
            outside = sorted({r["label"] for r in rows} - set(labels))
            if outside:
                raise DataError(
                    f"{path}/{name}: label(s) {[redact_for_message(x) for x in outside]} are not among the "
                    f"training labels {labels}"
                )
        split_desc = "as given (directory of split files)"
    elif path.is_file() or is_hf_source(str(source)):  # hf:<dataset>[:<split>]: the core reader (domainfm.hf)
        rows = read_labelled_file(source if is_hf_source(str(source)) else path, cleaner)
        require_labels([r["label"] for r in rows], str(path))
        labels = list(label_names) if label_names else sorted({r["label"] for r in rows})
        counts = Counter(r["label"] for r in rows)
        rare = sorted(k for k, n in counts.items() if n < 3)
        if rare:
            raise DataError(
                f"{path}: label(s) {[redact_for_message(x) for x in rare]} have fewer than 3 rows; "
                "a train/validation/test split needs at least 3 per label"
            )
        parts = _stratified(rows, (0.8, 0.1, 0.1), seed, str(path))
        split_desc = f"stratified 80/10/10, seed {seed}"
    else:
        raise DataError(
            f"{source}: no such file or directory (sources: demo, symptom2disease, medical_abstracts, "
            "hf:<dataset>[:<split>], or a path)"
        )
    meta = {"dataset": str(path), "split": split_desc, **cleaner.meta()}
    return _bundle(parts, str(path), labels, list(group_columns), meta)


def load_source(source: str, deid: Deidentifier | None = None, **options: Any) -> DataBundle:
    """Dispatch a source name (``demo``, ``symptom2disease``, ``medical_abstracts``) or a path."""
    seed = int(options.get("seed", 42))
    name = SOURCE_ALIASES.get(source.strip().lower())
    if name == "demo":
        return load_demo(deid, seed=seed)
    if name == "symptom2disease":
        return load_symptom2disease(deid, seed=seed)
    if name == "medical_abstracts":
        max_train = options.get("max_train")
        return load_medical_abstracts(deid, seed=seed, max_train=int(max_train) if max_train else None)
    return load_user_data(
        source,
        deid,
        seed=seed,
        text_column=options.get("text_column", "text"),
        label_column=options.get("label_column", "label"),
        group_columns=options.get("group_columns", ()),
        label_names=options.get("labels"),
    )


def label_counts(bundle: DataBundle, split: str = "train") -> dict[str, int]:
    """Rows per label in one split (for reports)."""
    return dict(Counter(bundle.split(split)["label"]))


def class_balance(bundle: DataBundle) -> float:
    """Smallest / largest class share in train (1.0 = balanced)."""
    counts = np.asarray(list(label_counts(bundle).values()), dtype=float)
    return float(counts.min() / counts.max()) if counts.size else 0.0
