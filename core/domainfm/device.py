"""Device selection. ``auto`` means CUDA when torch sees a GPU, else CPU."""

from __future__ import annotations

from typing import Literal

DeviceChoice = Literal["auto", "cpu", "cuda"]


def resolve_device(choice: str = "auto") -> str:
    """Return ``'cuda'`` or ``'cpu'``. Raises ``ConfigError`` if CUDA is asked for and absent."""
    from domainfm.errors import ConfigError

    if choice not in ("auto", "cpu", "cuda") and not choice.startswith("cuda:"):
        raise ConfigError(f"device: {choice!r} is not one of 'auto', 'cpu', 'cuda'")
    if choice == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        if choice.startswith("cuda"):
            raise ConfigError("device: 'cuda' requested but torch is not installed") from None
        return "cpu"
    has_cuda = torch.cuda.is_available()
    if choice.startswith("cuda"):
        if not has_cuda:
            raise ConfigError("device: 'cuda' requested but no CUDA device is visible")
        return choice
    return "cuda" if has_cuda else "cpu"


def describe_device(device: str) -> str:
    """A human description of the device, recorded in every result (e.g. 'cpu (2 threads)')."""
    try:
        import torch
    except ImportError:
        return device
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        return f"{device} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"
