"""Plugin discovery, selection and isolation.

Plugins come from two places: the core's own built-in plugins (:data:`BUILTIN_PLUGINS`) and installed
distributions with an entry point in the group ``domainfm``. Loading never lets one plugin take the
others down: a plugin that fails to import, raises while registering, or declares an incompatible core
version is recorded as :class:`BrokenPlugin` and reported; everything else keeps working. With
``strict=True`` (``DOMAINFM_STRICT_PLUGINS=1`` or ``--strict-plugins``) the first failure re-raises.

Environment variables (flags of the same meaning override them):

- ``DOMAINFM_PLUGINS=a,b``: load only these entry-point plugins (built-ins always load).
- ``DOMAINFM_DISABLE_PLUGINS=a,b``: never load these (built-ins included, by name).
- ``DOMAINFM_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry-point plugins unless named in DOMAINFM_PLUGINS.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from domainfm import __version__, hookspecs
from domainfm.errors import (
    BrokenPluginError,
    DomainfmError,
    PluginContractError,
    PluginError,
    UnknownDomainError,
)
from domainfm.types import DomainSpec

ENTRY_POINT_GROUP = "domainfm"
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("domainfm.defaults", "domainfm.builtin.defaults"),
    ("domainfm.text_classification", "domainfm.builtin.text_classification"),
    ("domainfm.benefit", "domainfm.builtin.benefit_terms"),
)


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
                self._guarded(name, __version__, module, True, lambda m=module: importlib.import_module(m))
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
        """Register a plugin object (module, class instance). Also usable directly, e.g. in tests."""
        module = module or getattr(plugin, "__name__", type(plugin).__name__)
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy validates hookimpl names and signatures here
            self._record_broken(name, version, module, builtin, f"registration failed: {exc}", exc)
            return None
        _install_validators(self.pm, plugin, name)
        info = PluginInfo(name, version, module, builtin)
        try:
            impl = getattr(plugin, "domainfm_domains", None)
            raw = impl() if impl is not None and _is_hookimpl(impl) else []
            domains = _validate_domains(raw or [], name)
            for spec in domains:
                if spec.name in self.domains:
                    raise PluginContractError(
                        name, "domainfm_domains", f"domain {spec.name!r} is already provided by {self.domains[spec.name].plugin!r}"
                    )
        except Exception as exc:
            self.pm.unregister(name=name)
            self._record_broken(name, version, module, builtin, f"domainfm_domains raised: {exc}", exc)
            return None
        for spec in domains:
            self.domains[spec.name] = spec
        info.domains = domains
        self.plugins[name] = info
        return info

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        info = self.plugins.pop(name, None)
        if info:
            for spec in info.domains:
                self.domains.pop(spec.name, None)

    def _record_broken(
        self, name: str, version: str | None, module: str, builtin: bool, message: str, exc: BaseException | None
    ) -> None:
        self.plugins[name] = PluginInfo(name, version, module, builtin, status="broken", error=message)
        if self.strict:
            if exc is not None:
                raise exc
            raise BrokenPluginError(f"plugin {name!r}: {message}")

    # ------------------------------------------------------------------------------ queries

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
    def hook(self) -> Any:
        return self.pm.hook


# ---------------------------------------------------------------------------------- helpers


def _is_hookimpl(func: Any) -> bool:
    return hasattr(func, "domainfm_impl")


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


# Return-type checks per hook: (expected type(s), description). None results always pass (not mine).
def _expected_types() -> dict[str, tuple[type | tuple[type, ...], str]]:
    from domainfm import types as t

    return {
        "domainfm_load_data": (t.DataBundle, "DataBundle"),
        "domainfm_train": (t.Artifact, "Artifact"),
        "domainfm_load_predictor": (t.Predictor, "Predictor (domain, device, predict)"),
        "domainfm_predict": (list, "list[Prediction]"),
        "domainfm_evaluate": (t.Evaluation, "Evaluation"),
        "domainfm_benefit_terms": (list, "list[BenefitTerm | Constraint]"),
    }


def _check_result(hook: str, plugin: str, result: Any) -> Any:
    from domainfm import types as t

    expected = _expected_types().get(hook)
    if expected is None or result is None:
        return result
    typ, desc = expected
    if not isinstance(result, typ):
        raise PluginContractError(plugin, hook, f"returned {type(result).__name__}, expected {desc}")
    if hook == "domainfm_predict":
        for i, item in enumerate(result):
            if not isinstance(item, t.Prediction):
                raise PluginContractError(plugin, hook, f"item {i} is {type(item).__name__}, expected Prediction")
    elif hook == "domainfm_benefit_terms":
        for i, item in enumerate(result):
            if not isinstance(item, (t.BenefitTerm, t.Constraint)):
                raise PluginContractError(
                    plugin, hook, f"item {i} is {type(item).__name__}, expected BenefitTerm or Constraint"
                )
            if item.contributed_by is None:
                item.contributed_by = plugin
    elif hook == "domainfm_train":
        if not result.path.is_dir():
            raise PluginContractError(plugin, hook, f"field path: artifact directory {result.path} does not exist")
    return result


def _install_validators(pm: pluggy.PluginManager, plugin: Any, name: str) -> None:
    """Wrap each of ``plugin``'s hook implementations so that a wrong result or an exception names it.

    pluggy calls ``HookImpl.function``; wrapping it there (rather than validating the firstresult value
    after the fact) is what lets the error name the plugin that produced the bad value.
    """
    expected = _expected_types()
    for caller in pm.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin or impl.hookwrapper or getattr(impl, "wrapper", False):
                continue
            impl.function = _validated(impl.function, caller.name, name, caller.name in expected)


def _validated(func: Callable[..., Any], hook: str, plugin: str, check: bool) -> Callable[..., Any]:
    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            result = func(*args, **kwargs)
        except DomainfmError:
            raise
        except Exception as exc:
            raise PluginError(plugin, hook, f"{type(exc).__name__}: {exc}") from exc
        return _check_result(hook, plugin, result) if check else result

    return call


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
