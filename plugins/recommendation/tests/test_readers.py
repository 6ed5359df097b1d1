"""The recommendation domain's own data: the packaged demo, and the core readers and protocol re-exported where
the plugin and its benchmarks import them (generic reader and protocol tests: tests/ranking/test_ranking_data.py)."""

from __future__ import annotations

from domainfm_recommendation.protocol import prepare
from domainfm_recommendation.readers import read_demo


def test_demo_data_is_usable() -> None:
    events, items = read_demo()
    split = prepare(events, items)
    assert len(items) >= 40 and len(split.test) == len({e.user for e in events})
    assert all(it.has_text for it in split.items)


def test_the_plugin_modules_are_the_core_ranking_api() -> None:
    import domainfm.ranking.baselines as core_baselines
    import domainfm.ranking.interactions as core_interactions
    import domainfm.ranking.metrics as core_metrics
    import domainfm.ranking.protocol as core_protocol
    from domainfm_recommendation import baselines, evaluation, protocol, readers

    for module, core in ((evaluation, core_metrics), (protocol, core_protocol), (baselines, core_baselines),
                         (readers, core_interactions)):
        assert all(getattr(module, name) is getattr(core, name) for name in core.__all__), module.__name__
