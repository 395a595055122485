"""Differentiable twin of the template fit (torch): skeleton, skinning and an unrolled fit.

The chain keypoints -> stereo fit -> mesh must be differentiable for the self-supervised
stereo losses to reach the keypoint network. :mod:`stereo_hand_mesh.pipeline.fit` (numpy)
finds the template hand's parameters robustly (cold start, graduated robust scale, adaptive
stopping); this module refines them with a **fixed** number of Levenberg-Marquardt
iterations written in torch, so that autograd carries gradients from the fitted vertices and
joints back to the keypoints.

- :func:`forward_kinematics_torch`: the lean batched skeleton (same constants as the numpy
  solver, read once from :func:`~stereo_hand_mesh.hand.chain.template_chain`, so that the
  conventions cannot drift), equal to ``HandModel.skin``'s skeleton.
- :func:`skin_hand_torch`: the skinned vertices (shape blend shapes and linear blend
  skinning with the template's weights), equal to ``HandModel.skin``'s vertices.
- :func:`fit_hand_torch`: ``iterations`` unrolled robust Gauss-Newton / Levenberg-Marquardt
  steps from given parameters (in the product the numpy fit's, detached).

The cost is the numpy fit's (its module docstring), with the same :class:`FitSettings`:
robust (Cauchy or Huber) keypoint terms in both views, the optional world-landmark prior,
the pose and shape priors, pose and shape limits (projected steps: a parameter at a limit
that the gradient pushes outwards is held, a step stops a free one at its limit), the global
rotation updated multiplicatively, left hands fitted as mirrored right hands. Each iteration
builds the IRLS-weighted normal equations with the analytic Jacobian, solves the damped
system ``(H + lambda diag(H) + 1e-9 I) delta = -g`` with :func:`torch.linalg.solve` (autograd
differentiates through the solve) and accepts the step per pair only if it lowers the cost;
otherwise it raises that pair's damping and solves again (at most 8 tries, as the numpy
solver). The damping follows Nielsen's rule per pair.

Differences from the numpy solver, all deliberate:

- The robust scale is ``max(robust_scale_px, 1.4826 * median keypoint error)`` from the
  first iteration: the start is a converged fit, so the numpy solver's graduated
  (widening) schedule would only re-admit the outliers it already rejected.
- The robust (IRLS) weights, the robust scale, the accept/reject choices and the damping
  are computed from detached values: they select the computation, gradients flow through
  the selected steps only. At a converged start one step's gradient is then the implicit
  derivative of the weighted least-squares solution, ``d x / d uv = -(H + lambda D)^-1
  d g / d uv``, with the damping ``lambda`` (1e-3 and shrinking) as its only bias.
- No stopping test: every pair runs ``iterations`` iterations (a converged pair's steps are
  tiny); a pair whose 8 tries all fail keeps its parameters and tries again, more damped,
  in the next iteration.
- A step may raise the cost by rounding (1000 epsilon of the dtype, relative): float32
  costs are good to about 1e-5, and a strict decrease made converged float32 pairs spend
  all 8 tries on every iteration. In float64 this is the numpy solver's strict decrease.

Measured (``test/test_model_hand_fit_torch.py``, ``benchmarks/bench_hand_fit_torch.py``):
skeleton and vertices equal ``HandModel.skin``'s to 1e-15 m in float64; from the converged
numpy fit the torch fit stays within 1e-8 m; from starts perturbed by N(0, 0.05 rad) per pose
parameter, N(0, 0.02) per shape factor, 0.03 rad and 5 mm, 3 iterations end 0.003-1.0 mm
(max joint error) from the numpy solution and 20 iterations within 0.3 um; float32 agrees
with float64 within 20 um. A batch of 8 pairs, 3 iterations, on 2 CPU threads (AMD EPYC,
median of 20): forward 9.8 ms (float32) / 10.5 ms (float64), forward and backward 15.9 /
17.8 ms; with the 2 cores shared with other work, runs on 2 threads stall to 0.3-0.8 s
while 1 thread keeps about 18-25 ms.

Shapes: B batch, V vertices, K = ``NUM_BONES`` skinning parts, P = 26 pose and S = 9 shape
parameters, N = P + S + 6 fit parameters.

Examples:
    >>> import torch
    >>> pose, shape = torch.zeros(2, 26), torch.ones(2, 9)
    >>> vertices, joints = skin_hand_torch(pose, shape, torch.zeros(2, 3), torch.zeros(2, 3))
    >>> vertices.shape[0], tuple(joints.shape)
    (2, (2, 21, 3))
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from stereo_hand_mesh._check import check_finite, check_shape
from stereo_hand_mesh.errors import ConfigError, FitError, ShapeError
from stereo_hand_mesh.hand.chain import template_chain
from stereo_hand_mesh.hand.fit_types import FitSettings, HandFit
from stereo_hand_mesh.hand.joints import NUM_JOINTS
from stereo_hand_mesh.hand.model import template_hand
from stereo_hand_mesh.hand.poses import GESTURES
from stereo_hand_mesh.hand.shape import NUM_SHAPE_PARAMS, SHAPE_LIMITS
from stereo_hand_mesh.hand.skeleton import (
    BONE_JOINTS,
    BONE_PARENTS,
    NUM_BONES,
    NUM_POSE_PARAMS,
    POSE_LIMITS,
)

__all__ = [
    "HandParams",
    "fit_hand_torch",
    "forward_kinematics_torch",
    "hand_params_from_fits",
    "skin_hand_torch",
]

_HANDEDNESS: tuple[str, ...] = ("right", "left")
_NUM_PARAMS = NUM_POSE_PARAMS + NUM_SHAPE_PARAMS + 6
_SHAPE0 = NUM_POSE_PARAMS
_ROT0 = NUM_POSE_PARAMS + NUM_SHAPE_PARAMS
_TRANS0 = _ROT0 + 3
#: Nearest depth (metres) a posed joint may take; a step that goes nearer is rejected (as in
#: the numpy fit).
_MIN_DEPTH_M = 0.02
#: Damped solves per iteration at most (the numpy solver's tries).
_MAX_TRIES = 8
#: Relative cost increase, in units of the dtype's epsilon, that a step may make and still be
#: accepted (rounding; float32: 1.2e-4).
_COST_ROUNDING = 1000.0
#: Squared angle (rad^2) below which rotations use their series expansions.
_SMALL_ANGLE2 = 1e-8


@dataclass(frozen=True)
class HandParams:
    """Template hand parameters of a batch (tensors of one dtype and device).

    For a left hand they are those of the right hand whose mirror image (``x -> -x`` in the
    left optical frame) is the observed hand, as in
    :class:`~stereo_hand_mesh.pipeline.fit.HandFit`.

    Attributes:
        pose: (B, P) pose parameters, radians
            (:data:`~stereo_hand_mesh.hand.skeleton.POSE_PARAM_NAMES`).
        shape: (B, S) shape factors (:data:`~stereo_hand_mesh.hand.shape.SHAPE_PARAM_NAMES`).
        global_rot: (B, 3) axis-angle of the hand about the wrist, radians.
        trans: (B, 3) wrist of the (right) template hand, metres, left optical frame.
    """

    pose: Tensor
    shape: Tensor
    global_rot: Tensor
    trans: Tensor

    def detach(self) -> HandParams:
        """The same parameters cut from the autograd graph."""
        return HandParams(
            self.pose.detach(), self.shape.detach(), self.global_rot.detach(), self.trans.detach()
        )


def hand_params_from_fits(
    fits: Sequence[HandFit],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> HandParams:
    """Stack numpy fits' parameters into a :class:`HandParams` (no gradient).

    Args:
        fits: B >= 1 results of :func:`~stereo_hand_mesh.pipeline.fit.fit_hand`.
        dtype: floating dtype of the tensors.
        device: their device (None: the default device).

    Returns:
        :class:`HandParams` of batch B; pass ``[f.handedness for f in fits]`` as
        :func:`fit_hand_torch`'s ``handedness``.

    Raises:
        ConfigError: an empty sequence or an item that is not a HandFit.
    """
    if len(fits) == 0 or not all(isinstance(f, HandFit) for f in fits):
        raise ConfigError(
            f"fits expected a non-empty sequence of HandFit; got "
            f"{[type(f).__name__ for f in fits]}"
        )

    def stacked(name: str) -> Tensor:
        arr = np.stack([np.asarray(getattr(f, name), dtype=np.float64) for f in fits])
        return torch.as_tensor(arr, dtype=dtype, device=device)

    return HandParams(stacked("pose"), stacked("shape"), stacked("global_rot"), stacked("trans"))


# --------------------------------------------------------------------------------------------
# Constants on a device.


@dataclass(frozen=True)
class _TorchChain:
    """:class:`~stereo_hand_mesh.hand.chain.KinematicChain` and the template's skinning data as
    tensors of one dtype and device (plus the index layouts the batched code needs)."""

    rest_joints: Tensor  # (21, 3) metres
    joint_shape_dirs: Tensor  # (S - 1, 63) metres per unit shape factor
    slot_index: Tensor  # (K, 3) long: pose index of each slot, P for an empty one
    slot_axis: Tensor  # (K, 3, 3) [bone, slot] signed unit rest axis
    slot_skew: Tensor  # (K, 3, 3, 3)
    slot_skew2: Tensor  # (K, 3, 3, 3)
    levels: tuple[Tensor, ...]  # long: bones of each depth below the palm
    level_parents: tuple[Tensor, ...]  # long: their parents' positions in the level order
    bone_position: Tensor  # (K,) long: position of each bone in the level order
    parent_or_palm: Tensor  # (K,) long: BONE_PARENTS, 0 for the palm
    param_bone: Tensor  # (P,) long
    param_slot: Tensor  # (P,) long
    param_pivot: Tensor  # (P,) long
    param_descendants: Tensor  # (P, 21) 0/1
    segment_bone: Tensor  # (21,) long
    segment_parent: Tensor  # (21,) long
    path: Tensor  # (21, 21) 0/1
    segment_shape_dirs: Tensor  # (21, 3, S - 1)
    bone_joints: Tensor  # (K,) long
    template_vertices: Tensor  # (V, 3) metres
    shape_dirs: Tensor  # (S - 1, 3 V) metres per unit shape factor
    skin_weights: Tensor  # (V, K)
    lower: Tensor  # (N,) parameter limits (-inf for rotation and translation)
    upper: Tensor  # (N,)
    relaxed: Tensor  # (P,) the pose prior's target


@functools.lru_cache(maxsize=8)
def _torch_chain(device: torch.device, dtype: torch.dtype) -> _TorchChain:
    """The template's constants on ``device`` in ``dtype`` (built once per pair)."""
    chain = template_chain()
    model = template_hand()
    order = np.concatenate([[0], *chain.levels])
    position = np.empty(NUM_BONES, dtype=np.int64)
    position[order] = np.arange(NUM_BONES)
    parents = np.asarray(BONE_PARENTS)

    def real(arr: np.ndarray) -> Tensor:
        return torch.tensor(np.ascontiguousarray(arr), dtype=dtype, device=device)

    def index(arr: np.ndarray) -> Tensor:
        return torch.tensor(np.asarray(arr, dtype=np.int64), device=device)

    inf6 = np.full(6, np.inf)
    # Constants, not parameters: built without autograd so that no graph ever holds them, and
    # outside inference mode so that a first call under it cannot cache inference tensors.
    with torch.inference_mode(False), torch.no_grad():
        return _TorchChain(
            rest_joints=real(chain.rest_joints),
            joint_shape_dirs=real(chain.joint_shape_dirs.reshape(NUM_SHAPE_PARAMS - 1, -1)),
            slot_index=index(np.where(chain.slot_param < 0, NUM_POSE_PARAMS, chain.slot_param)),
            slot_axis=real(chain.slot_axis),
            slot_skew=real(chain.slot_skew),
            slot_skew2=real(chain.slot_skew2),
            levels=tuple(index(level) for level in chain.levels),
            level_parents=tuple(index(position[parents[level]]) for level in chain.levels),
            bone_position=index(position),
            parent_or_palm=index(np.maximum(parents, 0)),
            param_bone=index(chain.param_bone),
            param_slot=index(chain.param_slot),
            param_pivot=index(chain.param_pivot),
            param_descendants=real(chain.param_descendants),
            segment_bone=index(chain.segment_bone),
            segment_parent=index(chain.segment_parent),
            path=real(chain.path),
            segment_shape_dirs=real(chain.segment_shape_dirs),
            bone_joints=index(BONE_JOINTS),
            template_vertices=real(model.template_vertices),
            shape_dirs=real(model.shape_dirs.reshape(NUM_SHAPE_PARAMS - 1, -1)),
            skin_weights=real(model.skin_weights),
            lower=real(np.concatenate([POSE_LIMITS[0], SHAPE_LIMITS[0], -inf6])),
            upper=real(np.concatenate([POSE_LIMITS[1], SHAPE_LIMITS[1], inf6])),
            relaxed=real(np.asarray(GESTURES["relaxed"], dtype=np.float64)),
        )


