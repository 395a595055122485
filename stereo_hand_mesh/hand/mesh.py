"""Triangle-mesh utilities (numpy): edges, normals, volume, components, topology hash.

Shapes: V vertices, F faces, E edges, B batch. Faces are (F, 3) int vertex indices,
counter-clockwise seen from outside (outward normals).
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse as sp

from stereo_hand_mesh._check import check_shape

__all__ = [
    "connected_components",
    "edge_face_counts",
    "euler_characteristic",
    "face_areas",
    "face_normals",
    "mesh_edges",
    "signed_volume",
    "topology_hash",
    "triangle_quality",
    "uniform_adjacency",
    "vertex_normals",
]


def _directed_edges(faces: np.ndarray) -> np.ndarray:
    """(3F, 2) directed half-edges (a, b) of every face, face-major order."""
    return np.stack([faces, np.roll(faces, -1, axis=1)], axis=-1).reshape(-1, 2)


def mesh_edges(faces: np.ndarray) -> np.ndarray:
    """Unique undirected edges.

    Args:
        faces: (F, 3) triangles.

    Returns:
        (E, 2) int64 edges with ``edges[:, 0] < edges[:, 1]``, sorted lexicographically.
    """
    check_shape(faces, ("F", 3), "faces")
    e = np.sort(_directed_edges(np.asarray(faces, dtype=np.int64)), axis=1)
    return np.unique(e, axis=0)


def edge_face_counts(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges and how many faces use each (2 everywhere on a closed manifold).

    Returns:
        edges: (E, 2) unique undirected edges. counts: (E,) faces per edge.
    """
    e = np.sort(_directed_edges(np.asarray(faces, dtype=np.int64)), axis=1)
    edges, counts = np.unique(e, axis=0, return_counts=True)
    return edges, counts


def euler_characteristic(num_vertices: int, faces: np.ndarray) -> int:
    """V - E + F (2 for a closed genus-0 surface)."""
    return int(num_vertices - len(mesh_edges(faces)) + len(faces))


def face_normals(vertices: np.ndarray, faces: np.ndarray, normalize: bool = True) -> np.ndarray:
    """(*, F, 3) face normals of (*, V, 3) vertices; unnormalized = twice the area vector."""
    tri = vertices[..., faces, :]
    n = np.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :])
    if normalize:
        n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-30)
    return n


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(*, F) triangle areas (square metres for metre vertices)."""
    return 0.5 * np.linalg.norm(face_normals(vertices, faces, normalize=False), axis=-1)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) area-weighted unit vertex normals of (V, 3) vertices."""
    fn = face_normals(vertices, faces, normalize=False)
    n = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-30)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(*,) enclosed volume (cubic metres); positive for a closed outward-oriented mesh."""
    tri = vertices[..., faces, :]
    return (
        np.einsum("...i,...i->...", tri[..., 0, :], np.cross(tri[..., 1, :], tri[..., 2, :])).sum(
            axis=-1
        )
        / 6.0
    )


def uniform_adjacency(num_vertices: int, faces: np.ndarray) -> sp.csr_matrix:
    """(V, V) symmetric 0/1 vertex adjacency of the mesh edges."""
    e = mesh_edges(faces)
    data = np.ones(2 * len(e))
    rows = np.concatenate([e[:, 0], e[:, 1]])
    cols = np.concatenate([e[:, 1], e[:, 0]])
    return sp.csr_matrix((data, (rows, cols)), shape=(num_vertices, num_vertices))


def connected_components(num_vertices: int, faces: np.ndarray) -> np.ndarray:
    """(V,) component label of every vertex (isolated vertices get their own label)."""
    from scipy.sparse.csgraph import connected_components as _cc

    _, labels = _cc(uniform_adjacency(num_vertices, faces), directed=False)
    return labels


def triangle_quality(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) shape quality ``4 sqrt(3) area / sum(edge^2)``: 1 equilateral, 0 degenerate."""
    tri = vertices[faces]
    l2 = sum(np.sum((tri[:, k] - tri[:, (k + 1) % 3]) ** 2, axis=1) for k in range(3))
    return 4.0 * np.sqrt(3.0) * face_areas(vertices, faces) / np.maximum(l2, 1e-30)


def topology_hash(faces: np.ndarray, num_vertices: int) -> str:
    """Short stable hash of the mesh connectivity (vertex count and faces).

    Independent of vertex positions, platform and dtype: the faces are hashed as
    little-endian int64. Stored in checkpoints and ONNX metadata to tie a network's outputs
    to a topology.

    Returns:
        16 lowercase hex characters.
    """
    check_shape(faces, ("F", 3), "faces")
    h = hashlib.sha256()
    h.update(np.int64(num_vertices).astype("<i8").tobytes())
    h.update(np.ascontiguousarray(faces, dtype="<i8").tobytes())
    return h.hexdigest()[:16]
