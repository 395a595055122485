"""Fitting the joint regressor: joints as fixed convex combinations of mesh vertices.

For each joint, the candidate vertices are the nearest ones on the rest template; their
weights are the non-negative least-squares fit, with a heavily weighted sum-to-one row, of
the skeleton's joint over many posed and shaped hands (natural random poses, the gestures
and random shapes). Because the weights are non-negative and sum to one, the regressed
joints move rigidly with any global rotation and translation of the mesh.

Measured on the template hand over 212 unseen posed and shaped hands: 0.14 mm mean, 0.4 mm
95th percentile, 0.8 mm worst joint (``benchmarks/hand_self_intersection.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import nnls

from stereo_hand_mesh.hand.joints import NUM_JOINTS

if TYPE_CHECKING:
    from stereo_hand_mesh.hand.model import HandModel

__all__ = ["fit_joint_regressor", "regressor_training_set"]

#: Candidate vertices per joint.
_CANDIDATES = 24
#: Weight of the sum-to-one equation relative to one coordinate equation (metres scale).
_SUM_WEIGHT = 10.0


def regressor_training_set(
    model: HandModel, seed: int, n_poses: int
) -> tuple[np.ndarray, np.ndarray]:
    """Posed vertices (N, V, 3) and skeleton joints (N, 21, 3) to fit or test a regressor.

    The set holds the rest pose, the gestures, and ``n_poses`` natural random poses with
    random shapes; it depends only on ``seed``.
    """
    from stereo_hand_mesh.hand.poses import GESTURES, sample_pose
    from stereo_hand_mesh.hand.shape import sample_shape_vectors

    rng = np.random.default_rng(seed)
    poses = np.concatenate(
        [
            np.zeros((1, model.num_pose_params)),
            np.stack(list(GESTURES.values())),
            sample_pose(rng, n_poses),
        ]
    )
    shapes = sample_shape_vectors(rng, len(poses))
    shapes[0] = 1.0
    vertices, skeleton = model.skin(poses, shapes)
    return vertices, skeleton


def fit_joint_regressor(model: HandModel, seed: int = 0, n_poses: int = 160) -> np.ndarray:
    """Fit the (21, V) joint regressor of a model (see module docstring).

    Args:
        model: the hand model; its ``skin`` method is used, not its regressor.
        seed: seed of the training poses and shapes.
        n_poses: number of random training poses.

    Returns:
        (21, V) non-negative weights, at most 24 non-zero per row, rows summing to 1.
    """
    vertices, skeleton = regressor_training_set(model, seed, n_poses)
    rest = model.template_vertices
    out = np.zeros((NUM_JOINTS, model.num_vertices))
    for j in range(NUM_JOINTS):
        dist = np.linalg.norm(rest - model.rest_joints[j], axis=1)
        cand = np.argsort(dist, kind="stable")[:_CANDIDATES]
        a = vertices[:, cand, :].transpose(0, 2, 1).reshape(-1, len(cand))
        b = skeleton[:, j, :].reshape(-1)
        a = np.vstack([a, np.full((1, len(cand)), _SUM_WEIGHT)])
        b = np.concatenate([b, [_SUM_WEIGHT]])
        w, _ = nnls(a, b, maxiter=50 * len(cand))
        w[w < 1e-4] = 0.0
        out[j, cand] = w / w.sum()
    return out
