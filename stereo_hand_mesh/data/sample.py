"""The in-memory samples every reader returns.

:class:`StereoSample` is one rectified stereo pair with its two camera_info and, when the
source carries it, ground truth; synthetic splits, STB and rosbag2 bags all yield it, so
training, adaptation and evaluation have one input type. :class:`MonoSample` is one
monocular image with its intrinsics (FreiHAND).

Images are RGB ``uint8`` arrays of shape (H, W, 3); masks are ``bool`` arrays of shape
(H, W) (True = hand). Positions are metres in the (left) camera's optical frame; joints are
in our 21-joint order (:data:`stereo_hand_mesh.hand.joints.JOINT_NAMES`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stereo_hand_mesh.geometry.camera_info import CameraInfoFields

__all__ = ["GROUND_TRUTH_FIELDS", "MonoSample", "StereoSample"]

#: Names of the optional ground-truth fields of :class:`StereoSample` (and of the arrays of a
#: synthetic split's ``annotations.npz``).
GROUND_TRUTH_FIELDS: tuple[str, ...] = (
    "joints",
    "vertices",
    "uv_left",
    "uv_right",
    "visibility",
    "vertices_uv_left",
    "vertices_uv_right",
)


@dataclass(frozen=True, eq=False)
class StereoSample:
    """One rectified stereo pair, its camera_info and optional ground truth.

    Attributes:
        left: (H, W, 3) uint8 RGB left image.
        right: (H, W, 3) uint8 RGB right image.
        left_info: camera_info of the left image (``frame_id`` = left optical frame).
        right_info: camera_info of the right image; ``P[0, 3] = -fx * baseline``.
        index: position of the sample in its source (frame number, or pair count in a bag).
        stamp_ns: header stamp of the left image in nanoseconds, or None when the source has
            no time (synthetic splits, STB).
        mask_left: (H, W) bool hand mask of the left image, or None.
        mask_right: (H, W) bool hand mask of the right image, or None.
        joints: (21, 3) float64 joints in metres, left optical frame, our order; or None.
        vertices: (V, 3) float64 mesh vertices in metres, left optical frame; or None.
        uv_left: (21, 2) float64 joint pixel coordinates (u, v) in the left image; or None.
        uv_right: (21, 2) float64 joint pixel coordinates in the right image; or None.
        visibility: (21,) bool, True where a joint is visible in the left image; or None.
        vertices_uv_left: (V, 2) float64 vertex pixel coordinates in the left image; or None.
        vertices_uv_right: (V, 2) float64 vertex pixel coordinates in the right image; or
            None.
        joints_stb_order: (21, 3) float64 joints in metres in STB's order with STB's palm
            center at index 0 (STB only; None elsewhere). ``joints`` holds the same skeleton
            in our order with the wrist extrapolated as ``2 * palm - middle_mcp``.
    """

    left: np.ndarray
    right: np.ndarray
    left_info: CameraInfoFields
    right_info: CameraInfoFields
    index: int
    stamp_ns: int | None = None
    mask_left: np.ndarray | None = None
    mask_right: np.ndarray | None = None
    joints: np.ndarray | None = None
    vertices: np.ndarray | None = None
    uv_left: np.ndarray | None = None
    uv_right: np.ndarray | None = None
    visibility: np.ndarray | None = None
    vertices_uv_left: np.ndarray | None = None
    vertices_uv_right: np.ndarray | None = None
    joints_stb_order: np.ndarray | None = None

    @property
    def has_ground_truth(self) -> bool:
        """True when any ground-truth field (see :data:`GROUND_TRUTH_FIELDS`) is present."""
        return self.joints_stb_order is not None or any(
            getattr(self, name) is not None for name in GROUND_TRUTH_FIELDS
        )

    @property
    def has_masks(self) -> bool:
        """True when both hand masks are present."""
        return self.mask_left is not None and self.mask_right is not None


@dataclass(frozen=True, eq=False)
class MonoSample:
    """One monocular image with intrinsics and optional ground truth (FreiHAND).

    Attributes:
        image: (H, W, 3) uint8 RGB image.
        K: (3, 3) float64 intrinsic matrix, pixels.
        index: index of the image in its split.
        joints: (21, 3) float64 joints in metres in the camera frame, our order; or None.
        vertices: (778, 3) float64 MANO mesh vertices in metres in the camera frame; or None.
        mano: (61,) float64 MANO parameters as stored by FreiHAND (48 pose, 10 shape,
            3 global translation); or None.
        mask: (H, W) bool hand mask; or None.
        scale: FreiHAND's per-sample metric scale (length of a reference bone, metres); or
            None.
    """

    image: np.ndarray
    K: np.ndarray
    index: int
    joints: np.ndarray | None = None
    vertices: np.ndarray | None = None
    mano: np.ndarray | None = None
    mask: np.ndarray | None = None
    scale: float | None = None

    @property
    def has_ground_truth(self) -> bool:
        """True when joints, vertices or MANO parameters are present."""
        return self.joints is not None or self.vertices is not None or self.mano is not None
