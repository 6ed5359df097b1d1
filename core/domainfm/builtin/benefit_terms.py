"""Cross-cutting constraints for every domain: privacy, fairness and resources (built-in plugin ``domainfm.benefit``).

What the runner leaves for these constraints:

- ``ctx.state['privacy_texts'] = {'training_data': [...], 'outputs': [...]}``: texts scanned for personal
  data; ``ctx.artifact_dir`` is scanned as files. ``ctx.state['privacy_scans_previous']`` (source -> a
  :class:`~domainfm.privacy.PiiReport` dict) stands in when the texts are gone (``domainfm score``).
- ``ctx.state['privacy_public_names']``: the data's public names (:attr:`DataBundle.public_names`),
  which the name recogniser does not count as people.
- ``ctx.state['dp_epsilon']``: the epsilon of differentially private training, if any.
- ``ctx.resources``: parameters, train time, latency, memory, energy, CO2 (None = not measured).

Limits below are defaults; users change them with ``benefit.limits.<constraint name>=value``. Options:
``options.privacy_ner=false`` skips the NER part of the PII scan (regex recognisers only);
``options.privacy_public_names=[...]`` (or a comma-separated string) adds public names of the user's own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from domainfm import hookimpl
from domainfm.types import Constraint, Evaluation, ItemBatch, RunContext

DETAILS = "benefit_details"
PRIVACY_SOURCES = ("training_data", "outputs")
IDENTIFIER_KINDS = frozenset({"EMAIL", "PHONE", "CARD", "IBAN", "ACCOUNT", "SSN", "IP"})
NAME_KINDS = frozenset({"PERSON"})
COUNTED_KINDS = IDENTIFIER_KINDS | NAME_KINDS
LOCATION_NOTE = (
    "LOCATION is not counted: a country or city alone does not identify a person (on BANKING77's 3,080 test "
    "queries the NER tagged 89 places such as 'US' and 'Spain')"
)
IDENTIFIER_LIMIT_SOURCE = (
    "GDPR Art. 4(1) and 5(1)(c) (data minimisation): direct identifiers have no place in training data, outputs "
    "or shipped artifacts; the recognisers are validated (Luhn, mod-97, SSA rules) and flagged 0 of BANKING77's "
    "3,080 test queries"
)
NAME_RATE_LIMIT = 0.01
NAME_LIMIT_SOURCE = (
    "tolerance for NER false positives: presidio with spaCy en_core_web_sm tagged 0.7 % of BANKING77 test queries "
    "as PERSON ('Visa', 'Mastercard', 'Russian Ruble'), none of them a name (measured in this project)"
)

DP_EPSILON_LIMIT = 10.0
DP_SOURCE = (
    "Ponomareva et al., 'How to DP-fy ML', JAIR 77 (2023), sec. 5.2: epsilon <= 10 is the tier they call "
    "reasonable protection for ML models"
)
FAIRNESS_GAP_LIMIT = 0.10
FAIRNESS_SOURCE = (
    "project default (10 points of the key metric between any two groups); no legal standard exists for "
    "accuracy gaps, the nearest analogue is the four-fifths rule for selection rates (EEOC Uniform Guidelines, "
    "29 CFR 1607.4(D), 1978)"
)

# name, ResourceUsage field, unit, default limit, source of the limit
RESOURCE_LIMITS: tuple[tuple[str, str, str, float, str], ...] = (
    ("resource_parameters", "parameters", "parameters", 1e9,
     "project default: a model that serves from one commodity server (1e9 parameters = 2 GB in fp16)"),
    ("resource_train_seconds", "train_seconds", "s", 86400.0,
     "project default: a fine-tune must finish within a day on the target machine"),
    ("resource_latency_p95", "latency_ms_p95", "ms", 1000.0,
     "Nielsen, Usability Engineering (1993), ch. 5: 1.0 s keeps a user's flow of thought uninterrupted"),
    ("resource_peak_memory", "peak_memory_mb", "MB", 16384.0,
     "project default: 16 GiB, the memory of a common cloud instance (e.g. 4 vCPU / 16 GiB)"),
    ("resource_energy", "energy_kwh", "kWh", 10.0,
     "project default: 10 kWh per run, about a day of a 400 W training server"),
    ("resource_co2", "co2_kg", "kg CO2eq", 5.0,
     "project default: 5 kg CO2eq per run, about 25 km by car (EEA 2023 average ~0.2 kg/km)"),
)


@hookimpl
def domainfm_benefit_terms(ctx: RunContext, domain: str, evaluation: Evaluation) -> list[Constraint]:
    """Privacy, fairness and resource constraints for every domain."""
    return [*privacy_constraints(ctx), *fairness_constraints(ctx, evaluation), *resource_constraints(ctx)]


# ------------------------------------------------------------------------------------------ privacy


def _details(ctx: RunContext) -> dict[str, Any]:
    return ctx.state.setdefault(DETAILS, {})


def _artifact_dirs(ctx: RunContext) -> list[Path]:
    """The run's artifact directory, or each variant's when the run trained several."""
    if ctx.artifact_dir.is_dir():
        return [ctx.artifact_dir]
    return sorted(p for p in ctx.run_dir.glob("variants/*/artifact") if p.is_dir())


def _scan_directories(scanner: Any, dirs: list[Path]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for directory in dirs:
        report = scanner.scan_directory(directory).model_dump()
        if not merged:
            merged = report
            continue
        merged["count"] += report["count"]
        merged["n_texts"] += report["n_texts"]
        merged["n_with_pii"] += report["n_with_pii"]
        for kind, n in report["by_kind"].items():
            merged["by_kind"][kind] = merged["by_kind"].get(kind, 0) + n
        merged["examples"] = (merged["examples"] + report["examples"])[:10]
        merged["files"].update({f"{directory}/{k}": v for k, v in report["files"].items()})
        merged["skipped"].update({f"{directory}/{k}": v for k, v in report["skipped"].items()})
    return merged


def _scan_sources(ctx: RunContext) -> dict[str, dict[str, Any] | None]:
    """PII scans per source (scanned once per run and cached in ``ctx.state['privacy_scans']``)."""
    cached = ctx.state.get("privacy_scans")
    if cached is not None:
        return cached
    from domainfm.privacy import PiiScanner

    ner = ctx.option("privacy_ner", None)
    off = ner is not None and str(ner).strip().lower() in ("0", "false", "no", "off")
    public = [*ctx.state.get("privacy_public_names", []), *_option_list(ctx.option("privacy_public_names"))]
    scanner = PiiScanner(use_ner=False if off else None, kinds=COUNTED_KINDS, public_names=public)
    texts = ctx.state.get("privacy_texts") or {}
    previous = ctx.state.get("privacy_scans_previous") or {}
    scans: dict[str, dict[str, Any] | None] = {}
    for source in PRIVACY_SOURCES:
        if texts.get(source) is not None:
            scans[source] = {**scan_texts(scanner, texts[source]), "origin": "scanned in this run"}
        elif previous.get(source) is not None:
            scans[source] = {**previous[source], "origin": "scan from the earlier report of this run"}
        else:
            scans[source] = None
    artifact_dirs = _artifact_dirs(ctx)
    if artifact_dirs:
        scans["artifacts"] = {**_scan_directories(scanner, artifact_dirs), "origin": ", ".join(map(str, artifact_dirs))}
    elif previous.get("artifacts") is not None:
        scans["artifacts"] = {**previous["artifacts"], "origin": "scan from the earlier report of this run"}
    else:
        scans["artifacts"] = None
    ctx.state["privacy_scans"] = scans
    return scans


def _option_list(value: Any) -> list[str]:
    """A list option given as a list or as a comma-separated string (``--set options.x=a,b``)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def scan_texts(scanner: Any, texts: list[Any], max_examples: int = 5) -> dict[str, Any]:
    """Scan texts (JSON objects contribute their string values): identifiers and names counted apart."""
    from domainfm.privacy import mask_spans

    items = [_strings_of(t) for t in texts if t is not None]
    flat = [s for item in items for s in item]
    found = scanner.find_many(flat, ner_if=lambda t: len(t.split()) >= 2)
    by_kind: dict[str, int] = {}
    examples: list[str] = []
    n_identifier = n_name = 0
    k = 0
    for item in items:
        spans_of_item = found[k : k + len(item)]
        kinds = {span.kind for spans in spans_of_item for span in spans}
        n_identifier += bool(kinds & IDENTIFIER_KINDS)
        n_name += bool(kinds & NAME_KINDS)
        for text, spans in zip(item, spans_of_item, strict=True):
            for span in spans:
                by_kind[span.kind] = by_kind.get(span.kind, 0) + 1
            if spans and len(examples) < max_examples:
                examples.append(mask_spans(text, spans)[:200])
        k += len(item)
    return {
        "n_texts": len(items),
        "count": sum(by_kind.values()),
        "by_kind": dict(sorted(by_kind.items())),
        "n_with_identifier": n_identifier,
        "n_with_name": n_name,
        "examples": examples,
        "ner_used": scanner.ner_used,
        "ner_reason": scanner.ner_reason,
        "not_counted": LOCATION_NOTE,
    }


