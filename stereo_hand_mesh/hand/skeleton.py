"""Rest skeleton, joint frames, pose parameters and forward kinematics of the template hand.

Hand frame (right hand, metres): origin at the wrist joint, ``+y`` from the wrist towards the
middle finger's MCP (distal), ``+x`` towards the thumb (radial), ``+z`` out of the palm
(palmar). It is right-handed: a right hand seen palm-up with the fingers pointing up has the
thumb on the right. The rest pose is a flat hand, fingers straight and slightly spread.

Pose parameters (radians, :data:`POSE_PARAM_NAMES`, limits :data:`POSE_LIMITS`); every
digit follows one convention, "flexion towards the palm side, abduction sideways":

- ``<finger>_mcp_flex`` / ``_pip_flex`` / ``_dip_flex``: positive flexion closes the hand;
  the finger bends towards the palm side (``+z`` at rest).
- ``<finger>_mcp_abd``: positive spreads the finger away from the middle finger (index and
  middle towards the thumb, ring and little away from it); at zero flexion the finger
  stays in the palm plane.
- ``<finger>_mcp_twist``: rotation about the proximal phalanx, right-handed about the
  distal direction (small; the MCP's passive axial rotation).
- ``thumb_cmc_flex``: carries the thumb's metacarpal towards the palm side and across the
  front of the palm (opposition path: mostly palmar, partly ulnar, see
  ``_THUMB_CMC_TILT``); ``thumb_mcp_flex`` and ``thumb_ip_flex`` curl the thumb towards
  its pad.
- ``thumb_cmc_abd``, ``thumb_mcp_abd``: positive moves the thumb sideways, away from the
  index finger (opening the first web space); negative closes it.
- ``thumb_cmc_twist``: rotation about the metacarpal; positive pronates the thumb (its pad
  turns towards the fingers, as in opposition).

Each articulated joint ``j`` rotates the bone from ``j`` to its child by
``R_j = R(e_flex, flex) @ R(e_palm, s_a * abd) @ R(e_bone, s_t * twist)`` about the joint
(signs ``s_a``, ``s_t`` = +-1 per joint implement the conventions above), where
``(e_flex, e_bone, e_palm)`` is the joint's right-handed rest frame (:func:`joint_frames`):
flexion about a fixed lateral axis, then abduction about the flexed bone's palmar axis (a
universal joint), then twist.
"""

from __future__ import annotations

import numpy as np

from stereo_hand_mesh._check import check_finite, check_shape
from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.hand.joints import FINGERS, JOINT_NAMES, JOINT_PARENTS, NUM_JOINTS

__all__ = [
    "BONE_JOINTS",
    "BONE_NAMES",
    "BONE_PARENTS",
    "NUM_BONES",
    "NUM_POSE_PARAMS",
    "POSE_LIMITS",
    "POSE_PARAM_NAMES",
    "axis_angle_to_matrix",
    "check_pose_inputs",
    "clip_pose",
    "forward_kinematics",
    "joint_frames",
    "local_rotations",
    "pose_index",
    "rest_joints",
]

# --------------------------------------------------------------------------------------------
# Rest skeleton (default adult right hand, ~0.19 m wrist to middle tip).

#: MCP joint positions (metres) of index..little in the hand frame.
_MCP_POSITIONS: dict[str, tuple[float, float, float]] = {
    "index": (0.0245, 0.0885, 0.0),
    "middle": (0.0, 0.0920, 0.0),
    "ring": (-0.0215, 0.0870, 0.0),
    "little": (-0.0410, 0.0765, 0.0),
}
#: Rest splay of index..little (radians from +y towards +x).
_FINGER_SPLAY: dict[str, float] = {"index": 0.075, "middle": 0.0, "ring": -0.075, "little": -0.17}
#: Proximal, middle, distal phalanx lengths (metres; the distal one ends at the tip surface).
_PHALANX_LENGTHS: dict[str, tuple[float, float, float]] = {
    "index": (0.0410, 0.0250, 0.0225),
    "middle": (0.0460, 0.0280, 0.0240),
    "ring": (0.0430, 0.0270, 0.0235),
    "little": (0.0340, 0.0205, 0.0215),
}
_THUMB_CMC = (0.0190, 0.0215, 0.0080)
#: Thumb bone directions (cmc->mcp, mcp->ip, ip->tip; normalized below) and lengths (metres).
_THUMB_DIRECTIONS = ((0.60, 0.72, 0.26), (0.42, 0.88, 0.14), (0.30, 0.94, 0.06))
_THUMB_LENGTHS = (0.0440, 0.0320, 0.0290)
#: Angle (radians) of the thumb pad between the palm normal and the palm-plane direction
#: towards the fingers; thumb MCP and IP flexion bend the thumb towards its pad.
_THUMB_PAD_ANGLE = 0.9
#: Angle (radians) by which thumb CMC flexion is tilted from the palm plane towards the palm
#: normal, so that flexing carries the thumb across the front of the palm.
_THUMB_CMC_TILT = 1.3


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _finger_direction(finger: str) -> np.ndarray:
    a = _FINGER_SPLAY[finger]
    return np.array([np.sin(a), np.cos(a), 0.0])


