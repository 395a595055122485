"""Hard rasterization of triangle meshes: depth, face ids, barycentrics and mask.

Visibility (which face is nearest at each pixel centre) is decided without gradients: each
face enumerates exactly the pixel centres it covers (scanline spans; no face-by-pixel test),
1/z is stepped along each span, and a z-buffer keeps the nearest face with one
``scatter_reduce(amax)`` over packed ``(1/z, face)`` keys. The winners' barycentrics and depth
are then recomputed at the visible pixels by a custom autograd function with an analytic
backward, so depth is differentiable with respect to vertex positions (for a fixed
visibility, as in pytorch3d's rasterizer).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.render._faces import (
    FaceTable,
    check_mesh_inputs,
    face_table,
    front_facing,
    inverse_depth_coefficients,
    row_spans,
    span_offsets,
    vertex_table,
)

__all__ = ["Fragments", "RasterSettings", "rasterize"]

_LOW32 = 0xFFFFFFFF
_2_POW_32 = 1 << 32


@dataclass(frozen=True)
class RasterSettings:
    """Settings of :func:`rasterize`.

    Attributes:
        near: near plane, metres. Faces with a vertex at ``z <= near`` are not drawn
            (no clipping: hands are always well in front of the camera).
        cull_backfaces: skip faces turned away from the camera (about half of them): for a
            closed mesh the nearest surface and the outline are unchanged, and the work
            halves. Either winding works (read per mesh from its signed volume); do not use
            it with open surfaces such as a single plane, and note that through a small
            opening (MANO's wrist) the background shows instead of the inner wall. Off by
            default.
    """

    near: float = 1e-3
    cull_backfaces: bool = False

    def __post_init__(self) -> None:
        if not self.near > 0.0:
            raise ConfigError(f"RasterSettings.near expected > 0 metres; got {self.near}")


@dataclass(frozen=True)
class Fragments:
    """Per-pixel output of :func:`rasterize` (pixel centres at integer coordinates).

    Attributes:
        depth: (B, H, W) z of the nearest surface, metres, in the camera optical frame;
            0 on background. Differentiable w.r.t. vertex positions.
        face_index: (B, H, W) int64 index into ``faces`` of the nearest face; -1 on
            background.
        bary: (B, H, W, 3) screen-space (2-D, affine in pixel coordinates) barycentric
            coordinates of the pixel centre in that face; 0 on background. Differentiable.
            Perspective-correct weights are ``bary_i / z_i`` normalized to sum 1.
        mask: (B, H, W) bool, True where a face covers the pixel centre.
    """

    depth: Tensor
    face_index: Tensor
    bary: Tensor
    mask: Tensor


class _VisibleInterpolation(torch.autograd.Function):
    """Depth and screen-space barycentrics at visible pixels, with an analytic backward.

    For a pixel ``p`` in a face with screen vertices ``v_j`` and inverse depths ``iz_j``:
    ``w = bary(p)``, ``1/z = sum_j w_j iz_j``, and, holding ``p`` fixed,
    ``d w_i / d v_j = -w_j grad(w_i)`` with ``grad(w_i) = (a_i, b_i)`` the spatial
    gradient of ``w_i``. Hence ``d z / d v_j = z^2 w_j (alpha, beta)`` with
    ``(alpha, beta) = grad(1/z) = sum_i iz_i (a_i, b_i)`` and ``d z / d iz_j = -z^2 w_j``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        vtable: Tensor,
        vidx: Tensor,
        x: Tensor,
        y: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """vtable (3, B*V), vidx (3, M), x (M,), y (M,) -> depth (M,), bary (3, M)."""
        xs, ys, iz = vtable.index_select(1, vidx.reshape(-1)).reshape(3, 3, -1).unbind(0)
        d1x, d1y = xs[1] - xs[0], ys[1] - ys[0]
        d2x, d2y = xs[2] - xs[0], ys[2] - ys[0]
        inv_area = 1.0 / (d1x * d2y - d1y * d2x)
        # Spatial gradients (a_i, b_i) of the barycentrics; a_0 = -a_1 - a_2.
        a1, b1 = d2y * inv_area, -d2x * inv_area
        a2, b2 = -d1y * inv_area, d1x * inv_area
        qx, qy = x - xs[0], y - ys[0]
        w1 = a1 * qx + b1 * qy
        w2 = a2 * qx + b2 * qy
        bary = torch.stack([1.0 - w1 - w2, w1, w2])
        depth = 1.0 / (iz[0] + w1 * (iz[1] - iz[0]) + w2 * (iz[2] - iz[0]))
        grad_a = torch.stack([-a1 - a2, a1, a2])
        grad_b = torch.stack([-b1 - b2, b1, b2])
        ctx.save_for_backward(vidx, bary, depth, grad_a, grad_b, iz)
        ctx.n_cols = vtable.shape[1]
        return depth, bary

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, g_depth: Tensor, g_bary: Tensor
    ) -> tuple[Tensor, None, None, None]:
        vidx, bary, depth, grad_a, grad_b, iz = ctx.saved_tensors
        alpha = grad_a[0] * iz[0] + grad_a[1] * iz[1] + grad_a[2] * iz[2]
        beta = grad_b[0] * iz[0] + grad_b[1] * iz[1] + grad_b[2] * iz[2]
        k = g_depth * depth * depth
        s = g_bary[0] * grad_a[0] + g_bary[1] * grad_a[1] + g_bary[2] * grad_a[2]
        t = g_bary[0] * grad_b[0] + g_bary[1] * grad_b[1] + g_bary[2] * grad_b[2]
        per_vertex = torch.stack([k * alpha - s, k * beta - t, -k])  # (3 comps, M)
        rows = per_vertex[:, None, :] * bary[None, :, :]  # (3 comps, 3 slots, M)
        grad = g_depth.new_zeros(3, ctx.n_cols)
        grad.index_add_(1, vidx.reshape(-1), rows.reshape(3, -1))
        return grad, None, None, None