def _strings_of(value: Any) -> list[str]:
    import json

    text = value if isinstance(value, str) else str(value)
    if text.lstrip().startswith("{"):
        try:
            from domainfm.privacy.files import json_strings

            return json_strings(json.loads(text))
        except ValueError:
            pass
    return [text]


def privacy_constraints(ctx: RunContext) -> list[Constraint]:
    """Identifiers and names in training data and outputs (rates), PII in the artifact; DP epsilon if given."""
    scans = _scan_sources(ctx)
    details = _details(ctx)
    dp_epsilon = ctx.state.get("dp_epsilon")
    dp_ok = dp_epsilon is not None and float(dp_epsilon) <= DP_EPSILON_LIMIT
    out: list[Constraint] = []
    for source, label in (("training_data", "training texts"), ("outputs", "model outputs")):
        scan = scans.get(source)
        for what, field, limit, source_note, description in (
            ("identifiers", "n_with_identifier", 0.0, IDENTIFIER_LIMIT_SOURCE,
             f"Share of {label} containing validated identifiers (email, phone, payment card, IBAN, account "
             "number, SSN, IP address)."),
            ("names", "n_with_name", NAME_RATE_LIMIT, NAME_LIMIT_SOURCE,
             f"Share of {label} containing person names (presidio NER on spaCy en_core_web_sm)."),
        ):
            name = f"privacy_{what}_{source}"
            value: float | None = None
            info: dict[str, Any] = {"limit_source": source_note}
            if scan is None:
                info["reason"] = f"nothing to scan: no {label} were kept in this run"
            elif what == "names" and not scan.get("ner_used"):
                info["reason"] = f"names cannot be detected: {scan.get('ner_reason')}"
                info.update(scan)
            else:
                n = int(scan.get("n_texts") or 0)
                value = float(scan.get(field, 0)) / n if n else 0.0
                info.update(scan)
            if source == "training_data" and dp_ok:
                limit = 1.0  # DP training bounds what the model can memorise of any one record
                info["note"] = f"training was differentially private (epsilon={dp_epsilon}); limit relaxed"
            details[name] = info
            if source == "training_data" and what == "identifiers":
                description += " Mask them (domainfm.privacy.PiiScanner.mask) or train with differential privacy."
            out.append(
                Constraint(
                    name=name, kind="privacy", unit=f"fraction of {label}", description=description,
                    limit=limit, direction="max", measure=_constant(value), depends_on_operating_point=False,
                )
            )
    art = scans.get("artifacts")
    details["privacy_pii_artifacts"] = (
        {**art, "limit_source": IDENTIFIER_LIMIT_SOURCE} if art is not None
        else {"reason": "nothing to scan: the run has no artifact directory"}
    )
    out.append(
        Constraint(
            name="privacy_pii_artifacts", kind="privacy", unit="findings",
            description="Personal data in the text files of the trained artifact (configs, label maps, samples).",
            limit=0.0, direction="max", depends_on_operating_point=False,
            measure=_constant(None if art is None else float(art["count"])),
        )
    )
    if dp_epsilon is not None:
        details["privacy_dp_epsilon"] = {"limit_source": DP_SOURCE}
        out.append(
            Constraint(
                name="privacy_dp_epsilon", kind="privacy", unit="epsilon",
                description="Privacy budget of differentially private training (smaller is more private).",
                limit=DP_EPSILON_LIMIT, direction="max", measure=_constant(float(dp_epsilon)),
                depends_on_operating_point=False,
            )
        )
    return out