def rest_joints() -> np.ndarray:
    """Rest-pose joints of the default template hand.

    Returns:
        (21, 3) joint positions in our order (:data:`~stereo_hand_mesh.hand.joints.JOINT_NAMES`),
        metres, hand frame. Tips lie on the skin surface at the end of each finger.
    """
    j = np.zeros((NUM_JOINTS, 3))
    p = np.array(_THUMB_CMC)
    j[1] = p
    for k, (d, length) in enumerate(zip(_THUMB_DIRECTIONS, _THUMB_LENGTHS, strict=True)):
        p = p + length * _unit(np.array(d, dtype=np.float64))
        j[2 + k] = p
    for f, finger in enumerate(FINGERS[1:]):
        base = 5 + 4 * f
        d = _finger_direction(finger)
        p = np.array(_MCP_POSITIONS[finger])
        j[base] = p
        for k, length in enumerate(_PHALANX_LENGTHS[finger]):
            p = p + length * d
            j[base + 1 + k] = p
    return j


# --------------------------------------------------------------------------------------------
# Bones (skinning parts) and pose parameters.

#: Joints that carry a rotation, one skinning part each: the wrist (the palm, moved by the
#: global rotation) and the 15 finger joints with a child. Tips carry none.
BONE_JOINTS: tuple[int, ...] = (0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19)
BONE_NAMES: tuple[str, ...] = tuple("palm" if j == 0 else JOINT_NAMES[j] for j in BONE_JOINTS)
NUM_BONES = len(BONE_JOINTS)
_BONE_OF_JOINT = {j: b for b, j in enumerate(BONE_JOINTS)}
#: Skinning part of each bone's parent (-1 for the palm).
BONE_PARENTS: tuple[int, ...] = tuple(
    -1 if j == 0 else _BONE_OF_JOINT[JOINT_PARENTS[j]] for j in BONE_JOINTS
)
#: The child joint of each articulated joint (fingers are chains).
_CHILD = {j: j + 1 for j in BONE_JOINTS if j != 0}

_PARAM_SPECS: tuple[tuple[str, float, float], ...] = (
    ("thumb_cmc_flex", -0.25, 0.90),
    ("thumb_cmc_abd", -0.10, 0.70),
    ("thumb_cmc_twist", -0.30, 0.70),
    ("thumb_mcp_flex", -0.20, 1.00),
    ("thumb_mcp_abd", -0.20, 0.20),
    ("thumb_ip_flex", -0.30, 1.30),
    *(
        spec
        for finger, abd in (
            ("index", (-0.12, 0.35)),
            ("middle", (-0.15, 0.20)),
            ("ring", (-0.12, 0.25)),
            ("little", (-0.10, 0.45)),
        )
        for spec in (
            (f"{finger}_mcp_flex", -0.35, 1.50),
            (f"{finger}_mcp_abd", *abd),
            (f"{finger}_mcp_twist", -0.15, 0.15),
            (f"{finger}_pip_flex", -0.05, 1.70),
            (f"{finger}_dip_flex", -0.15, 1.30),
        )
    ),
)
#: Names of the pose parameters, in the order of the pose vector.
POSE_PARAM_NAMES: tuple[str, ...] = tuple(s[0] for s in _PARAM_SPECS)
NUM_POSE_PARAMS = len(POSE_PARAM_NAMES)
#: (2, P) lower and upper anatomical limits (radians) of each pose parameter.
POSE_LIMITS = np.array([[s[1] for s in _PARAM_SPECS], [s[2] for s in _PARAM_SPECS]])
POSE_LIMITS.setflags(write=False)


def pose_index(name: str) -> int:
    """Index of a pose parameter in the pose vector, e.g. ``pose_index("index_pip_flex")``."""
    try:
        return POSE_PARAM_NAMES.index(name)
    except ValueError:
        raise ConfigError(
            f"pose parameter expected one of {', '.join(POSE_PARAM_NAMES)}; got {name!r}"
        ) from None


