"""Simple closed meshes (tests, benchmarks, and a stand-in hand before the template exists)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from stereo_hand_mesh.errors import ConfigError

__all__ = ["blob_mesh", "uv_sphere"]


def uv_sphere(
    n_rings: int = 30, n_segments: int = 34, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """A unit UV sphere with outward (counter-clockwise seen from outside) faces.

    Args:
        n_rings: latitude bands (>= 2); ``n_rings - 1`` vertex rings plus the two poles.
        n_segments: longitude segments (>= 3).
        dtype: vertex dtype.

    Returns:
        ``(verts, faces)``: (V, 3) with ``V = 2 + (n_rings - 1) * n_segments`` and (F, 3)
        int64 with ``F = 2 * n_segments * (n_rings - 1)``. The defaults give V = 988,
        F = 1972, about a MANO hand's size.
    """
    if n_rings < 2 or n_segments < 3:
        raise ConfigError(
            f"uv_sphere expected n_rings >= 2 and n_segments >= 3; got {n_rings}, {n_segments}"
        )
    theta = torch.arange(1, n_rings, dtype=torch.float64) * (math.pi / n_rings)
    phi = torch.arange(n_segments, dtype=torch.float64) * (2.0 * math.pi / n_segments)
    st, ct = torch.sin(theta)[:, None], torch.cos(theta)[:, None]
    ring = torch.stack(
        [st * torch.cos(phi), st * torch.sin(phi), ct.expand(-1, n_segments)], dim=-1
    ).reshape(-1, 3)
    verts = torch.cat([torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64), ring,
                       torch.tensor([[0.0, 0.0, -1.0]], dtype=torch.float64)])  # fmt: skip
    south = verts.shape[0] - 1

    def vid(r: int, s: int) -> int:
        return 1 + r * n_segments + s % n_segments

    faces: list[tuple[int, int, int]] = []
    for s in range(n_segments):
        faces.append((0, vid(0, s), vid(0, s + 1)))
    for r in range(n_rings - 2):
        for s in range(n_segments):
            a, b = vid(r, s), vid(r, s + 1)
            c, d = vid(r + 1, s), vid(r + 1, s + 1)
            faces.append((a, c, d))
            faces.append((a, d, b))
    for s in range(n_segments):
        faces.append((south, vid(n_rings - 2, s + 1), vid(n_rings - 2, s)))
    return verts.to(dtype), torch.tensor(faces, dtype=torch.int64)


def blob_mesh(
    center: tuple[float, float, float] = (0.0, 0.0, 0.5),
    radii: tuple[float, float, float] = (0.09, 0.045, 0.02),
    bumpiness: float = 0.25,
    seed: int = 0,
    n_rings: int = 30,
    n_segments: int = 34,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """A smooth random blob: a UV sphere scaled to an ellipsoid and bumped radially.

    The defaults are hand-sized (18 x 9 x 4 cm) at half a metre, ~1000 vertices.

    Args:
        center: centre in metres.
        radii: ellipsoid semi-axes in metres.
        bumpiness: relative amplitude of the low-frequency radial bumps (0 = ellipsoid).
        seed: seed of the bump pattern.
        n_rings: see :func:`uv_sphere`.
        n_segments: see :func:`uv_sphere`.
        dtype: vertex dtype.

    Returns:
        ``(verts, faces)``: (V, 3) metres and (F, 3) int64.
    """
    unit, faces = uv_sphere(n_rings, n_segments, torch.float64)
    gen = torch.Generator().manual_seed(seed)
    freq = torch.randint(1, 4, (6, 3), generator=gen).double()
    phase = torch.rand(6, generator=gen, dtype=torch.float64) * 2.0 * math.pi
    amp = torch.rand(6, generator=gen, dtype=torch.float64)
    amp = amp / amp.sum() * bumpiness
    bump = 1.0 + (amp * torch.sin(unit @ freq.T * math.pi + phase)).sum(dim=1, keepdim=True)
    verts = unit * bump * torch.tensor(radii, dtype=torch.float64)
    verts = verts + torch.tensor(center, dtype=torch.float64)
    return verts.to(dtype), faces
