"""Plugin discovery, selection and isolation.

Plugins come from two places: the core's own built-in plugins (:data:`BUILTIN_PLUGINS`) and installed
distributions with an entry point in the group ``domainfm``. Loading never lets one plugin take the
others down: a plugin that fails to import, raises while registering, or declares an incompatible core
version, or implements a hook no spec declares (a typo such as ``domainfm_trian``) is recorded as broken
(:class:`PluginInfo`, one line) and reported; everything else keeps working. At call time, a plugin that
raises outside its own domain (an observer, a benefit term for every domain, a wrapper, a registration hook)
is excluded: blocked for the rest of the process and listed in :attr:`PluginManager.exclusions` (see
:mod:`domainfm.isolation`). With ``strict=True`` (``DOMAINFM_STRICT_PLUGINS=1`` or ``--strict-plugins``) the
first failure raises :class:`~domainfm.errors.BrokenPluginError` with a one-line message instead.

Environment variables (flags of the same meaning override them):

- ``DOMAINFM_PLUGINS=a,b``: load only these entry-point plugins (built-ins always load).
- ``DOMAINFM_DISABLE_PLUGINS=a,b``: never load these (built-ins included, by name).
- ``DOMAINFM_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry-point plugins unless named in DOMAINFM_PLUGINS.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from domainfm import __version__, hookspecs
from domainfm.errors import (
    BrokenPluginError,
    ConfigError,
    DataError,
    DomainfmError,
    PluginContractError,
    PluginError,
    UnknownDomainError,
)
from domainfm.hooks import Hooks
from domainfm.isolation import guard_plugin
from domainfm.types import DomainSpec

ENTRY_POINT_GROUP = "domainfm"
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("domainfm.defaults", "domainfm.builtin.defaults"),
    ("domainfm.text_classification", "domainfm.builtin.text_classification"),
    ("domainfm.benefit", "domainfm.builtin.benefit_terms"),
    ("domainfm.tracking", "domainfm.tracking.plugin"),
)
_USER_ERRORS = (DataError, ConfigError)
_CALLER_HANDLES = frozenset({"domainfm_domains", "domainfm_register_routes"})
"""Hooks whose failure the caller records: a broken plugin (domains), a route error the server reports
(``/plugins``, ``/health`` degraded) while the plugin's domains stay served through the core routes."""


@dataclass
class PluginInfo:
    """A plugin the manager knows about, loaded or not."""

    name: str
    version: str | None
    module: str
    builtin: bool
    status: str = "loaded"  # loaded | broken | disabled
    error: str | None = None
    domains: list[DomainSpec] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "module": self.module,
            "builtin": self.builtin,
            "status": self.status,
            "error": self.error,
            "domains": [d.name for d in self.domains],
        }

    def one_line(self) -> str:
        ver = self.version or "-"
        if self.status == "broken":
            return f"{self.name} {ver}: BROKEN: {self.error}"
        return f"{self.name} {ver}: {self.status}"


@dataclass(frozen=True)
class PluginExclusion:
    """A plugin taken out of every hook after it raised outside its own domain."""

    plugin: str
    hook: str
    domain: str | None
    error: str

    def one_line(self) -> str:
        where = f" (domain {self.domain!r})" if self.domain else ""
        return f"excluded: {self.hook} raised{where}: {self.error}"

    def as_dict(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "hook": self.hook, "domain": self.domain, "error": self.error}