def _param_or_none(name: str) -> int:
    return POSE_PARAM_NAMES.index(name) if name in POSE_PARAM_NAMES else -1


def _joint_params() -> np.ndarray:
    """(NUM_BONES, 3) pose-vector index of (flex, abd, twist) per bone, -1 where absent."""
    out = -np.ones((NUM_BONES, 3), dtype=np.int64)
    for b, j in enumerate(BONE_JOINTS):
        if j == 0:
            continue
        name = JOINT_NAMES[j]
        out[b] = [_param_or_none(f"{name}_{k}") for k in ("flex", "abd", "twist")]
    return out


def _signs() -> tuple[np.ndarray, np.ndarray]:
    """Per-bone signs of abduction and twist (see the module docstring's conventions).

    In a joint's frame, a positive rotation about ``e_palm`` swings the bone towards
    ``-e_flex``, which is ulnar for fingers (radial for the thumb), so index, middle and the
    thumb flip it; a positive rotation about a thumb's ``e_bone`` supinates, so it flips too.
    """
    abd, twist = np.ones(NUM_BONES), np.ones(NUM_BONES)
    for b, j in enumerate(BONE_JOINTS):
        name = JOINT_NAMES[j]
        if name.startswith(("index", "middle", "thumb")):
            abd[b] = -1.0
        if name.startswith("thumb"):
            twist[b] = -1.0
    return abd, twist


_JOINT_PARAMS = _joint_params()
_ABD_SIGN, _TWIST_SIGN = _signs()


def clip_pose(pose: np.ndarray) -> np.ndarray:
    """Clip pose parameters to their anatomical limits.

    Args:
        pose: (*, P) pose parameters in radians, P = :data:`NUM_POSE_PARAMS`.

    Returns:
        (*, P) float64 copy clipped to :data:`POSE_LIMITS`.
    """
    check_shape(pose, ("*", NUM_POSE_PARAMS), "pose")
    return np.clip(np.asarray(pose, dtype=np.float64), POSE_LIMITS[0], POSE_LIMITS[1])


# --------------------------------------------------------------------------------------------
# Frames and kinematics.


def joint_frames(joints: np.ndarray) -> np.ndarray:
    """Rest frames of the articulated joints.

    Args:
        joints: (21, 3) rest joints (metres, hand frame), e.g. :func:`rest_joints`.

    Returns:
        (NUM_BONES, 3, 3) rotation matrices whose columns are ``(e_flex, e_bone, e_palm)``:
        the flexion axis, the bone direction (towards the child joint) and the direction the
        bone bends to under positive flexion. The palm's frame is the identity.
    """
    z = np.array([0.0, 0.0, 1.0])
    frames = np.tile(np.eye(3), (NUM_BONES, 1, 1))
    for b, j in enumerate(BONE_JOINTS):
        if j == 0:
            continue
        bone = _unit(joints[_CHILD[j]] - joints[j])
        across = _unit(np.cross(z, bone))  # in the palm plane, towards the ulnar side
        name = JOINT_NAMES[j]
        if name == "thumb_cmc":
            tilt = np.cos(_THUMB_CMC_TILT) * across + np.sin(_THUMB_CMC_TILT) * z
            palm = _unit(tilt - np.dot(tilt, bone) * bone)
        elif name.startswith("thumb"):
            pad = np.cos(_THUMB_PAD_ANGLE) * z + np.sin(_THUMB_PAD_ANGLE) * across
            palm = _unit(pad - np.dot(pad, bone) * bone)
        else:
            palm = _unit(z - np.dot(z, bone) * bone)
        flex = np.cross(bone, palm)
        frames[b] = np.stack([flex, bone, palm], axis=1)
    return frames


def axis_angle_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues' formula.

    Args:
        rotvec: (*, 3) axis-angle vectors (radians).

    Returns:
        (*, 3, 3) rotation matrices.
    """
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    axis = rotvec / np.where(angle > 1e-12, angle, 1.0)
    c = np.cos(angle)[..., None]
    s = np.sin(angle)[..., None]
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*axis.shape, 3)
    outer = axis[..., :, None] * axis[..., None, :]
    return c * np.eye(3) + s * k + (1.0 - c) * outer


def _axis_rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(B, 3, 3) rotations by ``angle`` (B,) about a fixed unit ``axis`` (3,)."""
    return axis_angle_to_matrix(angle[:, None] * axis[None, :])


