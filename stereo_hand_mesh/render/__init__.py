"""Differentiable rendering of triangle meshes in plain torch (CPU and CUDA).

:func:`rasterize` gives hard fragments (depth, face ids, barycentrics, mask) with depth
differentiable w.r.t. vertex positions; :func:`soft_silhouette` gives a SoftRas-style soft
silhouette; :func:`rasterize_with_silhouette` computes both sharing the projection.
"""

from stereo_hand_mesh.render.primitives import blob_mesh, uv_sphere
from stereo_hand_mesh.render.rasterizer import Fragments, RasterSettings, rasterize
from stereo_hand_mesh.render.silhouette import (
    SoftRasterSettings,
    rasterize_with_silhouette,
    soft_silhouette,
)

__all__ = [
    "Fragments",
    "RasterSettings",
    "SoftRasterSettings",
    "blob_mesh",
    "rasterize",
    "rasterize_with_silhouette",
    "soft_silhouette",
    "uv_sphere",
]
