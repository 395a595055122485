"""Shared internals of the rasterizers: projection, per-face tables, scanline spans.

Pixel centres are at integer coordinates: pixel ``(row, col)`` is the point
``(x, y) = (col, row)``. Each face enumerates exactly the pixel centres it covers, row by
row (its scanline spans, grown by a margin for the soft silhouette), so the work grows with
the covered area, never with ``H * W * F``.

Performance notes. On CPU these kernels are bound by memory traffic and per-op overhead,
so the code:

* keeps data as *structure of arrays*, one contiguous 1-D row per quantity (``(K, N)``
  tensors): element-wise ops on strided ``(N, 3)`` slices and reductions over tiny
  dimensions are tens of times slower;
* gathers with ``index_select`` along the last dimension (advanced indexing is ~3x slower);
* avoids ``torch.where`` and bool-to-float casts on large tensors (~30x the cost of a
  multiply here), using ``min``/``max``/``clamp`` arithmetic and ``uint8`` views instead;
* uses int32 for index arithmetic (int64 is ~5x slower), but int64 indices for
  ``index_add_`` along a non-leading dim (~20x slower with int32);
* expands ragged segments with a cumulative sum of markers (~3x faster than
  ``repeat_interleave``);
* runs only the vertex projection (:func:`vertex_table`) under autograd; the per-face and
  per-pixel work runs without gradients and the rasterizers' outputs get their gradients
  from custom autograd functions with analytic backward passes into the vertex table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ShapeError
from stereo_hand_mesh.geometry.batched import intrinsics_vector

#: Faces whose doubled screen area is at most this many square pixels are dropped.
MIN_DOUBLE_AREA_PX2 = 1e-9
#: Inverse slopes of horizontal edges are divided by this instead of 0 (finite, huge).
_TINY = 1e-20
#: Multiplier that turns a difference into a 0/1 step with ``clamp(0, 1)``.
_STEP = 1e30


def check_mesh_inputs(
    verts: Tensor, faces: Tensor, intrinsics: Tensor, image_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Validate rasterizer inputs; return (B, V, H, W).

    Raises:
        ShapeError: on a wrong shape or dtype, or a bad image size.
    """
    dims = check_shape(verts, ("B", "V", 3), "verts")
    check_shape(faces, ("F", 3), "faces")
    if faces.dtype not in (torch.int64, torch.int32):
        raise ShapeError(f"faces expected an int64 tensor; got dtype {faces.dtype}")
    if not verts.is_floating_point():
        raise ShapeError(f"verts expected a floating point tensor; got dtype {verts.dtype}")
    k = intrinsics_vector(intrinsics)
    check_shape(k, (dims["B"], 4), "intrinsics")
    if (
        len(image_size) != 2
        or int(image_size[0]) != image_size[0]
        or int(image_size[1]) != image_size[1]
        or min(image_size) < 1
    ):
        raise ShapeError(f"image_size expected (H, W) with H, W >= 1; got {tuple(image_size)}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= dims["V"]):
        raise ShapeError(
            f"faces expected vertex indices in [0, {dims['V']}); "
            f"got [{int(faces.min())}, {int(faces.max())}]"
        )
    return dims["B"], dims["V"], int(image_size[0]), int(image_size[1])


def as_float(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """0/1 float copy of a bool tensor (through uint8: ~8x faster than ``mask.to(dtype)``)."""
    return mask.view(torch.uint8).to(dtype)


def vertex_table(verts: Tensor, intrinsics: Tensor, near: float) -> Tensor:
    """Project vertices to rows ``x``, ``y`` (pixels) and ``1/z`` (1/metres); differentiable.

    Args:
        verts: (B, V, 3) metres, camera optical frame.
        intrinsics: (B, 4) or (B, 3, 3), pixels.
        near: vertices at ``z <= near`` metres, or with a NaN/inf coordinate, get
            ``(cx, cy, 0)``; the zero 1/z marks them (and their faces) invalid.

    Returns:
        (3, B * V) rows x, y, 1/z.
    """
    k = intrinsics_vector(intrinsics).to(verts.dtype).t()[:, :, None]  # (4, B, 1)
    x, y, z = verts.permute(2, 0, 1)  # (B, V) each
    ok = torch.isfinite(verts).all(dim=-1) & (z > near)
    all_ok = bool(ok.all())
    if not all_ok:  # rare: keep NaN/inf and points behind the camera out of the arithmetic
        x, y, z = torch.where(
            ok[None], verts.permute(2, 0, 1), verts.new_tensor([0.0, 0.0, 1.0])[:, None, None]
        )
    inv_z = 1.0 / z
    u = k[0] * x * inv_z + k[2]
    v = k[1] * y * inv_z + k[3]
    if not all_ok:
        inv_z = inv_z * ok
    return torch.stack([u.reshape(-1), v.reshape(-1), inv_z.reshape(-1)])


@dataclass(frozen=True)
class FaceTable:
    """Screen-space data of every face of a batch of meshes (flat face index ``b * F + f``).

    No tensor here carries gradients.

    Attributes:
        vidx: (3, B * F) int64 column of each face's vertex (slot 0, 1, 2) in the vertex
            table.
        xs: (3, B * F) x of the vertices, pixels.
        ys: (3, B * F) y of the vertices, pixels.
        inv_z: (3, B * F) 1/z of the vertices, 1/metres.
        double_area: (B * F,) signed doubled screen area, pixels^2; negative for faces
            whose normal ``(v1 - v0) x (v2 - v0)`` points to the camera (x right, y down).
        valid: (B * F,) bool: every vertex finite and beyond the near plane, area not ~0.
        batch: (B * F,) int32 batch index of each face.
    """

    vidx: Tensor
    xs: Tensor
    ys: Tensor
    inv_z: Tensor
    double_area: Tensor
    valid: Tensor
    batch: Tensor


def face_table(vtable: Tensor, faces: Tensor, batch: int) -> FaceTable:
    """Gather the faces' vertices from a vertex table (see :class:`FaceTable`).

    Args:
        vtable: (3, B * V) from :func:`vertex_table`.
        faces: (F, 3) int64.
        batch: B.
    """
    with torch.no_grad():
        n_verts = vtable.shape[1] // batch
        n_faces = faces.shape[0]
        offsets = torch.arange(batch, device=vtable.device) * n_verts
        vidx = (faces.long().t()[:, None, :] + offsets[None, :, None]).reshape(3, -1)
        fv = vtable.detach().index_select(1, vidx.reshape(-1)).reshape(3, 3, -1)
        xs, ys, inv_z = fv.unbind(0)
        double_area = (xs[1] - xs[0]) * (ys[2] - ys[0]) - (ys[1] - ys[0]) * (xs[2] - xs[0])
        valid = (inv_z > 0).all(dim=0) & (double_area.abs() > MIN_DOUBLE_AREA_PX2)
        face_batch = torch.arange(batch, device=vtable.device, dtype=torch.int32)
        face_batch = face_batch[:, None].expand(batch, n_faces).reshape(-1)
    return FaceTable(
        vidx=vidx,
        xs=xs,
        ys=ys,
        inv_z=inv_z,
        double_area=double_area,
        valid=valid,
        batch=face_batch,
    )


def front_facing(table: FaceTable, verts: Tensor, faces: Tensor) -> Tensor:
    """(B * F,) bool: faces turned towards the camera, for either winding convention.

    A face is front-facing when its screen-space winding is opposite to (or, for an
    inward-wound mesh, equal to) that of an outward face seen from outside; each mesh's
    convention is read from the sign of its signed volume about its centroid (positive for
    outward, counter-clockwise faces). Meant for closed or nearly closed meshes (the
    template hand, MANO); the sign of an open surface's volume is arbitrary.

    Args:
        table: the faces.
        verts: (B, V, 3) metres.
        faces: (F, 3) int64.
    """
    with torch.no_grad():
        centred = verts.detach() - verts.detach().mean(dim=1, keepdim=True)
        flat = faces.long().t().reshape(-1)
        x, y, z = (
            c.index_select(1, flat).reshape(verts.shape[0], 3, -1).unbind(1)
            for c in centred.unbind(-1)
        )
        volume = (
            x[0] * (y[1] * z[2] - z[1] * y[2])
            + y[0] * (z[1] * x[2] - x[1] * z[2])
            + z[0] * (x[1] * y[2] - y[1] * x[2])
        ).sum(dim=1)
        orientation = torch.where(volume < 0, -1.0, 1.0).to(table.double_area.dtype)
        # Outward faces seen from outside wind clockwise on screen (x right, y down).
        return table.double_area * orientation.index_select(0, table.batch) < 0


def inverse_depth_coefficients(table: FaceTable) -> Tensor:
    """Coefficients of ``1/z(x, y) = alpha * x + beta * y + gamma`` on each face.

    On a planar face under a pinhole projection 1/z is affine in screen space, so this
    interpolation is exact (perspective-correct depth).

    Returns:
        (3, B * F) rows alpha, beta, gamma; zero for invalid faces.
    """
    with torch.no_grad():
        xs, ys, iz = table.xs, table.ys, table.inv_z
        d1x, d1y, d1z = xs[1] - xs[0], ys[1] - ys[0], iz[1] - iz[0]
        d2x, d2y, d2z = xs[2] - xs[0], ys[2] - ys[0], iz[2] - iz[0]
        valid = as_float(table.valid, xs.dtype)
        inv_area = valid / (table.double_area + (1.0 - valid))
        alpha = (d2y * d1z - d1y * d2z) * inv_area
        beta = (d1x * d2z - d2x * d1z) * inv_area
        gamma = (iz[0] - alpha * xs[0] - beta * ys[0]) * valid
        return torch.stack([alpha, beta, gamma])


def segments(counts: Tensor) -> tuple[Tensor, Tensor]:
    """Expand segment lengths: the segment of each element, and each segment's start.

    Equivalent to ``repeat_interleave(arange(S), counts)`` and an exclusive cumulative sum,
    built from a cumulative sum of end markers.

    Args:
        counts: (S,) int32 non-negative segment lengths.

    Returns:
        ``(ids, start)``: (N,) int32 with ``N = counts.sum()``, and (S,) int32.
    """
    ends = torch.cumsum(counts, 0, dtype=torch.int32)
    total = int(ends[-1]) if ends.numel() else 0
    marks = torch.zeros(total + 1, dtype=torch.int32, device=counts.device)
    marks.index_add_(0, ends, torch.ones_like(ends))
    ids = torch.cumsum(marks[:total], 0, dtype=torch.int32)
    return ids, ends - counts


def exact_float_dtype(bound: int) -> torch.dtype:
    """float32 when every integer up to ``bound`` is exact in it, else float64.

    Integer fields (columns, rows, pixel and face indices) are carried as floats through
    gathers: ``index_select`` of int32 data is ~2.5x slower than of float32 on CPU.
    """
    return torch.float32 if bound < (1 << 24) else torch.float64


def _compare_swap(x: list[Tensor], y: list[Tensor], i: int, j: int) -> None:
    """Order vertices i and j by y (ties keep their order), arithmetically."""
    swap = ((y[i] - y[j]) * _STEP).clamp_(0.0, 1.0)
    dx = (x[j] - x[i]) * swap
    dy = (y[j] - y[i]) * swap
    x[i], x[j] = x[i] + dx, x[j] - dx
    y[i], y[j] = y[i] + dy, y[j] - dy


def _x_bounds(y: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
    """Left and right x of y-sorted triangles at heights ``y`` within their y range.

    ``p`` rows (see :func:`row_spans`): 0 top x, 1 top y, 2 mid x, 3 mid y, 4 bottom y,
    5-7 inverse slopes dx/dy of the top-bottom, top-mid and mid-bottom edges, 8 side of
    the middle vertex (+1 right of the long edge, -1 left). The short side is the min (mid
    on the right) or max (mid on the left) of the two short edges' lines through the mid
    vertex; a horizontal edge's huge slope puts its line out of that min/max.
    """
    x_long = p[0] + (y - p[1]) * p[5]
    dy_mid = y - p[3]
    side = p[8]
    x_short = side * torch.minimum(side * (p[2] + dy_mid * p[6]), side * (p[2] + dy_mid * p[7]))
    return torch.minimum(x_long, x_short), torch.maximum(x_long, x_short)


@dataclass(frozen=True)
class RowSpans:
    """Per (face, row) pairs and the candidate pixel centres of each pair's span.

    Candidate ``n`` (of N) lies in pair ``pair[n]``, at column ``n - start[pair[n]] +
    col0[pair[n]]``.

    Attributes:
        face: (P,) int32 flat face index of each pair.
        row: (P,) int32 image row of each pair.
        col0: (P,) int32 first column of each pair's span.
        start: (P,) int32 index of each pair's first candidate.
        pair: (N,) int32 pair of each candidate.
    """

    face: Tensor
    row: Tensor
    col0: Tensor
    start: Tensor
    pair: Tensor


def row_spans(
    table: FaceTable, keep: Tensor, height: int, width: int, margin: float = 0.0
) -> RowSpans:
    """Enumerate the pixel centres each kept face covers, its shape grown by ``margin``.

    With ``margin = 0`` the candidates are exactly the pixel centres inside the closed
    triangle (up to float rounding), so no inside test is needed. With ``margin = r > 0``
    they are the pixel centres of the triangle grown by the square ``[-r, r]^2``, a
    superset of the points within distance ``r`` of it.

    Args:
        table: the faces.
        keep: (B * F,) bool faces to enumerate.
        height: image height H.
        width: image width W.
        margin: growth in pixels (>= 0).
    """
    with torch.no_grad():
        x, y = list(table.xs.unbind(0)), list(table.ys.unbind(0))
        for i, j in ((0, 1), (1, 2), (0, 1)):
            _compare_swap(x, y, i, j)
        (tx, mx, bx), (ty, my, by) = x, y
        long_dy = (by - ty).clamp_min(_TINY)
        # Side of the middle vertex relative to the long (top-bottom) edge.
        side = torch.sign((mx - tx) * (by - ty) - (my - ty) * (bx - tx))
        row_lo = torch.ceil(ty - margin).clamp_min(0.0)
        row_hi = torch.floor(by + margin).clamp_max(height - 1.0)
        n_rows = (row_hi - row_lo + 1.0).clamp_min(0.0) * as_float(keep, row_lo.dtype)
        per_face = torch.stack(
            [
                tx,
                ty,
                mx,
                my,
                by,
                (bx - tx) / long_dy,
                (mx - tx) / (my - ty).clamp_min(_TINY),
                (bx - mx) / (by - my).clamp_min(_TINY),
                side,
                row_lo,
            ]
        )
        face, start = segments(n_rows.to(torch.int32))
        p = per_face.index_select(1, face)  # (10, P)
        local = torch.arange(face.numel(), device=face.device, dtype=torch.int32)
        row = p[9] + (local - start.index_select(0, face)).to(p.dtype)
        if margin > 0.0:
            # x range of the triangle over the band [y - r, y + r]: its left bound is convex
            # and its right bound concave in y, so their extremes over the band lie at the
            # band's ends or at the middle vertex.
            ya = torch.maximum(row - margin, p[1])
            yb = torch.minimum(row + margin, p[4])
            ym = torch.minimum(torch.maximum(p[3], ya), yb)
            la, ra = _x_bounds(ya, p)
            lb, rb = _x_bounds(yb, p)
            lm, rm = _x_bounds(ym, p)
            left = torch.minimum(torch.minimum(la, lb), lm) - margin
            right = torch.maximum(torch.maximum(ra, rb), rm) + margin
        else:
            left, right = _x_bounds(row, p)
        col0 = torch.ceil(left).clamp_(0.0, float(width))
        n_cols = (torch.floor(right).clamp_(-1.0, width - 1.0) - col0 + 1.0).clamp_min_(0.0)
        pair, start = segments(n_cols.to(torch.int32))
        return RowSpans(
            face=face,
            row=row.to(torch.int32),
            col0=col0.to(torch.int32),
            start=start,
            pair=pair,
        )


def span_offsets(
    spans: RowSpans, table: FaceTable, sizes: tuple[int, int, int, int]
) -> tuple[torch.dtype, Tensor]:
    """Per-pair offsets that turn a candidate's running index n into its column and pixel.

    Candidate ``n`` of pair ``p`` lies at column ``n + offsets[0, p]`` and at flat pixel
    index ``n + offsets[1, p]`` (``(b * H + row) * W + column``).

    Args:
        spans: the enumerated spans.
        table: their faces.
        sizes: (B, F, H, W).

    Returns:
        ``(dtype, offsets)``: the float dtype that holds every such integer exactly
        (:func:`exact_float_dtype`) and the (2, P) offsets in it.
    """
    batch, n_faces, height, width = sizes
    dtype = exact_float_dtype(max(batch * height * width, batch * n_faces) + spans.pair.numel())
    col_shift = spans.col0 - spans.start
    batch_of = table.batch.index_select(0, spans.face)
    pixel_shift = (batch_of * height + spans.row) * width + col_shift
    return dtype, torch.stack([col_shift, pixel_shift]).to(dtype)
