"""Building blocks for domains that rank items for users (recommendation, search, matching), numpy/scipy only.

- :mod:`domainfm.ranking.interactions`: interaction-log and item-catalogue readers with file:line errors;
- :mod:`domainfm.ranking.protocol`: the pinned temporal leave-one-out protocol and its DataBundle tables;
- :mod:`domainfm.ranking.metrics`: full-ranking HR/NDCG/Recall/MRR and beyond-accuracy measures;
- :mod:`domainfm.ranking.baselines`: most-popular, item-kNN and implicit ALS/BPR baselines.

The recommendation plugin is built on them; a new ranking domain reuses the readers, split, metrics and
baselines and brings its own model.
"""
