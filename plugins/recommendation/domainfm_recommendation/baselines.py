"""Baselines run on the same split as the model (most-popular, item-kNN, implicit ALS / BPR): the core's
:mod:`domainfm.ranking.baselines`, re-exported where the pipeline, the benchmarks and older code import them."""

from domainfm.ranking.baselines import *  # noqa: F403
