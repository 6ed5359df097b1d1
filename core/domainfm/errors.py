"""Errors the core raises. Each carries enough context for a one-line message."""

from __future__ import annotations


class DomainfmError(Exception):
    """Base class: an error the CLI prints as one line without a traceback."""


class ConfigError(DomainfmError):
    """A configuration value is invalid; the message names the field and what is allowed."""


class DataError(DomainfmError):
    """Input data is malformed; the message names the file, line or field."""


class ModelNotFoundError(DomainfmError):
    """No base model could be resolved; the message lists every place that was tried."""


class UnknownDomainError(DomainfmError):
    """No loaded plugin provides the domain."""


class PluginError(DomainfmError):
    """A plugin raised or is unusable. ``plugin`` and ``hook`` say which and where."""

    def __init__(self, plugin: str, hook: str, message: str) -> None:
        self.plugin = plugin
        self.hook = hook
        super().__init__(f"plugin {plugin!r} in {hook}: {message}")


class PluginContractError(PluginError):
    """A plugin returned something that does not satisfy the hook's contract."""


class BrokenPluginError(DomainfmError):
    """A command needs a plugin that failed to load."""
