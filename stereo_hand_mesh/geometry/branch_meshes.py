"""From the network's per-view (u, v) to metric meshes of both branches (eq. 1).

One implementation for numpy arrays (the per-frame pipeline, no torch) and torch tensors
(training, differentiable): the functions use only arithmetic and indexing that both share.

For crop fractions ``f`` (0 = crop's left/top edge, 1 = right/bottom) a vertex sits at image
pixel ``(x0 + f_u * side, y0 + f_v * side)``. Its disparity ``d = u_l - u_r - (cx_l - cx_r)``
gives ``z = fx * B / d`` for **both** branches (the paper: "the output hand mesh of the left
and right branch have the same z coordinates"); the left branch's x, y come from the left
view, the right branch's from the right view (then shifted by the baseline into the left
optical frame). The monocular variant replaces each vertex's z by the root's stereo depth
plus the network's root-relative depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Tensor = Any  # numpy.ndarray or torch.Tensor (same type in, same type out)

__all__ = ["BranchMeshes", "crop_fractions_from_image", "meshes_from_uv"]

#: Smallest disparity, image pixels, used in eq. 1 (z <= fx * B / 1 px, e.g. 99 m for STB).
MIN_DISPARITY_PX = 1.0


@dataclass(frozen=True)
class BranchMeshes:
    """Both branches' meshes.

    Attributes:
        left: (B, V, 3) left-branch vertices, metres, left optical frame.
        right: (B, V, 3) right-branch vertices, metres, left optical frame.
        uv_left: (B, V, 2) left image pixels.
        uv_right: (B, V, 2) right image pixels.
    """

    left: Tensor
    right: Tensor
    uv_left: Tensor
    uv_right: Tensor

    @property
    def mean(self) -> Tensor:
        """(B, V, 3) the average of the two branches, metres."""
        return 0.5 * (self.left + self.right)


def _clamp_min(x: Tensor, low: float) -> Tensor:
    return np.maximum(x, low) if isinstance(x, np.ndarray) else x.clamp_min(low)


def _xyz(x: Tensor, y: Tensor, z: Tensor) -> Tensor:
    """Stack three (B, V) arrays into (B, V, 3) (numpy or torch, differentiable)."""
    if isinstance(x, np.ndarray):
        return np.stack([x, y, z], axis=-1)
    out = x.new_empty((*x.shape, 3))
    out[..., 0], out[..., 1], out[..., 2] = x, y, z
    return out


def _image_uv(frac: Tensor, box: Tensor) -> Tensor:
    """(B, V, 2) crop fractions, (B, 3) boxes -> (B, V, 2) image pixels."""
    return box[:, None, :2] + frac * box[:, None, 2:3]


def crop_fractions_from_image(uv: Tensor, box: Tensor) -> Tensor:
    """(B, V, 2) image pixels and (B, 3) boxes ``[x0, y0, side]`` -> crop fractions."""
    return (uv - box[:, None, :2]) / box[:, None, 2:3]


def meshes_from_uv(
    frac_left: Tensor,
    frac_right: Tensor,
    box_left: Tensor,
    box_right: Tensor,
    k_left: Tensor,
    k_right: Tensor,
    baseline: Tensor,
    rel_depth_left: Tensor | None = None,
    rel_depth_right: Tensor | None = None,
    root_weights: Tensor | None = None,
) -> BranchMeshes:
    """Metric meshes of both branches from the two views' (u, v) (eq. 1).

    Args:
        frac_left: (B, V, 2) left-view output, crop fractions.
        frac_right: (B, V, 2) right-view output, crop fractions.
        box_left: (B, 3) left crop boxes, left image pixels.
        box_right: (B, 3) right crop boxes, right image pixels.
        k_left: (B, 4) ``[fx, fy, cx, cy]`` of the left rectified image.
        k_right: (B, 4) of the right image.
        baseline: (B,) metres.
        rel_depth_left: (B, V) monocular variant: left branch's root-relative depth, metres.
        rel_depth_right: (B, V) the right branch's.
        root_weights: (V,) weights of the root joint over vertices (the wrist row of the
            joint regressor, same array type and dtype); needed with the relative depths.

    Returns:
        :class:`BranchMeshes`; differentiable w.r.t. the network outputs.
    """
    if not isinstance(frac_left, np.ndarray):
        dtype = frac_left.dtype
        box_left, box_right = box_left.to(dtype), box_right.to(dtype)
        k_left, k_right, baseline = k_left.to(dtype), k_right.to(dtype), baseline.to(dtype)
    uv_l = _image_uv(frac_left, box_left)
    uv_r = _image_uv(frac_right, box_right)
    offset = (k_left[:, 2] - k_right[:, 2])[:, None]
    disparity = _clamp_min(uv_l[..., 0] - uv_r[..., 0] - offset, MIN_DISPARITY_PX)
    fb = (k_left[:, 0] * baseline)[:, None]
    z = fb / disparity  # (B, V)
    z_left = z_right = z
    if rel_depth_left is not None and rel_depth_right is not None:
        if root_weights is None:
            raise ValueError("root_weights expected with relative depths; got None")
        z_root = fb[:, 0] / (disparity @ root_weights)  # (B,)
        z_left = z_root[:, None] + rel_depth_left
        z_right = z_root[:, None] + rel_depth_right

    def unproject(uv: Tensor, depth: Tensor, k: Tensor) -> Tensor:
        x = (uv[..., 0] - k[:, 2:3]) * depth / k[:, 0:1]
        y = (uv[..., 1] - k[:, 3:4]) * depth / k[:, 1:2]
        return _xyz(x, y, depth)

    left = unproject(uv_l, z_left, k_left)
    right = unproject(uv_r, z_right, k_right)
    zero = 0.0 * baseline
    right = right + _xyz(baseline[:, None], zero[:, None], zero[:, None])
    return BranchMeshes(left=left, right=right, uv_left=uv_l, uv_right=uv_r)
