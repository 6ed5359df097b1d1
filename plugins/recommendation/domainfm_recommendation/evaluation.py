"""Full-ranking evaluation (HR@10, NDCG@10, Recall@20, MRR, beyond-accuracy): the core's
:mod:`domainfm.ranking.metrics`, re-exported where the pipeline, the benchmarks and older code import it."""

from domainfm.ranking.metrics import *  # noqa: F403
