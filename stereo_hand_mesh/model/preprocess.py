"""Network input preprocessing: one implementation for numpy arrays and torch tensors.

The mesh network takes RGB crops scaled to [0, 1] and normalized per channel with the mean
and standard deviation recorded in its checkpoint (``normalization``). Training (torch
tensors), the torch backend and the numpy per-frame path of the ONNX Runtime and TensorRT
backends all call :func:`normalize_crops`, so the arithmetic cannot drift apart. This module
does not import torch: a tensor argument means torch is already loaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = ["IMAGENET_NORMALIZATION", "normalize_crops"]

#: The input normalization of every network this package trains (RGB, crops in [0, 1]).
IMAGENET_NORMALIZATION = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}

_Array = TypeVar("_Array")


def normalize_crops(
    images: _Array,
    normalization: Mapping[str, Sequence[float]] | None = None,
    *,
    channels_last: bool = False,
) -> _Array:
    """RGB crops -> normalized float32 network input, as the same array type.

    Args:
        images: (N, 3, S, S) crops, or (N, S, S, 3) with ``channels_last``; a numpy array
            or a torch tensor; uint8 in 0-255 or float in [0, 1].
        normalization: ``{"mean": (3,), "std": (3,)}`` RGB statistics of [0, 1] crops (a
            checkpoint's ``normalization`` block); default :data:`IMAGENET_NORMALIZATION`.
        channels_last: the input is (N, S, S, 3) (OpenCV crops).

    Returns:
        (N, 3, S, S) float32 ``(x / 255 - mean) / std`` (uint8) or ``(x - mean) / std``
        (float): a C-contiguous numpy array for numpy input, a tensor on the input's device
        for tensor input.

    Examples:
        >>> crops = np.full((2, 4, 4, 3), 255, np.uint8)
        >>> normalize_crops(crops, channels_last=True)[0, :, 0, 0].round(3)
        array([2.249, 2.429, 2.64 ], dtype=float32)
    """
    norm = normalization or IMAGENET_NORMALIZATION
    x: Any
    if isinstance(images, np.ndarray):
        is_uint8 = images.dtype == np.uint8
        x = images.astype(np.float32)
        if channels_last:
            x = x.transpose(0, 3, 1, 2)

        def channel(values: Sequence[float]) -> Any:
            return np.asarray(values, np.float32).reshape(1, 3, 1, 1)

    else:  # a torch tensor
        import torch

        tensor: Any = images
        is_uint8 = tensor.dtype == torch.uint8
        x = tensor.float()
        if channels_last:
            x = x.permute(0, 3, 1, 2)

        def channel(values: Sequence[float]) -> Any:
            return x.new_tensor(values).reshape(1, 3, 1, 1)

    if is_uint8:
        x = x / 255.0
    x = (x - channel(norm["mean"])) / channel(norm["std"])
    return np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x
