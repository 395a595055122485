"""Self-intersection test of triangle meshes (numpy, vectorized).

Broad phase: sort-and-sweep of the faces' bounding boxes along the longest axis of the mesh,
then a box-overlap test on the other two axes. Pairs of faces that share a vertex are
skipped (adjacent faces always touch). Narrow phase, exact in general position: two
triangles intersect iff an edge of one crosses the other, tested with signed volumes (six
segment-triangle tests per pair). Touching and coplanar contacts count as no intersection.
"""

from __future__ import annotations

import numpy as np

from stereo_hand_mesh._check import check_shape

__all__ = ["self_intersecting_pairs", "self_intersection_mask"]


def _orient(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Six times the signed volume of tetrahedra (a, b, c, d); arrays (M, 3)."""
    u, v, w = b - a, c - a, d - a
    return (
        u[:, 0] * (v[:, 1] * w[:, 2] - v[:, 2] * w[:, 1])
        - u[:, 1] * (v[:, 0] * w[:, 2] - v[:, 2] * w[:, 0])
        + u[:, 2] * (v[:, 0] * w[:, 1] - v[:, 1] * w[:, 0])
    )


def _segments_cross_triangles(p: np.ndarray, q: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(M,) whether segment pq strictly crosses triangle tri (M, 3, 3)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    s1 = _orient(a, b, c, p)
    s2 = _orient(a, b, c, q)
    straddle = s1 * s2 < 0.0
    t1 = _orient(p, q, a, b)
    t2 = _orient(p, q, b, c)
    t3 = _orient(p, q, c, a)
    inside = ((t1 > 0) & (t2 > 0) & (t3 > 0)) | ((t1 < 0) & (t2 < 0) & (t3 < 0))
    return straddle & inside


def _candidate_pairs(tri: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face pairs (i, j), i != j, whose boxes overlap and that share no vertex."""
    lo = tri.min(axis=1)
    hi = tri.max(axis=1)
    axis = int(np.argmax(hi.max(axis=0) - lo.min(axis=0)))
    order = np.argsort(lo[:, axis], kind="stable")
    lo_s, hi_s = lo[order], hi[order]
    n = len(order)
    end = np.searchsorted(lo_s[:, axis], hi_s[:, axis], side="right")
    counts = np.maximum(end - np.arange(1, n + 1), 0)
    total = int(counts.sum())
    first = np.repeat(np.arange(n), counts)
    offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    second = first + 1 + offset
    others = [k for k in range(3) if k != axis]
    keep = np.ones(total, dtype=bool)
    for k in others:
        keep &= (lo_s[first, k] <= hi_s[second, k]) & (lo_s[second, k] <= hi_s[first, k])
    i, j = order[first[keep]], order[second[keep]]
    fi, fj = faces[i], faces[j]
    shared = (fi[:, :, None] == fj[:, None, :]).any(axis=(1, 2))
    return i[~shared], j[~shared]


def self_intersecting_pairs(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Pairs of non-adjacent faces that intersect each other.

    Args:
        vertices: (V, 3) vertices (any unit).
        faces: (F, 3) triangles.

    Returns:
        (K, 2) int64 face index pairs ``(i, j)`` with ``i < j``, sorted.
    """
    check_shape(vertices, ("V", 3), "vertices")
    check_shape(faces, ("F", 3), "faces")
    tri = np.asarray(vertices, dtype=np.float64)[faces]
    i, j = _candidate_pairs(tri, faces)
    t1, t2 = tri[i], tri[j]
    hit = np.zeros(len(i), dtype=bool)
    for k in range(3):
        hit |= _segments_cross_triangles(t1[:, k], t1[:, (k + 1) % 3], t2)
        hit |= _segments_cross_triangles(t2[:, k], t2[:, (k + 1) % 3], t1)
    pairs = np.sort(np.stack([i[hit], j[hit]], axis=1), axis=1)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def self_intersection_mask(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(B,) whether each of (B, V, 3) meshes has a self-intersection (non-adjacent faces)."""
    check_shape(vertices, ("B", "V", 3), "vertices")
    return np.array([len(self_intersecting_pairs(v, faces)) > 0 for v in vertices])