# ------------------------------------------------------------------------------------------ fairness


def fairness_constraints(ctx: RunContext, evaluation: Evaluation) -> list[Constraint]:
    """One gap constraint per group column; without group data one constraint that is not measurable."""
    groups = evaluation.outcomes.groups if evaluation.outcomes is not None else {}
    min_size = int(ctx.config.benefit.assumptions.get("fairness_min_group_size", 10))
    key = evaluation.key_metric
    if not groups:
        _details(ctx)["fairness_gap"] = {
            "reason": "the data provides no group columns (DataBundle.group_columns is empty)",
            "source": FAIRNESS_SOURCE,
        }
        return [
            Constraint(
                name="fairness_gap", kind="fairness", unit=f"{key} difference",
                description=f"Largest gap of {key} between groups among automated items: no groups to compare.",
                limit=FAIRNESS_GAP_LIMIT, measure=_constant(None),
            )
        ]
    out = []
    for column in sorted(groups):
        _details(ctx)[f"fairness_gap_{column}"] = {
            "group_column": column, "min_group_size": min_size, "source": FAIRNESS_SOURCE,
            "measured_with": "fairlearn.metrics.MetricFrame.difference(method='between_groups')",
        }
        out.append(
            Constraint(
                name=f"fairness_gap_{column}", kind="fairness", unit=f"{key} difference",
                description=(
                    f"Largest difference of {key} between any two groups of '{column}' among the items the "
                    f"model handles (groups with fewer than {min_size} automated items are left out)."
                ),
                limit=FAIRNESS_GAP_LIMIT,
                measure=_gap_of(column, min_size),
            )
        )
    return out


