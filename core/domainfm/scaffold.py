"""``domainfm plugins new``: write a plugin distribution from a template shipped with the core.

A template is a folder under ``domainfm/templates/<name>/`` whose files end in ``.tmpl``. Rendering replaces
``{{domain}}``, ``{{package}}`` and ``{{dist}}`` in contents, ``__package__`` in paths, and drops ``.tmpl``.
The destination is written through a temporary sibling folder and renamed, so a failure leaves nothing half
written.
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from domainfm.errors import ConfigError

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
SUFFIX = ".tmpl"


@dataclass(frozen=True)
class PluginNames:
    """The names one plugin needs, derived from its domain name."""

    domain: str

    @property
    def package(self) -> str:
        return f"domainfm_{self.domain}"

    @property
    def dist(self) -> str:
        return f"domainfm-{self.domain.replace('_', '-')}"

    def substitutions(self) -> dict[str, str]:
        return {"{{domain}}": self.domain, "{{package}}": self.package, "{{dist}}": self.dist}


def templates() -> list[str]:
    """The names of the templates shipped with the core."""
    root = resources.files("domainfm") / "templates"
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def check_name(name: str, taken: set[str] = frozenset()) -> PluginNames:  # type: ignore[assignment]
    """The plugin's names, or a ConfigError saying what is wrong with ``name``."""
    if not _NAME.match(name):
        raise ConfigError(f"plugin name {name!r}: use lower case letters, digits and underscores, starting with a letter")
    if keyword.iskeyword(name):
        raise ConfigError(f"plugin name {name!r} is a Python keyword")
    if name in taken:
        raise ConfigError(f"plugin name {name!r}: a domain of that name is already installed")
    return PluginNames(name)


def render_plugin(names: PluginNames, template: str, dest: Path) -> list[Path]:
    """Write the plugin for ``names`` from ``template`` into the new folder ``dest``; return the files written."""
    if template not in templates():
        raise ConfigError(f"template {template!r}: choose one of {templates()}")
    dest = Path(dest)
    if dest.exists():
        raise ConfigError(f"{dest}: already exists; choose another folder or remove it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        root = resources.files("domainfm") / "templates" / template
        with resources.as_file(root) as template_dir:
            written = _render_tree(Path(template_dir), staging, names)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [dest / path.relative_to(staging) for path in written]


def _render_tree(source: Path, target: Path, names: PluginNames) -> list[Path]:
    subs = names.substitutions()
    written = []
    for path in sorted(source.rglob(f"*{SUFFIX}")):
        relative = str(path.relative_to(source))[: -len(SUFFIX)].replace("__package__", names.package)
        out = target / relative
        out.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text(encoding="utf-8")
        for key, value in subs.items():
            text = text.replace(key, value)
        out.write_text(text, encoding="utf-8")
        written.append(out)
    return written
