"""Connecting to Ray: the cluster ``RAY_ADDRESS`` names, else a local one started on first use."""

from __future__ import annotations

import os
from typing import Any

from domainfm.errors import DomainfmError

# what workers need to resolve models offline and stay quiet, passed to every worker of the job
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "TOKENIZERS_PARALLELISM",
                 "DOMAINFM_NO_PROGRESS", "DOMAINFM_MODELS_DIR", "DOMAINFM_PLUGINS", "DOMAINFM_DISABLE_PLUGINS",
                 "DOMAINFM_DISABLE_PLUGIN_AUTOLOAD", "HF_HOME", "XDG_CACHE_HOME")


def require_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise DomainfmError("Ray is not installed: pip install 'domainfm[scale]' (ray[data,tune,train]==2.60.0)") from None
    return ray


def ensure_ray(num_cpus: int | None = None) -> Any:
    """Connect once per process: to ``RAY_ADDRESS`` when it is set (``auto``: the cluster ``ray start`` runs on this
    machine), else to a new local Ray (``num_cpus`` caps it)."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    # "local": a new Ray of this process's own, never a cluster someone else started on the machine with
    # `ray start` (which ray.init() would join); RAY_ADDRESS=auto joins that one on purpose
    address = os.environ.get("RAY_ADDRESS") or "local"
    env_vars = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    try:
        ray.init(address=address, num_cpus=num_cpus if address == "local" else None, include_dashboard=False,
                 logging_level="warning", log_to_driver=os.environ.get("DOMAINFM_VERBOSE") == "1",
                 runtime_env={"env_vars": env_vars} if env_vars else None)
    except ConnectionError as exc:
        raise DomainfmError(f"RAY_ADDRESS={address}: cannot connect to a Ray cluster: {exc}") from None
    return ray


def cluster_gpus() -> float:
    """GPUs the connected cluster has in total (0 on a CPU-only cluster)."""
    return float(require_ray().cluster_resources().get("GPU", 0.0))
