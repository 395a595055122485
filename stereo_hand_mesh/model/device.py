"""Device choice for torch code (inference backends and training alike)."""

from __future__ import annotations

import torch

from stereo_hand_mesh.errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` -> a usable device.

    Raises:
        ConfigError: a CUDA device is asked for and none is available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device expected an available device; got {name} (no CUDA here)")
    return device
