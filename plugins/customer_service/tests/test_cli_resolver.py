"""``domainfm cs`` finds its model through domainfm.run_layout: the same references and multi-variant policy as
every other command (run dir, artifact dir, domain name; --variant, else the benefit report's choice, else refused)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from domainfm.types import Artifact
from domainfm_customer_service import DOMAIN
from domainfm_customer_service.cli import cs, find_artifact


def _run(root: Path, name: str, variants: tuple[str, ...] = (), domain: str = DOMAIN) -> Path:
    run = root / domain / name
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": "finished", "started_at": name}), encoding="utf-8")
    for variant in variants or ("",):
        path = run / "variants" / variant / "artifact" if variant else run / "artifact"
        path.mkdir(parents=True)
        Artifact(path=path, domain=domain, kind="fake", base_model="none", metadata={"variant": variant or "head"}).save_metadata()
    return run


def test_run_artifact_and_domain_references(tmp_path: Path) -> None:
    old = _run(tmp_path, "2026-01-01")
    new = _run(tmp_path, "2026-02-01")
    assert find_artifact(None, None, output_dir=str(tmp_path)) == new / "artifact"
    assert find_artifact(str(old), None, output_dir=str(tmp_path)) == old / "artifact"
    assert find_artifact(str(old), str(new / "artifact"), output_dir=str(tmp_path)) == new / "artifact"


def test_a_multi_variant_run_follows_the_one_policy(tmp_path: Path) -> None:
    run = _run(tmp_path, "2026-03-01", variants=("full", "head"))
    with pytest.raises(click.ClickException, match="several model variants .* --variant: full, head"):
        find_artifact(str(run), None)
    assert find_artifact(str(run), None, variant="full") == run / "variants" / "full" / "artifact"
    (run / "benefit.json").write_text(json.dumps({"optimum": 0, "points": [{"variant": "head"}]}), encoding="utf-8")
    assert find_artifact(str(run), None) == run / "variants" / "head" / "artifact"


def test_a_model_of_another_domain_or_nothing_is_one_line(tmp_path: Path) -> None:
    other = _run(tmp_path, "2026-01-01", domain="healthcare")
    res = CliRunner().invoke(cs, ["ask", "hello", "--artifact", str(other / "artifact")])
    assert res.exit_code == 1 and "a model of domain 'healthcare'" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cs, ["ask", "hello", "--run", str(tmp_path / "missing")])
    assert res.exit_code == 1 and "no such run directory" in res.output
