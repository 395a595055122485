"""Fitting the template hand to both views' keypoints (numpy and scipy only; no ROS, no torch).

:func:`fit_hand` takes the 21 keypoints the keypoint network found in the left and the right
rectified view (image pixels, :data:`~stereo_hand_mesh.hand.joints.JOINT_NAMES` order, which
is MediaPipe's), per-keypoint per-view weights, optionally the network's metric root-relative
"world" landmarks, and returns the template hand's pose, shape, global rotation and
translation, its vertices, joints and joint orientations in the left optical frame.

Model. The fitted points are the template's **kinematic skeleton** joints (the joints that
drive the skinning; tips lie on the skin at the end of each finger, where MediaPipe puts its
tip keypoint). They match the regressed joints of
:meth:`~stereo_hand_mesh.hand.model.HandModel.forward` to 0.14 mm on average
(``hand/regressor.py``), need no skinning inside the solver, and are exactly the origins of
the joint frames. The solver poses the skeleton with its own lean forward kinematics whose
conventions (rest frames, parameter axes and signs, composition order flex -> abd -> twist,
limits) are read from :mod:`stereo_hand_mesh.hand.skeleton` once
(:func:`~stereo_hand_mesh.hand.chain.kinematic_chain`, shared with the torch twin
:mod:`stereo_hand_mesh.model.hand_fit_torch`; checked against ``forward_kinematics`` in the
tests); the vertices are skinned once, at the end, with the model's own shape blend shapes and
``linear_blend_skinning``.

Cost (all terms in pixel-equivalents, minimized by Levenberg-Marquardt with an analytic
Jacobian and iteratively reweighted robust keypoint terms)::

    sum_{view, j} w[view, j] * rho(|project_view(X_j) - uv[view, j]|)       # keypoints
  + 1/2 sum_j |k (C_j - s* L_j)|^2                                          # world prior
  + 1/2 |pose_prior_weight (pose - relaxed)|^2                              # pose prior
  + 1/2 |shape_prior_weight (shape[1:] - 1)|^2                              # shape prior

where ``X`` are the posed skeleton joints (metres, left optical frame), ``rho`` the Cauchy or
Huber loss of scale ``robust_scale_px`` (``rho(e) ~ e^2 / 2`` for small ``e``), ``C`` and ``L``
the model's and the world landmarks' joints centred on their means, ``s*`` the least-squares
scale of the landmarks onto the model (the network's scale is a guess: the prior is
scale-free), and ``k = world_prior_weight * fx / z`` converts metres at the hand's depth
``z`` into pixels. The robust scale starts wide and narrows over the first iterations
(graduated non-convexity, :class:`FitSettings`). Pose and shape stay within
:data:`~stereo_hand_mesh.hand.skeleton.POSE_LIMITS` and
:data:`~stereo_hand_mesh.hand.shape.SHAPE_LIMITS`: a parameter pressing against its limit is
held out of the step and a step stops a free one at its limit (a projected step; plain
clipping made LM crawl). The global rotation is updated multiplicatively
(``R <- exp(delta) R``). With :attr:`FitSettings.fixed_shape` (a per-user calibration) the
shape starts at those factors and is held out of every step: only pose, rotation and
translation are solved.

Cold start (``init=None``): keypoints seen in both views are triangulated from their
disparity ``d = (u_l - cx_l) - (u_r - cx_r)``, ``z = fx B / d``; the template's rigid palm
joints (wrist, thumb_cmc and the four finger MCPs) are aligned to the triangulated ones by a
scaled Kabsch (Umeyama) alignment over every subset of at least ``max(3, n - 2)`` of them,
scored by the palm's reprojection with outliers capped (so an outlier palm keypoint is left
out); the alignment's scale sets ``shape[0]``; each bone's flexion and abduction then come
from the direction of the triangulated bone (a closed-form swing decomposition in the bone's
rest frame). The three best alignments are posed so and the one whose whole hand reprojects
best (robustly) starts LM. A warm start (``init``: the previous pair's fit) starts LM from
``init``'s parameters, with a looser stopping tolerance.

Left hands: the template is a right hand. A left hand is fitted as the mirror image
``x -> -x`` (in the left optical frame) of a right hand: the solver negates x of the posed
skeleton before projecting, so the keypoints and the cameras stay as they are. The returned
``pose``, ``shape``, ``global_rot`` and ``trans`` are those of that right hand: for a left hand
the vertices are ``model.skin(...)``'s with x negated, as
:func:`~stereo_hand_mesh.hand.model.mirror_to_left` makes them (render them with its flipped
faces), and the wrist sits at ``(-trans[0], trans[1], trans[2])``. This is the convention
of ``mirror_to_left`` (negate x in the frame the hand is expressed in); no image or camera is
mirrored.

Measured (``benchmarks/bench_fit.py``, 200 synthetic template hands per rig 0.4-0.9 m away,
1 px keypoint noise, 2-core AMD EPYC, medians over three runs): 3.5-4.5 ms cold, 2.0-2.8 ms
warm; mean joint error 2.65 mm on an STB-like rig (B = 0.12 m) and 1.42 mm on a table-top rig
(B = 0.486 m), against 5.05 and 2.15 mm for plain triangulation of the same keypoints.

Examples:
    >>> import numpy as np
    >>> from stereo_hand_mesh.hand.model import template_hand
    >>> k = np.array([822.8, 822.8, 318.5, 250.3])
    >>> joints = template_hand().skin(np.zeros((1, 26)), trans=np.array([[0.0, 0.0, 0.6]]))[1][0]
    >>> uv_l = joints[:, :2] / joints[:, 2:] * 822.8 + k[2:]
    >>> uv_r = (joints[:, :2] - [0.12, 0.0]) / joints[:, 2:] * 822.8 + k[2:]
    >>> fit = fit_hand(uv_l, uv_r, k, k, 0.12, np.ones((2, 21)))
    >>> bool(np.abs(fit.joints - joints).max() < 1e-3)
    True
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from stereo_hand_mesh._check import check_finite, check_shape
from stereo_hand_mesh.errors import ConfigError, FitError, ShapeError
from stereo_hand_mesh.hand.chain import KinematicChain, cross_product_matrices, template_chain
from stereo_hand_mesh.hand.fit_types import ROBUST_LOSSES, FitSettings, HandFit
from stereo_hand_mesh.hand.joints import JOINT_NAMES, JOINT_PARENTS, NUM_JOINTS
from stereo_hand_mesh.hand.model import HandModel, template_hand
from stereo_hand_mesh.hand.poses import GESTURES
from stereo_hand_mesh.hand.shape import NUM_SHAPE_PARAMS, SHAPE_LIMITS
from stereo_hand_mesh.hand.skeleton import (
    BONE_JOINTS,
    BONE_PARENTS,
    NUM_BONES,
    NUM_POSE_PARAMS,
    POSE_LIMITS,
)
from stereo_hand_mesh.hand.skinning import linear_blend_skinning

__all__ = ["ROBUST_LOSSES", "FitSettings", "HandFit", "fit_hand"]

#: Accepted values of ``handedness`` (those of ``estimator.HANDEDNESS``, which this module
#: does not import: the estimator will import the fit).
_HANDEDNESS: tuple[str, ...] = ("right", "left")

#: Rigid palm joints used by the cold-start alignment: wrist, thumb_cmc and the finger MCPs
#: (none of them moves with the pose parameters).
_PALM_JOINTS = np.array([0, 1, 5, 9, 13, 17])
#: Reprojection error (pixels) above which a palm keypoint is an outlier of an alignment.
_INIT_INLIER_PX = 15.0
#: Palm alignments the cold start poses and compares on all keypoints.
_INIT_HYPOTHESES = 3
#: Nearest depth (metres) a posed joint may take during the fit; a step that goes nearer is
#: rejected.
_MIN_DEPTH_M = 0.02
_NUM_PARAMS = NUM_POSE_PARAMS + NUM_SHAPE_PARAMS + 6
_SHAPE0 = NUM_POSE_PARAMS
_ROT0 = NUM_POSE_PARAMS + NUM_SHAPE_PARAMS
_TRANS0 = _ROT0 + 3
_MIRROR = np.array([-1.0, 1.0, 1.0])
_EYE = np.eye(3)
_PARENT_OR_ROOT = np.maximum(np.asarray(JOINT_PARENTS), 0)
_EYE.setflags(write=False)
#: Joint frame (x, y, z) = (e_bone, -e_flex, e_palm) as columns of a bone's rest frame
#: (e_flex, e_bone, e_palm) times this matrix.
_FRAME_TO_JOINT = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


# --------------------------------------------------------------------------------------------
# Lean kinematics (constants from hand.chain).


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Broadcast cross product of (*, 3) arrays (``np.cross`` without its overhead)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def _rotation(rotvec: np.ndarray) -> np.ndarray:
    """(3, 3) rotation of one (3,) axis-angle vector (radians)."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    k = cross_product_matrices(rotvec / angle)
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


