"""``domainfm plugins new``: names are checked, files are written atomically, and the generated plugin installs
and passes its own tests unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from domainfm.errors import ConfigError
from domainfm.scaffold import PluginNames, check_name, render_plugin, templates


@pytest.mark.parametrize("name", ["Routing", "1abc", "a", "with-dash", "class", "x" * 65])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="plugin name"):
        check_name(name)


def test_taken_domain_is_refused() -> None:
    with pytest.raises(ConfigError, match="already installed"):
        check_name("finance_sentiment", {"finance_sentiment"})


def test_names_derive_from_the_domain() -> None:
    names = check_name("ticket_routing")
    assert (names.package, names.dist) == ("domainfm_ticket_routing", "domainfm-ticket-routing")


def test_render_writes_every_template_file_with_names_substituted(tmp_path: Path) -> None:
    files = render_plugin(PluginNames("routing"), "text-classification", tmp_path / "out")
    relative = {str(p.relative_to(tmp_path / "out")) for p in files}
    assert {"pyproject.toml", "domainfm_routing/plugin.py", "domainfm_routing/demo_data/demo.csv",
            "tests/test_plugin.py"} <= relative
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "{{" not in text and "__package__" not in str(path), path
    assert 'routing = "domainfm_routing.plugin"' in (tmp_path / "out" / "pyproject.toml").read_text()


def test_render_refuses_an_existing_folder_and_unknown_template(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        render_plugin(PluginNames("routing"), "text-classification", tmp_path / "taken")
    with pytest.raises(ConfigError, match="choose one of"):
        render_plugin(PluginNames("routing"), "nope", tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no staging folder left behind


def test_cli_command_writes_the_plugin(tmp_path: Path) -> None:
    from domainfm.cli.main import cli

    result = CliRunner().invoke(cli, ["plugins", "new", "routing", "--dir", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "domainfm_routing" / "plugin.py").is_file()
    assert "text-classification" in templates()


@pytest.mark.slow
def test_generated_plugin_installs_and_passes_its_tests(tmp_path: Path, install_and_test_plugin: Any) -> None:
    """The whole promise: generate, install into a separate target folder, run the plugin's own tests."""
    plugin_dir = tmp_path / "domainfm-routing"
    render_plugin(PluginNames("routing"), "text-classification", plugin_dir)
    domains, result = install_and_test_plugin(plugin_dir)
    assert "routing" in domains
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_default_loader_knows_every_engine_artifact_kind() -> None:
    from domainfm.builtin.defaults import TEXT_CLASSIFIER_KINDS
    from domainfm.engine.classifier_predictor import KIND_ENSEMBLE, KIND_HEAD, KIND_HF

    assert set(TEXT_CLASSIFIER_KINDS) == {KIND_HF, KIND_HEAD, KIND_ENSEMBLE}
