"""The typed facade in front of pluggy: one method per hook in :mod:`domainfm.hookspecs`.

Nothing else in the core calls ``pm.hook``. Every method dispatches through pluggy, so ``tryfirst``,
``trylast`` and wrappers work on every hook the docs advertise. Each plugin's implementations are guarded
(:mod:`domainfm.isolation`): a plugin that raises outside its own domain is excluded (blocked for the rest
of the process, listed in :attr:`PluginManager.exclusions`) and the call goes on without it.

The registration hooks (``domainfm_domains``, ``domainfm_register_commands``,
``domainfm_register_routes``) are called one plugin at a time, still through pluggy (a subset hook caller
that keeps every wrapper), because each plugin's result must be attributed to it: its domains, its
commands, its router.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import click
    import pluggy

    from domainfm.manager import PluginManager
    from domainfm.types import (
        Artifact,
        BenefitContribution,
        DataBundle,
        Evaluation,
        GetPredictor,
        Prediction,
        Predictor,
        Router,
        RunContext,
    )


class Hooks:
    """Typed calls of the domainfm hooks on every registered (not excluded) plugin."""

    def __init__(self, manager: PluginManager) -> None:
        self._manager = manager

    @property
    def _pm(self) -> pluggy.PluginManager:
        return self._manager.pm

    # ------------------------------------------------------------------------------ registration

    def domains(self, plugin: str) -> Any:
        """What ``plugin``'s ``domainfm_domains`` returned ([] without one); the manager validates it."""
        caller = self._for_plugin("domainfm_domains", plugin)
        results = caller() if caller is not None else []
        return results[0] if results else []

    def register_commands(self, cli: click.Group) -> None:
        """Each plugin adds its commands to ``cli``; a plugin that raises is excluded and what it added removed."""
        for plugin in self.implementing("domainfm_register_commands"):
            caller = self._for_plugin("domainfm_register_commands", plugin)
            if caller is None:
                continue
            before = dict(cli.commands)
            caller(cli=cli)
            if self._manager.is_excluded(plugin):
                cli.commands.clear()
                cli.commands.update(before)

    def register_routes(self, plugin: str, router: Router, get_predictor: GetPredictor) -> None:
        """``plugin`` adds its HTTP routes to its own ``router``.

        :raises PluginError: the plugin raised; the server leaves its router out and reports the error, and
            the plugin's domains stay served through the core routes.
        """
        caller = self._for_plugin("domainfm_register_routes", plugin)
        if caller is not None:
            caller(router=router, get_predictor=get_predictor)

    # ------------------------------------------------------------------------------ stages

    def load_data(self, ctx: RunContext, domain: str, source: str) -> DataBundle | None:
        result: DataBundle | None = self._pm.hook.domainfm_load_data(ctx=ctx, domain=domain, source=source)
        return result

    def train(self, ctx: RunContext, domain: str, data: DataBundle) -> Artifact | None:
        result: Artifact | None = self._pm.hook.domainfm_train(ctx=ctx, domain=domain, data=data)
        return result

    def load_predictor(self, ctx: RunContext, domain: str, artifact: Artifact) -> Predictor | None:
        result: Predictor | None = self._pm.hook.domainfm_load_predictor(ctx=ctx, domain=domain, artifact=artifact)
        return result

    def predict(
        self, ctx: RunContext | None, domain: str, predictor: Predictor, records: Sequence[Mapping[str, Any]]
    ) -> list[Prediction] | None:
        result: list[Prediction] | None = self._pm.hook.domainfm_predict(
            ctx=ctx, domain=domain, predictor=predictor, records=records
        )
        return result

    def evaluate(
        self, ctx: RunContext, domain: str, predictor: Predictor, data: DataBundle, split: str
    ) -> Evaluation | None:
        result: Evaluation | None = self._pm.hook.domainfm_evaluate(
            ctx=ctx, domain=domain, predictor=predictor, data=data, split=split
        )
        return result

    def benefit_terms(self, ctx: RunContext, domain: str, evaluation: Evaluation) -> list[BenefitContribution]:
        """Every plugin's terms and constraints for ``evaluation``, in call order, flattened."""
        results: list[list[BenefitContribution]] = self._pm.hook.domainfm_benefit_terms(
            ctx=ctx, domain=domain, evaluation=evaluation
        )
        return [item for result in results for item in result or []]

    # ------------------------------------------------------------------------------ lifecycle

    def stage_started(self, ctx: RunContext, stage: str) -> None:
        self._pm.hook.domainfm_stage_started(ctx=ctx, stage=stage)

    def stage_finished(self, ctx: RunContext, stage: str, result: Any, seconds: float) -> None:
        self._pm.hook.domainfm_stage_finished(ctx=ctx, stage=stage, result=result, seconds=seconds)

    def stage_failed(self, ctx: RunContext, stage: str, error: BaseException) -> None:
        self._pm.hook.domainfm_stage_failed(ctx=ctx, stage=stage, error=error)

    # ------------------------------------------------------------------------------ helpers

    def implementing(self, hook: str) -> list[str]:
        """Names of the plugins with a (non-wrapper) implementation of ``hook``, in pluggy's call order."""
        caller = getattr(self._pm.hook, hook, None)
        if caller is None:
            return []
        return [impl.plugin_name for impl in reversed(caller.get_hookimpls()) if not _is_wrapper(impl)]

    def implements(self, plugin: str, hook: str) -> bool:
        return plugin in self.implementing(hook)

    def _for_plugin(self, hook: str, plugin: str) -> pluggy.HookCaller | None:
        """``hook`` restricted to ``plugin``'s implementation and every plugin's wrappers."""
        caller: pluggy.HookCaller | None = getattr(self._pm.hook, hook, None)
        if caller is None or plugin not in self.implementing(hook):
            return None
        others = {
            impl.plugin for impl in caller.get_hookimpls() if impl.plugin_name != plugin and not _is_wrapper(impl)
        }
        return self._pm.subset_hook_caller(hook, others)


def _is_wrapper(impl: pluggy.HookImpl) -> bool:
    return bool(impl.wrapper or impl.hookwrapper)
