"""A model card (``README.md``) for every artifact: what it was trained on, how good it is, how sure it is, what it
is for and not for, what it is worth, and where it came from.

The card is built from the files a run leaves (``domainfm-artifact.json``, ``run.json``, the training-time
evaluation record, ``benefit.json``), so it can be written again at any time (``domainfm export`` does) and never
holds a figure the run did not record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from domainfm.io import atomic_write_text
from domainfm.metrics import INTERVAL_SUFFIXES
from domainfm.types import ARTIFACT_METADATA

CARD = "README.md"
_LOW, _HIGH = INTERVAL_SUFFIXES


def write_model_card(artifact_dir: Path, run_dir: Path | None, variant: str | None = None) -> Path:
    """Write ``artifact_dir/README.md`` from the run's records; returns its path."""
    return atomic_write_text(Path(artifact_dir) / CARD, render_model_card(artifact_dir, run_dir, variant))


def render_model_card(artifact_dir: Path, run_dir: Path | None, variant: str | None = None) -> str:
    artifact = _read(Path(artifact_dir) / ARTIFACT_METADATA)
    meta = artifact.get("metadata") or {}
    run = _read(run_dir / "run.json") if run_dir else {}
    config = run.get("config") or {}
    variant = variant or _variant_of(artifact_dir, run_dir, meta)
    evaluation = _read(run_dir / "evaluations" / f"{variant}.json") if run_dir and variant else {}
    benefit = _read(run_dir / "benefit.json") if run_dir else {}
    domain = artifact.get("domain", "?")
    base = artifact.get("base_model") or "?"
    lines = [
        "---",
        f"library_name: {'transformers' if artifact.get('kind') == 'hf-sequence-classification' else 'domainfm'}",
        "pipeline_tag: text-classification" if artifact.get("label_names") else "pipeline_tag: other",
        f"base_model: {base}",
        f"license: {_licence_tag(base)}",
        "tags: [domainfm, " + domain + "]",
        "---",
        "",
        f"# {domain} model ({meta.get('mode', artifact.get('kind', 'model'))}) from run {run.get('run_id', '?')}",
        "",
        f"Fine-tuned by [domainfm](https://pypi.org/project/domainfm/) from `{base}` for the `{domain}` domain "
        f"(artifact kind `{artifact.get('kind')}`).",
        "",
        "## Base model and licence",
        "",
        f"- base model: `{base}` (resolved from {meta.get('resolved_from', 'its id')})",
        f"- licence: {_licence(base)}",
        f"- parameters: {_n(meta.get('parameters'))} (trained: {_n(meta.get('trainable_parameters'))})",
        "",
        "## Data and split",
        "",
        f"- data source: `{config.get('data', '?')}`",
    ]
    sizes = run.get("data_sizes") or {}
    prints = run.get("data_fingerprints") or {}
    for split in sorted(set(sizes) | set(prints)):
        fp = prints.get(split) or {}
        digest = f", fingerprint sha256 `{fp['sha256'][:16]}…` of its {fp.get('basis', 'ids')}" if fp.get("sha256") else ""
        lines.append(f"- {split}: {sizes.get(split, fp.get('n', '?'))} items{digest}")
    lines += [
        f"- trained on {meta.get('train_examples', '?')} examples; evaluated on the `{config.get('eval_split', 'test')}` "
        "split, never used for training, calibration or thresholds",
        f"- labels: {', '.join(f'`{x}`' for x in artifact.get('label_names') or []) or 'none (not a classifier)'}",
        "",
        "## Metrics (95 % intervals)",
        "",
    ]
    lines += _metrics_table(evaluation.get("metrics") or {}) if evaluation else [
        "No training-time evaluation was recorded for this model (`domainfm evaluate` it)."]
    lines += ["", "## Calibration", ""] + _calibration(meta, evaluation.get("metrics") or {})
    lines += ["", "## Benefit summary", ""] + _benefit(benefit)
    lines += ["", "## Intended use", "", _intended_use(domain, meta), "", "## Limitations", ""] + _limitations(meta, evaluation)
    lines += [
        "",
        "## How to use",
        "",
        "```python",
        "import domainfm",
        f"model = domainfm.load({str(artifact_dir)!r})",
        'model.predict(["some text"])   # labels and calibrated confidences, as `domainfm predict` gives',
        "```",
        "",
        f"`domainfm export {run_dir or artifact_dir} --format hf` writes a folder that `transformers.pipeline` loads with "
        "the calibration applied; `--format onnx` the int8 ONNX model with its tokenizer.",
        "",
    ]
    return "\n".join(lines)


