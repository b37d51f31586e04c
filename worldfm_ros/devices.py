"""Torch device names, parsed once for every stage (renderer, frame models, benchmarks)."""

from __future__ import annotations

import torch

from worldfm_ros.errors import BackendUnavailable, ConfigError


def parse_device(name: str | torch.device, what: str = "device") -> torch.device:
    """'cpu', 'cuda' or 'cuda:N' → torch.device.

    ConfigError for a malformed or unsupported name; BackendUnavailable when CUDA is asked
    for but torch sees none (an environment problem callers may fall back from).
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{what}: expected 'cpu', 'cuda' or 'cuda:N', got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"{what}: expected 'cpu', 'cuda' or 'cuda:N', got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"{what}: {name!r} requested but torch sees no CUDA device")
    return device


def resolve_device(name: str) -> str:
    """A device name with 'auto' resolved: 'cuda' when torch sees a CUDA device, else 'cpu';
    any other name is returned as it is (parse it with ``parse_device``)."""
    if name != "auto":
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"
