"""Choosing artifacts, reading API keys, and the ``domainfm serve`` command (real uvicorn on loopback)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domainfm.errors import ConfigError
from domainfm.serve.artifacts import newest_run_artifact, parse_artifact_flags, resolve_artifacts
from domainfm.serve.auth import key_matches
from domainfm.serve.settings import ServeSettings, read_api_keys
from domainfm.types import Artifact


def _run(root: Path, domain: str, name: str, status: str, updated: str, artifact: bool = True) -> Path:
    run = root / domain / name
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": status, "updated_at": updated}))
    if artifact:
        (run / "artifact").mkdir()
        Artifact(path=run / "artifact", domain=domain, kind="fake", base_model="none").save_metadata()
    return run


def test_newest_finished_run_with_an_artifact_is_chosen(tmp_path: Path) -> None:
    # "dom": a domain name, as every DomainSpec has ([a-z][a-z0-9_]{1,63})
    _run(tmp_path, "dom", "a-old", "finished", "2026-01-01T00:00:00+00:00")
    newest = _run(tmp_path, "dom", "b-new", "trained", "2026-03-01T00:00:00+00:00")
    _run(tmp_path, "dom", "c-running", "running", "2026-04-01T00:00:00+00:00")
    _run(tmp_path, "dom", "d-failed", "failed", "2026-05-01T00:00:00+00:00")
    _run(tmp_path, "dom", "e-noartifact", "finished", "2026-06-01T00:00:00+00:00", artifact=False)
    (tmp_path / "dom" / "f-damaged").mkdir()
    (tmp_path / "dom" / "f-damaged" / "run.json").write_text("{not json")
    assert newest_run_artifact(tmp_path, "dom") == newest / "artifact"
    assert newest_run_artifact(tmp_path, "other") is None


def test_a_run_of_several_variants_follows_the_cli_policy(tmp_path: Path) -> None:
    """One policy with the CLI (domainfm.run_layout): the variant the benefit report chose, else refused with the
    names; never whichever variant was written last."""
    from domainfm.serve.artifacts import default_layout

    run = _run(tmp_path, "dom", "multi", "finished", "2026-01-01T00:00:00+00:00", artifact=False)
    for name in ("head", "full"):
        path = run / "variants" / name / "artifact"
        path.mkdir(parents=True)
        Artifact(path=path, domain="dom", kind="fake", base_model="none", metadata={"variant": name}).save_metadata()
        time.sleep(0.02)
    layout, reason = default_layout(tmp_path, "dom")
    assert layout is None and reason is not None and "name one with --variant: full, head" in reason
    assert newest_run_artifact(tmp_path, "dom") is None
    with pytest.raises(ConfigError, match="several model variants"):
        resolve_artifacts(["dom"], {"dom": run}, tmp_path)
    (run / "benefit.json").write_text(json.dumps({"optimum": 0, "points": [{"variant": "head"}]}))
    assert newest_run_artifact(tmp_path, "dom") == run / "variants" / "head" / "artifact"
    assert resolve_artifacts(["dom"], {"dom": run}, tmp_path) == {"dom": run / "variants" / "head" / "artifact"}
    layout, _ = default_layout(tmp_path, "dom")
    assert layout is not None and layout.run_dir == run  # the run, not variants/head: the predictor's run_dir


def test_explicit_artifacts_win_and_bad_ones_are_clear(tmp_path: Path) -> None:
    run = _run(tmp_path, "dom", "r1", "finished", "2026-01-01T00:00:00+00:00")
    other = _run(tmp_path / "elsewhere", "dom", "r2", "running", "2026-01-01T00:00:00+00:00")
    resolved = resolve_artifacts(["dom", "eee"], {"dom": other}, tmp_path)
    assert resolved == {"dom": other / "artifact", "eee": None}
    assert resolve_artifacts(["dom"], {}, tmp_path) == {"dom": run / "artifact"}
    with pytest.raises(ConfigError, match="not loaded"):
        resolve_artifacts(["dom"], {"zzz": other}, tmp_path)
    with pytest.raises(ConfigError, match="nothing: no such run directory, artifact directory or domain name"):
        resolve_artifacts(["dom"], {"dom": tmp_path / "nothing"}, tmp_path)


def test_an_explicit_artifact_of_another_domain_is_refused(tmp_path: Path) -> None:
    from domainfm.config import RunConfig
    from domainfm.manager import PluginManager
    from domainfm.serve.app import create_app

    run = _run(tmp_path, "finance_sentiment", "r1", "finished", "2026-01-01T00:00:00+00:00")
    with pytest.raises(ConfigError, match="is for domain 'finance_sentiment'"):
        create_app(PluginManager(autoload=False), RunConfig(output_dir=tmp_path), {"text_classification": run},
                   ServeSettings(runs_dir=tmp_path))


@pytest.mark.parametrize("value", ["nodomain", "=path", "d=", "d"])
def test_bad_artifact_flags(value: str) -> None:
    with pytest.raises(ConfigError, match="DOMAIN=PATH"):
        parse_artifact_flags([value])


def test_artifact_flag_given_twice() -> None:
    with pytest.raises(ConfigError, match="given twice"):
        parse_artifact_flags(["d=a", "d=b"])


def test_api_keys_from_env_and_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("# team keys\nfile-key-1\n\n  file-key-2  \n")
    assert read_api_keys(keys, env=" env-a , ,env-b") == ["env-a", "env-b", "file-key-1", "file-key-2"]
    assert read_api_keys(None, env="") == []
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ConfigError, match=str(empty)):
        read_api_keys(empty, env="")
    with pytest.raises(ConfigError, match="not found"):
        read_api_keys(tmp_path / "missing.txt", env="")


@given(given_key=st.text(max_size=40), keys=st.lists(st.text(min_size=1, max_size=40), max_size=4))
def test_key_matches_is_membership(given_key: str, keys: list[str]) -> None:
    assert key_matches(given_key, keys) == (given_key in keys)


def test_settings_validate_their_fields() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_queue"):
        ServeSettings(max_queue=0)
    with pytest.raises(ValidationError, match="api_keys"):
        ServeSettings(api_keys=["  "])
    assert not ServeSettings().auth_enabled and ServeSettings(api_keys=["k"]).auth_enabled


def test_cli_imports_neither_fastapi_nor_torch() -> None:
    code = (
        "import sys; import domainfm.cli.main as m; m.build_cli(); "
        "bad = [x for x in ('fastapi', 'uvicorn', 'torch', 'starlette') if x in sys.modules]; print(bad)"
    )
    env = {**os.environ, "DOMAINFM_DISABLE_PLUGIN_AUTOLOAD": "1"}  # the core's CLI, whatever plugins do
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_domainfm_serve_runs_uvicorn_on_loopback(tc_run_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "DOMAINFM_API_KEYS": "cli-key"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "domainfm.cli.main", "--no-autoload", "serve", "--port", str(port),
         "--artifact", f"text_classification={tc_run_dir}", "--runs-dir", str(tmp_path), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "server did not start in 60 s"
                time.sleep(0.3)
        assert health.json()["domains"]["text_classification"]["status"] == "ready"  # preloaded
        denied = httpx.post(f"{base}/text_classification/predict", json={"texts": ["hello"]}, timeout=10)
        ok = httpx.post(f"{base}/text_classification/predict", json={"texts": ["hello"]},
                        headers={"X-API-Key": "cli-key"}, timeout=10)
        assert denied.status_code == 401
        assert ok.status_code == 200 and ok.json()["device"] == "cpu"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_domainfm_serve_reports_a_bad_artifact_flag_in_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "domainfm.cli.main", "--no-autoload", "serve", "--artifact", "text_classification"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2 and "expected DOMAIN=PATH" in out.stderr and "Traceback" not in out.stderr
