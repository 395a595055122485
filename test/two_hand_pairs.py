"""Two-hand stereo pairs composed from the synthetic renders (right hands), for the tests of
issue 18.

A second render seen in a mirror is a left hand. Mirroring a rectified pair swaps its
cameras: the flipped right view is the mirrored rig's left view and the flipped left view its
right view (``cx -> W - 1 - cx``, same baseline ``B``), so a point ``(x, y, z)`` of the
original left optical frame is at ``(B - x + (W - 1 - 2 cx) z / fx, y, z)`` in the rig of the
base pair (the last term: the mirrored rig's principal point moved back to the base's). The
mirrored hand's pixels are pasted by its masks into both views of the base pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stereo_hand_mesh.data.sample import StereoSample


@dataclass(frozen=True)
class TwoHands:
    """A composed pair.

    Attributes:
        sample: both hands (images and the base pair's camera_info).
        truth: side -> (21, 3) true joints, metres, left optical frame.
        right_only: the base render alone: its right hand only.
        left_in_one_view: the left hand pasted into the left view only (the right view is
            the base's): a hand seen in one view.
    """

    sample: StereoSample
    truth: dict[str, np.ndarray]
    right_only: StereoSample
    left_in_one_view: StereoSample


def two_hands(base: StereoSample, other: StereoSample) -> TwoHands:
    """``base``'s right hand plus ``other``'s hand seen in a mirror (a left hand), pasted into
    both views (module docstring). ``other`` may be ``base`` itself.

    Raises:
        ValueError: the two hands overlap in a view (pick other renders).
    """
    info = base.left_info
    fx, cx, width = info.K[0, 0], info.K[0, 2], base.left.shape[1]
    baseline = -base.right_info.P[0, 3] / base.right_info.P[0, 0]
    mirrored_left, mirrored_right = other.right[:, ::-1], other.left[:, ::-1]
    mask_left, mask_right = other.mask_right[:, ::-1], other.mask_left[:, ::-1]
    if (mask_left & base.mask_left).any() or (mask_right & base.mask_right).any():
        raise ValueError("the two hands overlap: pick another pair of renders")
    left = np.ascontiguousarray(np.where(mask_left[..., None], mirrored_left, base.left))
    right = np.ascontiguousarray(np.where(mask_right[..., None], mirrored_right, base.right))
    joints = np.asarray(other.joints, dtype=np.float64)
    left_truth = joints.copy()
    left_truth[:, 0] = baseline - joints[:, 0] + (width - 1 - 2 * cx) * joints[:, 2] / fx

    def sample(left_image: np.ndarray, right_image: np.ndarray) -> StereoSample:
        return StereoSample(left_image, right_image, info, base.right_info, index=base.index)

    return TwoHands(
        sample(left, right),
        {"right": np.asarray(base.joints, dtype=np.float64), "left": left_truth},
        base,
        sample(left, np.ascontiguousarray(base.right)),
    )
