"""Skin weights from the template geometry and batched linear blend skinning (numpy).

Shapes: B batch, V vertices, K skinning parts (:data:`~stereo_hand_mesh.hand.skeleton.
NUM_BONES` = 16: the palm and the 15 finger joints that have a child).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from stereo_hand_mesh.hand.joints import FINGERS
from stereo_hand_mesh.hand.mesh import uniform_adjacency
from stereo_hand_mesh.hand.skeleton import BONE_JOINTS, NUM_BONES

__all__ = ["blend_offsets", "compute_skin_weights", "linear_blend_skinning"]


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip((p - a) @ ab / float(ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - a - t[:, None] * ab, axis=1)


def _bone_distances(vertices: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(V, K) distance of every vertex to each part's bone segments (metres).

    The palm's segments run from the forearm stub and the wrist to the four knuckles and
    the thumb's CMC; every other part is the segment from its joint to its child.
    """
    out = np.empty((len(vertices), NUM_BONES))
    wrist = joints[0]
    forearm = wrist + np.array([0.0, -0.03, 0.0])
    palm_targets = [joints[1]] + [joints[1 + 4 * f] for f in range(1, len(FINGERS))]
    out[:, 0] = np.min(
        [_segment_distance(vertices, a, t) for a in (wrist, forearm) for t in palm_targets],
        axis=0,
    )
    for b, j in enumerate(BONE_JOINTS):
        if j != 0:
            out[:, b] = _segment_distance(vertices, joints[j], joints[j + 1])
    return out


def compute_skin_weights(
    vertices: np.ndarray, faces: np.ndarray, joints: np.ndarray, smoothing: int = 4
) -> np.ndarray:
    """Skin weights of the template from the geometry.

    Every vertex is first bound to its nearest bone (:func:`_bone_distances`); the binary
    weights are then diffused along the mesh (``smoothing`` steps of averaging with the
    neighbours, half a step each), which blends parts over roughly a finger radius on each
    side of a joint without leaking between fingers (they touch only through the palm).

    Args:
        vertices: (V, 3) template vertices (metres, hand frame).
        faces: (F, 3) triangles.
        joints: (21, 3) rest joints (metres).
        smoothing: diffusion steps.

    Returns:
        (V, K) non-negative weights, rows summing to 1.
    """
    dist = _bone_distances(vertices, joints)
    weights = np.zeros_like(dist)
    weights[np.arange(len(vertices)), np.argmin(dist, axis=1)] = 1.0
    adj = uniform_adjacency(len(vertices), faces)
    avg = sp.diags(1.0 / np.asarray(adj.sum(axis=1)).ravel()) @ adj
    for _ in range(smoothing):
        weights = 0.5 * weights + 0.5 * (avg @ weights)
    weights[weights < 1e-4] = 0.0
    return weights / weights.sum(axis=1, keepdims=True)


def linear_blend_skinning(
    vertices: np.ndarray, weights: np.ndarray, transforms: np.ndarray
) -> np.ndarray:
    """Linear blend skinning.

    Args:
        vertices: (B, V, 3) or (V, 3) rest vertices (metres).
        weights: (V, K) skin weights, rows summing to 1.
        transforms: (B, K, 3, 4) rigid transforms of the parts (rest -> posed).

    Returns:
        (B, V, 3) posed vertices (metres).
    """
    batch, k = transforms.shape[:2]
    blended = (weights @ transforms.reshape(batch, k, 12)).reshape(batch, -1, 3, 4)
    rest = np.broadcast_to(vertices, (batch, *vertices.shape[-2:]))
    return np.einsum("bvij,bvj->bvi", blended[..., :3], rest) + blended[..., 3]


def blend_offsets(coeffs: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Linear blend-shape offsets.

    Args:
        coeffs: (B, K) coefficients.
        dirs: (K, N, 3) blend shapes (metres per unit coefficient).

    Returns:
        (B, N, 3) offsets, ``sum_k coeffs[:, k] * dirs[k]``.
    """
    k, n = dirs.shape[:2]
    return (coeffs @ dirs.reshape(k, n * 3)).reshape(len(coeffs), n, 3)
