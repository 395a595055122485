"""Constants of the template's kinematic chain in the layout lean solvers use (numpy only).

The template fit (:mod:`stereo_hand_mesh.pipeline.fit`, numpy) and its differentiable twin
(:mod:`stereo_hand_mesh.model.hand_fit_torch`, torch) pose the kinematic skeleton with their
own lean forward kinematics. Both read the conventions (rest frames, the bone, axis and sign
of every pose parameter, the composition order flex -> abd -> twist) from this one builder,
which measures them on :func:`~stereo_hand_mesh.hand.skeleton.local_rotations` itself, so
neither solver keeps a copy of them that could drift.

Lean forward kinematics with these constants (B batch omitted)::

    slot_rot[b, k] = I + sin(a) slot_skew[b, k] + (1 - cos(a)) slot_skew2[b, k],
                     a = pose[slot_param[b, k]] (0 for an empty slot, -1)
    local[b] = slot_rot[b, 0] @ slot_rot[b, 1] @ slot_rot[b, 2]
    R[0] = global rotation;  R[b] = R[BONE_PARENTS[b]] @ local[b]  (level by level)
    rest = shape[0] * (rest_joints + sum_k (shape[k + 1] - 1) joint_shape_dirs[k])
    joints = trans + path @ (R[segment_bone] @ (rest - rest[segment_parent]))
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.hand.joints import JOINT_NAMES, JOINT_PARENTS, NUM_JOINTS
from stereo_hand_mesh.hand.model import HandModel, template_hand
from stereo_hand_mesh.hand.skeleton import (
    BONE_JOINTS,
    BONE_PARENTS,
    NUM_BONES,
    NUM_POSE_PARAMS,
    POSE_PARAM_NAMES,
    local_rotations,
)

__all__ = ["KinematicChain", "cross_product_matrices", "kinematic_chain", "template_chain"]


@dataclass(frozen=True)
class KinematicChain:
    """Constants of a hand model's kinematic chain in the lean solvers' layout.

    Bones are the skeleton's skinning parts (``BONE_JOINTS``); every bone has three rotation
    slots applied in the skeleton's order (flex, abd, twist), each bound to a pose parameter
    or empty (-1). Segment ``j`` (j >= 1) is the bone vector from ``JOINT_PARENTS[j]`` to j.
    Every array is read-only. K = ``NUM_BONES``, P pose and S shape parameters.

    Attributes:
        rest_joints: (21, 3) default rest skeleton, metres, hand frame.
        joint_shape_dirs: (S - 1, 21, 3) metres per unit shape factor.
        frames: (K, 3, 3) rest frames, columns (e_flex, e_bone, e_palm).
        slot_param: (K, 3) int pose index per slot, -1 if empty.
        slot_axis: (K, 3, 3) signed unit rest axis of each slot (``[b, k]`` is slot k's).
        slot_skew: (K, 3, 3, 3) cross-product matrix of each slot's axis.
        slot_skew2: (K, 3, 3, 3) its square.
        levels: bones grouped by depth below the palm (int arrays, palm excluded).
        param_bone: (P,) bone of each pose parameter.
        param_slot: (P,) slot of each pose parameter.
        param_pivot: (P,) joint it rotates about.
        param_descendants: (P, 21) float 0/1: joint moves with the parameter.
        segment_bone: (21,) bone whose rotation carries segment j (0 for j = 0).
        segment_parent: (21,) joint segment j starts at (``JOINT_PARENTS``, 0 for the wrist).
        path: (21, 21) float 0/1: segment i lies on the chain from the wrist to joint j
            (``path[j, i]``).
        segment_shape_dirs: (21, 3, S - 1) shape directions of the segments.
        frame_bone: (21,) bone whose rotation orients joint j's frame.
        frame_child: (21,) joint that joint j's frame x axis points to (from frame_bone's
            joint).
    """

    rest_joints: np.ndarray
    joint_shape_dirs: np.ndarray
    frames: np.ndarray
    slot_param: np.ndarray
    slot_axis: np.ndarray
    slot_skew: np.ndarray
    slot_skew2: np.ndarray
    levels: tuple[np.ndarray, ...]
    param_bone: np.ndarray
    param_slot: np.ndarray
    param_pivot: np.ndarray
    param_descendants: np.ndarray
    segment_bone: np.ndarray
    segment_parent: np.ndarray
    path: np.ndarray
    segment_shape_dirs: np.ndarray
    frame_bone: np.ndarray
    frame_child: np.ndarray


def cross_product_matrices(v: np.ndarray) -> np.ndarray:
    """(*, 3, 3) cross-product matrices ``[v]_x`` of (*, 3) vectors (``[v]_x u = v x u``)."""
    out = np.zeros((*v.shape, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def kinematic_chain(model: HandModel) -> KinematicChain:
    """Read the kinematic conventions of ``model`` into the solvers' layout.

    The bone and signed rest axis of every pose parameter are measured on
    :func:`~stereo_hand_mesh.hand.skeleton.local_rotations` itself (one parameter at a time),
    so the solvers use the skeleton's axes and signs, not a copy of them.

    Raises:
        ConfigError: a pose parameter that rotates no bone or more than one.
    """
    frames = model.joint_frames
    angle = 0.5
    probe = local_rotations(angle * np.eye(NUM_POSE_PARAMS), frames)  # (P, K, 3, 3)
    slot_param = -np.ones((NUM_BONES, 3), dtype=np.int64)
    slot_axis = np.zeros((NUM_BONES, 3, 3))
    slot_axis[:, :, 0] = 1.0
    param_bone = np.empty(NUM_POSE_PARAMS, dtype=np.int64)
    param_slot = np.empty(NUM_POSE_PARAMS, dtype=np.int64)
    for p, name in enumerate(POSE_PARAM_NAMES):
        moved = np.abs(probe[p] - np.eye(3)).sum(axis=(1, 2))
        b = int(np.argmax(moved))
        if np.count_nonzero(moved > 1e-12) != 1:
            raise ConfigError(
                f"pose parameter {name} expected to rotate one bone of the skeleton; got "
                f"{np.count_nonzero(moved > 1e-12)}"
            )
        rot = probe[p, b]
        axis = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
        slot = ("flex", "abd", "twist").index(name.rsplit("_", 1)[1])
        slot_param[b, slot] = p
        slot_axis[b, slot] = axis / (2.0 * math.sin(angle))
        param_bone[p], param_slot[p] = b, slot
    bone_of_joint = {j: b for b, j in enumerate(BONE_JOINTS)}
    depth = np.zeros(NUM_BONES, dtype=np.int64)
    for b in range(1, NUM_BONES):
        depth[b] = depth[BONE_PARENTS[b]] + 1
    levels = tuple(np.nonzero(depth == d)[0] for d in range(1, int(depth.max()) + 1))
    ancestors: list[set[int]] = [set() for _ in range(NUM_JOINTS)]
    for j in range(1, NUM_JOINTS):
        ancestors[j] = {JOINT_PARENTS[j], *ancestors[JOINT_PARENTS[j]]}
    pivot = np.array([BONE_JOINTS[b] for b in param_bone])
    descendants = np.array([[float(c in ancestors[j]) for j in range(NUM_JOINTS)] for c in pivot])
    segment_bone = np.zeros(NUM_JOINTS, dtype=np.int64)
    path = np.zeros((NUM_JOINTS, NUM_JOINTS))
    for j in range(1, NUM_JOINTS):
        segment_bone[j] = bone_of_joint[JOINT_PARENTS[j]]
        for i in (j, *ancestors[j]):
            if i != 0:
                path[j, i] = 1.0
    parents = np.array([max(p, 0) for p in JOINT_PARENTS])
    dirs = model.joint_shape_dirs
    frame_bone = np.array(
        [bone_of_joint.get(j, bone_of_joint.get(JOINT_PARENTS[j], 0)) for j in range(NUM_JOINTS)]
    )
    frame_child = np.array(
        [JOINT_NAMES.index("middle_mcp") if b == 0 else BONE_JOINTS[b] + 1 for b in frame_bone]
    )
    skew = cross_product_matrices(slot_axis)
    chain = KinematicChain(
        rest_joints=np.asarray(model.rest_joints),
        joint_shape_dirs=np.asarray(dirs),
        frames=np.asarray(frames),
        slot_param=slot_param,
        slot_axis=slot_axis,
        slot_skew=skew,
        slot_skew2=skew @ skew,
        levels=levels,
        param_bone=param_bone,
        param_slot=param_slot,
        param_pivot=pivot,
        param_descendants=descendants,
        segment_bone=segment_bone,
        segment_parent=parents,
        path=path,
        segment_shape_dirs=np.ascontiguousarray((dirs - dirs[:, parents]).transpose(1, 2, 0)),
        frame_bone=frame_bone,
        frame_child=frame_child,
    )
    for value in (*vars(chain).values(), *levels):
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return chain


@functools.lru_cache(maxsize=1)
def template_chain() -> KinematicChain:
    """The process-wide chain of :func:`~stereo_hand_mesh.hand.model.template_hand`."""
    return kinematic_chain(template_hand())