# --------------------------------------------------------------------------------------------
# Rotations.


def _cross(a: Tensor, b: Tensor) -> Tensor:
    """Broadcast cross product of (*, 3) tensors."""
    a0, a1, a2 = a.unbind(-1)
    b0, b1, b2 = b.unbind(-1)
    return torch.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], dim=-1)


def _skew(v: Tensor) -> Tensor:
    """(*, 3, 3) cross-product matrices of (*, 3) vectors."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).unflatten(-1, (3, 3))


def _rotation_matrices(rotvec: Tensor) -> Tensor:
    """Rodrigues' formula, differentiable at zero: (*, 3) axis-angle (radians) -> (*, 3, 3).

    ``R = I + a K + b K^2`` with ``K = [v]_x``, ``a = sin(t) / t``,
    ``b = (1 - cos(t)) / t^2 = 2 sin(t / 2)^2 / t^2`` (no cancellation in float32), ``t = |v|``
    (series below ``t^2 = 1e-8``).
    """
    t2 = (rotvec * rotvec).sum(-1)
    small = t2 < _SMALL_ANGLE2
    t = torch.sqrt(torch.where(small, torch.ones_like(t2), t2))
    a = torch.where(small, 1.0 - t2 / 6.0, torch.sin(t) / t)
    b = torch.where(small, 0.5 - t2 / 24.0, 2.0 * (torch.sin(0.5 * t) / t) ** 2)
    k = _skew(rotvec)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def _axis_angles(rot: Tensor) -> Tensor:
    """(*, 3, 3) rotations -> (*, 3) axis-angle vectors, angle in [0, pi] (radians).

    Through the unit quaternion (Shepperd's choice of the best-conditioned of its four
    closed forms, then ``angle = 2 atan2(|q_xyz|, q_w)``), so it is accurate and
    differentiable near 0 and near pi alike.
    """
    m = rot
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # Each row is 4 q_k * (w, x, y, z) for k = w, x, y, z.
    candidates = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
            torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
            torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
        ],
        dim=-2,
    )
    best = torch.diagonal(candidates, dim1=-2, dim2=-1).argmax(-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    q = torch.where(q[..., :1] < 0, -q, q)
    w, xyz = q[..., 0], q[..., 1:]
    n2 = (xyz * xyz).sum(-1)
    small = n2 < _SMALL_ANGLE2
    n = torch.sqrt(torch.where(small, torch.ones_like(n2), n2))
    # angle / n = 2 atan2(n, w) / n; near n = 0 (w near 1): 2 / w (1 - n^2 / (3 w^2)).
    factor = torch.where(small, 2.0 / w * (1.0 - n2 / (3.0 * w * w)), 2.0 * torch.atan2(n, w) / n)
    return factor[..., None] * xyz


# --------------------------------------------------------------------------------------------
# Lean forward kinematics, Jacobian and skinning.


@dataclass(frozen=True)
class _Posed:
    """One evaluation of the lean forward kinematics (hand not mirrored)."""

    joints: Tensor  # (B, 21, 3) posed skeleton, metres
    bone_rotations: Tensor  # (B, K, 3, 3) rest -> posed rotation of each bone
    param_axes: Tensor  # (B, P, 3) world axis of each pose parameter's rotation
    rest_joints: Tensor  # (B, 21, 3) shaped rest skeleton, metres, hand frame


def _pose_skeleton(
    c: _TorchChain, pose: Tensor, shape: Tensor, rot: Tensor, trans: Tensor
) -> _Posed:
    """Batched lean forward kinematics (``hand/chain.py``'s recipe).

    Args:
        pose: (B, P) radians. shape: (B, S). rot: (B, 3, 3) global rotation. trans: (B, 3)
            metres.
    """
    batch = pose.shape[0]
    # Empty slots (index P) read the 0 appended to the pose.
    padded = torch.cat([pose, pose.new_zeros(batch, 1)], dim=1)
    angles = padded[:, c.slot_index][..., None, None]  # (B, K, 3, 1, 1)
    eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
    slot_rot = eye + torch.sin(angles) * c.slot_skew + (1.0 - torch.cos(angles)) * c.slot_skew2
    first = slot_rot[:, :, 0]
    first_two = first @ slot_rot[:, :, 1]
    local = first_two @ slot_rot[:, :, 2]
    # Bone rotations level by level from the palm, concatenated in level order.
    ordered = rot[:, None]
    for level, parents in zip(c.levels, c.level_parents, strict=True):
        ordered = torch.cat([ordered, ordered[:, parents] @ local[:, level]], dim=1)
    bone_rot = ordered[:, c.bone_position]
    # World axis of slot k of bone b: R_parent @ (slots before k) @ axis.
    axes = torch.stack(
        [
            c.slot_axis[:, 0].expand(batch, -1, -1),
            (first @ c.slot_axis[:, 1, :, None])[..., 0],
            (first_two @ c.slot_axis[:, 2, :, None])[..., 0],
        ],
        dim=-1,
    )  # (B, K, 3 xyz, 3 slots)
    axes = (bone_rot[:, c.parent_or_palm] @ axes).transpose(-1, -2)
    offsets = (shape[:, 1:] - 1.0) @ c.joint_shape_dirs
    rest = shape[:, :1, None] * (c.rest_joints + offsets.reshape(batch, NUM_JOINTS, 3))
    segments = rest - rest[:, c.segment_parent]
    posed_segments = (bone_rot[:, c.segment_bone] @ segments[..., None])[..., 0]
    joints = trans[:, None] + c.path @ posed_segments
    return _Posed(joints, bone_rot, axes[:, c.param_bone, c.param_slot], rest)


def _joint_jacobian(c: _TorchChain, posed: _Posed, shape: Tensor, trans: Tensor) -> Tensor:
    """(B, N, 21, 3) derivatives of the posed joints (metres) w.r.t. the N fit parameters.

    Parameters: pose (P, radians), shape (S), a left-multiplied rotation increment (3,
    radians) and the translation (3, metres), as the numpy solver's ``_joint_jacobian``.
    """
    x = posed.joints
    batch = x.shape[0]
    lever = x[:, None] - x[:, c.param_pivot][:, :, None]  # (B, P, 21, 3)
    d_pose = _cross(posed.param_axes[:, :, None], lever) * c.param_descendants[..., None]
    rel = x - trans[:, None]  # (B, 21, 3)
    d_scale = (rel / shape[:, :1, None])[:, None]
    rotated = posed.bone_rotations[:, c.segment_bone] @ c.segment_shape_dirs  # (B, 21, 3, S-1)
    summed = (c.path @ rotated.reshape(batch, NUM_JOINTS, -1)).reshape(rotated.shape)
    d_shape = shape[:, 0, None, None, None] * summed.permute(0, 3, 1, 2)
    eye = torch.eye(3, dtype=x.dtype, device=x.device)
    d_rot = _cross(eye[None, :, None], rel[:, None])  # (B, 3, 21, 3)
    d_trans = eye[:, None].expand(batch, 3, NUM_JOINTS, 3)
    return torch.cat([d_pose, d_scale, d_shape, d_rot, d_trans], dim=1)


def _skin(c: _TorchChain, posed: _Posed, shape: Tensor) -> Tensor:
    """(B, V, 3) skinned vertices (hand not mirrored): shape blend shapes, then linear blend
    skinning of the template's weights with the posed bones' rigid transforms."""
    batch = shape.shape[0]
    beta = shape[:, 1:] - 1.0
    rest = shape[:, :1, None] * (c.template_vertices + (beta @ c.shape_dirs).reshape(batch, -1, 3))
    rot = posed.bone_rotations
    centres = posed.rest_joints[:, c.bone_joints]
    moved = posed.joints[:, c.bone_joints] - (rot @ centres[..., None])[..., 0]
    transforms = torch.cat([rot, moved[..., None]], dim=-1).reshape(batch, NUM_BONES, 12)
    blended = (c.skin_weights @ transforms).reshape(batch, -1, 3, 4)
    return (blended[..., :3] @ rest[..., None])[..., 0] + blended[..., 3]


# --------------------------------------------------------------------------------------------
# Input checks.


def _checked(
    value: object, spec: tuple[int | str | None, ...], name: str, like: Tensor | None
) -> Tensor:
    """A floating tensor of shape ``spec`` (and ``like``'s dtype and device), finite."""
    if not isinstance(value, Tensor):
        raise ShapeError(f"{name} expected a torch tensor; got {type(value).__name__}")
    check_shape(value, spec, name)
    if not value.is_floating_point():
        raise ShapeError(f"{name} expected a floating dtype; got {value.dtype}")
    if like is not None and (value.dtype != like.dtype or value.device != like.device):
        raise ShapeError(
            f"{name} expected dtype {like.dtype} on {like.device}; "
            f"got {value.dtype} on {value.device}"
        )
    check_finite(value, name)
    return value


def _checked_params(
    pose: Tensor, shape: Tensor, global_rot: Tensor, trans: Tensor, prefix: str = ""
) -> int:
    """Validate a batch of parameters; returns B."""
    _checked(pose, ("B", NUM_POSE_PARAMS), f"{prefix}pose", None)
    batch = pose.shape[0]
    _checked(shape, (batch, NUM_SHAPE_PARAMS), f"{prefix}shape", pose)
    _checked(global_rot, (batch, 3), f"{prefix}global_rot", pose)
    _checked(trans, (batch, 3), f"{prefix}trans", pose)
    if batch == 0:
        raise ShapeError(f"{prefix}pose expected a batch B >= 1; got shape {tuple(pose.shape)}")
    return batch


def forward_kinematics_torch(
    pose: Tensor, shape: Tensor, global_rot: Tensor, trans: Tensor
) -> tuple[Tensor, Tensor]:
    """Pose the template's kinematic skeleton (differentiable in every argument).

    Same result as :func:`~stereo_hand_mesh.hand.skeleton.forward_kinematics` on
    ``HandModel.shaped_rest``'s skeleton (``template_hand().skin(...)[1]``).

    Args:
        pose: (B, P) pose parameters, radians (used as given, not clipped).
        shape: (B, S) shape factors.
        global_rot: (B, 3) axis-angle rotation of the hand about the wrist, radians.
        trans: (B, 3) wrist position, metres.

    Returns:
        joints (B, 21, 3) metres (``JOINT_NAMES`` order) and bone_rotations (B, K, 3, 3),
        the rest -> posed rotation of each skinning part (``BONE_NAMES`` order).

    Raises:
        ShapeError: wrong shapes, mixed dtypes or devices, non-floating or non-finite values.
    """
    _checked_params(pose, shape, global_rot, trans)
    c = _torch_chain(pose.device, pose.dtype)
    posed = _pose_skeleton(c, pose, shape, _rotation_matrices(global_rot), trans)
    return posed.joints, posed.bone_rotations


def skin_hand_torch(
    pose: Tensor, shape: Tensor, global_rot: Tensor, trans: Tensor
) -> tuple[Tensor, Tensor]:
    """Skinned vertices and skeleton joints of the template hand, torch twin of
    :meth:`~stereo_hand_mesh.hand.model.HandModel.skin`.

    Args:
        pose, shape, global_rot, trans: as :func:`forward_kinematics_torch`.

    Returns:
        vertices (B, V, 3) and joints (B, 21, 3), metres (hand frame moved by ``global_rot``
        and ``trans``; a right hand).

    Raises:
        ShapeError: as :func:`forward_kinematics_torch`.
    """
    _checked_params(pose, shape, global_rot, trans)
    c = _torch_chain(pose.device, pose.dtype)
    posed = _pose_skeleton(c, pose, shape, _rotation_matrices(global_rot), trans)
    return _skin(c, posed, shape), posed.joints


# --------------------------------------------------------------------------------------------
# The unrolled solver.


@dataclass(frozen=True)
class _Problem:
    """Everything the cost needs besides the parameters (batched)."""

    uv: Tensor  # (B, 2, 21, 2) keypoints, pixels
    weights: Tensor  # (B, 2, 21)
    used: Tensor  # (B, 2, 21) bool
    focal: Tensor  # (B, 2, 2) [fx, fy] of the left and the right view
    centre: Tensor  # (B, 2, 2) [cx, cy]
    camera_offset: Tensor  # (B, 2, 2) [x, y] of each view's camera, metres
    mirror: Tensor  # (B, 3) (-1, 1, 1) for a left hand, ones for a right one
    prior_weight: Tensor  # (P + S,) pixels per unit (0 for the overall scale)
    prior_target: Tensor  # (P + S,)
    fixed: Tensor  # (N,) bool: parameters held at their start (a fixed shape)
    landmarks: Tensor | None  # (B, 21, 3) centred world landmarks, metres
    world_gain: Tensor | None  # (B,) pixels per metre of the world prior
    settings: FitSettings


@dataclass(frozen=True)
class _State:
    pose: Tensor  # (B, P)
    shape: Tensor  # (B, S)
    rot: Tensor  # (B, 3, 3)
    trans: Tensor  # (B, 3)


@dataclass(frozen=True)
class _Evaluation:
    cost: Tensor  # (B,) detached, pixels squared; inf where a joint is too near
    errors: Tensor  # (B, 2, 21) detached keypoint errors, pixels
    scale: Tensor  # (B,) robust scale the cost and the IRLS weights used, pixels
    hess: Tensor | None  # (B, N, N)
    grad: Tensor | None  # (B, N)


def _robust(errors: Tensor, scale: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """Robust loss ``rho(e)`` and IRLS weight ``rho'(e) / e`` of (B, 2, 21) residual norms
    (pixels) at a (B,) scale."""
    s = scale[:, None, None]
    if loss == "cauchy":
        ratio = (errors / s) ** 2
        return 0.5 * s * s * torch.log1p(ratio), 1.0 / (1.0 + ratio)
    inside = errors <= s
    rho = torch.where(inside, 0.5 * errors * errors, s * (errors - 0.5 * s))
    tiny = torch.finfo(errors.dtype).tiny
    return rho, torch.where(inside, torch.ones_like(errors), s / errors.clamp_min(tiny))


def _robust_scale(problem: _Problem, errors: Tensor) -> Tensor:
    """(B,) robust scale: the setting, or 1.4826 * the (upper) median used error if larger."""
    flat = torch.where(problem.used, errors, torch.inf).flatten(1)
    ordered = flat.sort(dim=1).values
    middle = problem.used.flatten(1).sum(1) // 2
    median = ordered.gather(1, middle[:, None])[:, 0]
    return (1.4826 * median).clamp_min(problem.settings.robust_scale_px)


def _evaluate(
    c: _TorchChain, problem: _Problem, state: _State, scale: Tensor | None, want_jacobian: bool
) -> _Evaluation:
    """Cost of ``state`` and, on request, its IRLS-weighted normal equations ``H``, ``g``.

    ``scale`` None: the robust scale of ``state``'s own errors (:func:`_robust_scale`).
    """
    s = problem.settings
    posed = _pose_skeleton(c, state.pose, state.shape, state.rot, state.trans)
    x = posed.joints * problem.mirror[:, None]
    inv_z = 1.0 / x[..., 2]  # (B, 21)
    lateral = x[:, None, :, :2] - problem.camera_offset[:, :, None]  # (B, 2, 21, 2)
    gain = problem.focal[:, :, None] * inv_z[:, None, :, None]  # (B, 2, 21, 2) px per metre
    diff = gain * lateral + problem.centre[:, :, None] - problem.uv
    with torch.no_grad():
        errors = torch.linalg.vector_norm(diff, dim=-1)
        if scale is None:
            scale = _robust_scale(problem, errors)
        rho, irls = _robust(errors, scale, s.robust_loss)
        cost = (problem.weights * rho).flatten(1).sum(1)
    params = torch.cat([state.pose, state.shape], dim=1)
    prior_res = problem.prior_weight * (params - problem.prior_target)
    world_res = None
    if problem.landmarks is not None and problem.world_gain is not None:
        lm = problem.landmarks
        centred = x - x.mean(dim=1, keepdim=True)
        fit_scale = ((centred * lm).sum((1, 2)) / (lm * lm).sum((1, 2))).clamp(0.5, 2.0)
        world_res = problem.world_gain[:, None] * (
            centred - fit_scale[:, None, None] * lm
        ).flatten(1)
    with torch.no_grad():
        cost = cost + 0.5 * (prior_res * prior_res).sum(1)
        if world_res is not None:
            cost = cost + 0.5 * (world_res * world_res).sum(1)
        cost = torch.where((x[..., 2] < _MIN_DEPTH_M).any(1), torch.inf, cost)
    if not want_jacobian:
        return _Evaluation(cost, errors, scale, None, None)
    batch = x.shape[0]
    jac = _joint_jacobian(c, posed, state.shape, state.trans) * problem.mirror[:, None, None]
    dz = jac[:, :, None, :, 2:] * inv_z[:, None, None, :, None]  # (B, N, 1, 21, 1)
    duv = gain[:, None] * (jac[:, :, None, :, :2] - lateral[:, None] * dz)  # (B, N, 2, 21, 2)
    w = (problem.weights * irls)[:, None, :, :, None]
    flat = duv.reshape(batch, _NUM_PARAMS, -1)
    wflat = (duv * w).reshape(batch, _NUM_PARAMS, -1)
    hess = wflat @ flat.transpose(1, 2)
    grad = (wflat @ diff.reshape(batch, -1, 1))[..., 0]
    if world_res is not None:
        assert problem.world_gain is not None
        centred_jac = jac - jac.mean(dim=2, keepdim=True)
        world_jac = (problem.world_gain[:, None, None, None] * centred_jac).flatten(2)
        hess = hess + world_jac @ world_jac.transpose(1, 2)
        grad = grad + (world_jac @ world_res[..., None])[..., 0]
    prior_diag = torch.cat([problem.prior_weight**2, problem.prior_weight.new_zeros(6)])
    hess = hess + torch.diag(prior_diag)
    grad = grad + torch.cat([problem.prior_weight * prior_res, prior_res.new_zeros(batch, 6)], 1)
    return _Evaluation(cost, errors, scale, hess, grad)


def _bounded_step(
    c: _TorchChain, lhs: Tensor, grad: Tensor, state: _State, fixed: Tensor
) -> Tensor:
    """(B, N) damped Gauss-Newton steps ``lhs @ delta = -grad`` that respect the limits.

    The numpy solver's projected step, batched: parameters in (N,) ``fixed`` (a fixed shape)
    never move; parameters at a limit that the gradient
    pushes outwards are held (their rows become identities, their columns move to the
    right-hand side); a step that would take a free parameter past its limit stops it there
    and holds it, and the others are solved again (four solves at most). The held sets are
    chosen on detached values.
    """
    batch = grad.shape[0]
    x = torch.cat([state.pose, state.shape, grad.new_zeros(batch, 6)], dim=1)
    lo, hi = c.lower, c.upper
    with torch.no_grad():
        xd, gd = x.detach(), grad.detach()
        held = fixed | ((xd <= lo + 1e-12) & (gd > 0)) | ((xd >= hi - 1e-12) & (gd < 0))
    delta = torch.zeros_like(grad)
    eye = torch.eye(_NUM_PARAMS, dtype=grad.dtype, device=grad.device)
    for _ in range(4):
        if held.any():
            pinned = torch.where(held, delta, 0.0)
            system = torch.where(held[:, :, None] | held[:, None, :], 0.0, lhs)
            system = system + eye * held[:, None, :]
            rhs = torch.where(held, delta, -grad - (lhs @ pinned[..., None])[..., 0])
        else:
            system, rhs = lhs, -grad
        delta = torch.linalg.solve(system, rhs)
        with torch.no_grad():
            moved = x.detach() + delta.detach()
            over = ((moved < lo) | (moved > hi)) & ~held
        if not over.any():
            break
        delta = torch.where(over, torch.maximum(torch.minimum(x + delta, hi), lo) - x, delta)
        held = held | over
    return delta


def _step(c: _TorchChain, state: _State, delta: Tensor) -> _State:
    """Apply (B, N) increments, clipping pose and shape to their limits."""
    return _State(
        pose=torch.clamp(state.pose + delta[:, :_SHAPE0], c.lower[:_SHAPE0], c.upper[:_SHAPE0]),
        shape=torch.clamp(
            state.shape + delta[:, _SHAPE0:_ROT0], c.lower[_SHAPE0:_ROT0], c.upper[_SHAPE0:_ROT0]
        ),
        rot=_rotation_matrices(delta[:, _ROT0:_TRANS0]) @ state.rot,
        trans=state.trans + delta[:, _TRANS0:],
    )


def _select(take: Tensor, new: _State, old: _State) -> _State:
    """Per pair: ``new`` where (B,) ``take``, else ``old``."""
    t1, t2 = take[:, None], take[:, None, None]
    return _State(
        pose=torch.where(t1, new.pose, old.pose),
        shape=torch.where(t1, new.shape, old.shape),
        rot=torch.where(t2, new.rot, old.rot),
        trans=torch.where(t1, new.trans, old.trans),
    )


def _levenberg_marquardt(
    c: _TorchChain, problem: _Problem, state: _State, iterations: int
) -> _State:
    """``iterations`` robust (IRLS) Levenberg-Marquardt iterations, unrolled (module doc)."""
    batch = state.pose.shape[0]
    damping = state.pose.new_full((batch,), problem.settings.initial_damping)
    growth = state.pose.new_full((batch,), 2.0)
    # A step is accepted unless it raises the cost by more than rounding (float32 costs are
    # only good to about 1e-5 relative; float64 keeps the numpy solver's strict decrease).
    tolerance = _COST_ROUNDING * torch.finfo(state.pose.dtype).eps
    tiny = torch.finfo(state.pose.dtype).tiny
    for _ in range(iterations):
        ev = _evaluate(c, problem, state, None, True)
        assert ev.hess is not None and ev.grad is not None
        diag = torch.diagonal(ev.hess, dim1=1, dim2=2)
        pending = torch.isfinite(ev.cost)
        result = state
        for _ in range(_MAX_TRIES):
            lhs = ev.hess + torch.diag_embed(damping[:, None] * diag + 1e-9)
            delta = _bounded_step(c, lhs, ev.grad, state, problem.fixed)
            trial = _step(c, state, delta)
            with torch.no_grad():
                trial_cost = _evaluate(c, problem, trial, ev.scale, False).cost
                d, g, h = delta.detach(), ev.grad.detach(), ev.hess.detach()
                predicted = -((g * d).sum(1) + 0.5 * (d * (h @ d[..., None])[..., 0]).sum(1))
                ratio = (ev.cost - trial_cost) / predicted.clamp_min(tiny)
                accepted = pending & (trial_cost < ev.cost + tolerance * ev.cost)
                # Nielsen's damping update from the gain ratio; growth on a rejection.
                shrink = (1.0 - (2.0 * ratio.clamp(0.0, 1.0) - 1.0) ** 3).clamp_min(1.0 / 3.0)
                damping = torch.where(
                    accepted, damping * shrink, torch.where(pending, damping * growth, damping)
                )
                growth = torch.where(
                    accepted,
                    torch.full_like(growth, 2.0),
                    torch.where(pending, growth * 2, growth),
                )
            result = _select(accepted, trial, result)
            pending = pending & ~accepted
            if not pending.any():
                break
        state = result
    return state


def _mirror_signs(handedness: str | Sequence[str], batch: int, like: Tensor) -> Tensor:
    """(B, 3) x-signs of the observed hands: (-1, 1, 1) for a left hand."""
    names = [handedness] * batch if isinstance(handedness, str) else list(handedness)
    if len(names) != batch or any(h not in _HANDEDNESS for h in names):
        raise ConfigError(
            f"handedness expected one of {_HANDEDNESS} or a sequence of {batch} of them; "
            f"got {handedness!r}"
        )
    signs = like.new_ones(batch, 3)
    signs[:, 0] = like.new_tensor([-1.0 if h == "left" else 1.0 for h in names])
    return signs


def fit_hand_torch(
    uv_left: Tensor,
    uv_right: Tensor,
    k_left: Tensor,
    k_right: Tensor,
    baseline_m: Tensor,
    weights: Tensor,
    init: HandParams,
    iterations: int = 3,
    settings: FitSettings | None = None,
    handedness: str | Sequence[str] = "right",
    world_landmarks: Tensor | None = None,
) -> tuple[Tensor, Tensor, HandParams]:
    """Refine template fits with unrolled, differentiable Levenberg-Marquardt iterations.

    Minimizes the numpy fit's cost (:mod:`stereo_hand_mesh.pipeline.fit`) from ``init``
    with ``iterations`` iterations (module docstring). Gradients flow to every tensor
    argument, the keypoints ``uv_left`` and ``uv_right`` above all.

    Args:
        uv_left: (B, 21, 2) keypoints in the left rectified image, pixels, ``JOINT_NAMES``
            order.
        uv_right: (B, 21, 2) the same joints in the right rectified image, pixels.
        k_left: (B, 4) left intrinsics ``[fx, fy, cx, cy]``, pixels.
        k_right: (B, 4) right intrinsics, pixels.
        baseline_m: (B,) baselines, metres (> 0); the right camera sits at ``(+B, 0, 0)`` in
            the left optical frame.
        weights: (B, 2, 21) weight of each keypoint in the left (row 0) and right (row 1)
            view, in [0, 1], at least one > 0 per pair; 0 ignores the keypoint.
        init: start parameters (e.g. :func:`hand_params_from_fits` of the numpy fits,
            detached), every joint at least 2 cm in front of the left camera.
        iterations: Levenberg-Marquardt iterations (>= 1); 3 refine a converged fit.
        settings: the numpy fit's settings (None: defaults); its robust loss and scale,
            prior weights, initial damping and ``fixed_shape`` (which replaces ``init``'s
            shape and is held) are used (iteration counts, tolerances and
            ``min_disparity_px`` are the numpy solver's own).
        handedness: ``"right"``, ``"left"``, or a sequence of B of them (a left hand is
            fitted as a mirrored right hand).
        world_landmarks: (B, 21, 3) the network's root-relative landmarks, metres, axes of
            the left optical frame (only their centred shape is used, up to scale), or None
            (no world prior). The prior's gain is set from ``init``'s depth.

    Returns:
        vertices (B, V, 3) and joints (B, 21, 3) in the left optical frame, metres (mirrored
        for a left hand; joints are the kinematic skeleton's, as
        :attr:`~stereo_hand_mesh.pipeline.fit.HandFit.joints`), and the fitted
        :class:`HandParams` (pose and shape within their limits).

    Raises:
        ShapeError: wrong shapes, mixed dtypes or devices, non-finite values, weights outside
            [0, 1], landmarks without a hand-sized spread.
        ConfigError: bad iterations, settings, handedness or intrinsics, a baseline <= 0, a
            pair with all weights 0.
        FitError: ``init`` puts a joint nearer than 2 cm to (or behind) the left camera.

    Examples:
        >>> import numpy as np
        >>> from stereo_hand_mesh.pipeline.fit import fit_hand
        >>> k = np.array([822.8, 822.8, 318.5, 250.3])
        >>> joints = forward_kinematics_torch(
        ...     torch.zeros(1, 26, dtype=torch.float64), torch.ones(1, 9, dtype=torch.float64),
        ...     torch.zeros(1, 3, dtype=torch.float64),
        ...     torch.tensor([[0.0, 0.0, 0.6]], dtype=torch.float64))[0][0].numpy()
        >>> uv_l = joints[:, :2] / joints[:, 2:] * 822.8 + k[2:]
        >>> uv_r = (joints[:, :2] - [0.12, 0.0]) / joints[:, 2:] * 822.8 + k[2:]
        >>> fit = fit_hand(uv_l, uv_r, k, k, 0.12, np.ones((2, 21)))
        >>> t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))[None]
        >>> uv = t(uv_l).requires_grad_()
        >>> vertices, fitted, params = fit_hand_torch(
        ...     uv, t(uv_r), t(k), t(k), t(0.12), t(np.ones((2, 21))),
        ...     hand_params_from_fits([fit], torch.float64))
        >>> fitted[0, 8, 2].backward()
        >>> bool(torch.isfinite(uv.grad).all() and uv.grad.abs().max() > 0)
        True
    """
    settings = FitSettings() if settings is None else settings
    if not isinstance(settings, FitSettings):
        raise ConfigError(
            f"settings expected a FitSettings or None; got {type(settings).__name__}"
        )
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigError(f"iterations expected an integer >= 1; got {iterations!r}")
    if not isinstance(init, HandParams):
        raise ConfigError(f"init expected a HandParams; got {type(init).__name__}")
    uv_l = _checked(uv_left, ("B", NUM_JOINTS, 2), "uv_left", None)
    batch = uv_l.shape[0]
    if batch == 0:
        raise ShapeError(f"uv_left expected a batch B >= 1; got shape {tuple(uv_l.shape)}")
    uv_r = _checked(uv_right, (batch, NUM_JOINTS, 2), "uv_right", uv_l)
    kl = _checked(k_left, (batch, 4), "k_left", uv_l)
    kr = _checked(k_right, (batch, 4), "k_right", uv_l)
    base = _checked(baseline_m, (batch,), "baseline_m", uv_l)
    w = _checked(weights, (batch, 2, NUM_JOINTS), "weights", uv_l)
    _checked(init.pose, (batch, NUM_POSE_PARAMS), "init.pose", uv_l)
    _checked_params(init.pose, init.shape, init.global_rot, init.trans, "init.")
    with torch.no_grad():
        for k, name in ((kl, "k_left"), (kr, "k_right")):
            if not bool((k[:, :2] > 0).all()):
                raise ConfigError(f"{name} expected fx > 0 and fy > 0 pixels; got {k[:, :2]}")
        if not bool((base > 0).all()):
            raise ConfigError(f"baseline_m expected values > 0 metres; got {base}")
        if not bool(((w >= 0) & (w <= 1)).all()):
            raise ShapeError(f"weights expected values in [0, 1]; got {w.min()}..{w.max()}")
        if not bool((w > 0).flatten(1).any(1).all()):
            raise ConfigError(
                "weights expected at least one keypoint with weight > 0 per pair; got all 0 in "
                f"pairs {torch.nonzero(~(w > 0).flatten(1).any(1))[:, 0].tolist()}"
            )
    mirror = _mirror_signs(handedness, batch, uv_l)
    c = _torch_chain(uv_l.device, uv_l.dtype)
    pose_prior = uv_l.new_full((NUM_POSE_PARAMS,), settings.pose_prior_weight)
    shape_prior = uv_l.new_full((NUM_SHAPE_PARAMS,), settings.shape_prior_weight)
    shape_prior[0] = 0.0  # the overall scale gets no prior: the stereo pair measures it
    zeros = torch.zeros_like(base)
    fixed = torch.zeros(_NUM_PARAMS, dtype=torch.bool, device=uv_l.device)
    init_shape = init.shape
    if settings.fixed_shape is not None:
        # The fit holds the calibrated shape: every pair starts there and never steps it.
        fixed[_SHAPE0:_ROT0] = True
        init_shape = uv_l.new_tensor(settings.fixed_shape).expand(batch, -1)
    problem = _Problem(
        uv=torch.stack([uv_l, uv_r], dim=1),
        weights=w,
        used=w > 0,
        focal=torch.stack([kl[:, :2], kr[:, :2]], dim=1),
        centre=torch.stack([kl[:, 2:], kr[:, 2:]], dim=1),
        camera_offset=torch.stack(
            [torch.stack([zeros, zeros], 1), torch.stack([base, zeros], 1)], dim=1
        ),
        mirror=mirror,
        prior_weight=torch.cat([pose_prior, shape_prior]),
        prior_target=torch.cat([c.relaxed, torch.ones_like(shape_prior)]),
        fixed=fixed,
        landmarks=None,
        world_gain=None,
        settings=settings,
    )
    state = _State(
        pose=torch.clamp(init.pose, c.lower[:_SHAPE0], c.upper[:_SHAPE0]),
        shape=torch.clamp(init_shape, c.lower[_SHAPE0:_ROT0], c.upper[_SHAPE0:_ROT0]),
        rot=_rotation_matrices(init.global_rot),
        trans=init.trans,
    )
    with torch.no_grad():
        start = _pose_skeleton(c, state.pose, state.shape, state.rot, state.trans)
        depth = start.joints[..., 2]
        if bool((depth < _MIN_DEPTH_M).any()):
            pairs = torch.nonzero((depth < _MIN_DEPTH_M).any(1))[:, 0].tolist()
            raise FitError(
                f"init expected every joint in front of the cameras (z >= {_MIN_DEPTH_M} m); "
                f"got a joint nearer in pairs {pairs}"
            )
    if world_landmarks is not None:
        lm = _checked(world_landmarks, (batch, NUM_JOINTS, 3), "world_landmarks", uv_l)
        lm = lm - lm.mean(dim=1, keepdim=True)
        with torch.no_grad():
            spread = torch.sqrt((lm * lm).sum(-1).mean(-1))
            if bool((spread < 1e-3).any()):
                raise ShapeError(
                    "world_landmarks expected a hand-sized spread (RMS >= 1 mm about their "
                    f"mean); got {spread.min().item() * 1e3:.3g} mm"
                )
            gain = settings.world_prior_weight * kl[:, 0] / depth.mean(1).clamp_min(_MIN_DEPTH_M)
        if settings.world_prior_weight > 0:
            problem = dataclasses.replace(problem, landmarks=lm, world_gain=gain)
    state = _levenberg_marquardt(c, problem, state, iterations)
    posed = _pose_skeleton(c, state.pose, state.shape, state.rot, state.trans)
    vertices = _skin(c, posed, state.shape) * mirror[:, None]
    joints = posed.joints * mirror[:, None]
    params = HandParams(state.pose, state.shape, _axis_angles(state.rot), state.trans)
    return vertices, joints, params