def local_rotations(pose: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Rotation of every articulated joint about itself, in rest hand-frame coordinates.

    Args:
        pose: (B, P) pose parameters (radians).
        frames: (NUM_BONES, 3, 3) rest joint frames from :func:`joint_frames`.

    Returns:
        (B, NUM_BONES, 3, 3) rotations (identity for the palm).
    """
    batch = pose.shape[0]
    out = np.tile(np.eye(3), (batch, NUM_BONES, 1, 1))
    for b in range(1, NUM_BONES):
        i_flex, i_abd, i_twist = _JOINT_PARAMS[b]
        e_flex, e_bone, e_palm = frames[b, :, 0], frames[b, :, 1], frames[b, :, 2]
        rot = out[:, b]
        if i_flex >= 0:
            rot = rot @ _axis_rotation(e_flex, pose[:, i_flex])
        if i_abd >= 0:
            rot = rot @ _axis_rotation(e_palm, _ABD_SIGN[b] * pose[:, i_abd])
        if i_twist >= 0:
            rot = rot @ _axis_rotation(e_bone, _TWIST_SIGN[b] * pose[:, i_twist])
        out[:, b] = rot
    return out


def forward_kinematics(
    joints: np.ndarray,
    pose: np.ndarray,
    frames: np.ndarray,
    global_rot: np.ndarray | None = None,
    trans: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pose the skeleton.

    The global rotation turns the hand about the wrist (the hand-frame origin, where the
    wrist sits in every shape) and the translation then moves the wrist to ``trans``.

    Args:
        joints: (B, 21, 3) rest joints (metres, hand frame), already shaped.
        pose: (B, P) pose parameters (radians).
        frames: (NUM_BONES, 3, 3) rest joint frames.
        global_rot: (B, 3) axis-angle of the whole hand, or None for identity.
        trans: (B, 3) translation (metres), or None for zero.

    Returns:
        transforms: (B, NUM_BONES, 3, 4) rigid transform of each skinning part, mapping
            rest hand-frame points to posed points.
        posed_joints: (B, 21, 3) posed joints (metres).
    """
    batch = pose.shape[0]
    rot_local = local_rotations(pose, frames)
    rot = np.empty((batch, NUM_BONES, 3, 3))
    tr = np.empty((batch, NUM_BONES, 3))
    rot[:, 0] = np.eye(3) if global_rot is None else axis_angle_to_matrix(global_rot)
    tr[:, 0] = 0.0 if trans is None else trans
    tr[:, 0] -= np.einsum("bij,bj->bi", rot[:, 0], joints[:, 0])
    for b in range(1, NUM_BONES):
        parent = BONE_PARENTS[b]
        center = joints[:, BONE_JOINTS[b]]
        rot[:, b] = rot[:, parent] @ rot_local[:, b]
        # p -> R_parent (A (p - c) + c) + t_parent
        tr[:, b] = (
            np.einsum("bij,bj->bi", rot[:, parent], center)
            + tr[:, parent]
            - np.einsum("bij,bj->bi", rot[:, b], center)
        )
    transforms = np.concatenate([rot, tr[..., None]], axis=-1)
    posed = np.empty_like(joints)
    for j in range(NUM_JOINTS):
        b = _BONE_OF_JOINT[j] if j == 0 else _BONE_OF_JOINT[JOINT_PARENTS[j]]
        posed[:, j] = np.einsum("bij,bj->bi", rot[:, b], joints[:, j]) + tr[:, b]
    return transforms, posed


def check_pose_inputs(
    pose: np.ndarray, global_rot: np.ndarray | None, trans: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Validate (B, P) pose, (B, 3) global_rot and (B, 3) trans; return float64 arrays."""
    if not isinstance(pose, np.ndarray):
        raise ShapeError(
            f"pose expected a numpy array of shape (B, {NUM_POSE_PARAMS}); got "
            f"{type(pose).__name__}"
        )
    size = check_shape(pose, ("B", NUM_POSE_PARAMS), "pose")["B"]
    pose = pose.astype(np.float64, copy=False)
    check_finite(pose, "pose")
    out: list[np.ndarray | None] = []
    for arr, name in ((global_rot, "global_rot"), (trans, "trans")):
        if arr is None:
            out.append(None)
            continue
        arr = np.asarray(arr, dtype=np.float64)
        check_shape(arr, (size, 3), name)
        check_finite(arr, name)
        out.append(arr)
    return pose, out[0], out[1]
