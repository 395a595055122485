"""The overlay image: the left view with every estimated hand's skeleton drawn on it (numpy,
OpenCV).

Used by ``stereo-hand-mesh infer --overlay``, the node's ``hand/overlay`` topic and the demo.
Each meshed hand is drawn in the colours of its side (:data:`OVERLAY_COLOURS`) and labelled
``R #<id>`` or ``L #<id>`` with its confidence at its wrist; a pair without a mesh shows why.
"""

from __future__ import annotations

import cv2
import numpy as np

from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.hand.joints import JOINT_PARENTS
from stereo_hand_mesh.pipeline.estimator import HandEstimate, HandsEstimate

__all__ = ["OVERLAY_COLOURS", "draw_overlay", "hand_label"]

#: RGB (bones, joints) per side: a right hand green with red joints, a left hand yellow with
#: blue joints (as the RViz markers); a hand with no side (legacy callers) as a right one.
OVERLAY_COLOURS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "right": ((0, 255, 0), (255, 0, 0)),
    "left": ((255, 220, 0), (40, 90, 255)),
}
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def hand_label(est: HandEstimate) -> str:
    """``"R #0"`` / ``"L #1"``: the hand's side and id (``"hand"`` when it has neither)."""
    if est.handedness not in OVERLAY_COLOURS:
        return "hand"
    return f"{est.handedness[0].upper()} #{est.hand_id}"


def draw_overlay(
    left: np.ndarray,
    rig: StereoRig,
    est: HandsEstimate | HandEstimate,
    truth: np.ndarray | None = None,
) -> np.ndarray:
    """The left image with every meshed hand's projected joints and skeleton (or the reason
    for no mesh).

    Args:
        left: (H, W, 3) uint8 RGB left image.
        rig: the rectified rig of the pair.
        est: the pipeline's estimate for the pair: every hand
            (:meth:`~stereo_hand_mesh.pipeline.estimator.HandMeshPipeline.process_hands`), or
            one (``process``).
        truth: optional (21, 3) or (N, 21, 3) ground-truth joints, metres, left optical
            frame, drawn in white for comparison.

    Returns:
        (H, W, 3) uint8 RGB image (a copy).
    """
    image = np.ascontiguousarray(left.copy())
    if truth is not None:
        for hand in np.asarray(truth).reshape(-1, 21, 3):
            _skeleton(image, rig.project_left(hand), (255, 255, 255), (255, 255, 255))
    if isinstance(est, HandsEstimate):
        hands, reason = est.hands, est.reason
        dropped = [h.reason for h in est.dropped] if est.hands else []
    else:
        hands, reason, dropped = ((est,) if est.found else ()), est.reason, []
    if not hands:
        cv2.putText(image, reason, (10, 24), _FONT, 0.6, (255, 64, 64), 2)
        return image
    lines = []
    for hand in hands:
        if hand.joints is None:
            continue
        bone, joint = OVERLAY_COLOURS.get(hand.handedness, OVERLAY_COLOURS["right"])
        uv = rig.project_left(hand.joints)
        _skeleton(image, uv, bone, joint)
        label = hand_label(hand)
        if np.isfinite(uv[0]).all():
            at = (int(uv[0, 0]) + 6, int(uv[0, 1]) + 18)  # below-right of the wrist
            cv2.putText(image, label, at, _FONT, 0.6, bone, 2)
        lines.append((f"{label} confidence {hand.confidence:.2f}", bone))
    lines += [(f"dropped: {why}", (255, 128, 0)) for why in dropped]
    for row, (text, colour) in enumerate(lines):
        cv2.putText(image, text, (10, 24 + 22 * row), _FONT, 0.6, colour, 2)
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