def _split_env(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class PluginManager:
    """Wraps ``pluggy.PluginManager`` with discovery, isolation, validation and a domain registry."""

    def __init__(
        self,
        *,
        select: Iterable[str] | None = None,
        disable: Iterable[str] | None = None,
        autoload: bool | None = None,
        strict: bool | None = None,
        load_builtins: bool = True,
    ) -> None:
        self.pm = pluggy.PluginManager("domainfm")
        self.pm.add_hookspecs(hookspecs)
        self.select = list(select) if select is not None else _split_env("DOMAINFM_PLUGINS")
        self.disable = set(disable if disable is not None else (_split_env("DOMAINFM_DISABLE_PLUGINS") or []))
        self.autoload = autoload if autoload is not None else not _truthy("DOMAINFM_DISABLE_PLUGIN_AUTOLOAD")
        self.strict = strict if strict is not None else _truthy("DOMAINFM_STRICT_PLUGINS")
        self.plugins: dict[str, PluginInfo] = {}
        self.domains: dict[str, DomainSpec] = {}
        self.exclusions: list[PluginExclusion] = []
        self.hooks = Hooks(self)
        self._load_builtins = load_builtins
        self._loaded = False

    # ------------------------------------------------------------------------------ loading

    def load(self) -> PluginManager:
        """Load built-in and entry-point plugins (once)."""
        if self._loaded:
            return self
        self._loaded = True
        if self._load_builtins:
            for name, module in BUILTIN_PLUGINS:
                if name in self.disable:
                    self.plugins[name] = PluginInfo(name, __version__, module, True, status="disabled")
                    continue
                self._guarded(name, __version__, module, True, functools.partial(importlib.import_module, module))
        if self.autoload or self.select:
            for ep in self._entry_points():
                self._load_entry_point(ep)
        if self.select:
            known = {p for p in self.plugins}
            for wanted in self.select:
                if wanted not in known:
                    info = PluginInfo(wanted, None, "?", False, status="broken", error="selected but not installed")
                    self.plugins[wanted] = info
                    if self.strict:
                        raise BrokenPluginError(f"plugin {wanted!r}: selected but not installed")
        return self

    def _entry_points(self) -> list[metadata.EntryPoint]:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
        seen: set[str] = set()
        unique = []
        for ep in sorted(eps, key=lambda e: e.name):
            if ep.name not in seen:  # the same distribution can appear twice on sys.path
                seen.add(ep.name)
                unique.append(ep)
        return unique

    def _load_entry_point(self, ep: metadata.EntryPoint) -> None:
        dist = getattr(ep, "dist", None)
        version = dist.version if dist is not None else None
        if ep.name in self.disable or (self.select is not None and ep.name not in self.select):
            self.plugins[ep.name] = PluginInfo(ep.name, version, ep.value, False, status="disabled")
            return
        incompatible = _incompatible_core(dist)
        if incompatible:
            self._record_broken(ep.name, version, ep.value, False, incompatible, None)
            return
        self._guarded(ep.name, version, ep.value, False, ep.load)

    def _guarded(self, name: str, version: str | None, module: str, builtin: bool, loader: Callable[[], Any]) -> None:
        try:
            plugin = loader()
        except Exception as exc:
            self._record_broken(name, version, module, builtin, f"import failed: {type(exc).__name__}: {exc}", exc)
            return
        self.register(plugin, name=name, version=version, module=module, builtin=builtin)

    def register(
        self,
        plugin: Any,
        *,
        name: str,
        version: str | None = None,
        module: str | None = None,
        builtin: bool = False,
    ) -> PluginInfo | None:
        """Register a plugin object (module, class instance). Also usable directly, e.g. in tests.

        pluggy holds a guarded stand-in (:func:`domainfm.isolation.guard_plugin`): the plugin's hook
        implementations with the same options, each validating its result and isolating its failures.
        """
        module = module or str(getattr(plugin, "__name__", type(plugin).__name__))
        info = PluginInfo(name, version, module, builtin)
        try:
            registered = self.pm.register(guard_plugin(self.pm, plugin, name, self._plugin_failed), name=name)
        except Exception as exc:  # pluggy validates hookimpl names and signatures here
            self._record_broken(name, version, module, builtin, f"registration failed: {_one_line(exc)}", exc)
            return None
        if registered is None:  # a blocked name (an excluded plugin registered again)
            self._record_broken(name, version, module, builtin, "blocked: it was excluded earlier in this process", None)
            return None
        unknown = self._unknown_hooks(name)
        if unknown:
            self.pm.unregister(name=name)
            self._record_broken(name, version, module, builtin, unknown, None)
            return None
        self.plugins[name] = info
        try:
            domains = _validate_domains(self.hooks.domains(name), name)
            for spec in domains:
                if spec.name in self.domains:
                    raise PluginContractError(
                        name, "domainfm_domains", f"domain {spec.name!r} is already provided by {self.domains[spec.name].plugin!r}"
                    )
        except Exception as exc:
            self.pm.unregister(name=name)
            reason = str(exc) if isinstance(exc, PluginContractError) else f"domainfm_domains raised: {_one_line(exc)}"
            self._record_broken(name, version, module, builtin, reason, exc)
            return None
        for spec in domains:
            self.domains[spec.name] = spec
        info.domains = domains
        return info

    def _unknown_hooks(self, name: str) -> str | None:
        """A one-line message if ``name`` implements hooks no spec declares (a typo: ``domainfm_trian``)."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError:
            known = [n for n in vars(self.pm.hook) if not n.startswith("_") and getattr(self.pm.hook, n).has_spec()]
            problems = []
            for hook_name in sorted(vars(self.pm.hook)):
                caller = getattr(self.pm.hook, hook_name)
                if hook_name.startswith("_") or caller.has_spec():
                    continue
                if any(i.plugin_name == name and not i.optionalhook for i in caller.get_hookimpls()):
                    close = difflib.get_close_matches(hook_name, known, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else f" (hooks: {', '.join(sorted(known))})"
                    problems.append(f"unknown hook {hook_name!r}{hint}")
            return "; ".join(problems) or None
        return None

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        info = self.plugins.pop(name, None)
        if info:
            for spec in info.domains:
                self.domains.pop(spec.name, None)

    def _record_broken(
        self, name: str, version: str | None, module: str, builtin: bool, message: str, exc: BaseException | None
    ) -> None:
        message = _one_line(message)
        self.plugins[name] = PluginInfo(name, version, module, builtin, status="broken", error=message)
        if self.strict:
            raise BrokenPluginError(f"plugin {name!r}: {message}") from exc

    # ------------------------------------------------------------------------------ isolation

    def _plugin_failed(self, plugin: str, hook: str, call: Mapping[str, Any], error: Exception) -> None:
        """A guarded hook implementation raised: re-raise what is the caller's to see, exclude the rest.

        Re-raised: a failure in the plugin's own domain (its stages, its observers and terms while its own
        domain runs), any failure of a built-in plugin (the core's own), a user mistake (DataError,
        ConfigError), and the hooks of ``_CALLER_HANDLES``. Every other failure excludes the plugin: it
        raised in another domain's run, in a server, or in ``domainfm_register_commands``, where it must
        not take the others down.
        """
        domain = call.get("domain")
        if domain is None:
            domain = getattr(call.get("ctx"), "domain", None)
        domain = domain if isinstance(domain, str) else None
        if hook in _CALLER_HANDLES or isinstance(error, _USER_ERRORS) or not self.isolates(plugin, domain):
            if isinstance(error, DomainfmError) or hook == "domainfm_register_routes":
                raise error  # the server reports a route error in its own words
            raise PluginError(plugin, hook, f"{type(error).__name__}: {error}") from error
        self.exclude(plugin, hook, error, domain)

    def isolates(self, plugin: str, domain: str | None) -> bool:
        """Whether a failure of ``plugin`` while ``domain`` is served excludes it (rather than failing the call):
        true for a loaded third-party plugin that does not own ``domain``."""
        info = self.plugins.get(plugin)
        spec = self.domains.get(domain) if domain is not None else None
        return info is not None and not info.builtin and not (spec is not None and spec.plugin == plugin)

    def exclude(self, plugin: str, hook: str, error: BaseException, domain: str | None = None) -> PluginExclusion:
        """Take ``plugin`` out of every hook for the rest of the process (pluggy ``set_blocked``) and record why."""
        earlier = self.exclusion(plugin)
        if earlier is not None:  # e.g. its wrapper and its own implementation failed in the same call
            return earlier
        cause = error.__cause__ if isinstance(error, PluginError) and error.__cause__ is not None else error
        text = str(error) if isinstance(error, PluginContractError) else f"{type(cause).__name__}: {cause}"
        exclusion = PluginExclusion(plugin=plugin, hook=hook, domain=domain, error=_one_line(text))
        self.exclusions.append(exclusion)
        self.pm.set_blocked(plugin)
        info = self.plugins.get(plugin)
        if info is not None:
            for spec in info.domains:
                self.domains.pop(spec.name, None)
            info.status, info.error = "broken", exclusion.one_line()
        if self.strict:
            raise BrokenPluginError(f"plugin {plugin!r}: {exclusion.one_line()}") from error
        return exclusion

    def exclusion(self, plugin: str) -> PluginExclusion | None:
        """Why ``plugin`` was excluded, if it was."""
        return next((e for e in self.exclusions if e.plugin == plugin), None)

    def is_excluded(self, plugin: str) -> bool:
        return self.exclusion(plugin) is not None

    # ------------------------------------------------------------------------------ queries

    def original_plugin(self, name: str) -> Any:
        """The object a plugin registered (its module or instance), not pluggy's guarded stand-in; None if absent."""
        plugin = self.pm.get_plugin(name)
        return getattr(plugin, "original", plugin)

    @property
    def broken(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if p.status == "broken"]

    def domain(self, name: str) -> DomainSpec:
        """The spec of a loaded domain; a clear error if it is missing or its plugin is broken."""
        self.load()
        if name in self.domains:
            return self.domains[name]
        if self.broken:
            broken = "; ".join(p.one_line() for p in self.broken)
            raise BrokenPluginError(
                f"domain {name!r} is not available (loaded domains: {sorted(self.domains)}); "
                f"broken plugins: {broken}"
            )
        raise UnknownDomainError(f"unknown domain {name!r}; loaded domains: {sorted(self.domains) or 'none'}")

    @property
    def hook(self) -> pluggy.HookRelay:
        """pluggy's raw hook relay, for tests and tools. The core calls hooks through :attr:`hooks` (typed,
        with per-plugin isolation); a call here bypasses nothing but the typing."""
        return self.pm.hook


