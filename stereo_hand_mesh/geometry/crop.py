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

A :class:`RotatedCrop` is a square of ``side`` image pixels centred at ``(cx, cy)`` and
turned by ``angle`` radians, resized to ``out_size x out_size``: the crop's axes in the image
are ``x_c = (cos a, sin a)`` and ``y_c = (-sin a, cos a)`` (image y points down, so a positive
angle turns the square clockwise on screen). The keypoint network sees the hand upright in
it: the crop's up (``-y_c``) points from the wrist toward the fingers. The maps are::

    crop  = R(a)^T (image - c) * s + (S - 1) / 2
    image = R(a) (crop - (S - 1) / 2) / s + c
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ConfigError, ShapeError

__all__ = ["CropBox", "RotatedCrop", "crop_to_image", "cut_crop", "image_to_crop"]


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

    def bounds(self) -> tuple[float, float, float, float]:
        """``(x_min, y_min, x_max, y_max)`` of the image region the crop samples, pixels."""
        return self.x0, self.y0, self.x0 + self.side, self.y0 + self.side


@dataclass(frozen=True)
class RotatedCrop:
    """A square image region turned by ``angle``, resized to ``out_size x out_size``.

    Attributes:
        cx: centre column, image pixels.
        cy: centre row, image pixels.
        side: side of the square, image pixels (> 0).
        angle: rotation of the square's axes in the image, radians (module docstring).
        out_size: side of the crop, crop pixels (>= 1).
    """

    cx: float
    cy: float
    side: float
    angle: float
    out_size: int

    def __post_init__(self) -> None:
        for name in ("cx", "cy", "side", "angle"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise ConfigError(f"RotatedCrop.{name} expected a finite value; got {value}")
            object.__setattr__(self, name, value)
        if self.side <= 0.0:
            raise ConfigError(f"RotatedCrop.side expected > 0 pixels; got {self.side}")
        if int(self.out_size) != self.out_size or self.out_size < 1:
            raise ConfigError(
                f"RotatedCrop.out_size expected an integer >= 1; got {self.out_size}"
            )
        object.__setattr__(self, "out_size", int(self.out_size))

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel, ``out_size / side``."""
        return self.out_size / self.side

    def affine(self) -> np.ndarray:
        """(2, 3) affine matrix mapping image pixels to crop pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        rot_t = np.array([[c, s], [-s, c]]) * self.scale  # R(a)^T * scale
        half = (self.out_size - 1) / 2.0
        offset = np.array([half, half]) - rot_t @ np.array([self.cx, self.cy])
        return np.concatenate([rot_t, offset[:, None]], axis=1)

    def inverse_affine(self) -> np.ndarray:
        """(2, 3) affine matrix mapping crop pixels back to image pixels."""
        return cv2.invertAffineTransform(self.affine())

    def bounds(self) -> tuple[float, float, float, float]:
        """``(x_min, y_min, x_max, y_max)`` of the image region the crop samples, pixels."""
        half = 0.5 * self.side * (abs(math.cos(self.angle)) + abs(math.sin(self.angle)))
        return self.cx - half, self.cy - half, self.cx + half, self.cy + half

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(*, 2) crop pixels -> (*, 2) image pixels."""
        check_shape(points, ("*", 2), "points")
        m = self.inverse_affine()
        return points @ m[:, :2].T + m[:, 2]

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """(*, 2) image pixels -> (*, 2) crop pixels."""
        check_shape(points, ("*", 2), "points")
        m = self.affine()
        return points @ m[:, :2].T + m[:, 2]


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
    box: CropBox | RotatedCrop,
    border_value: float = 0.0,
    interpolation: int = cv2.INTER_LINEAR,
    antialias: bool = True,
) -> np.ndarray:
    """Cut and resize the crop of an image (OpenCV).

    Crop pixel ``(i, j)`` holds the image sampled at ``(x0 + j / s, y0 + i / s)``; pixels
    that fall outside the image get ``border_value``.

    Args:
        image: (H, W) or (H, W, C) image, any dtype OpenCV can warp.
        box: the crop (axis-aligned or rotated).
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
        x_min, y_min, x_max, y_max = box.bounds()
        c0 = max(math.floor(x_min) - margin, 0)
        r0 = max(math.floor(y_min) - margin, 0)
        c1 = min(math.ceil(x_max) + margin, w)
        r1 = min(math.ceil(y_max) + margin, h)
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
