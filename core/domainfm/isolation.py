"""What pluggy registers for a plugin: a stand-in whose hook implementations validate and isolate.

Each hook implementation of a plugin is wrapped once, at registration, in a function that carries the same
``@hookimpl`` options and signature (pluggy reads them through ``__wrapped__``), so pluggy dispatches to it
exactly as it would to the original (``tryfirst``, ``trylast``, ``wrapper=True``, ``firstresult``), and no
pluggy internal is patched. The wrapper

- checks a stage hook's result against the contract (:func:`check_result`), naming plugin, hook and field;
- hands any exception (or contract violation) to the manager's failure handler, which either re-raises it
  (the plugin's own domain, a built-in, a user mistake) or excludes the plugin; an excluded plugin's call
  counts as "no result" (``None``), so pluggy goes on with the other implementations;
- for a hook wrapper, tells the wrapper's own errors (before or after its ``yield``) from an error of the
  wrapped call that merely passes through it: only the former are the wrapper plugin's fault. A failed
  wrapper is transparent: the wrapped call's result or error goes on unchanged.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator, Mapping
from typing import Any, Protocol

import pluggy

from domainfm.errors import PluginContractError


class FailureHandler(Protocol):
    """Decides what a plugin's exception means: raise it (the caller's problem) or return (plugin excluded)."""

    def __call__(self, plugin: str, hook: str, call: Mapping[str, Any], error: Exception) -> None: ...


class GuardedPlugin:
    """The object pluggy holds for a plugin: its hook implementations, guarded. ``original`` is the plugin."""

    def __init__(self, original: object, name: str) -> None:
        self._original = original
        self._name = name

    @property
    def original(self) -> object:
        return self._original

    def __repr__(self) -> str:
        return f"<guarded plugin {self._name!r}: {self._original!r}>"


def guard_plugin(pm: pluggy.PluginManager, plugin: object, name: str, on_failure: FailureHandler) -> GuardedPlugin:
    """A :class:`GuardedPlugin` with one guarded function per hook implementation of ``plugin``."""
    guarded = GuardedPlugin(plugin, name)
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is None:
            continue
        func = getattr(plugin, attr)
        hook = opts.get("specname") or attr
        is_wrapper = bool(opts.get("wrapper") or opts.get("hookwrapper"))
        wrapped = (_guard_wrapper if is_wrapper else _guard_call)(func, hook, name, on_failure)
        setattr(wrapped, f"{pm.project_name}_impl", dict(opts))
        guarded.__dict__[attr] = wrapped
    return guarded


def _argument_names(func: Callable[..., Any]) -> list[str]:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _guard_call(func: Callable[..., Any], hook: str, plugin: str, on_failure: FailureHandler) -> Callable[..., Any]:
    names = _argument_names(func)

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return check_result(hook, plugin, func(*args, **kwargs))
        except Exception as exc:
            on_failure(plugin, hook, {**dict(zip(names, args)), **kwargs}, exc)
            return None

    return call


def _guard_wrapper(func: Callable[..., Any], hook: str, plugin: str, on_failure: FailureHandler) -> Callable[..., Any]:
    names = _argument_names(func)

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        bound = {**dict(zip(names, args)), **kwargs}
        try:
            inner = func(*args, **kwargs)
            next(inner)
        except Exception as exc:  # raised before its yield (a wrapper that never yields lands here too)
            on_failure(plugin, hook, bound, exc)
            return (yield)
        try:
            outcome = yield
        except BaseException as passing:  # the wrapped call failed: the wrapper may handle or re-raise it
            try:
                inner.throw(passing)
            except StopIteration as stop:
                return stop.value
            except Exception as exc:
                if exc is passing:
                    raise
                on_failure(plugin, hook, bound, exc)
                raise passing from None
            on_failure(plugin, hook, bound, RuntimeError("the hook wrapper yielded a second time"))
            raise
        try:
            inner.send(outcome)
        except StopIteration as stop:
            return stop.value
        except Exception as exc:
            on_failure(plugin, hook, bound, exc)
            return outcome
        on_failure(plugin, hook, bound, RuntimeError("the hook wrapper yielded a second time"))
        return outcome

    return call


# ---------------------------------------------------------------------------------- result contract


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


def check_result(hook: str, plugin: str, result: Any) -> Any:
    """``result`` if it honours ``hook``'s contract, else a :class:`PluginContractError` naming the field.

    None always passes (the plugin has nothing for this domain). A benefit term without ``contributed_by``
    gets the plugin's name.
    """
    from domainfm import types as t

    expected = _expected_types().get(hook)
    if expected is None or result is None:
        return result
    typ, desc = expected
    if not isinstance(result, typ):
        raise PluginContractError(plugin, hook, f"returned {type(result).__name__}, expected {desc}")
    checked: Any = result
    if hook == "domainfm_predict":
        for i, item in enumerate(checked):
            if not isinstance(item, t.Prediction):
                raise PluginContractError(plugin, hook, f"item {i} is {type(item).__name__}, expected Prediction")
    elif hook == "domainfm_benefit_terms":
        for i, item in enumerate(checked):
            if not isinstance(item, (t.BenefitTerm, t.Constraint)):
                raise PluginContractError(
                    plugin, hook, f"item {i} is {type(item).__name__}, expected BenefitTerm or Constraint"
                )
            if item.contributed_by is None:
                item.contributed_by = plugin
    elif hook == "domainfm_train" and not checked.path.is_dir():
        raise PluginContractError(plugin, hook, f"field path: artifact directory {checked.path} does not exist")
    return result