@dataclass
class _Posed:
    """One evaluation of the lean forward kinematics (hand not mirrored)."""

    joints: np.ndarray  # (21, 3) posed skeleton, metres
    bone_rotations: np.ndarray  # (NUM_BONES, 3, 3) rest -> posed rotation of each bone
    param_axes: np.ndarray  # (P, 3) world axis of each pose parameter's rotation
    rest_joints: np.ndarray  # (21, 3) shaped rest skeleton, metres, hand frame


def _shaped_rest_joints(chain: KinematicChain, shape: np.ndarray) -> np.ndarray:
    """(21, 3) rest skeleton for a (S,) shape vector, as ``HandModel.shaped_rest`` builds it."""
    offsets = (shape[1:] - 1.0) @ chain.joint_shape_dirs.reshape(NUM_SHAPE_PARAMS - 1, -1)
    return shape[0] * (chain.rest_joints + offsets.reshape(NUM_JOINTS, 3))


def _slot_rotations(
    chain: KinematicChain, pose: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local rotations of every bone from a (P,) pose (radians).

    Returns:
        (NUM_BONES, 3, 3) each: the first slot's rotation (flex), the first two's product
        (flex @ abd) and the bone's local rotation (flex @ abd @ twist), rest hand frame.
    """
    # Empty slots (index -1) read the 0 appended to the pose.
    angles = np.append(pose, 0.0)[chain.slot_param][..., None, None]
    # Rodrigues about each slot's fixed unit axis: I + sin(a) K + (1 - cos(a)) K^2.
    slot_rot = _EYE + np.sin(angles) * chain.slot_skew + (1.0 - np.cos(angles)) * chain.slot_skew2
    first = slot_rot[:, 0]
    first_two = first @ slot_rot[:, 1]
    return first, first_two, first_two @ slot_rot[:, 2]


def _pose_skeleton(
    chain: KinematicChain, pose: np.ndarray, shape: np.ndarray, rot: np.ndarray, trans: np.ndarray
) -> _Posed:
    """Lean forward kinematics of one hand (same result as ``forward_kinematics``).

    Args:
        pose: (P,) radians. shape: (S,). rot: (3, 3) global rotation. trans: (3,) metres.
    """
    first, first_two, local = _slot_rotations(chain, pose)
    bone_rot = np.empty((NUM_BONES, 3, 3))
    bone_rot[0] = rot
    parents = np.asarray(BONE_PARENTS)
    for level in chain.levels:
        bone_rot[level] = bone_rot[parents[level]] @ local[level]
    # World axis of slot k of bone b: R_parent @ (slots before k) @ axis.
    parent_rot = bone_rot[np.maximum(parents, 0)]
    axes = np.empty((NUM_BONES, 3, 3))  # (bone, xyz, slot)
    axes[:, :, 0] = chain.slot_axis[:, 0]
    axes[:, :, 1] = (first @ chain.slot_axis[:, 1, :, None])[..., 0]
    axes[:, :, 2] = (first_two @ chain.slot_axis[:, 2, :, None])[..., 0]
    axes = (parent_rot @ axes).transpose(0, 2, 1)
    rest = _shaped_rest_joints(chain, shape)
    segments = rest - rest[_PARENT_OR_ROOT]
    posed_segments = (bone_rot[chain.segment_bone] @ segments[:, :, None])[:, :, 0]
    joints = trans + chain.path @ posed_segments
    return _Posed(joints, bone_rot, axes[chain.param_bone, chain.param_slot], rest)


def _joint_jacobian(
    chain: KinematicChain, posed: _Posed, shape: np.ndarray, trans: np.ndarray
) -> np.ndarray:
    """(N, 21, 3) derivatives of the posed joints (metres) w.r.t. the N fit parameters.

    Parameters: pose (P, radians), shape (S), a left-multiplied rotation increment (3,
    radians) and the translation (3, metres).
    """
    x = posed.joints
    jac = np.empty((_NUM_PARAMS, NUM_JOINTS, 3))
    lever = x[None] - x[chain.param_pivot][:, None]
    jac[:NUM_POSE_PARAMS] = (
        _cross(posed.param_axes[:, None, :], lever) * chain.param_descendants[..., None]
    )
    rel = x - trans
    jac[_SHAPE0] = rel / shape[0]
    rotated = posed.bone_rotations[chain.segment_bone] @ chain.segment_shape_dirs  # (21, 3, S-1)
    summed = (chain.path @ rotated.reshape(NUM_JOINTS, -1)).reshape(NUM_JOINTS, 3, -1)
    jac[_SHAPE0 + 1 : _ROT0] = shape[0] * summed.transpose(2, 0, 1)
    jac[_ROT0:_TRANS0] = _cross(_EYE[:, None, :], rel[None])
    jac[_TRANS0:] = np.eye(3)[:, None, :]
    return jac


# --------------------------------------------------------------------------------------------
# The solver.


@dataclass(frozen=True)
class _Problem:
    """Everything the cost needs besides the parameters."""

    uv: np.ndarray  # (2, 21, 2) keypoints, pixels
    weights: np.ndarray  # (2, 21)
    k_left: np.ndarray  # (4,)
    k_right: np.ndarray  # (4,)
    baseline: float
    mirror: bool
    landmarks: np.ndarray | None  # (21, 3) centred world landmarks, metres
    world_gain: float  # pixels per metre of the world prior
    settings: FitSettings
    relaxed: np.ndarray  # (P,)
    focal: np.ndarray  # (2, 2) [fx, fy] of the left and the right view, pixels
    centre: np.ndarray  # (2, 2) [cx, cy] of the left and the right view, pixels
    camera_offset: np.ndarray  # (2, 2) [x, y] of each view's camera, metres ([B, 0] right)
    prior_target: np.ndarray  # (P + S,) relaxed pose and mean shape
    prior_weight: np.ndarray  # (P + S,) pixels per unit (0 for the overall scale)
    used: np.ndarray  # (2, 21) bool: weight > 0
    fixed: np.ndarray  # (N,) bool: parameters held at their start (a fixed shape)
    fixed_shape: np.ndarray | None  # (S,) the shape they are held at, or None


@dataclass
class _State:
    pose: np.ndarray
    shape: np.ndarray
    rot: np.ndarray
    trans: np.ndarray
    posed: _Posed | None = None


def _observed(joints: np.ndarray, mirror: bool) -> np.ndarray:
    return joints * _MIRROR if mirror else joints


def _project(
    problem: _Problem, x: np.ndarray, jac: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Project (21, 3) joints into both views.

    Returns:
        uv (2, 21, 2) pixels and, with ``jac`` (N, 21, 3), its derivatives (N, 2, 21, 2).
    """
    inv_z = (1.0 / x[:, 2])[:, None]  # (21, 1)
    lateral = x[None, :, :2] - problem.camera_offset[:, None, :]  # (2, 21, 2) per view
    gain = problem.focal[:, None, :] * inv_z  # (2, 21, 2) pixels per metre
    uv = gain * lateral + problem.centre[:, None, :]
    if jac is None:
        return uv, None
    dz = jac[:, None, :, 2:] * inv_z  # (N, 1, 21, 1)
    return uv, gain * (jac[:, None, :, :2] - lateral * dz)


def _robust(errors: np.ndarray, scale: float, loss: str) -> tuple[np.ndarray, np.ndarray]:
    """Robust loss ``rho(e)`` and IRLS weight ``rho'(e) / e`` of residual norms (pixels)."""
    if loss == "cauchy":
        ratio = (errors / scale) ** 2
        return 0.5 * scale**2 * np.log1p(ratio), 1.0 / (1.0 + ratio)
    inside = errors <= scale
    rho = np.where(inside, 0.5 * errors**2, scale * (errors - 0.5 * scale))
    return rho, np.where(inside, 1.0, scale / np.maximum(errors, 1e-300))


def _world_residual(
    problem: _Problem, x: np.ndarray, jac: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """World-landmark residual (63,) pixels and its Jacobian (N, 63) (scale held fixed)."""
    assert problem.landmarks is not None
    centred = x - x.mean(axis=0)
    lm = problem.landmarks
    scale = float(np.clip(np.sum(centred * lm) / np.sum(lm * lm), 0.5, 2.0))
    res = problem.world_gain * (centred - scale * lm).reshape(-1)
    if jac is None:
        return res, None
    djac = problem.world_gain * (jac - jac.mean(axis=1, keepdims=True))
    return res, djac.reshape(len(jac), -1)


def _evaluate(
    problem: _Problem, state: _State, chain: KinematicChain, scale: float, want_jacobian: bool
) -> tuple[float, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Cost of ``state`` and, on request, the IRLS-weighted normal equations.

    Returns:
        cost (pixels squared; inf when a joint is nearer than ``_MIN_DEPTH_M``), keypoint
        errors (2, 21) pixels, and ``H`` (N, N) and ``g`` (N,) of the Gauss-Newton step
        (None without ``want_jacobian``).
    """
    s = problem.settings
    posed = state.posed
    if posed is None:
        posed = _pose_skeleton(chain, state.pose, state.shape, state.rot, state.trans)
        state.posed = posed
    x = _observed(posed.joints, problem.mirror)
    if np.any(x[:, 2] < _MIN_DEPTH_M):
        return math.inf, np.full((2, NUM_JOINTS), math.inf), None, None
    jac = None
    if want_jacobian:
        jac = _joint_jacobian(chain, posed, state.shape, state.trans)
        if problem.mirror:
            jac = jac * _MIRROR
    uv, duv = _project(problem, x, jac)
    diff = uv - problem.uv
    errors = np.sqrt(np.sum(diff * diff, axis=-1))
    rho, irls = _robust(errors, scale, s.robust_loss)
    cost = float(np.sum(problem.weights * rho))
    prior_res = problem.prior_weight * (
        np.concatenate([state.pose, state.shape]) - problem.prior_target
    )
    cost += 0.5 * float(prior_res @ prior_res)
    world_res = world_jac = None
    if problem.landmarks is not None and problem.world_gain > 0:
        world_res, world_jac = _world_residual(problem, x, jac)
        cost += 0.5 * float(world_res @ world_res)
    if not want_jacobian:
        return cost, errors, None, None
    assert duv is not None
    w = (problem.weights * irls)[..., None]  # (2, 21, 1)
    flat = duv.reshape(_NUM_PARAMS, -1)
    wflat = (duv * w).reshape(_NUM_PARAMS, -1)
    hess = wflat @ flat.T
    grad = wflat @ diff.reshape(-1)
    if world_res is not None:
        assert world_jac is not None
        hess += world_jac @ world_jac.T
        grad += world_jac @ world_res
    prior = np.arange(_ROT0)
    hess[prior, prior] += problem.prior_weight**2
    grad[:_ROT0] += problem.prior_weight * prior_res
    return cost, errors, hess, grad


def _robust_scale(problem: _Problem, errors: np.ndarray) -> float:
    """Robust scale for one iteration: the setting, or 1.4826 * the median weighted error
    (the upper median)."""
    used = errors[problem.used]
    spread = 1.4826 * float(np.partition(used, len(used) // 2)[len(used) // 2])
    return max(problem.settings.robust_scale_px, spread)


def _step(state: _State, delta: np.ndarray) -> _State:
    """Apply a parameter increment, clipping pose and shape to their limits."""
    return _State(
        pose=np.clip(state.pose + delta[:NUM_POSE_PARAMS], POSE_LIMITS[0], POSE_LIMITS[1]),
        shape=np.clip(state.shape + delta[_SHAPE0:_ROT0], SHAPE_LIMITS[0], SHAPE_LIMITS[1]),
        rot=_rotation(delta[_ROT0:_TRANS0]) @ state.rot,
        trans=state.trans + delta[_TRANS0:],
    )


#: (2, N) bounds of the fit parameters (rotation increment and translation unbounded).
_BOUNDS = np.concatenate(
    [POSE_LIMITS, SHAPE_LIMITS, np.array([[-np.inf] * 6, [np.inf] * 6])], axis=1
)
_BOUNDS.setflags(write=False)


def _bounded_step(
    lhs: np.ndarray, grad: np.ndarray, state: _State, fixed: np.ndarray
) -> np.ndarray:
    """Damped Gauss-Newton step ``lhs @ delta = -grad`` that respects the parameter limits.

    Parameters in ``fixed`` ((N,) bool: a fixed shape) never move. Parameters at a limit
    that the gradient pushes outwards are held; a step that would take
    a free parameter past its limit stops it there and holds it, and the others are solved
    again (at most three rounds). Clipping alone would waste most of every step on such
    parameters (measured: LM then crawls at a few % of cost per iteration).
    """
    x = np.concatenate([state.pose, state.shape, np.zeros(6)])
    lo, hi = _BOUNDS
    held = fixed | ((x <= lo + 1e-12) & (grad > 0)) | ((x >= hi - 1e-12) & (grad < 0))
    if not held.any():
        delta = np.linalg.solve(lhs, -grad)
        moved = x + delta
        over = (moved < lo) | (moved > hi)
        if not over.any():
            return delta
        delta[over] = np.clip(moved[over], lo[over], hi[over]) - x[over]
        held = over
    else:
        delta = np.zeros_like(grad)
    for _ in range(3):
        # Held parameters keep their increment: their rows become identities, their columns
        # move to the right-hand side.
        system = np.where(held[None, :] | held[:, None], 0.0, lhs)
        system[held, held] = 1.0
        rhs = np.where(held, delta, -grad - lhs[:, held] @ delta[held])
        delta = np.linalg.solve(system, rhs)
        moved = x + delta
        over = (moved < lo) | (moved > hi)
        if not over.any():
            break
        delta[over] = np.clip(moved[over], lo[over], hi[over]) - x[over]
        held |= over
    return delta


def _levenberg_marquardt(
    problem: _Problem, state: _State, chain: KinematicChain, max_iterations: int, tolerance: float
) -> tuple[_State, int]:
    """Robust (IRLS) Levenberg-Marquardt from ``state``; returns the result and iterations."""
    s = problem.settings
    damping = s.initial_damping
    cost0, errors, _, _ = _evaluate(problem, state, chain, s.robust_scale_px, False)
    if not math.isfinite(cost0):
        raise FitError(
            f"fit start expected every joint in front of the cameras (z >= {_MIN_DEPTH_M} m); "
            "got a joint behind"
        )
    iterations = 0
    growth = 2.0
    # Graduated non-convexity: the robust scale starts wide (the start's 90th percentile
    # keypoint error) and halves every iteration, so that keypoints far from a rough start are
    # pulled in before the loss treats what is still far as outliers.
    used = errors[problem.used]
    graduated = float(np.partition(used, int(0.9 * (len(used) - 1)))[int(0.9 * (len(used) - 1))])
    while iterations < max_iterations:
        iterations += 1
        scale = max(_robust_scale(problem, errors), graduated)
        graduated *= 0.5
        cost, errors, hess, grad = _evaluate(problem, state, chain, scale, True)
        assert hess is not None and grad is not None
        diag = np.diag(hess).copy()
        accepted = False
        for _ in range(8):
            lhs = hess + np.diag(damping * diag + 1e-9)
            try:
                delta = _bounded_step(lhs, grad, state, problem.fixed)
            except np.linalg.LinAlgError:
                damping *= growth
                growth *= 2.0
                continue
            trial = _step(state, delta)
            trial_cost, trial_errors, _, _ = _evaluate(problem, trial, chain, scale, False)
            predicted = -float(grad @ delta + 0.5 * delta @ hess @ delta)
            gain = (cost - trial_cost) / max(predicted, 1e-300)
            if trial_cost < cost:
                accepted = True
                # Nielsen's damping update from the gain ratio.
                damping *= max(1.0 / 3.0, 1.0 - (2.0 * min(gain, 1.0) - 1.0) ** 3)
                growth = 2.0
                break
            damping *= growth
            growth *= 2.0
        if not accepted:
            break
        assert state.posed is not None and trial.posed is not None
        moved = float(np.abs(trial.posed.joints - state.posed.joints).max())
        state, errors = trial, trial_errors
        settled = scale <= s.robust_scale_px  # the robust scale no longer adapts
        if settled and (cost - trial_cost < tolerance * cost or moved < s.step_tolerance_m):
            break
        if float(np.abs(delta).max()) < 1e-7:
            break
    return state, iterations


# --------------------------------------------------------------------------------------------
# Cold start.


def _triangulate(problem: _Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keypoints triangulated from disparity.

    Returns:
        points (21, 3) metres (0 where invalid), valid (21,) bool, disparity (21,) pixels
        after the principal points' offset.
    """
    kl, kr = problem.k_left, problem.k_right
    uv_l, uv_r = problem.uv
    disparity = (uv_l[:, 0] - kl[2]) - (uv_r[:, 0] - kr[2])
    both = (problem.weights[0] > 0) & (problem.weights[1] > 0)
    valid = both & (disparity > problem.settings.min_disparity_px)
    z = kl[0] * problem.baseline / np.where(valid, disparity, 1.0)
    points = np.stack(
        [(uv_l[:, 0] - kl[2]) * z / kl[0], (uv_l[:, 1] - kl[3]) * z / kl[1], z], axis=1
    )
    return np.where(valid[:, None], points, 0.0), valid, disparity


def _umeyama(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """Batched scaled Kabsch alignment ``dst ~ s R src + t``.

    Args:
        src, dst: (n, 3) points. mask: (H, n) float 0/1, the points of each hypothesis.

    Returns:
        scale (H,) clipped to the shape limits, R (H, 3, 3), t (H, 3).
    """
    count = mask.sum(axis=1, keepdims=True)
    mu_s = mask @ src / count
    mu_d = mask @ dst / count
    cs = src[None] - mu_s[:, None]
    cd = dst[None] - mu_d[:, None]
    cov = np.einsum("hn,hni,hnj->hij", mask, cd, cs) / count[..., None]
    u, sv, vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    sign[sign == 0] = 1.0
    d = np.ones((len(mask), 3))
    d[:, 2] = sign
    rot = np.einsum("hij,hj,hjk->hik", u, d, vt)
    var = np.einsum("hn,hni,hni->h", mask, cs, cs) / count[:, 0]
    scale = np.clip(np.sum(sv * d, axis=1) / var, SHAPE_LIMITS[0, 0], SHAPE_LIMITS[1, 0])
    trans = mu_d - scale[:, None] * np.einsum("hij,hj->hi", rot, mu_s)
    return scale, rot, trans


def _align_palm(
    problem: _Problem, chain: KinematicChain, points: np.ndarray, valid: np.ndarray
) -> list[tuple[float, np.ndarray, np.ndarray, np.ndarray]]:
    """Align the template's palm to the triangulated palm keypoints (module docstring).

    Returns:
        The ``_INIT_HYPOTHESES`` best alignments, best first, each: scale, rotation (3, 3),
        wrist position (3,) metres, and (21,) bool: the palm joints that agree with it
        (reprojection within ``_INIT_INLIER_PX`` per view).
    """
    palm = _PALM_JOINTS[valid[_PALM_JOINTS]]
    n = len(palm)
    if n < 3:
        names = ", ".join(JOINT_NAMES[j] for j in _PALM_JOINTS)
        raise FitError(
            f"cold start expected at least 3 of the palm keypoints ({names}) weighted in both "
            f"views with disparity > {problem.settings.min_disparity_px} px; got {n}"
        )
    src = chain.rest_joints[palm]
    dst = points[palm]
    if problem.mirror:
        dst = dst * _MIRROR  # align the right-hand template to the mirrored observation
    subsets = [
        c for size in range(max(3, n - 2), n + 1) for c in itertools.combinations(range(n), size)
    ]
    mask = np.zeros((len(subsets), n))
    for h, c in enumerate(subsets):
        mask[h, list(c)] = 1.0
    scale, rot, trans = _umeyama(src, dst, mask)
    moved = scale[:, None, None] * np.einsum("hij,nj->hni", rot, src) + trans[:, None]
    if problem.mirror:
        moved = moved * _MIRROR
    # Reprojection into both views (as _project), (2 views, H, n, 2) pixels.
    depth = np.maximum(moved[None, ..., 2:], _MIN_DEPTH_M)
    lateral = moved[None, ..., :2] - problem.camera_offset[:, None, None, :]
    uv = problem.focal[:, None, None, :] * lateral / depth + problem.centre[:, None, None, :]
    diff = uv - problem.uv[:, None, palm, :]
    errors = np.sum(diff * diff, axis=(0, 3))  # (H, n) squared pixels, both views
    errors[moved[..., 2] < _MIN_DEPTH_M] = np.inf
    score = np.minimum(errors, 2 * _INIT_INLIER_PX**2).sum(axis=1)
    out = []
    for best in np.argsort(score, kind="stable")[:_INIT_HYPOTHESES]:
        inliers = np.zeros(NUM_JOINTS, dtype=bool)
        inliers[palm] = errors[best] < 2 * _INIT_INLIER_PX**2
        out.append((float(scale[best]), rot[best], trans[best], inliers))
    return out


def _swing_pose(
    chain: KinematicChain, hand_points: np.ndarray, valid: np.ndarray, pose: np.ndarray
) -> np.ndarray:
    """Flexion and abduction of every bone from its triangulated direction.

    In a bone's rest frame ``(e_flex, e_bone, e_palm)``, flexion ``f`` then abduction (a
    swing ``a`` about ``e_palm``) turn ``e_bone`` into
    ``cos(a) (cos(f) e_bone + sin(f) e_palm) - sin(a) e_flex`` (twist leaves it), so both
    angles follow from the bone's direction seen from its posed parent. Bones are solved
    level by level from the palm outwards.

    Args:
        hand_points: (21, 3) triangulated joints in the template's rest hand frame (divided
            by the hand's scale), metres.
        valid: (21,) which of them to use.
        pose: (P,) starting pose; bones without two valid joints keep its values.

    Returns:
        (P,) pose within the limits.
    """
    pose = pose.copy()
    parents = np.asarray(BONE_PARENTS)
    bone_joints = np.asarray(BONE_JOINTS)
    bone_rot = np.empty((NUM_BONES, 3, 3))
    bone_rot[0] = _EYE
    for level in chain.levels:
        joint = bone_joints[level]
        frames = chain.frames[level]
        bone = hand_points[joint + 1] - hand_points[joint]
        ok = valid[joint] & valid[joint + 1]
        # Components of the bone direction along the rest frame axes, seen from the parent.
        comp = np.einsum("bik,bji,bj->bk", frames, bone_rot[parents[level]], bone)
        comp /= np.maximum(np.linalg.norm(comp, axis=1, keepdims=True), 1e-12)
        flex = np.arctan2(comp[:, 2], comp[:, 1])
        abd = np.arcsin(np.clip(-comp[:, 0], -1.0, 1.0))
        # Signs of the parameters' axes against e_flex and e_palm.
        flex_sign = np.einsum("bi,bi->b", chain.slot_axis[level, 0], frames[:, :, 0])
        abd_sign = np.einsum("bi,bi->b", chain.slot_axis[level, 1], frames[:, :, 2])
        for slot, angle in ((0, flex_sign * flex), (1, abd_sign * abd)):
            params = chain.slot_param[level, slot]
            use = ok & (params >= 0)
            pose[params[use]] = angle[use]
        pose = np.clip(pose, POSE_LIMITS[0], POSE_LIMITS[1])
        _, _, local = _slot_rotations(chain, pose)
        bone_rot[level] = bone_rot[parents[level]] @ local[level]
    return pose


def _cold_start(
    problem: _Problem, chain: KinematicChain, points: np.ndarray, valid: np.ndarray
) -> _State:
    """The best of the palm alignments' starts, posed by :func:`_swing_pose` (module doc)."""
    observed = points * _MIRROR if problem.mirror else points
    palm = _PALM_JOINTS
    best, best_cost = None, math.inf
    for scale, rot, trans, inliers in _align_palm(problem, chain, points, valid):
        hand_points = (observed - trans) @ rot / scale
        # Palm joints the alignment disowns take the template's place (they do not move with
        # the pose), so that the first bone of their digit starts from a sound point.
        hand_points[palm] = np.where(
            inliers[palm, None], hand_points[palm], chain.rest_joints[palm]
        )
        usable = valid.copy()
        usable[palm] = True
        if problem.fixed_shape is None:
            shape = np.ones(NUM_SHAPE_PARAMS)
            shape[0] = scale
        else:
            shape = problem.fixed_shape.copy()
        pose = _swing_pose(chain, hand_points, usable, problem.relaxed)
        state = _State(pose=pose, shape=shape, rot=rot, trans=trans)
        # A keypoint off in one view triangulates to a point that both views agree with, so
        # palm alignments can tie; the whole hand's keypoints tell them apart.
        cost, _, _, _ = _evaluate(problem, state, chain, _INIT_INLIER_PX, False)
        if best is None or cost < best_cost:
            best, best_cost = state, cost
    assert best is not None
    return best


# --------------------------------------------------------------------------------------------
# Outputs.


def _joint_rotations(chain: KinematicChain, posed: _Posed, mirror: bool) -> np.ndarray:
    """(21, 3, 3) joint frames (see :class:`HandFit`) in the observed (left optical) frame."""
    rot = posed.bone_rotations[chain.frame_bone] @ chain.frames[chain.frame_bone]
    out = rot @ _FRAME_TO_JOINT
    # The wrist's x points at middle_mcp (exact for the template, kept exact for any shape).
    joints = posed.joints
    x = joints[chain.frame_child[0]] - joints[0]
    x /= np.linalg.norm(x)
    z = out[0, :, 2] - (out[0, :, 2] @ x) * x
    z /= np.linalg.norm(z)
    out[0] = np.stack([x, np.cross(z, x), z], axis=1)
    if mirror:
        # Mirror every axis (x -> -x), then flip y so the frame stays right-handed.
        out = _MIRROR[None, :, None] * out * np.array([1.0, -1.0, 1.0])
    return out


def _skin_vertices(
    model: HandModel, chain: KinematicChain, state: _State, posed: _Posed
) -> np.ndarray:
    """(V, 3) skinned vertices (hand not mirrored), from the model's blend shapes and weights."""
    rest_vertices, _ = model.shaped_rest(state.shape[None], 1)
    centres = posed.rest_joints[list(BONE_JOINTS)]
    posed_centres = posed.joints[list(BONE_JOINTS)]
    translation = posed_centres - np.einsum("bij,bj->bi", posed.bone_rotations, centres)
    transforms = np.concatenate([posed.bone_rotations, translation[..., None]], axis=-1)
    return linear_blend_skinning(rest_vertices, model.skin_weights, transforms[None])[0]


# --------------------------------------------------------------------------------------------
# Input checks and the entry point.


def _checked_array(value: object, spec: tuple[int, ...], name: str) -> np.ndarray:
    if not isinstance(value, np.ndarray | list | tuple):
        raise ShapeError(f"{name} expected an array of shape {spec}; got {type(value).__name__}")
    arr = np.asarray(value, dtype=np.float64)
    check_shape(arr, spec, name)
    check_finite(arr, name)
    return arr


def _check_intrinsics(k_left: np.ndarray, k_right: np.ndarray, baseline_m: float) -> None:
    for k, name in ((k_left, "k_left"), (k_right, "k_right")):
        if not (k[0] > 0 and k[1] > 0):
            raise ConfigError(f"{name} expected fx > 0 and fy > 0 pixels; got {k[0]}, {k[1]}")
    for i, label in ((0, "fx"), (1, "fy"), (3, "cy")):
        if abs(k_left[i] - k_right[i]) > 1e-3 * k_left[0]:
            raise ConfigError(
                f"k_right {label} expected {k_left[i]} (equal to k_left's in a rectified pair); "
                f"got {k_right[i]}"
            )
    real = isinstance(baseline_m, numbers.Real) and not isinstance(baseline_m, bool)
    if not (real and math.isfinite(baseline_m) and baseline_m > 0):
        raise ConfigError(f"baseline_m expected a finite value > 0 metres; got {baseline_m!r}")


def _problem_from_inputs(
    uv_left: np.ndarray,
    uv_right: np.ndarray,
    k_left: np.ndarray,
    k_right: np.ndarray,
    baseline_m: float,
    weights: np.ndarray,
    world_landmarks: np.ndarray | None,
    settings: FitSettings,
    mirror: bool,
) -> _Problem:
    """Validate :func:`fit_hand`'s data arguments and gather them."""
    uv_l = _checked_array(uv_left, (NUM_JOINTS, 2), "uv_left")
    uv_r = _checked_array(uv_right, (NUM_JOINTS, 2), "uv_right")
    kl = _checked_array(k_left, (4,), "k_left")
    kr = _checked_array(k_right, (4,), "k_right")
    _check_intrinsics(kl, kr, baseline_m)
    w = _checked_array(weights, (2, NUM_JOINTS), "weights")
    if np.any((w < 0) | (w > 1)):
        view, j = np.argwhere((w < 0) | (w > 1))[0]
        raise ShapeError(
            f"weights expected values in [0, 1]; got {w[view, j]} at view {view}, "
            f"joint {JOINT_NAMES[j]}"
        )
    if not np.any(w > 0):
        raise ConfigError("weights expected at least one keypoint with weight > 0; got all 0")
    landmarks = None
    if world_landmarks is not None:
        lm = _checked_array(world_landmarks, (NUM_JOINTS, 3), "world_landmarks")
        landmarks = lm - lm.mean(axis=0)
        spread = float(np.sqrt(np.mean(np.sum(landmarks**2, axis=1))))
        if spread < 1e-3:
            raise ShapeError(
                f"world_landmarks expected a hand-sized spread (RMS >= 1 mm about their mean); "
                f"got {spread * 1e3:.3g} mm"
            )
    relaxed = np.asarray(GESTURES["relaxed"], dtype=np.float64)
    baseline = float(baseline_m)
    fixed = np.zeros(_NUM_PARAMS, dtype=bool)
    fixed_shape = None
    if settings.fixed_shape is not None:
        fixed[_SHAPE0:_ROT0] = True
        fixed_shape = np.array(settings.fixed_shape, dtype=np.float64)
    return _Problem(
        uv=np.stack([uv_l, uv_r]),
        weights=w,
        k_left=kl,
        k_right=kr,
        baseline=baseline,
        mirror=mirror,
        landmarks=landmarks,
        world_gain=0.0,
        settings=settings,
        relaxed=relaxed,
        focal=np.stack([kl[:2], kr[:2]]),
        centre=np.stack([kl[2:], kr[2:]]),
        camera_offset=np.array([[0.0, 0.0], [baseline, 0.0]]),
        used=w > 0,
        fixed=fixed,
        fixed_shape=fixed_shape,
        prior_target=np.concatenate([relaxed, np.ones(NUM_SHAPE_PARAMS)]),
        # The overall scale gets no prior: the stereo pair measures it.
        prior_weight=np.concatenate(
            [
                np.full(NUM_POSE_PARAMS, settings.pose_prior_weight),
                [0.0],
                np.full(NUM_SHAPE_PARAMS - 1, settings.shape_prior_weight),
            ]
        ),
    )


def _warm_state(init: HandFit, handedness: str) -> _State:
    """The solver's start from a previous :class:`HandFit` (validated)."""
    if not isinstance(init, HandFit):
        raise ConfigError(f"init expected a HandFit or None; got {type(init).__name__}")
    if init.handedness != handedness:
        raise ConfigError(
            f"init expected a fit of handedness {handedness!r}; got {init.handedness!r}"
        )
    pose = _checked_array(init.pose, (NUM_POSE_PARAMS,), "init.pose")
    shape = _checked_array(init.shape, (NUM_SHAPE_PARAMS,), "init.shape")
    rotvec = _checked_array(init.global_rot, (3,), "init.global_rot")
    trans = _checked_array(init.trans, (3,), "init.trans")
    return _State(
        pose=np.clip(pose, POSE_LIMITS[0], POSE_LIMITS[1]),
        shape=np.clip(shape, SHAPE_LIMITS[0], SHAPE_LIMITS[1]),
        rot=_rotation(rotvec),
        trans=trans.copy(),
    )


def fit_hand(
    uv_left: np.ndarray,
    uv_right: np.ndarray,
    k_left: np.ndarray,
    k_right: np.ndarray,
    baseline_m: float,
    weights: np.ndarray,
    world_landmarks: np.ndarray | None = None,
    init: HandFit | None = None,
    settings: FitSettings | None = None,
    handedness: str = "right",
) -> HandFit:
    """Fit the template hand to one rectified stereo pair's keypoints.

    Args:
        uv_left: (21, 2) keypoints in the left rectified image, pixels, ``JOINT_NAMES`` order.
        uv_right: (21, 2) the same joints in the right rectified image, pixels.
        k_left: (4,) left intrinsics ``[fx, fy, cx, cy]``, pixels.
        k_right: (4,) right intrinsics (fx, fy and cy equal to the left ones within
            ``1e-3 fx``; cx may differ).
        baseline_m: baseline B, metres (> 0); the right camera sits at ``(+B, 0, 0)`` in
            the left optical frame.
        weights: (2, 21) weight of each keypoint in the left (row 0) and right (row 1) view,
            in [0, 1]; 0 ignores the keypoint (give it any finite value).
        world_landmarks: (21, 3) the network's root-relative landmarks, metres, axes of the
            left optical frame (x right, y down, z forward); only their centred shape is
            used, up to scale. None: no world prior.
        init: the previous pair's fit (warm start), same handedness, or None (cold start).
        settings: solver settings (None: :class:`FitSettings` defaults).
        handedness: ``"right"`` or ``"left"`` (fitted as a mirrored right hand, see the
            module docstring).

    Returns:
        :class:`HandFit`.

    Raises:
        ShapeError: a wrongly shaped or non-finite argument, or weights outside [0, 1].
        ConfigError: all weights 0, bad intrinsics or baseline, unknown handedness, an
            ``init`` of the other handedness.
        FitError: most keypoints seen in both views have a disparity <= 0 (behind the
            cameras), or a cold start has fewer than 3 triangulable palm keypoints.
    """
    settings = FitSettings() if settings is None else settings
    if not isinstance(settings, FitSettings):
        raise ConfigError(
            f"settings expected a FitSettings or None; got {type(settings).__name__}"
        )
    if handedness not in _HANDEDNESS:
        raise ConfigError(f"handedness expected one of {_HANDEDNESS}; got {handedness!r}")
    problem = _problem_from_inputs(
        uv_left,
        uv_right,
        k_left,
        k_right,
        baseline_m,
        weights,
        world_landmarks,
        settings,
        mirror=handedness == "left",
    )
    warm = None if init is None else _warm_state(init, handedness)
    if warm is not None and problem.fixed_shape is not None:
        warm.shape = problem.fixed_shape.copy()
    w = problem.weights
    chain = template_chain()
    points, valid, disparity = _triangulate(problem)
    both = (w[0] > 0) & (w[1] > 0)
    behind = both & (disparity <= 0)
    if both.any() and np.count_nonzero(behind) * 2 > np.count_nonzero(both):
        raise FitError(
            "keypoints expected a positive disparity (u_l - cx_l) - (u_r - cx_r) for most "
            f"joints weighted in both views; got {np.count_nonzero(behind)} of "
            f"{np.count_nonzero(both)} <= 0 (swapped views, or the wrong cx?)"
        )
    if warm is None:
        state = _cold_start(problem, chain, points, valid)
        limits = settings.max_iterations, settings.tolerance
    else:
        state = warm
        limits = settings.max_iterations_warm, settings.tolerance_warm
    if problem.landmarks is not None and settings.world_prior_weight > 0:
        start = _pose_skeleton(chain, state.pose, state.shape, state.rot, state.trans)
        depth = max(float(np.mean(_observed(start.joints, problem.mirror)[:, 2])), _MIN_DEPTH_M)
        gain = settings.world_prior_weight * problem.k_left[0] / depth
        problem = dataclasses.replace(problem, world_gain=gain)
    state, iterations = _levenberg_marquardt(problem, state, chain, *limits)
    cost, errors, _, _ = _evaluate(problem, state, chain, settings.robust_scale_px, False)
    posed = state.posed
    assert posed is not None
    model = template_hand()
    vertices = _skin_vertices(model, chain, state, posed)
    return HandFit(
        pose=state.pose,
        shape=state.shape,
        global_rot=Rotation.from_matrix(state.rot).as_rotvec(),
        trans=state.trans,
        vertices=_observed(vertices, problem.mirror),
        joints=_observed(posed.joints, problem.mirror),
        joint_rotations=_joint_rotations(chain, posed, problem.mirror),
        residuals_px=errors,
        iterations=iterations,
        cost=cost,
        handedness=handedness,
    )
