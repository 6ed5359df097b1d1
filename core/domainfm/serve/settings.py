"""Server settings: limits, micro-batching, authentication and CORS (no FastAPI import)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from domainfm.errors import ConfigError

API_KEYS_ENV = "DOMAINFM_API_KEYS"


class ServeSettings(BaseModel):
    """How the server batches, limits and authenticates requests."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    micro_batching: bool = Field(default=True, description="merge concurrent requests into one forward pass")
    max_queue: int = Field(default=256, ge=1, description="waiting requests per domain before answering 429")
    max_wait_ms: float = Field(default=5.0, ge=0.0, le=1000.0, description="how long a batch waits to fill up")
    max_batch: int = Field(default=64, ge=1, description="records per forward pass")
    max_body_bytes: int = Field(default=1_000_000, ge=256, description="larger request bodies get 413")
    max_records: int = Field(default=256, ge=1, description="records (or texts) per request")
    max_text_chars: int = Field(default=10_000, ge=1, description="characters per text field")
    api_keys: list[SecretStr] = Field(default_factory=list, description="empty = no authentication")
    cors_origins: list[str] = Field(default_factory=list, description="empty = CORS off")
    torch_threads: int | None = Field(
        default=None, ge=1,
        description="torch intra-op threads for forward passes of threads_min_records or more (None = torch's default)",
    )
    threads_min_records: int = Field(
        default=16, ge=1, description="smaller forward passes run on one torch thread (threads only pay on large ones)"
    )
    forward_batch: int = Field(
        default=32, ge=0, description="records per forward pass: a merged batch is sorted by text length and split (0 = no split)"
    )
    precision: Literal["fp32", "bf16"] = Field(
        default="fp32",
        description="fp32 = no autocast: each model runs at its artifact's own precision (float32, or the bf16/int8 "
        "set at training time); bf16 = autocast on top (faster on bf16 CPUs, may differ slightly)",
    )
    malloc_tuning: bool = Field(
        default=True, description="glibc: fixed mmap threshold and at most 2 arenas, so RSS stays flat under load"
    )
    malloc_trim_s: float = Field(default=5.0, ge=0.0, description="glibc malloc_trim at most this often (0 = never)")
    preload: bool = Field(default=False, description="load every predictor at startup instead of on first use")
    runs_dir: Path | None = Field(
        default=None, description="where the newest finished run per domain is found; None = the config's output_dir"
    )

    @field_validator("api_keys")
    @classmethod
    def _keys_not_blank(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for i, key in enumerate(keys):
            if not key.get_secret_value().strip():
                raise ValueError(f"api_keys[{i}] is empty")
        return keys

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)


def read_api_keys(path: str | Path | None = None, env: str | None = None) -> list[str]:
    """API keys from ``$DOMAINFM_API_KEYS`` (comma-separated) and/or a file (one key per line, ``#`` comments).

    :raises ConfigError: naming the file when it is missing or holds no key.
    """
    raw_env = os.environ.get(API_KEYS_ENV, "") if env is None else env
    keys = [k.strip() for k in raw_env.split(",") if k.strip()]
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"{file}: API key file not found")
        found = []
        for line in file.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                found.append(line)
        if not found:
            raise ConfigError(f"{file}: API key file holds no key (one per line)")
        keys.extend(found)
    return keys
