from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_local() -> Iterator[object]:
    """A local 2-CPU Ray for the tests that need one (skipped, with the reason, where Ray is not installed)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[scale]')")
    from domainfm.scale.cluster import ensure_ray

    ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()