def _metrics_table(metrics: dict[str, Any]) -> list[str]:
    rows = ["| metric | value | 95 % interval |", "| --- | --- | --- |"]
    for name, value in metrics.items():
        if name.endswith(INTERVAL_SUFFIXES) or not isinstance(value, (int, float)):
            continue
        low, high = metrics.get(f"{name}{_LOW}"), metrics.get(f"{name}{_HIGH}")
        interval = f"[{low:.4f}, {high:.4f}]" if isinstance(low, (int, float)) and isinstance(high, (int, float)) else "-"
        rows.append(f"| {name} | {value:.4f} | {interval} |")
    return rows


def _calibration(meta: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    calibrator = meta.get("calibrator") or ({"kind": "temperature", "temperature": meta["temperature"]}
                                            if "temperature" in meta else None)
    if not calibrator:
        return ["Not calibrated: confidences are the raw softmax."]
    out = [f"- calibrator: {calibrator.get('kind')}"
           + (f", temperature T = {float(calibrator['temperature']):.4g}" if calibrator.get("kind") == "temperature" else ""),
           "- fitted on the validation split"]
    if calibrator.get("note"):
        out.append(f"- note: {calibrator['note']}")
    for key, label in (("validation_ece_before", "validation ECE before"), ("validation_ece", "validation ECE after")):
        if isinstance(meta.get(key), (int, float)):
            out.append(f"- {label}: {meta[key]:.4f}")
    if isinstance(metrics.get("ece"), (int, float)):
        out.append(f"- test ECE: {metrics['ece']:.4f}")
    if meta.get("abstain_threshold") is not None:
        out.append(f"- abstains below confidence {float(meta['abstain_threshold']):.4g} (chosen on validation)")
    return out


def _benefit(report: dict[str, Any]) -> list[str]:
    if not report:
        return ["No benefit report was written for this run."]
    points = report.get("points") or []
    optimum = report.get("optimum")
    out = [f"- verdict: **{report.get('verdict', '?')}** (λ = {report.get('lambda', '?')})"]
    if isinstance(optimum, int) and 0 <= optimum < len(points):
        p = points[optimum]
        out.append(f"- chosen operating point: `{p.get('variant')}` at confidence ≥ {p.get('threshold', 0):.4g}, coverage "
                   f"{p.get('coverage', 0):.3f}, objective {p.get('objective', 0):.4g} (R_T {p.get('r_t', 0):.4g}, R_S {p.get('r_s', 0):.4g})")
    else:
        out.append("- no operating point satisfies every constraint")
    for term in report.get("terms") or []:
        if term.get("value_at_optimum") is not None:
            out.append(f"- term {term['name']} ({term.get('objective')}): {term['value_at_optimum']:.4g} {term.get('unit', '')}".rstrip())
    for c in report.get("constraints") or []:
        check = c.get("at_optimum") or {}
        out.append(f"- constraint {c['name']}: {check.get('status', 'unmeasured')}"
                   + (f" ({check['value']:.4g} vs limit {c.get('limit')})" if isinstance(check.get("value"), (int, float)) else ""))
    return out


def _intended_use(domain: str, meta: dict[str, Any]) -> str:
    return (f"Classifying `{domain}` texts like those of its training data, with a person handling what it abstains on "
            "(confidence below the chosen operating point). The benefit summary above says at which confidence "
            "automation paid off on the test split.")


def _limitations(meta: dict[str, Any], evaluation: dict[str, Any]) -> list[str]:
    out = [f"- inputs are truncated to {meta.get('max_length', '?')} tokens",
           "- measured on one test split; other sources, periods or languages may score lower",
           "- confidences are calibrated on the validation split; they drift when the input distribution does"]
    if meta.get("dp"):
        out.append(f"- trained with differential privacy (ε = {meta['dp'].get('epsilon')})")
    if evaluation and evaluation.get("n_items") is not None:
        out.append(f"- the test split has {evaluation['n_items']} items: the intervals above say how far that goes")
    return out


def _licence(base: str) -> str:
    from domainfm.model_store import spec_for

    spec = spec_for(base)
    return spec.licence if spec else f"that of `{base}` (check its own model card); the fine-tuned weights inherit it"


def _licence_tag(base: str) -> str:
    text = _licence(base)
    return text.split(" ")[0].lower() if text.startswith("Apache") or text.startswith("MIT") else "other"


def _variant_of(artifact_dir: Path, run_dir: Path | None, meta: dict[str, Any]) -> str | None:
    if run_dir is None:
        return None
    for file in sorted((run_dir / "evaluations").glob("*.json")):
        recorded = (_read(file).get("extra") or {}).get("artifact_path")
        if recorded and Path(recorded).resolve() == Path(artifact_dir).resolve():
            return file.stem
    return str(meta.get("variant") or meta.get("mode") or "") or None


def _n(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, (int, float)) else "?"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