# ---------------------------------------------------------------------------------- helpers


def _incompatible_core(dist: metadata.Distribution | None) -> str | None:
    """Return a message if the plugin's distribution requires a core version we are not."""
    if dist is None:
        return None
    from packaging.requirements import InvalidRequirement, Requirement

    for raw in dist.requires or []:
        try:
            req = Requirement(raw)
        except InvalidRequirement:
            continue
        if req.name.lower() != "domainfm" or req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if req.specifier and not req.specifier.contains(__version__, prereleases=True):
            return f"requires domainfm{req.specifier}, this is domainfm {__version__}"
    return None


def _validate_domains(raw: Any, plugin: str) -> list[DomainSpec]:
    from pydantic import ValidationError

    if not isinstance(raw, (list, tuple)):
        raise PluginContractError(plugin, "domainfm_domains", f"must return a list, got {type(raw).__name__}")
    specs = []
    for i, item in enumerate(raw):
        try:
            spec = item if isinstance(item, DomainSpec) else DomainSpec.model_validate(item)
        except ValidationError as exc:
            raise PluginContractError(plugin, "domainfm_domains", f"item {i}: {_first_error(exc)}") from None
        specs.append(spec.model_copy(update={"plugin": plugin}))
    return specs


def _first_error(exc: Any) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(root)"
    return f"field {loc}: {err['msg']}"


def _one_line(value: object) -> str:
    """pluggy's and Python's multi-line messages as one line."""
    return " ".join(str(value).split())


_DEFAULT: PluginManager | None = None


def get_plugin_manager(**kwargs: Any) -> PluginManager:
    """The process-wide plugin manager, loaded on first use. Keyword arguments force a new one."""
    global _DEFAULT
    if kwargs or _DEFAULT is None:
        manager = PluginManager(**kwargs).load()
        if not kwargs:
            _DEFAULT = manager
        return manager
    return _DEFAULT


def reset_plugin_manager() -> None:
    global _DEFAULT
    _DEFAULT = None
