"""docs/tutorial.md cannot go stale: its file blocks are written out, installed, and the plugin's tests run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
FILE_BLOCK = re.compile(r"<!-- file: (?P<path>[^ ]+) -->\n```[a-z]*\n(?P<body>.*?)\n```", re.S)


def tutorial_files() -> dict[str, str]:
    return {m["path"]: m["body"] + "\n" for m in FILE_BLOCK.finditer(TUTORIAL.read_text(encoding="utf-8"))}


def test_tutorial_has_every_part_of_a_plugin() -> None:
    files = tutorial_files()
    assert {"pyproject.toml", "domainfm_ticket_priority/plugin.py", "domainfm_ticket_priority/cli.py",
            "domainfm_ticket_priority/routes.py", "domainfm_ticket_priority/demo.csv", "tests/test_plugin.py"} <= set(files)
    plugin = files["domainfm_ticket_priority/plugin.py"]
    for hook in ("domainfm_domains", "domainfm_load_data", "domainfm_train", "domainfm_evaluate",
                 "domainfm_benefit_terms", "domainfm_register_commands", "domainfm_register_routes"):
        assert f"def {hook}(" in plugin, hook


@pytest.mark.slow
def test_tutorial_plugin_installs_and_passes_its_tests(tmp_path: Path, install_and_test_plugin: Any) -> None:
    root = tmp_path / "domainfm-ticket-priority"
    for relative, body in tutorial_files().items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(body, encoding="utf-8")
    domains, result = install_and_test_plugin(root)
    assert "ticket_priority" in domains
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout
