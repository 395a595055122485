"""Hand masks from skin colour (numpy + OpenCV), and square stereo crop boxes from masks.

The skin detector is the classic chrominance rule (Chai & Ngan 1999: Cr in [133, 173],
Cb in [77, 127] in YCrCb) with a small morphological clean-up and the largest connected
component kept. It is what the adapt command falls back to when a stereo source carries no
hand masks (a bag recorded by a robot). On cluttered, colour-shifted scenes (the synthetic
``target`` domain: orange, wood and face photographs behind the hand) it is poor; sources
that come with hand masks (our synthetic splits, or masks from a segmenter the user trusts)
are used as they are.
"""

from __future__ import annotations

import math

import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.geometry.crop import CropBox

__all__ = ["crop_boxes_from_masks", "skin_mask", "skin_pixels", "stereo_crop_boxes"]

#: YCrCb chrominance bounds of skin (Chai & Ngan 1999), 8-bit.
CR_RANGE = (133, 173)
CB_RANGE = (77, 127)


def skin_pixels(image: np.ndarray, kernel_px: int = 5) -> np.ndarray:
    """The chrominance rule on every pixel, opened with a ``kernel_px`` ellipse.

    Args:
        image: (H, W, 3) uint8 RGB.
        kernel_px: side of the opening's elliptic kernel, pixels.

    Returns:
        (H, W) uint8 mask, 255 where skin-coloured.
    """
    import cv2

    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    raw = cv2.inRange(ycrcb, (0, CR_RANGE[0], CB_RANGE[0]), (255, CR_RANGE[1], CB_RANGE[1]))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_px, kernel_px))
    return cv2.morphologyEx(raw, cv2.MORPH_OPEN, kernel)


def skin_mask(image: np.ndarray, min_area_px: int = 200) -> np.ndarray:
    """Skin-coloured hand mask of an RGB image: the largest skin-coloured component.

    Args:
        image: (H, W, 3) uint8 RGB.
        min_area_px: components smaller than this many pixels are ignored.

    Returns:
        (H, W) bool mask; all False when nothing skin-coloured is large enough.

    Raises:
        ShapeError: when ``image`` is not (H, W, 3) uint8.
    """
    import cv2

    check_shape(image, ("H", "W", 3), "image")
    if image.dtype != np.uint8:
        raise ShapeError(f"image expected dtype uint8; got {image.dtype}")
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    raw = cv2.morphologyEx(skin_pixels(image, 5), cv2.MORPH_CLOSE, kernel)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(raw, connectivity=8)
    if n <= 1:
        return np.zeros(image.shape[:2], dtype=bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = int(np.argmax(areas))
    if areas[best] < min_area_px:
        return np.zeros(image.shape[:2], dtype=bool)
    return labels == best + 1


def stereo_crop_boxes(
    lo_left: np.ndarray,
    hi_left: np.ndarray,
    lo_right: np.ndarray,
    hi_right: np.ndarray,
    out_size: int,
    margin: float = 1.3,
) -> tuple[CropBox, CropBox]:
    """Square crops of equal scale and rows around a hand's extent in both views.

    Both crops share ``y0`` and ``side`` (the pair is rectified: a point lies on the same row
    in both views), so a crop row is the same image row in the two crops; each view's crop is
    centred on its own horizontal extent.

    Args:
        lo_left: (2,) min (u, v) of the hand in the left image, pixels.
        hi_left: (2,) max (u, v) in the left image.
        lo_right: (2,) min (u, v) in the right image.
        hi_right: (2,) max (u, v) in the right image.
        out_size: crop side S, crop pixels.
        margin: crop side over the larger extent (> 1 leaves context around the hand).

    Returns:
        ``(left_box, right_box)``.

    Raises:
        ConfigError: ``margin`` not > 0 or non-finite extents.
    """
    if not (math.isfinite(margin) and margin > 0.0):
        raise ConfigError(f"margin expected a finite value > 0; got {margin}")
    pts = np.stack([lo_left, hi_left, lo_right, hi_right]).astype(np.float64)
    if not np.isfinite(pts).all():
        raise ConfigError(f"hand extents expected finite pixels; got {pts.tolist()}")
    extent = max(float((hi_left - lo_left).max()), float((hi_right - lo_right).max()), 8.0)
    side = margin * extent
    y_mid = (min(lo_left[1], lo_right[1]) + max(hi_left[1], hi_right[1])) / 2.0
    y0 = y_mid - side / 2.0
    x0_l = (lo_left[0] + hi_left[0]) / 2.0 - side / 2.0
    x0_r = (lo_right[0] + hi_right[0]) / 2.0 - side / 2.0
    return CropBox(x0_l, y0, side, out_size), CropBox(x0_r, y0, side, out_size)


def crop_boxes_from_masks(
    mask_left: np.ndarray, mask_right: np.ndarray, out_size: int, margin: float = 1.3
) -> tuple[CropBox, CropBox] | None:
    """:func:`stereo_crop_boxes` around the True pixels of two hand masks.

    Args:
        mask_left: (H, W) bool hand mask of the left image.
        mask_right: (H, W) bool hand mask of the right image.
        out_size: crop side S.
        margin: crop side over the hand's larger extent.

    Returns:
        ``(left_box, right_box)``, or None when either mask is empty.
    """
    extents = []
    for name, mask in (("mask_left", mask_left), ("mask_right", mask_right)):
        check_shape(mask, ("H", "W"), name)
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            return None
        extents.append((np.array([cols[0], rows[0]]), np.array([cols[-1], rows[-1]])))
    (lo_l, hi_l), (lo_r, hi_r) = extents
    return stereo_crop_boxes(lo_l, hi_l, lo_r, hi_r, out_size, margin)
