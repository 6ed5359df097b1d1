"""Run directories as the benefit engine sees them: rebuild a run's context, list runs, compare two runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domainfm.benefit.model import BenefitReport
from domainfm.benefit.report import BENEFIT_JSON, load_report
from domainfm.errors import DataError, DomainfmError
from domainfm.types import Evaluation, ResourceUsage, RunContext

RUN_JSON = "run.json"
PRIVACY_SOURCES = {
    "privacy_identifiers_training_data": "training_data",
    "privacy_names_training_data": "training_data",
    "privacy_identifiers_outputs": "outputs",
    "privacy_names_outputs": "outputs",
    "privacy_pii_artifacts": "artifacts",
}


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a run directory, with errors naming the file."""
    path = run_dir / RUN_JSON
    if not path.is_file():
        raise DataError(f"{run_dir}: not a run directory (no {RUN_JSON})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    for key in ("run_id", "domain", "config"):
        if key not in data:
            raise DataError(f"{path}: missing field {key!r}")
    return data


def read_evaluations(run_dir: Path) -> dict[str, Evaluation]:
    """``evaluations/<variant>.json`` of a run directory, by variant name."""
    from pydantic import ValidationError

    folder = run_dir / "evaluations"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise DataError(f"{folder}: no evaluations (*.json) to score")
    out = {}
    for file in files:
        try:
            out[file.stem] = Evaluation.model_validate_json(file.read_text(encoding="utf-8"))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "(root)"
            raise DataError(f"{file}: field {loc}: {err['msg']}") from None
    return out


def context_from_run(
    run_dir: str | Path, overrides: list[str] | tuple[str, ...] = (), lambda_: float | None = None, pm: Any = None
) -> RunContext:
    """Rebuild the :class:`RunContext` of a finished run from ``run.json`` (config, device, resources).

    ``overrides`` are ``key=value`` config assignments (e.g. ``benefit.assumptions.hourly_cost=40``).
    Privacy scans of the previous report stand in for texts that are no longer available.
    """
    from domainfm.config import apply_override, parse_config
    from domainfm.manager import get_plugin_manager

    run_dir = Path(run_dir)
    run = read_run_json(run_dir)
    data = dict(run["config"])
    for assignment in overrides:
        apply_override(data, assignment)
    if lambda_ is not None:
        data.setdefault("benefit", {})["lambda"] = lambda_
    config = parse_config(data, source=str(run_dir / RUN_JSON))
    pm = pm if pm is not None else get_plugin_manager()
    pm.domain(run["domain"])  # a clear error when the domain's plugin is missing or broken
    fields = ResourceUsage.__dataclass_fields__
    resources = ResourceUsage(**{k: v for k, v in (run.get("resources") or {}).items() if k in fields})
    ctx = RunContext(
        run_id=str(run["run_id"]),
        domain=str(run["domain"]),
        config=config,
        run_dir=run_dir,
        device=str(run.get("device") or "cpu"),
        pm=pm,
        resources=resources,
    )
    if run.get("dp_epsilon") is not None:
        ctx.state["dp_epsilon"] = run["dp_epsilon"]
    previous = run_dir / BENEFIT_JSON
    if previous.is_file():
        try:
            old = json.loads(previous.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        scans = {}
        for c in old.get("constraints", []):
            source = PRIVACY_SOURCES.get(c.get("name"))
            details = c.get("details") or {}
            if source and "count" in details and source not in scans:
                scans[source] = {k: v for k, v in details.items() if k not in ("limit_source", "reason", "note")}
            if c.get("name") == "privacy_dp_epsilon" and "dp_epsilon" not in ctx.state:
                value = (c.get("at_optimum") or {}).get("value")
                if value is not None:
                    ctx.state["dp_epsilon"] = value
        ctx.state["privacy_scans_previous"] = scans
    return ctx


# ------------------------------------------------------------------------------------------ listing


@dataclass
class RunSummary:
    """One line of ``domainfm runs list``."""

    path: Path
    run_id: str
    domain: str
    status: str
    started_at: str
    device: str
    key_metric: str | None
    key_value: float | None
    verdict: str | None
    objective: float | None
    record: str | None = None  # which evaluation record the figures come from (see ReportSource.short)
    parent: str | None = None  # a `domainfm improve` child: its parent's run id and whether it was promoted


def list_runs(output_dir: str | Path, domain: str | None = None) -> list[RunSummary]:
    """Runs under ``output_dir/<domain>/<run id>/``, oldest first. Unreadable runs are listed as such."""
    root = Path(output_dir)
    out: list[RunSummary] = []
    for run_json in sorted(root.glob(f"{domain or '*'}/*/{RUN_JSON}")):
        run_dir = run_json.parent
        try:
            run = read_run_json(run_dir)
        except DataError as exc:
            out.append(RunSummary(run_dir, run_dir.name, run_dir.parent.name, f"unreadable: {exc}", "", "", None, None, None, None))
            continue
        verdict: str | None = None
        objective: float | None = None
        key_value: float | None = None
        key: str | None = None
        record: str | None = None
        if (run_dir / BENEFIT_JSON).is_file():
            try:
                report = load_report(run_dir)
                verdict = report.verdict
                objective = report.best.objective if report.best else None
                key = report.key_metric
                record = report.source.short() if report.source else None
                if key and report.variants:
                    key_value = report.metrics.get(report.variants[0], {}).get(key)
            except DataError:
                verdict = "unreadable"
        out.append(
            RunSummary(
                path=run_dir, run_id=str(run["run_id"]), domain=str(run["domain"]), status=str(run.get("status", "?")),
                started_at=str(run.get("started_at", "")), device=str(run.get("device", "")), key_metric=key,
                key_value=key_value, verdict=verdict, objective=objective, record=record, parent=_parent_of(run),
            )
        )
    return sorted(out, key=lambda r: (r.started_at, r.run_id))


def _parent_of(run: dict[str, Any]) -> str | None:
    """``<parent id> (promoted|not promoted|promoted, forced|deciding)`` for a ``domainfm improve`` child."""
    lineage = run.get("lineage")
    if not isinstance(lineage, dict):
        return None
    promotion = run.get("promotion") or {}
    state = ("deciding" if not promotion else "promoted, forced" if promotion.get("forced")
             else "promoted" if promotion.get("promoted") else "not promoted")
    return f"{lineage.get('parent_run_id')} ({state})"


def resolve_run(ref: str, output_dir: str | Path) -> Path:
    """A run directory from a path or a run id (searched under ``output_dir/*/``)."""
    path = Path(ref)
    if path.is_dir():
        return path
    matches = sorted(Path(output_dir).glob(f"*/{ref}"))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DomainfmError(f"no run {ref!r}: not a directory and not a run id under {output_dir}")
    raise DomainfmError(f"run id {ref!r} is ambiguous: {[str(m) for m in matches]}")


# ------------------------------------------------------------------------------------------ comparing


@dataclass
class Change:
    """One figure of two runs side by side; ``moved`` when it changed beyond ``tolerance``."""

    section: str
    name: str
    before: Any
    after: Any
    delta: float | None
    moved: bool


def compare_reports(a: BenefitReport, b: BenefitReport, tolerance: float = 1e-9) -> list[Change]:
    """What moved from run ``a`` to run ``b``: objective, R_T, R_S, each term, each constraint, metrics."""
    if a.domain != b.domain:
        raise DomainfmError(f"runs of different domains cannot be compared: {a.domain!r} vs {b.domain!r}")
    changes: list[Change] = []

    def num(section: str, name: str, x: float | None, y: float | None) -> None:
        delta = None if x is None or y is None else float(y) - float(x)
        moved = (x is None) != (y is None) or (delta is not None and abs(delta) > tolerance)
        changes.append(Change(section, name, x, y, delta, moved))

    def text(section: str, name: str, x: Any, y: Any) -> None:
        changes.append(Change(section, name, x, y, None, x != y))

    pa, pb = a.best, b.best
    text("decision", "verdict", a.verdict, b.verdict)
    text("decision", "operating point",
         f"{pa.variant} @ {pa.threshold:.4g}" if pa else None, f"{pb.variant} @ {pb.threshold:.4g}" if pb else None)
    text("decision", "lambda", a.lambda_, b.lambda_)
    text("record", "evaluation", a.source.short() if a.source else None, b.source.short() if b.source else None)
    num("decision", "objective", pa.objective if pa else None, pb.objective if pb else None)
    num("decision", "R_T", pa.r_t if pa else None, pb.r_t if pb else None)
    num("decision", "R_S", pa.r_s if pa else None, pb.r_s if pb else None)
    num("decision", "coverage", pa.coverage if pa else None, pb.coverage if pb else None)
    terms_a = {t.name: t for t in a.terms}
    terms_b = {t.name: t for t in b.terms}
    for name in list(terms_a) + [n for n in terms_b if n not in terms_a]:
        ta, tb = terms_a.get(name), terms_b.get(name)
        num("term", name, ta.value_at_optimum if ta else None, tb.value_at_optimum if tb else None)
        for assumption in {x.name for t in (ta, tb) if t for x in t.assumptions}:
            va = next((x.value for x in (ta.assumptions if ta else []) if x.name == assumption), None)
            vb = next((x.value for x in (tb.assumptions if tb else []) if x.name == assumption), None)
            if va != vb:
                num("assumption", f"{name}.{assumption}", va, vb)
    cons_a = {c.name: c for c in a.constraints}
    cons_b = {c.name: c for c in b.constraints}
    for name in list(cons_a) + [n for n in cons_b if n not in cons_a]:
        ca, cb = cons_a.get(name), cons_b.get(name)
        va = ca.at_optimum.value if ca and ca.at_optimum else None
        vb = cb.at_optimum.value if cb and cb.at_optimum else None
        num("constraint", name, va, vb)
        sa = ca.at_optimum.status if ca and ca.at_optimum else None
        sb = cb.at_optimum.status if cb and cb.at_optimum else None
        if sa != sb:
            text("constraint status", name, sa, sb)
        if ca and cb and ca.limit != cb.limit:
            num("limit", name, ca.limit, cb.limit)
    for variant in [v for v in a.metrics if v in b.metrics]:
        for metric in [m for m in a.metrics[variant] if m in b.metrics[variant]]:
            num("metric", f"{variant}.{metric}", a.metrics[variant][metric], b.metrics[variant][metric])
    return changes


# ------------------------------------------------------------------------------------------ comparing several runs


class SplitMismatchError(DomainfmError):
    """Two runs were judged on different test items: a paired comparison of their metrics would be meaningless."""


@dataclass
class RunRecord:
    """What ``runs compare`` reads of one run: run.json, its training-time evaluations, its report if any."""

    path: Path
    run: dict[str, Any]
    evaluations: dict[str, Evaluation]
    report: BenefitReport | None

    @property
    def run_id(self) -> str:
        return str(self.run.get("run_id") or self.path.name)

    @property
    def eval_split(self) -> str:
        return str((self.run.get("config") or {}).get("eval_split", "test"))


def read_run_record(run_dir: Path) -> RunRecord:
    run = read_run_json(run_dir)
    try:
        evaluations = read_evaluations(run_dir)
    except DataError:
        evaluations = {}
    report = load_report(run_dir) if (run_dir / BENEFIT_JSON).is_file() else None
    return RunRecord(run_dir, run, evaluations, report)


def config_differences(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Every flattened config field whose value is not the same in all runs (absent fields count as None)."""
    from domainfm.tracking.flatten import flatten

    flat = [flatten(r.run.get("config") or {}) for r in records]
    keys = sorted(set().union(*flat))
    out = []
    for key in keys:
        values = [f.get(key) for f in flat]
        if any(v != values[0] for v in values[1:]):
            out.append({"field": key, "values": values})
    return out


def fingerprint_table(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Each split's fingerprint in every run (None where a run recorded none), and whether they all agree."""
    prints = [r.run.get("data_fingerprints") or {} for r in records]
    out = []
    for split in sorted(set().union(*prints)):
        values = [(p.get(split) or {}).get("sha256") for p in prints]
        sizes = [(p.get(split) or {}).get("n") for p in prints]
        out.append({"split": split, "sha256": values, "n": sizes,
                    "same": None not in values and len(set(values)) == 1})
    return out


def pair_variants(a: RunRecord, b: RunRecord) -> list[tuple[str, str]]:
    """Variants to pair: those both runs have; else, when each has one, those two (``full`` vs ``lora``)."""
    shared = [v for v in a.evaluations if v in b.evaluations]
    if shared:
        return [(v, v) for v in shared]
    if len(a.evaluations) == 1 and len(b.evaluations) == 1:
        return [(next(iter(a.evaluations)), next(iter(b.evaluations)))]
    return []


def check_same_split(a: RunRecord, b: RunRecord, ev_a: Evaluation, ev_b: Evaluation) -> str | None:
    """Why the two evaluations cannot be paired (None: they can), by split name and data fingerprint."""
    if ev_a.split != ev_b.split:
        return f"{a.run_id} was evaluated on {ev_a.split!r}, {b.run_id} on {ev_b.split!r}"
    fa = ((a.run.get("data_fingerprints") or {}).get(ev_a.split) or {}).get("sha256")
    fb = ((b.run.get("data_fingerprints") or {}).get(ev_b.split) or {}).get("sha256")
    if fa and fb and fa != fb:
        return (f"the {ev_a.split} splits differ (fingerprints {fa[:12]} vs {fb[:12]}): the runs were judged on "
                "different items, so their metrics cannot be paired")
    return None


def significance(a: RunRecord, b: RunRecord, *, resamples: int, seed: int) -> list[dict[str, Any]]:
    """Paired bootstrap of B - A per variant pair on the test items both share; refused when the splits differ."""
    from domainfm.benefit.paired_bootstrap import compare_evaluations

    out: list[dict[str, Any]] = []
    for va, vb in pair_variants(a, b):
        ev_a, ev_b = a.evaluations[va], b.evaluations[vb]
        entry: dict[str, Any] = {"baseline": a.run_id, "run": b.run_id, "variant_a": va, "variant_b": vb,
                                 "split": ev_a.split, "refused": check_same_split(a, b, ev_a, ev_b)}
        if not a.run.get("data_fingerprints") or not b.run.get("data_fingerprints"):
            entry["note"] = "a run recorded no data fingerprints: paired by the item ids both evaluations share"
        if entry["refused"] is None:
            n, diffs = compare_evaluations(ev_a, ev_b, resamples=resamples, seed=seed)
            if n == 0:
                entry["refused"] = "the evaluations share no item ids (or record no per-item outcomes)"
            entry.update({"n_shared": n, "n_a": ev_a.n_items, "n_b": ev_b.n_items,
                          "metrics": [d.as_dict() for d in diffs]})
        out.append(entry)
    return out


def compare_runs(run_dirs: list[Path], *, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Everything ``domainfm runs compare A B [C...]`` shows, each later run against the first: config
    differences, data fingerprints, paired metric deltas with significance, and benefit deltas."""
    if len(run_dirs) < 2:
        raise DomainfmError("runs compare needs at least two runs")
    records = [read_run_record(Path(p)) for p in run_dirs]
    domains = {str(r.run.get("domain")) for r in records}
    if len(domains) > 1:
        raise DomainfmError(f"runs of different domains cannot be compared: {', '.join(sorted(domains))}")
    base = records[0]
    benefit: list[dict[str, Any]] = []
    for other in records[1:]:
        if base.report is None or other.report is None:
            missing = base if base.report is None else other
            benefit.append({"baseline": base.run_id, "run": other.run_id,
                            "note": f"{missing.run_id} has no benefit report (run `domainfm score {missing.path}`)"})
            continue
        changes = compare_reports(base.report, other.report)
        benefit.append({"baseline": base.run_id, "run": other.run_id, "changes": [c.__dict__ for c in changes],
                        "sources": [r.source.describe() if r.source else None for r in (base.report, other.report)]})
    return {
        "domain": domains.pop(),
        "runs": [{"run_id": r.run_id, "path": str(r.path), "status": r.run.get("status"),
                  "started_at": r.run.get("started_at")} for r in records],
        "config": config_differences(records),
        "fingerprints": fingerprint_table(records),
        "significance": [row for other in records[1:] for row in significance(base, other, resamples=resamples, seed=seed)],
        "benefit": benefit,
    }
