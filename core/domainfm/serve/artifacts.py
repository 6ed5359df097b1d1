"""Which artifact serves a domain: an explicit ``DOMAIN=PATH`` or the newest finished run of the domain."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from domainfm.errors import ConfigError
from domainfm.types import ARTIFACT_METADATA

#: ``run.json`` statuses whose artifact is complete: ``domainfm run`` ends with ``finished``,
#: ``domainfm train`` with ``trained``.
USABLE_STATUSES = ("finished", "trained")


def parse_artifact_flags(values: Iterable[str]) -> dict[str, Path]:
    """``["finance_sentiment=runs/x/artifact", ...]`` → ``{"finance_sentiment": Path(...)}``.

    :raises ConfigError: for a value without ``=``, an empty side, or a domain named twice.
    """
    out: dict[str, Path] = {}
    for value in values:
        domain, sep, path = value.partition("=")
        domain, path = domain.strip(), path.strip()
        if not sep or not domain or not path:
            raise ConfigError(f"--artifact {value!r}: expected DOMAIN=PATH, e.g. finance_sentiment=runs/finance_sentiment/<run>")
        if domain in out:
            raise ConfigError(f"--artifact: domain {domain!r} is given twice")
        out[domain] = Path(path)
    return out


def artifact_dir(path: Path) -> Path:
    """The artifact folder for ``path``: the folder itself, or ``<run dir>/artifact``.

    :raises ConfigError: when neither holds ``domainfm-artifact.json``.
    """
    if (path / ARTIFACT_METADATA).is_file():
        return path
    if (path / "artifact" / ARTIFACT_METADATA).is_file():
        return path / "artifact"
    newest = _newest_variant(path)
    if newest is not None:
        return newest
    raise ConfigError(f"{path}: not an artifact or run directory (no {ARTIFACT_METADATA} in it or in {path / 'artifact'})")


def _newest_variant(run_dir: Path) -> Path | None:
    variants = [p.parent for p in run_dir.glob(f"variants/*/artifact/{ARTIFACT_METADATA}")]
    if not variants:
        return None
    return max(variants, key=lambda p: (p / ARTIFACT_METADATA).stat().st_mtime)


def newest_run_artifact(runs_dir: Path, domain: str) -> Path | None:
    """The artifact of the newest usable run under ``runs_dir/domain``, or None.

    A run is usable when its ``run.json`` has a status in :data:`USABLE_STATUSES` and it holds an
    artifact. Runs are ordered by ``run.json``'s ``updated_at`` (ISO 8601), then by folder name.
    """
    root = runs_dir / domain
    if not root.is_dir():
        return None
    candidates: list[tuple[str, str, Path]] = []
    for run_dir in root.iterdir():
        meta = run_dir / "run.json"
        if not meta.is_file():
            continue
        try:
            run = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # a run being written or a damaged file: not a candidate
        if not isinstance(run, dict) or run.get("status") not in USABLE_STATUSES:
            continue
        try:
            art = artifact_dir(run_dir)
        except ConfigError:
            continue
        candidates.append((str(run.get("updated_at") or ""), run_dir.name, art))
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c[0], c[1]))[2]


def resolve_artifacts(domains: Iterable[str], explicit: dict[str, Path], runs_dir: Path) -> dict[str, Path | None]:
    """Map every served domain to its artifact folder (None when there is none).

    :raises ConfigError: when an explicit entry names a domain that is not served or a path that is
        not an artifact.
    """
    domains = list(domains)
    unknown = sorted(set(explicit) - set(domains))
    if unknown:
        raise ConfigError(f"--artifact names domains that are not loaded: {unknown}; loaded domains: {sorted(domains)}")
    out: dict[str, Path | None] = {}
    for domain in domains:
        if domain in explicit:
            out[domain] = artifact_dir(explicit[domain])
        else:
            out[domain] = newest_run_artifact(runs_dir, domain)
    return out
