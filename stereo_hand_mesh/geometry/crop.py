"""Square crops of an image and the maps between crop and image pixel coordinates.

A :class:`CropBox` is a square of ``side`` image pixels with its top-left at ``(x0, y0)``,
resized to ``out_size x out_size``; the scale is ``s = out_size / side``. With pixel centres
at integer coordinates (OpenCV convention) in both images the maps are::

    crop  = (image - (x0, y0)) * s
    image = crop / s + (x0, y0)

so crop pixel ``(0, 0)`` samples image point ``(x0, y0)`` and crop pixel ``(S-1, S-1)``
samples ``(x0, y0) + (S-1) / s``. :func:`cut_crop` (numpy/OpenCV) and
:func:`stereo_hand_mesh.geometry.batched.crop_images` (torch) sample exactly these points.

The two crops of a stereo pair share ``side`` and ``y0`` (same rows, equal scale) and differ
in ``x0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ConfigError, ShapeError

__all__ = ["CropBox", "crop_to_image", "cut_crop", "image_to_crop"]


@dataclass(frozen=True)
class CropBox:
    """A square image region resized to ``out_size x out_size``.

    Attributes:
        x0: left edge (column of the first sampled point), image pixels.
        y0: top edge (row of the first sampled point), image pixels.
        side: side of the square, image pixels (> 0).
        out_size: side of the crop, crop pixels (>= 1).
    """

    x0: float
    y0: float
    side: float
    out_size: int

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "side"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise ConfigError(f"CropBox.{name} expected a finite value; got {value}")
            object.__setattr__(self, name, value)
        if self.side <= 0.0:
            raise ConfigError(f"CropBox.side expected > 0 pixels; got {self.side}")
        if int(self.out_size) != self.out_size or self.out_size < 1:
            raise ConfigError(f"CropBox.out_size expected an integer >= 1; got {self.out_size}")
        object.__setattr__(self, "out_size", int(self.out_size))

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel, ``out_size / side``."""
        return self.out_size / self.side

    def affine(self) -> np.ndarray:
        """(2, 3) affine matrix mapping image pixels to crop pixels."""
        s = self.scale
        return np.array([[s, 0.0, -s * self.x0], [0.0, s, -s * self.y0]])

    def as_array(self) -> np.ndarray:
        """(3,) ``[x0, y0, side]``, the row format of batched crop boxes (torch code)."""
        return np.array([self.x0, self.y0, self.side])


def _offset_like(points: Any, box: CropBox) -> Any:
    offset = [box.x0, box.y0]
    if isinstance(points, np.ndarray):
        return np.asarray(offset, dtype=np.result_type(points.dtype, np.float64))
    return points.new_tensor(offset)  # torch.Tensor


def image_to_crop(points: Any, box: CropBox) -> Any:
    """Map image pixel coordinates into the crop.

    Args:
        points: (*, 2) numpy array or torch tensor of image pixels ``(u, v)``.
        box: the crop.

    Returns:
        (*, 2) crop pixel coordinates, same type as ``points``.
    """
    check_shape(points, ("*", 2), "points")
    return (points - _offset_like(points, box)) * box.scale


def crop_to_image(points: Any, box: CropBox) -> Any:
    """Map crop pixel coordinates back into the image; inverse of :func:`image_to_crop`.

    Args:
        points: (*, 2) numpy array or torch tensor of crop pixels.
        box: the crop.

    Returns:
        (*, 2) image pixel coordinates, same type as ``points``.
    """
    check_shape(points, ("*", 2), "points")
    return points / box.scale + _offset_like(points, box)


def cut_crop(
    image: np.ndarray,
    box: CropBox,
    border_value: float = 0.0,
    interpolation: int = cv2.INTER_LINEAR,
    antialias: bool = True,
) -> np.ndarray:
    """Cut and resize the crop of an image (OpenCV).

    Crop pixel ``(i, j)`` holds the image sampled at ``(x0 + j / s, y0 + i / s)``; pixels
    that fall outside the image get ``border_value``.

    Args:
        image: (H, W) or (H, W, C) image, any dtype OpenCV can warp.
        box: the crop.
        border_value: fill for samples outside the image.
        interpolation: OpenCV interpolation flag (``cv2.INTER_LINEAR`` by default).
        antialias: when shrinking (``s < 1``), low-pass the image first with a Gaussian of
            sigma ``(1 / s - 1) / 2`` image pixels so that the crop does not alias.

    Returns:
        (S, S) or (S, S, C) crop with ``S = box.out_size``, the dtype of ``image``.

    Raises:
        ShapeError: when ``image`` is not 2-D or 3-D.
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        shape = getattr(image, "shape", type(image))
        raise ShapeError(f"image expected shape (H, W) or (H, W, C); got {shape}")
    src = image
    matrix = box.affine()
    if antialias and box.scale < 1.0:
        sigma = (1.0 / box.scale - 1.0) / 2.0
        margin = math.ceil(3.0 * sigma) + 2
        h, w = image.shape[:2]
        c0 = max(math.floor(box.x0) - margin, 0)
        r0 = max(math.floor(box.y0) - margin, 0)
        c1 = min(math.ceil(box.x0 + box.side) + margin, w)
        r1 = min(math.ceil(box.y0 + box.side) + margin, h)
        if c1 <= c0 or r1 <= r0:  # the box lies entirely outside the image
            shape = (box.out_size, box.out_size, *image.shape[2:])
            return np.full(shape, border_value, dtype=image.dtype)
        src = cv2.GaussianBlur(image[r0:r1, c0:c1], (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        matrix = matrix.copy()
        matrix[:, 2] += matrix[:, :2] @ np.array([c0, r0], dtype=np.float64)
    n_channels = image.shape[2] if image.ndim == 3 else 1
    out = cv2.warpAffine(
        src,
        matrix,
        (box.out_size, box.out_size),
        flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(border_value,) * min(n_channels, 4),
    )
    if image.ndim == 3 and out.ndim == 2:  # OpenCV drops a singleton channel axis
        out = out[..., None]
    return out
