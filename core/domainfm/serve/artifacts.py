"""Which model serves a domain: an explicit ``DOMAIN=REF`` or the newest finished run of the domain.

Both go through :func:`domainfm.run_layout.resolve_model`, the resolver every command uses, so the server and
the CLI follow one policy: ``REF`` is a run directory, an artifact directory or a domain name; a run with several
model variants serves the variant its benefit report chose, and one whose report chose none is refused (naming
the variants) instead of serving whichever was written last. A domain's default is the newest run (by
``started_at``) whose ``run.json`` status is in :data:`USABLE_STATUSES`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from domainfm.errors import ConfigError, DataError
from domainfm.run_layout import RunLayout, resolve_model

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


def explicit_layout(ref: Path, runs_dir: Path) -> RunLayout:
    """The model ``--artifact DOMAIN=REF`` names (run dir, artifact dir or domain name under ``runs_dir``).

    :raises ConfigError: the resolver's one line (no such model, a multi-variant run without a chosen variant).
    """
    try:
        return resolve_model(ref, output_dir=runs_dir)
    except DataError as exc:
        raise ConfigError(f"--artifact: {exc}") from None


def artifact_dir(path: Path) -> Path:
    """The artifact folder a run or artifact directory ``path`` serves (see :func:`explicit_layout`)."""
    return explicit_layout(path, Path("runs")).artifact_dir


def default_layout(runs_dir: Path, domain: str) -> tuple[RunLayout | None, str | None]:
    """The model a domain serves without ``--artifact``: (its layout, None), or (None, why there is none)."""
    try:
        return resolve_model(domain, domain=domain, output_dir=runs_dir, statuses=USABLE_STATUSES), None
    except DataError as exc:
        return None, str(exc)


def newest_run_artifact(runs_dir: Path, domain: str) -> Path | None:
    """The artifact folder of the newest usable run of ``domain`` under ``runs_dir`` (None when there is none)."""
    layout, _ = default_layout(runs_dir, domain)
    return layout.artifact_dir if layout is not None else None


def resolve_layouts(
    domains: Iterable[str], explicit: dict[str, Path], runs_dir: Path
) -> tuple[dict[str, RunLayout | None], dict[str, str]]:
    """Every served domain's model layout (None without one), and for those without, why.

    :raises ConfigError: when an explicit entry names a domain that is not served or a reference that is not a model.
    """
    domains = list(domains)
    unknown = sorted(set(explicit) - set(domains))
    if unknown:
        raise ConfigError(f"--artifact names domains that are not loaded: {unknown}; loaded domains: {sorted(domains)}")
    layouts: dict[str, RunLayout | None] = {}
    reasons: dict[str, str] = {}
    for domain in domains:
        if domain in explicit:
            layouts[domain] = explicit_layout(explicit[domain], runs_dir)
        else:
            layouts[domain], reason = default_layout(runs_dir, domain)
            if reason is not None:
                reasons[domain] = reason
    return layouts, reasons


def resolve_artifacts(domains: Iterable[str], explicit: dict[str, Path], runs_dir: Path) -> dict[str, Path | None]:
    """Every served domain's artifact folder (None when there is none); see :func:`resolve_layouts`."""
    layouts, _ = resolve_layouts(domains, explicit, runs_dir)
    return {d: (layout.artifact_dir if layout is not None else None) for d, layout in layouts.items()}
