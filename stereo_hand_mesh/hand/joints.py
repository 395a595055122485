"""The 21-joint skeleton and joint-order maps between conventions.

Our order (also FreiHAND's and the usual MANO-with-tips order)::

    0 wrist
    1 thumb_cmc   2 thumb_mcp   3 thumb_ip    4 thumb_tip
    5 index_mcp   6 index_pip   7 index_dip   8 index_tip
    9 middle_mcp 10 middle_pip 11 middle_dip 12 middle_tip
   13 ring_mcp   14 ring_pip   15 ring_dip   16 ring_tip
   17 little_mcp 18 little_pip 19 little_dip 20 little_tip

Maps are index arrays ``m`` such that ``joints_ours = joints_other[..., m, :]``.

STB (Stereo Hand Pose Tracking Benchmark) uses: palm center, then little, ring, middle,
index, thumb, each as mcp, pip, dip, tip (DESIGN.md). STB has a palm center where we have a
wrist; :func:`palm_center` gives the palm center of a skeleton in our order (the midpoint of
wrist and middle_mcp, the convention used in STB evaluations), and
:func:`stb_to_ours` fills our wrist by extrapolating ``2 * palm - middle_mcp``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "FINGERS",
    "JOINT_NAMES",
    "JOINT_PARENTS",
    "MANO16_TIPS_TO_OURS",
    "MANO_TIP_VERTEX_IDS",
    "NUM_JOINTS",
    "OURS_TO_STB",
    "STB_JOINT_NAMES",
    "STB_TO_OURS",
    "WRIST",
    "joints_ours_from_stb",
    "palm_center",
    "palm_frame",
    "stb_from_ours",
]

FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "little")

JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc",
    "thumb_mcp",
    "thumb_ip",
    "thumb_tip",
    *(f"{f}_{p}" for f in FINGERS[1:] for p in ("mcp", "pip", "dip", "tip")),
)
NUM_JOINTS = len(JOINT_NAMES)
WRIST = 0

#: Parent of each joint in our order (-1 for the root).
JOINT_PARENTS: tuple[int, ...] = (
    -1,
    0, 1, 2, 3,
    0, 5, 6, 7,
    0, 9, 10, 11,
    0, 13, 14, 15,
    0, 17, 18, 19,
)  # fmt: skip

#: MANO's own 16-joint regressor order is wrist, index1-3, middle1-3, little1-3, ring1-3,
#: thumb1-3; the five fingertips are appended as vertices of the MANO mesh in the order
#: thumb, index, middle, ring, little (the usual choice of tip vertices below).
MANO_TIP_VERTEX_IDS: tuple[int, ...] = (745, 317, 444, 556, 673)

#: Index map from MANO's 16 regressed joints + 5 tips (21 rows) to our order.
MANO16_TIPS_TO_OURS = np.array(
    [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20], dtype=np.int64
)

STB_JOINT_NAMES: tuple[str, ...] = (
    "palm_center",
    *(
        f"{f}_{p}"
        for f in ("little", "ring", "middle", "index")
        for p in ("mcp", "pip", "dip", "tip")
    ),
    "thumb_mcp_stb",
    "thumb_pip_stb",
    "thumb_dip_stb",
    "thumb_tip_stb",
)

#: ``stb[..., OURS_TO_STB[i], :]`` is STB joint i taken from a skeleton in our order, where
#: STB's palm center (index 0) must be computed with :func:`palm_center` instead (the map
#: holds our wrist there as a placeholder). STB's four thumb joints map onto our
#: thumb_cmc, thumb_mcp, thumb_ip, thumb_tip (proximal to distal).
OURS_TO_STB = np.array(
    [0, 17, 18, 19, 20, 13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4], dtype=np.int64
)

#: Inverse permutation: ``ours[..., i, :] = stb[..., STB_TO_OURS[i], :]`` (wrist slot gets the
#: palm center; use :func:`joints_ours_from_stb` for a proper wrist).
STB_TO_OURS = np.argsort(OURS_TO_STB)

_MIDDLE_MCP = JOINT_NAMES.index("middle_mcp")


def palm_center(joints: np.ndarray) -> np.ndarray:
    """Palm center of skeletons in our order.

    Args:
        joints: (*, 21, 3) joints in our order, any unit.

    Returns:
        (*, 3) midpoint of wrist and middle_mcp, same unit.
    """
    return 0.5 * (joints[..., WRIST, :] + joints[..., _MIDDLE_MCP, :])


def stb_from_ours(joints: np.ndarray) -> np.ndarray:
    """Reorder (*, 21, 3) joints from our order to STB's, with the palm center at index 0."""
    out = np.array(joints[..., OURS_TO_STB, :], copy=True)
    out[..., 0, :] = palm_center(joints)
    return out


def joints_ours_from_stb(joints_stb: np.ndarray) -> np.ndarray:
    """Reorder (*, 21, 3) STB joints into our order; the wrist is ``2 * palm - middle_mcp``."""
    out = np.array(joints_stb[..., STB_TO_OURS, :], copy=True)
    out[..., WRIST, :] = 2.0 * joints_stb[..., 0, :] - out[..., _MIDDLE_MCP, :]
    return out


_INDEX_MCP = JOINT_NAMES.index("index_mcp")
_LITTLE_MCP = JOINT_NAMES.index("little_mcp")


def palm_frame(joints: np.ndarray, handedness: str = "right") -> tuple[np.ndarray, np.ndarray]:
    """The palm (grasp) frame of one skeleton.

    Origin: :func:`palm_center`. Axes (columns of the rotation, a right-handed frame):

    * y: from the wrist toward middle_mcp (along the fingers);
    * z: the palm normal, pointing out of the palmar side (where a grasped object sits),
      made orthogonal to y;
    * x: ``y x z``, which points toward the thumb side for a right hand and toward the little
      finger for a left hand.

    Args:
        joints: (21, 3) joints in our order, metres (any unit).
        handedness: ``"right"`` or ``"left"`` (the palmar side of a left hand is mirrored).

    Returns:
        (origin (3,), rotation (3, 3)) with ``rotation[:, k]`` the k-th axis in the joints'
        frame.

    Raises:
        ValueError: ``joints`` is not (21, 3), handedness is unknown, or the palm is
            degenerate (coincident joints).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape != (NUM_JOINTS, 3):
        raise ValueError(f"joints expected shape ({NUM_JOINTS}, 3); got {joints.shape}")
    if handedness not in ("right", "left"):
        raise ValueError(f"handedness expected 'right' or 'left'; got {handedness!r}")
    y = joints[_MIDDLE_MCP] - joints[WRIST]
    across = joints[_INDEX_MCP] - joints[_LITTLE_MCP]
    normal = np.cross(across, y) if handedness == "right" else np.cross(y, across)
    ny, nn = np.linalg.norm(y), np.linalg.norm(normal)
    if not (ny > 1e-9 and nn > 1e-12):
        raise ValueError("palm frame expected distinct wrist, index, middle and little joints")
    y = y / ny
    z = normal - y * float(normal @ y)
    z /= np.linalg.norm(z)
    x = np.cross(y, z)
    return palm_center(joints), np.stack([x, y, z], axis=1)
