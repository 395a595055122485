"""The overlay image: the left view with the estimated skeleton drawn on it (numpy, OpenCV).

Used by ``stereo-hand-mesh infer --overlay``, the node's ``hand/overlay`` topic and the demo.
"""

from __future__ import annotations

import cv2
import numpy as np

from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.hand.joints import JOINT_PARENTS
from stereo_hand_mesh.pipeline.estimator import HandEstimate

__all__ = ["draw_overlay"]


def draw_overlay(
    left: np.ndarray,
    rig: StereoRig,
    est: HandEstimate,
    truth: np.ndarray | None = None,
) -> np.ndarray:
    """The left image with the projected joints and skeleton (or the reason for no hand).

    Args:
        left: (H, W, 3) uint8 RGB left image.
        rig: the rectified rig of the pair.
        est: the pipeline's estimate for the pair.
        truth: optional (21, 3) ground-truth joints, metres, left optical frame, drawn in
            white for comparison.

    Returns:
        (H, W, 3) uint8 RGB image (a copy).
    """
    image = np.ascontiguousarray(left.copy())
    if truth is not None:
        _skeleton(image, rig.project_left(np.asarray(truth)), (255, 255, 255), (255, 255, 255))
    if not est.found:
        cv2.putText(image, est.reason, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 64, 64), 2)
        return image
    assert est.joints is not None
    _skeleton(image, rig.project_left(est.joints), (0, 255, 0), (255, 0, 0))
    text = f"confidence {est.confidence:.2f}"
    cv2.putText(image, text, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 2)
    return image


def _skeleton(
    image: np.ndarray, uv: np.ndarray, bone: tuple[int, int, int], joint: tuple[int, int, int]
) -> None:
    """Draw bones and joints of (21, 2) pixel positions onto ``image`` in place."""
    if not np.isfinite(uv).all():
        return
    for j, parent in enumerate(JOINT_PARENTS):
        if parent >= 0:
            a, b = tuple(int(v) for v in uv[j]), tuple(int(v) for v in uv[parent])
            cv2.line(image, a, b, bone, 2, cv2.LINE_AA)
    for p in uv:
        cv2.circle(image, (int(p[0]), int(p[1])), 3, joint, -1, cv2.LINE_AA)
