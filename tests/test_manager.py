"""Plugin discovery, selection and isolation of broken plugins."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from domainfm import hookimpl
from domainfm.errors import BrokenPluginError, PluginContractError, PluginError
from domainfm.manager import PluginManager
from domainfm.types import DomainSpec


def fake_distribution(site: Path, name: str, module_source: str, requires: str | None = None) -> None:
    """Install a minimal distribution (dist-info + module) into ``site``, discoverable by importlib.metadata."""
    module = f"{name}_mod"
    (site / f"{module}.py").write_text(textwrap.dedent(module_source))
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
    if requires:
        meta += f"Requires-Dist: {requires}\n"
    (info / "METADATA").write_text(meta)
    (info / "entry_points.txt").write_text(f"[domainfm]\n{name} = {module}\n")


GOOD = """
from domainfm import hookimpl
from domainfm.types import DomainSpec

@hookimpl
def domainfm_domains():
    return [DomainSpec(name="good_domain", description="ok", tasks=["classification"], output_space="labels",
                       default_data="demo", default_model="m", metrics=["accuracy"], key_metric="accuracy")]
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    for var in ("DOMAINFM_PLUGINS", "DOMAINFM_DISABLE_PLUGINS", "DOMAINFM_DISABLE_PLUGIN_AUTOLOAD", "DOMAINFM_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    return site


@pytest.fixture
def broken_site(site: Path) -> Path:
    fake_distribution(site, "goodplug", GOOD)
    fake_distribution(site, "importfails", "raise ImportError('missing dependency: nosuchlib')\n")
    fake_distribution(
        site,
        "raisesatregistration",
        """
        from domainfm import hookimpl
        @hookimpl
        def domainfm_domains():
            raise RuntimeError("boom at registration")
        """,
    )
    fake_distribution(
        site,
        "wrongtype",
        """
        from domainfm import hookimpl
        @hookimpl
        def domainfm_domains():
            return [{"name": "Bad Name!", "description": "x"}]
        """,
    )
    fake_distribution(site, "tooold", GOOD.replace("good_domain", "old_domain"), requires="domainfm>=9.0")
    return site


def test_broken_plugins_are_recorded_and_the_rest_works(broken_site: Path) -> None:
    pm = PluginManager().load()
    assert pm.plugins["goodplug"].status == "loaded"
    assert "good_domain" in pm.domains
    assert "text_classification" in pm.domains  # built-ins unaffected
    errors = {p.name: p.error for p in pm.broken}
    assert "nosuchlib" in errors["importfails"]
    assert "boom at registration" in errors["raisesatregistration"]
    assert "field name" in errors["wrongtype"] and "wrongtype" not in pm.domains
    assert "requires domainfm>=9.0" in errors["tooold"]
    assert "old_domain" not in pm.domains
    assert "tooold_mod" not in sys.modules  # an incompatible plugin is never imported
    for info in pm.broken:
        assert "\n" not in info.one_line() and info.name in info.one_line()


def test_a_command_needing_a_broken_plugin_fails_clearly(broken_site: Path) -> None:
    pm = PluginManager().load()
    with pytest.raises(BrokenPluginError, match="importfails"):
        pm.domain("some_domain_of_importfails")


def test_strict_mode_reraises(broken_site: Path) -> None:
    with pytest.raises(Exception, match="nosuchlib|boom|requires|field"):
        PluginManager(strict=True).load()


def test_selection_disable_and_autoload(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_distribution(site, "goodplug", GOOD)
    fake_distribution(site, "otherplug", GOOD.replace("good_domain", "other_domain"))
    monkeypatch.setenv("DOMAINFM_PLUGINS", "otherplug")
    pm = PluginManager().load()
    assert "other_domain" in pm.domains and "good_domain" not in pm.domains
    assert pm.plugins["goodplug"].status == "disabled"
    monkeypatch.delenv("DOMAINFM_PLUGINS")
    pm = PluginManager(disable=["otherplug"]).load()
    assert "good_domain" in pm.domains and "other_domain" not in pm.domains
    pm = PluginManager(autoload=False).load()
    assert "good_domain" not in pm.domains and "text_classification" in pm.domains
    pm = PluginManager(select=["nosuchplugin"]).load()
    assert pm.plugins["nosuchplugin"].status == "broken"


def test_duplicate_domain_is_reported_against_the_second_plugin(site: Path) -> None:
    fake_distribution(site, "aplug", GOOD)
    fake_distribution(site, "bplug", GOOD)
    pm = PluginManager().load()
    assert pm.plugins["aplug"].status == "loaded"
    assert pm.plugins["bplug"].status == "broken" and "already provided" in (pm.plugins["bplug"].error or "")


def _own_domain_spec(name: str) -> DomainSpec:
    return DomainSpec(name=name, description="d", tasks=["classification"], output_space="labels",
                      default_data="demo", default_model="m", metrics=["accuracy"], key_metric="accuracy")


class WrongReturn:
    @hookimpl
    def domainfm_domains(self):  # type: ignore[no-untyped-def]
        return [_own_domain_spec("wrong_domain")]

    @hookimpl
    def domainfm_load_data(self, ctx, domain, source):  # type: ignore[no-untyped-def]
        return {"train": [1, 2, 3]} if domain == "wrong_domain" else None


class Raises:
    @hookimpl
    def domainfm_domains(self):  # type: ignore[no-untyped-def]
        return [_own_domain_spec("raising_domain")]

    @hookimpl
    def domainfm_load_data(self, ctx, domain, source):  # type: ignore[no-untyped-def]
        if domain == "raising_domain":
            raise ValueError("cannot parse line 3")


def test_wrong_return_type_in_its_own_domain_names_plugin_hook_and_type(tmp_path: Path) -> None:
    from domainfm.config import RunConfig
    from domainfm.runner import Runner

    pm = PluginManager(autoload=False).load()
    pm.register(WrongReturn(), name="wrong-return")
    runner = Runner(pm, RunConfig(output_dir=tmp_path))
    ctx = runner.context("wrong_domain")
    with pytest.raises(PluginContractError) as info:
        runner.load_data(ctx, "demo")
    assert info.value.plugin == "wrong-return" and info.value.hook == "domainfm_load_data"
    assert "expected DataBundle" in str(info.value)
    assert pm.exclusions == [] and pm.plugins["wrong-return"].status == "loaded"  # its own domain: not excluded


def test_exception_in_a_plugin_names_it(tmp_path: Path) -> None:
    from domainfm.config import RunConfig
    from domainfm.runner import Runner

    pm = PluginManager(autoload=False).load()
    pm.register(Raises(), name="raiser")
    runner = Runner(pm, RunConfig(output_dir=tmp_path))
    ctx = runner.context("raising_domain")
    with pytest.raises(PluginError, match="plugin 'raiser' in domainfm_load_data: ValueError: cannot parse line 3"):
        runner.load_data(ctx, "demo")


def test_domain_spec_validation() -> None:
    with pytest.raises(ValueError, match="key_metric"):
        DomainSpec(name="x_y", description="d", tasks=["ranking"], output_space="rankings", default_data="demo",
                   default_model="m", metrics=["ndcg_at_10"], key_metric="accuracy")


def test_plugins_list_is_fast_and_imports_no_torch() -> None:
    code = (
        "import sys; from domainfm.cli.main import main\n"
        "try:\n    main(['plugins', 'list', '--json'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'faiss', 'sentence_transformers') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out, out
    assert '"name": "domainfm.text_classification"' in out


TYPO = """
from domainfm import hookimpl

@hookimpl
def domainfm_trian(ctx, domain, data):
    return None
"""

BAD_SIGNATURE = """
from domainfm import hookimpl

@hookimpl
def domainfm_train(ctx, domain, data, epochs):
    return None
"""


def test_an_unknown_hook_name_is_a_broken_plugin_with_the_nearest_hook(site: Path) -> None:
    fake_distribution(site, "typoplug", TYPO)
    fake_distribution(site, "goodplug", GOOD)
    pm = PluginManager().load()
    info = pm.plugins["typoplug"]
    assert info.status == "broken"
    assert info.error == "unknown hook 'domainfm_trian' (did you mean 'domainfm_train'?)"
    assert pm.pm.get_plugin("typoplug") is None  # takes part in no hook
    assert pm.plugins["goodplug"].status == "loaded"  # the next plugin is not blamed for it
    assert "good_domain" in pm.domains


def test_pluggy_validation_messages_become_one_line(site: Path) -> None:
    fake_distribution(site, "badsig", BAD_SIGNATURE)
    pm = PluginManager().load()
    error = pm.plugins["badsig"].error or ""
    assert pm.plugins["badsig"].status == "broken" and "\n" not in error
    assert "epochs" in error and "domainfm_train" in error


@pytest.mark.parametrize("source", [TYPO, BAD_SIGNATURE])
def test_strict_plugins_fails_in_one_line_without_a_traceback(site: Path, source: str) -> None:
    fake_distribution(site, "strictplug", source)
    with pytest.raises(BrokenPluginError) as info:
        PluginManager(strict=True).load()
    assert "\n" not in str(info.value) and "strictplug" in str(info.value)
    code = "from domainfm.cli.main import main; main(['--strict-plugins', 'plugins', 'list'])"
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: plugin 'strictplug'"), proc.stderr
