"""Measure de-identification on the project-made probe set (texts with planted identifiers and offsets).

- recall: share of planted identifiers whose every character is covered by detected spans (a partial
  redaction that leaves part of a phone number behind counts as a miss);
- typed recall: the same, and the covering span has the planted type;
- precision: share of detected spans that overlap a planted identifier (texts without identifiers,
  eponymous disease names and symptom durations are in the set to catch over-redaction).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from domainfm.privacy import PiiSpan

from domainfm_healthcare.deid import Deidentifier

PROBE_FILE = "deid_probe.jsonl"


def load_probe(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The probe rows: ``{"id", "text", "identifiers": [{"start", "end", "kind"}]}``."""
    if path is None:
        raw = resources.files("domainfm_healthcare").joinpath("demo_data", PROBE_FILE).read_text(encoding="utf-8")
        where = PROBE_FILE
    else:
        raw = Path(path).read_text(encoding="utf-8")
        where = str(path)
    rows = []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        for ident in row.get("identifiers", []):
            if not 0 <= ident["start"] < ident["end"] <= len(row["text"]):
                raise ValueError(f"{where}:{lineno}: identifier offsets {ident} outside the text")
        rows.append(row)
    return rows


def _covered(ident: dict[str, Any], spans: Sequence[PiiSpan]) -> tuple[bool, bool]:
    chars = set(range(ident["start"], ident["end"]))
    typed_chars = set(chars)
    for s in spans:
        rng = set(range(s.start, s.end))
        chars -= rng
        if s.kind == ident["kind"]:
            typed_chars -= rng
    return not chars, not typed_chars


def evaluate_deidentifier(deid: Deidentifier, rows: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Recall, typed recall, precision and per-kind recall of ``deid`` on the probe rows."""
    rows = load_probe() if rows is None else rows
    planted = found = found_typed = detected = true_detected = 0
    per_kind_total: Counter[str] = Counter()
    per_kind_found: Counter[str] = Counter()
    for row in rows:
        spans = deid.detect(row["text"])
        idents = row.get("identifiers", [])
        for ident in idents:
            hit, typed = _covered(ident, spans)
            planted += 1
            per_kind_total[ident["kind"]] += 1
            found += hit
            found_typed += typed
            per_kind_found[ident["kind"]] += hit
        for s in spans:
            detected += 1
            true_detected += any(s.start < i["end"] and i["start"] < s.end for i in idents)
    return {
        "deid_recall": found / planted if planted else 0.0,
        "deid_typed_recall": found_typed / planted if planted else 0.0,
        "deid_precision": true_detected / detected if detected else 1.0,
        "planted": planted,
        "detected": detected,
        "texts": len(rows),
        "recall_by_kind": {k: per_kind_found[k] / n for k, n in sorted(per_kind_total.items())},
    }