def _gap_of(column: str, min_size: int) -> Callable[[ItemBatch], float | None]:
    def measure(batch: ItemBatch) -> float | None:
        from domainfm.benefit.fairness import group_gap

        return group_gap(
            batch.quality, batch.automated, batch.groups[column],
            key_metric=batch.evaluation.key_metric, extra=batch.extra, min_group_size=min_size,
        ).gap

    return measure


# ------------------------------------------------------------------------------------------ resources


def resource_constraints(ctx: RunContext) -> list[Constraint]:
    """Measured resources against limits; a resource that was not measured is "not measurable"."""
    details = _details(ctx)
    out = []
    for name, attr, unit, limit, source in RESOURCE_LIMITS:
        value = getattr(ctx.resources, attr)
        info: dict[str, Any] = {"resource": attr, "limit_source": source}
        description = f"{attr.replace('_', ' ')} of the run (limit source: {source})."
        if attr == "latency_ms_p95":
            info["latency_ms_p50"] = ctx.resources.latency_ms_p50
            info["timed"] = ctx.state.get("latency_timed") or "not recorded"
            description = f"95th percentile single-request latency. Timed: {info['timed']} (limit source: {source})."
        if attr in ("energy_kwh", "co2_kg"):
            info["country"] = ctx.state.get("energy_country")
            if value is None:
                info["reason"] = ctx.state.get("energy_tracking_error") or "energy was not tracked in this run"
        elif value is None:
            info["reason"] = f"{attr} was not measured in this run"
        details[name] = info
        out.append(
            Constraint(
                name=name, kind="resource", unit=unit, description=description,
                limit=limit, direction="max", depends_on_operating_point=False,
                measure=_resource_of(attr),
            )
        )
    return out


def _resource_of(attr: str) -> Callable[[ItemBatch], float | None]:
    def measure(batch: ItemBatch) -> float | None:
        value = getattr(batch.resources, attr)
        return None if value is None else float(value)

    return measure


def _constant(value: float | None) -> Callable[[ItemBatch], float | None]:
    """A measure that does not depend on the operating point (measured once, before the sweep)."""
    return lambda _batch: value
