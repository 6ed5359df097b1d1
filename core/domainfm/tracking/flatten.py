"""Nested configuration as flat ``a.b.c`` keys (MLflow params, ``domainfm runs compare``)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_BAD = re.compile(r"[^A-Za-z0-9_\-. /]")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"epochs": 3}}`` -> ``{"train.epochs": 3}``; lists and scalars are leaves, an empty mapping is
    a leaf ``{}`` (so a section that became empty still shows)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        else:
            out[name] = dict(value) if isinstance(value, Mapping) else value
    return out


def as_text(value: Any) -> str:
    """A leaf as a tracker shows it: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def tracker_key(name: str) -> str:
    """A param or metric name MLflow and TensorBoard accept (letters, digits, ``_-. /``)."""
    return _BAD.sub("_", name)[:250]
