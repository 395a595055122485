"""Hand locator in both views of a rectified pair (numpy + OpenCV).

Candidates in the left view come, in this order of preference, from an external region of
interest, from the previous estimate (tracking: its projected vertices), or from skin colour
(:func:`skin_components`). Each candidate's right-view box is found by stereo: the left box's
patch is matched along the same rows of the right image (normalized cross-correlation of grey
levels at a reduced scale), which gives its disparity. Among skin candidates the **nearest**
(largest disparity) wins: the hand is in front of the body and the face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.geometry.crop import CropBox
from stereo_hand_mesh.pipeline.skin import CB_RANGE, CR_RANGE

__all__ = ["LocatorSettings", "StereoBoxes", "locate_hand", "match_right_box", "skin_components"]


@dataclass(frozen=True)
class LocatorSettings:
    """Settings of :func:`locate_hand`.

    Attributes:
        out_size: crop side S of the network, pixels.
        margin: crop side over the hand's extent.
        min_area_px: smallest skin component considered, pixels of the full image.
        max_candidates: skin components tried (largest first).
        max_disparity_px: largest disparity searched, image pixels (a hand at 0.2 m on a
            Bumblebee2 is ~490 px).
        match_side_px: side of the patch used for stereo matching (reduced scale), pixels.
        min_match_score: smallest normalized cross-correlation accepted for a match.
    """

    out_size: int = 128
    margin: float = 1.3
    min_area_px: int = 400
    max_candidates: int = 4
    max_disparity_px: float = 500.0
    match_side_px: int = 48
    min_match_score: float = 0.3

    def __post_init__(self) -> None:
        if not (math.isfinite(self.margin) and self.margin > 0):
            raise ConfigError(f"LocatorSettings.margin expected > 0; got {self.margin}")
        if self.max_candidates < 1 or self.match_side_px < 8:
            raise ConfigError(
                "LocatorSettings.max_candidates expected >= 1 and match_side_px >= 8; got "
                f"{self.max_candidates}, {self.match_side_px}"
            )


@dataclass(frozen=True)
class StereoBoxes:
    """Crop boxes of one hand in both views (same rows and scale).

    Attributes:
        left: box in the left image.
        right: box in the right image.
        disparity_px: the matched disparity of the box centre, image pixels.
        score: match score in [-1, 1] (1 for boxes from tracking or ground truth).
        source: ``"roi"``, ``"tracking"`` or ``"skin"``.
    """

    left: CropBox
    right: CropBox
    disparity_px: float
    score: float
    source: str


def skin_components(image: np.ndarray, min_area_px: int) -> list[tuple[np.ndarray, int]]:
    """Skin-coloured connected components, largest first.

    Args:
        image: (H, W, 3) uint8 RGB.
        min_area_px: smallest area kept.

    Returns:
        List of ``(bbox, area)`` with bbox ``[x0, y0, x1, y1]`` (inclusive pixels).
    """
    import cv2

    check_shape(image, ("H", "W", 3), "image")
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    raw = cv2.inRange(ycrcb, (0, CR_RANGE[0], CB_RANGE[0]), (255, CR_RANGE[1], CB_RANGE[1]))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    raw = cv2.morphologyEx(raw, cv2.MORPH_OPEN, kernel)
    n, _, stats, _ = cv2.connectedComponentsWithStats(raw, connectivity=8)
    out = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area >= min_area_px:
            out.append((np.array([x, y, x + w - 1, y + h - 1]), area))
    out.sort(key=lambda item: -item[1])
    return out


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def match_right_box(
    grey_left: np.ndarray,
    grey_right: np.ndarray,
    box: CropBox,
    settings: LocatorSettings,
    disparity_hint: float | None = None,
) -> tuple[CropBox, float, float] | None:
    """Find the right-view box of a left-view box by matching along the same rows.

    Args:
        grey_left: (H, W) uint8 left image.
        grey_right: (H, W) uint8 right image.
        box: the left box.
        settings: search range and patch size.
        disparity_hint: search only within +-25% of this disparity (tracking).

    Returns:
        ``(right_box, disparity_px, score)`` or None when nothing matches well enough.
    """
    import cv2

    h, w = grey_left.shape
    scale = settings.match_side_px / box.side
    inner = 1.0 / settings.margin  # match the hand, not the margin around it
    side = box.side * inner
    x0, y0 = box.x0 + (box.side - side) / 2, box.y0 + (box.side - side) / 2
    r0, r1 = max(round(y0), 0), min(round(y0 + side), h)
    c0, c1 = max(round(x0), 0), min(round(x0 + side), w)
    if r1 - r0 < 8 or c1 - c0 < 8:
        return None
    lo_d, hi_d = 0.0, settings.max_disparity_px
    if disparity_hint is not None and disparity_hint > 0:
        lo_d, hi_d = 0.75 * disparity_hint, 1.25 * disparity_hint + 4.0
    s0 = max(math.floor(c0 - hi_d), 0)
    s1 = min(math.ceil(c1 - lo_d), w)
    if s1 - s0 < c1 - c0:
        return None
    dsize = lambda a, b: (max(round(a * scale), 1), max(round(b * scale), 1))  # noqa: E731
    patch = cv2.resize(
        grey_left[r0:r1, c0:c1], dsize(c1 - c0, r1 - r0), interpolation=cv2.INTER_AREA
    )
    strip = cv2.resize(
        grey_right[r0:r1, s0:s1], dsize(s1 - s0, r1 - r0), interpolation=cv2.INTER_AREA
    )
    if strip.shape[1] < patch.shape[1] or strip.shape[0] < patch.shape[0]:
        return None
    scores = cv2.matchTemplate(strip, patch, cv2.TM_CCOEFF_NORMED)[0]
    if not np.isfinite(scores).any():
        return None
    best = int(np.nanargmax(scores))
    score = float(scores[best])
    if score < settings.min_match_score:
        return None
    # Sub-pixel peak (parabola through the neighbours), then back to image pixels.
    offset = float(best)
    if 0 < best < len(scores) - 1:
        a, b, c = scores[best - 1], scores[best], scores[best + 1]
        denom = a - 2 * b + c
        if denom < 0:
            offset += 0.5 * (a - c) / denom
    x_right = s0 + offset / scale
    disparity = c0 - x_right
    if disparity <= 0:
        return None
    right = CropBox(box.x0 - disparity, box.y0, box.side, box.out_size)
    return right, float(disparity), score


def locate_hand(
    left: np.ndarray,
    right: np.ndarray,
    settings: LocatorSettings,
    previous_uv_left: np.ndarray | None = None,
    previous_disparity_px: float | None = None,
    roi: tuple[float, float, float] | None = None,
) -> StereoBoxes | None:
    """Crop boxes of the hand in both views, or None when no hand is found.

    Args:
        left: (H, W, 3) uint8 RGB left rectified image.
        right: (H, W, 3) uint8 RGB right rectified image (same size).
        settings: the locator's settings.
        previous_uv_left: (V, 2) the previous estimate's vertices in the left image
            (tracking), or None.
        previous_disparity_px: the previous estimate's median disparity (narrows the search).
        roi: optional external region ``(x0, y0, side)`` in left image pixels.

    Raises:
        ShapeError: images of different sizes or not RGB uint8.
    """
    for name, image in (("left", left), ("right", right)):
        check_shape(image, ("H", "W", 3), name)
        if image.dtype != np.uint8:
            raise ShapeError(f"{name} image expected dtype uint8; got {image.dtype}")
    if left.shape != right.shape:
        raise ShapeError(
            f"right image expected shape {left.shape} (the left's); got {right.shape}"
        )
    gl, gr = _grey(left), _grey(right)
    size = settings.out_size

    def boxes_around(x0: float, y0: float, x1: float, y1: float) -> CropBox:
        side = settings.margin * max(x1 - x0, y1 - y0, 8.0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return CropBox(cx - side / 2, cy - side / 2, side, size)

    if roi is not None:
        box = CropBox(float(roi[0]), float(roi[1]), float(roi[2]), size)
        found = match_right_box(gl, gr, box, settings)
        if found is None:
            return None
        return StereoBoxes(box, found[0], found[1], found[2], "roi")
    if previous_uv_left is not None:
        lo, hi = previous_uv_left.min(0), previous_uv_left.max(0)
        box = boxes_around(lo[0], lo[1], hi[0], hi[1])
        found = match_right_box(gl, gr, box, settings, previous_disparity_px)
        if found is not None:
            return StereoBoxes(box, found[0], found[1], found[2], "tracking")
    best: StereoBoxes | None = None
    for bbox, _ in skin_components(left, settings.min_area_px)[: settings.max_candidates]:
        box = boxes_around(*(float(v) for v in bbox))
        found = match_right_box(gl, gr, box, settings)
        if found is None:
            continue
        if best is None or found[1] > best.disparity_px:
            best = StereoBoxes(box, found[0], found[1], found[2], "skin")
    return best
