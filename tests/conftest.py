from __future__ import annotations

import os

# No hub is reachable in tests or CI: every model and data set must resolve locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DOMAINFM_NO_PROGRESS", "1")



import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def install_and_test_plugin(tmp_path: Path) -> Callable[[Path], tuple[list[str], subprocess.CompletedProcess[str]]]:
    """Install a plugin source tree into a separate target folder (no dependencies: the core is already here),
    then return the domains `domainfm plugins list --json` shows with it and pytest's run of its own tests."""

    def run(plugin_dir: Path) -> tuple[list[str], subprocess.CompletedProcess[str]]:
        site = tmp_path / "site"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(site), str(plugin_dir)], check=True, capture_output=True)
        env = {**os.environ, "PYTHONPATH": str(site)}
        listed = subprocess.run([sys.executable, "-m", "domainfm.cli.main", "plugins", "list", "--json"], env=env,
                                capture_output=True, text=True, check=True).stdout
        domains = [d for plugin in json.loads(listed) for d in plugin.get("domains", [])]
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                               cwd=plugin_dir, env=env, capture_output=True, text=True)
        return domains, tests

    return run
