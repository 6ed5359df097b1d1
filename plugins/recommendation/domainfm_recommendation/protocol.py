"""The pinned evaluation protocol (clean, temporal leave-one-out, full ranking with seen items excluded): the
core's :mod:`domainfm.ranking.protocol`, re-exported where the plugin, the benchmarks and older code import it."""

from domainfm.ranking.protocol import *  # noqa: F403