def rasterize(
    verts: Tensor,
    faces: Tensor,
    intrinsics: Tensor,
    image_size: tuple[int, int],
    settings: RasterSettings | None = None,
) -> Fragments:
    """Rasterize a batch of meshes sharing one topology.

    Depth is perspective-correct: ``1/z`` is interpolated with screen-space barycentrics
    (exact for planar triangles under a pinhole projection). Gradients flow to ``verts``
    (and ``intrinsics``) through ``depth`` and ``bary`` for the fixed visibility.

    Args:
        verts: (B, V, 3) vertex positions, metres, camera optical frame (z forward).
        faces: (F, 3) int64 vertex indices.
        intrinsics: (B, 4) ``[fx, fy, cx, cy]`` or (B, 3, 3), pixels of the output image.
        image_size: (H, W) output size, pixels.
        settings: near plane and culling; defaults to ``RasterSettings()``.

    Returns:
        :class:`Fragments`.

    Raises:
        ShapeError: on wrong shapes or dtypes.

    Examples:
        >>> verts = torch.tensor([[[-0.1, -0.1, 0.5], [0.1, -0.1, 0.5], [0.0, 0.1, 0.5]]])
        >>> faces = torch.tensor([[0, 1, 2]])
        >>> k = torch.tensor([[100.0, 100.0, 16.0, 16.0]])
        >>> frags = rasterize(verts, faces, k, (32, 32))
        >>> round(float(frags.depth[0, 16, 16]), 6)
        0.5
    """
    settings = settings or RasterSettings()
    batch, _, height, width = check_mesh_inputs(verts, faces, intrinsics, image_size)
    vtable = vertex_table(verts, intrinsics, settings.near)
    table = face_table(vtable, faces, batch)
    keep = (
        table.valid & front_facing(table, verts, faces) if settings.cull_backfaces else table.valid
    )
    return rasterize_table(vtable, table, keep, (batch, faces.shape[0], height, width))


def rasterize_table(
    vtable: Tensor, table: FaceTable, keep: Tensor, sizes: tuple[int, int, int, int]
) -> Fragments:
    """:func:`rasterize` from an already projected vertex table and face table.

    Args:
        vtable: (3, B * V) from ``vertex_table``.
        table: from ``face_table``.
        keep: (B * F,) bool faces to draw.
        sizes: (B, F, H, W).
    """
    batch, n_faces, height, width = sizes
    n_pixels = batch * height * width
    device, dtype = vtable.device, vtable.dtype
    with torch.no_grad():
        spans = row_spans(table, keep, height, width)
        # Per (face, row) pair: the offsets from a candidate's running index n to its column
        # and pixel, the face, and 1/z = alpha * column + (beta * row + gamma).
        coef = inverse_depth_coefficients(table).index_select(1, spans.face)  # (3, P)
        line = torch.stack([coef[0], coef[1] * spans.row.to(coef.dtype) + coef[2]])
        ftype, offsets = span_offsets(spans, table, sizes)
        per_pair = torch.cat([offsets, spans.face.to(ftype)[None], line.to(ftype)])
        g = per_pair.index_select(1, spans.pair)  # (5, N)
        n = torch.arange(spans.pair.numel(), device=device, dtype=ftype)
        inv_z = g[3] * (g[0] + n) + g[4]
        # Pack (1/z, face) into one int64 key: the bits of a positive float32 sort like its
        # value, so amax keeps the nearest face (ties: the larger face index).
        bits = inv_z.float().clamp_(min=0.0).view(torch.int32).to(torch.int64)
        key = bits * _2_POW_32 + g[2].to(torch.int64)
        zbuf = torch.full((n_pixels,), -1, dtype=torch.int64, device=device)
        zbuf.scatter_reduce_(0, (g[1] + n).to(torch.int64), key, reduce="amax")
        mask = zbuf >= 0
        pixel = mask.nonzero().squeeze(1)
        face = zbuf.index_select(0, pixel) & _LOW32
        pixel32 = pixel.to(torch.int32)
        image_row = torch.div(pixel32, width, rounding_mode="floor")
        col = pixel32 - image_row * width
        row = image_row - torch.div(image_row, height, rounding_mode="floor") * height
        b = torch.div(pixel32, height * width, rounding_mode="floor")
        face_index = torch.full((n_pixels,), -1, dtype=torch.int64, device=device)
        face_index.index_copy_(0, pixel, face - b.to(torch.int64) * n_faces)

    depth_vis, bary_vis = _VisibleInterpolation.apply(
        vtable, table.vidx.index_select(1, face), col.to(dtype), row.to(dtype)
    )
    depth = vtable.new_zeros(n_pixels).index_copy(0, pixel, depth_vis)
    bary = vtable.new_zeros(3, n_pixels).index_copy(1, pixel, bary_vis)
    return Fragments(
        depth=depth.reshape(batch, height, width),
        face_index=face_index.reshape(batch, height, width),
        bary=bary.reshape(3, batch, height, width).permute(1, 2, 3, 0),
        mask=mask.reshape(batch, height, width),
    )
