"""Where a trained model lives: one resolver for every command that needs one.

A command that needs a model takes a *reference*, which is one of

- a run directory, ``runs/<domain>/<run id>/`` (``run.json`` plus ``artifact/`` or ``variants/<name>/artifact/``),
  wherever it was written (``domainfm rec train --out DIR``);
- an artifact directory (holds ``domainfm-artifact.json``), inside a run or not (e.g. one copied elsewhere);
- a domain name, ``healthcare``, or a domain folder, ``runs/healthcare``: the newest run of that domain (by the
  ``started_at`` of its ``run.json``) that has a trained model and is not a ``domainfm improve`` child the
  promotion gate refused (``promotion.promoted`` in its run.json; see :mod:`domainfm.continual`).

Multi-variant runs (``config.variants``: one artifact per fine-tuning mode under ``variants/<name>/``) follow one
policy: the variant named by the caller (``--variant``) if given; otherwise the only one; otherwise the variant of
the operating point the run's benefit report chose (``benefit.json``); otherwise the reference is refused with the
variant names to choose from. A reference that is none of the above fails with one line naming it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domainfm.errors import ConfigError, DataError
from domainfm.types import ARTIFACT_METADATA, Artifact

RUN_JSON = "run.json"
VARIANTS_DIR = "variants"
ARTIFACT_DIR = "artifact"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DOMAIN = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


def check_name(value: str, what: str) -> str:
    """A name that becomes one path component (run name, split, variant): letters, digits, ``.``, ``_``, ``-``,
    not starting with ``.`` and at most 128 characters, so it can never climb out of its folder."""
    if not isinstance(value, str) or not _NAME.match(value) or value in (".", ".."):
        raise ConfigError(
            f"{what}: {value!r} is not a valid name (letters, digits, '.', '_' and '-', starting with a letter or "
            "digit, at most 128 characters)"
        )
    return value


@dataclass(frozen=True)
class RunLayout:
    """A resolved model reference: the run it belongs to (None for a bare artifact directory), every artifact of
    that run by variant name, and the one a command uses."""

    run_dir: Path | None
    variants: dict[str, Path]
    variant: str
    source: str = "run"  # how the reference was read: run, artifact or domain

    @property
    def artifact_dir(self) -> Path:
        return self.variants[self.variant]

    @property
    def domain(self) -> str:
        return str(_read_json(self.artifact_dir / ARTIFACT_METADATA).get("domain", ""))

    def load_artifact(self) -> Artifact:
        """The artifact, with a broken ``domainfm-artifact.json`` reported in one line naming the file."""
        from pydantic import ValidationError

        try:
            return Artifact.load(self.artifact_dir)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "(root)"
            raise DataError(f"{self.artifact_dir / ARTIFACT_METADATA}: field {loc}: {err['msg']}") from None

    def run_json(self) -> dict[str, Any]:
        """``run.json`` of the run (empty for a bare artifact directory)."""
        return _read_json(self.run_dir / RUN_JSON) if self.run_dir is not None else {}


def resolve_model(
    ref: str | Path,
    *,
    domain: str | None = None,
    variant: str | None = None,
    output_dir: str | Path = "runs",
    statuses: Collection[str] | None = None,
) -> RunLayout:
    """Resolve ``ref`` (run directory, artifact directory, domain name or folder) to a :class:`RunLayout`.

    ``domain``: the domain the command serves; a model of another domain is refused. ``output_dir``: where
    domain names are looked up. ``statuses``: for a domain name or folder, only runs whose ``run.json`` status is
    one of these count (the server serves finished runs only); a run.json that cannot be read then counts as none.
    """
    text = str(ref)
    path = Path(text)
    if path.is_dir():
        layout = _from_directory(path, variant)
    elif path.exists():
        raise DataError(f"{text}: is a file; expected a run directory, an artifact directory or a domain name")
    elif _DOMAIN.match(text):
        layout = _newest_run(Path(output_dir) / text, variant, named=text, statuses=statuses)
    else:
        raise DataError(f"{text}: no such run directory, artifact directory or domain name")
    found = layout.domain
    if domain is not None and found != domain:
        raise DataError(f"{layout.artifact_dir}: a model of domain {found!r}; this command needs a {domain!r} model")
    return layout


def _from_directory(path: Path, variant: str | None) -> RunLayout:
    if (path / ARTIFACT_METADATA).is_file():
        return _from_artifact(path, variant)
    if (path / RUN_JSON).is_file() or (path / ARTIFACT_DIR).is_dir() or (path / VARIANTS_DIR).is_dir():
        return _from_run(path, variant)
    if any((child / RUN_JSON).is_file() for child in _subdirs(path)):
        return _newest_run(path, variant, named=str(path))
    raise DataError(
        f"{path}: not a run directory ({RUN_JSON} with {ARTIFACT_DIR}/), an artifact directory ({ARTIFACT_METADATA}) "
        "or a domain folder of runs"
    )


def _from_artifact(path: Path, variant: str | None) -> RunLayout:
    # runs/<domain>/<id>/artifact or runs/<domain>/<id>/variants/<name>/artifact
    if path.name == ARTIFACT_DIR and path.parent.parent.name == VARIANTS_DIR and (path.parents[2] / RUN_JSON).is_file():
        run_dir = path.parents[2]
        return _check_variant(RunLayout(run_dir, _run_variants(run_dir), path.parent.name, "artifact"), variant)
    if path.name == ARTIFACT_DIR and (path.parent / RUN_JSON).is_file():
        return _from_run(path.parent, variant, source="artifact")
    name = _variant_name(path, None)
    return _check_variant(RunLayout(None, {name: path}, name, "artifact"), variant)


def _from_run(run_dir: Path, variant: str | None, source: str = "run") -> RunLayout:
    variants = _run_variants(run_dir)
    if not variants:
        status = _read_json(run_dir / RUN_JSON).get("status", "unknown") if (run_dir / RUN_JSON).is_file() else "unknown"
        raise DataError(f"{run_dir}: this run has no trained model (status: {status})")
    if variant is not None:
        return _check_variant(RunLayout(run_dir, variants, variant, source), variant)
    if len(variants) == 1:
        return RunLayout(run_dir, variants, next(iter(variants)), source)
    chosen = _report_variant(run_dir)
    if chosen in variants:
        return RunLayout(run_dir, variants, chosen, source)
    raise DataError(
        f"{run_dir}: the run holds several model variants and its benefit report chose none; "
        f"name one with --variant: {', '.join(sorted(variants))}"
    )


def _check_variant(layout: RunLayout, variant: str | None) -> RunLayout:
    if variant is not None and variant not in layout.variants:
        raise DataError(f"{layout.run_dir or layout.artifact_dir}: no variant {variant!r}; it has {', '.join(sorted(layout.variants))}")
    return layout if variant is None else RunLayout(layout.run_dir, layout.variants, variant, layout.source)


def _run_variants(run_dir: Path) -> dict[str, Path]:
    """Every trained artifact of a run, by the name its evaluation is recorded under."""
    single = run_dir / ARTIFACT_DIR
    if (single / ARTIFACT_METADATA).is_file():
        return {_variant_name(single, run_dir): single}
    folder = run_dir / VARIANTS_DIR
    return {
        child.name: child / ARTIFACT_DIR
        for child in _subdirs(folder)
        if (child / ARTIFACT_DIR / ARTIFACT_METADATA).is_file()
    }


def _variant_name(artifact_dir: Path, run_dir: Path | None) -> str:
    """The name a run records the artifact's evaluation under: the evaluation that names this artifact's path,
    else the artifact's ``variant`` or ``mode`` metadata, else the run's configured mode."""
    if run_dir is not None:
        for file in sorted((run_dir / "evaluations").glob("*.json")):
            extra = _read_json(file).get("extra") or {}
            recorded = extra.get("artifact_path")
            if recorded and Path(recorded).resolve() == artifact_dir.resolve():
                return file.stem
    meta = (_read_json(artifact_dir / ARTIFACT_METADATA).get("metadata") or {})
    for key in ("variant", "mode"):
        if meta.get(key):
            return str(meta[key])
    if run_dir is not None:
        mode = ((_read_json(run_dir / RUN_JSON).get("config") or {}).get("model") or {}).get("mode")
        if mode:
            return str(mode)
    return "model"


def _report_variant(run_dir: Path) -> str | None:
    report = _read_json(run_dir / "benefit.json")
    optimum = report.get("optimum")
    points = report.get("points") or []
    if isinstance(optimum, int) and 0 <= optimum < len(points):
        return points[optimum].get("variant")
    return None


def _newest_run(folder: Path, variant: str | None, named: str, statuses: Collection[str] | None = None) -> RunLayout:
    runs = [child for child in _subdirs(folder)
            if (child / RUN_JSON).is_file() and _has_status(child, statuses) and _run_variants(child) and _servable(child)]
    if not runs:
        raise DataError(f"{named}: no run with a trained model under {folder}")
    newest = max(runs, key=lambda d: (str(_read_json(d / RUN_JSON).get("started_at", "")), d.name))
    layout = _from_run(newest, variant)
    return RunLayout(layout.run_dir, layout.variants, layout.variant, "domain")


def _has_status(run_dir: Path, statuses: Collection[str] | None) -> bool:
    if statuses is None:
        return True
    try:
        return _read_json(run_dir / RUN_JSON).get("status") in statuses
    except DataError:  # a run.json being written or damaged: not a candidate
        return False


def _servable(run_dir: Path) -> bool:
    """Whether a run may be a domain's default model: any run but a ``domainfm improve`` child (``lineage`` in its
    run.json) whose promotion was refused or is not decided yet (see :mod:`domainfm.continual.gate`)."""
    run = _read_json(run_dir / RUN_JSON)
    if not run.get("lineage"):
        return True
    return bool((run.get("promotion") or {}).get("promoted"))


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(child for child in folder.iterdir() if child.is_dir())
    except OSError:
        return []


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; {} when it is absent, one line naming the file when it is broken."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data

