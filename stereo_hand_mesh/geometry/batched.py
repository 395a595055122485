"""Batched, differentiable torch versions of the camera and crop maps (training and losses).

Same conventions as :mod:`stereo_hand_mesh.geometry.camera` and
:mod:`stereo_hand_mesh.geometry.crop`: metres, optical frames (z forward), pixel centres at
integer coordinates. Intrinsics are ``(B, 4)`` rows ``[fx, fy, cx, cy]`` in pixels (or
``(B, 3, 3)`` matrices, see :func:`intrinsics_vector`); crop boxes are ``(B, 3)`` rows
``[x0, y0, side]`` in image pixels (:meth:`CropBox.as_array`). Every function works on any
device and dtype.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as nnf

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ConfigError, ShapeError

__all__ = [
    "crop_images",
    "crop_intrinsics",
    "disparity_from_depth",
    "intrinsics_vector",
    "points_from_disparity",
    "project_points",
    "unproject_points",
]


def intrinsics_vector(intrinsics: Tensor) -> Tensor:
    """Normalize intrinsics to ``(B, 4)`` rows ``[fx, fy, cx, cy]``.

    Args:
        intrinsics: (B, 4) rows ``[fx, fy, cx, cy]`` or (B, 3, 3) matrices K, pixels.

    Returns:
        (B, 4) tensor (a view when the input is already (B, 4)).

    Raises:
        ShapeError: for any other shape.
    """
    if intrinsics.ndim == 2 and intrinsics.shape[1] == 4:
        return intrinsics
    if intrinsics.ndim == 3 and intrinsics.shape[1:] == (3, 3):
        return torch.stack(
            [intrinsics[:, 0, 0], intrinsics[:, 1, 1], intrinsics[:, 0, 2], intrinsics[:, 1, 2]],
            dim=1,
        )
    raise ShapeError(
        f"intrinsics expected shape (B, 4) or (B, 3, 3); got {tuple(intrinsics.shape)}"
    )


def project_points(points: Tensor, intrinsics: Tensor) -> Tensor:
    """Project camera-frame points to pixels: ``u = fx * x / z + cx``, ``v = fy * y / z + cy``.

    Args:
        points: (B, N, 3) metres in the camera's optical frame, z > 0.
        intrinsics: (B, 4) or (B, 3, 3), pixels.

    Returns:
        (B, N, 2) pixel coordinates.
    """
    dims = check_shape(points, ("B", None, 3), "points")
    k = intrinsics_vector(intrinsics)
    check_shape(k, (dims["B"], 4), "intrinsics")
    k = k[:, None, :]
    z = points[..., 2]
    u = k[..., 0] * points[..., 0] / z + k[..., 2]
    v = k[..., 1] * points[..., 1] / z + k[..., 3]
    return torch.stack([u, v], dim=-1)


def unproject_points(uv: Tensor, depth: Tensor, intrinsics: Tensor) -> Tensor:
    """Back-project pixels at known depths; inverse of :func:`project_points`.

    Args:
        uv: (B, N, 2) pixels.
        depth: (B, N) z in metres.
        intrinsics: (B, 4) or (B, 3, 3), pixels.

    Returns:
        (B, N, 3) metres in the camera's optical frame.
    """
    dims = check_shape(uv, ("B", "N", 2), "uv")
    check_shape(depth, (dims["B"], dims["N"]), "depth")
    k = intrinsics_vector(intrinsics)
    check_shape(k, (dims["B"], 4), "intrinsics")
    k = k[:, None, :]
    x = (uv[..., 0] - k[..., 2]) * depth / k[..., 0]
    y = (uv[..., 1] - k[..., 3]) * depth / k[..., 1]
    return torch.stack([x, y, depth], dim=-1)


def crop_intrinsics(intrinsics: Tensor, boxes: Tensor, out_size: int) -> Tensor:
    """Intrinsics of square crops: ``f * s`` and ``(c - (x0, y0)) * s``, ``s = out_size/side``.

    Args:
        intrinsics: (B, 4) or (B, 3, 3) of the full rectified image, pixels.
        boxes: (B, 3) crop boxes ``[x0, y0, side]`` in image pixels.
        out_size: crop side S in crop pixels.

    Returns:
        (B, 4) ``[fx, fy, cx, cy]`` of the crops, crop pixels.
    """
    k = intrinsics_vector(intrinsics)
    dims = check_shape(k, ("B", 4), "intrinsics")
    check_shape(boxes, (dims["B"], 3), "boxes")
    s = out_size / boxes[:, 2]
    return torch.stack(
        [k[:, 0] * s, k[:, 1] * s, (k[:, 2] - boxes[:, 0]) * s, (k[:, 3] - boxes[:, 1]) * s],
        dim=1,
    )


def crop_images(images: Tensor, boxes: Tensor, out_size: int, mode: str = "bilinear") -> Tensor:
    """Cut square crops from a batch of images (``grid_sample``, zeros outside).

    Crop pixel ``(i, j)`` samples image point ``(x0 + j / s, y0 + i / s)``, the same points
    as :func:`stereo_hand_mesh.geometry.crop.cut_crop` (without its antialiasing).

    Args:
        images: (B, C, H, W) images.
        boxes: (B, 3) crop boxes ``[x0, y0, side]`` in image pixels.
        out_size: crop side S.
        mode: ``grid_sample`` mode (``"bilinear"`` or ``"nearest"``).

    Returns:
        (B, C, S, S) crops, differentiable w.r.t. ``images`` and ``boxes``.
    """
    dims = check_shape(images, ("B", None, "H", "W"), "images")
    check_shape(boxes, (dims["B"], 3), "boxes")
    height, width = images.shape[-2:]
    steps = torch.arange(out_size, device=images.device, dtype=images.dtype)
    step = boxes[:, 2:3] / out_size  # (B, 1) image pixels per crop pixel
    xs = boxes[:, 0:1] + steps * step  # (B, S)
    ys = boxes[:, 1:2] + steps * step
    gx = xs * (2.0 / max(width - 1, 1)) - 1.0
    gy = ys * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    return nnf.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=True)


def disparity_from_depth(depth: Tensor, focal_baseline: Tensor, offset: float = 0.0) -> Tensor:
    """Disparity ``u_l - u_r = fx * B / z + offset`` in pixels (eq. 2 of the seed paper).

    Args:
        depth: (B, *) z in metres; values <= 0 mark background.
        focal_baseline: (B,) ``fx * B`` in pixel metres (fx of the full rectified image).
        offset: ``cx_l - cx_r`` in pixels (0 for most rigs).

    Returns:
        (B, *) disparity in image pixels; 0 where ``depth <= 0``. Gradients are finite
        everywhere.
    """
    check_shape(focal_baseline, (depth.shape[0],), "focal_baseline")
    fb = focal_baseline.reshape(-1, *([1] * (depth.ndim - 1)))
    valid = depth > 0
    safe = torch.where(valid, depth, torch.ones_like(depth))
    return torch.where(valid, fb / safe + offset, torch.zeros_like(depth))


def points_from_disparity(
    uv_left: Tensor,
    disparity: Tensor,
    intrinsics_left: Tensor,
    baseline: Tensor,
    min_disparity: float = 1.0,
    fill: float = 0.0,
    offset: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Triangulate left pixels with their disparities (eq. 1), batched and differentiable.

    ``z = fx * B / (d - offset)``; x and y from the left view. Disparities at or below
    ``min_disparity`` (negatives included) and NaN/inf inputs are invalid: their points are
    ``fill`` and carry zero gradient (no NaN in the forward or backward pass).

    Args:
        uv_left: (B, N, 2) left rectified pixels (full image).
        disparity: (B, N) ``u_l - u_r`` in pixels.
        intrinsics_left: (B, 4) or (B, 3, 3) of the left rectified image.
        baseline: (B,) metres.
        min_disparity: smallest valid disparity, pixels (> 0).
        fill: finite value written to invalid points.
        offset: ``cx_l - cx_r`` in pixels.

    Returns:
        ``(points, valid)``: (B, N, 3) metres in the left optical frame and (B, N) bool.

    Raises:
        ConfigError: when ``min_disparity`` is not finite and > 0 or ``fill`` not finite.
    """
    dims = check_shape(uv_left, ("B", "N", 2), "uv_left")
    check_shape(disparity, (dims["B"], dims["N"]), "disparity")
    check_shape(baseline, (dims["B"],), "baseline")
    if not (math.isfinite(min_disparity) and min_disparity > 0.0):
        raise ConfigError(f"min_disparity expected a finite value > 0 pixels; got {min_disparity}")
    if not math.isfinite(fill):
        raise ConfigError(f"fill expected a finite value; got {fill}")
    k = intrinsics_vector(intrinsics_left)
    d = disparity - offset
    valid = torch.isfinite(d) & torch.isfinite(uv_left).all(dim=-1) & (d > min_disparity)
    d_safe = torch.where(valid, d, torch.ones_like(d))
    uv_safe = torch.where(valid[..., None], uv_left, torch.zeros_like(uv_left))
    z = (k[:, 0] * baseline)[:, None] / d_safe
    points = unproject_points(uv_safe, z, k)
    points = torch.where(valid[..., None], points, torch.full_like(points, fill))
    return points, valid
