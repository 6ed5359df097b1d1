"""A plugin's own torch model as an artifact folder: ``model.safetensors`` plus the JSON config that rebuilds it.

For models the core's engines do not train (a knowledge-tracing network, a small recommender): the weights are
written with safetensors (no pickle), the config as JSON, both into the folder atomically::

    save_module(ctx.artifact_dir, model, {"kind": "akt", "n_skills": 110})
    model, config = load_module(path, lambda cfg: build_model(cfg["kind"], cfg["n_skills"]), device="cpu")
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from domainfm.errors import DataError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model_config.json"


def save_module(path: str | Path, model: Any, config: dict[str, Any], *, config_file: str = CONFIG_FILE) -> None:
    """The weights of ``model`` (a ``torch.nn.Module``) and ``config`` into the folder ``path``, atomically."""
    from safetensors.torch import save_file

    from domainfm.io import atomic_directory, atomic_write_json

    with atomic_directory(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS_FILE))
        atomic_write_json(tmp / config_file, config)


def load_module(path: str | Path, build: Callable[[dict[str, Any]], Any], device: str = "cpu", *,
                config_file: str = CONFIG_FILE) -> tuple[Any, dict[str, Any]]:
    """The model ``build(config)`` returns, with the saved weights loaded, in eval mode on ``device``; and its config.

    :raises DataError: a missing or unreadable config or weights file, named.
    """
    import torch
    from safetensors.torch import load_file

    folder = Path(path)
    try:
        config = json.loads((folder / config_file).read_text(encoding="utf-8"))
        state = load_file(str(folder / WEIGHTS_FILE))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{folder}: cannot read the saved model ({config_file}, {WEIGHTS_FILE}): {exc}") from None
    model = build(config)
    model.load_state_dict(state)
    return model.to(torch.device(device)).eval(), config
