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
                key_value=key_value, verdict=verdict, objective=objective, record=record,
            )
        )
    return sorted(out, key=lambda r: (r.started_at, r.run_id))


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
