"""Hand locator in both views of a rectified pair (numpy + OpenCV).

Candidates in the left view come, in this order of preference, from an external region of
interest, from the previous estimate (tracking: its projected vertices), or, at a cold start,
from skin colour and stereo on a coarse grid (the images downscaled by ``coarse_factor``):

- Skin-coloured components (:func:`~stereo_hand_mesh.pipeline.skin.skin_pixels`). Where
  skin colour is selective (it covers less than ``stereo_min_skin_share`` of the image)
  each component's right-view box is found by matching it along the same rows of the right
  image (normalized cross-correlation of grey levels at a reduced scale,
  :func:`match_right_box`), and the **nearest** (largest disparity) wins: the hand is in
  front of the body and the face.
- Where skin colour also fires on the background (warm light, wood, faces, clutter), a coarse
  disparity map (:func:`coarse_disparity`, semi-global matching) adds the nearest coherent
  region, cut to its skin pixels, as a candidate, and every candidate is ranked by the median
  coarse disparity of its pixels: near and skin-coloured wins. The winner's disparity is then
  refined by matching only its pixels within +-25% of the coarse value.

``benchmarks/bench_locator.py`` measures both regimes against ground truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.geometry.crop import CropBox
from stereo_hand_mesh.pipeline.skin import skin_pixels

__all__ = [
    "LocatorSettings",
    "StereoBoxes",
    "box_iou",
    "locate_hand",
    "match_right_box",
    "square_box_around",
]


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
        min_tracking_score: smallest match score that keeps tracking (the previous box on a
            hand that moved, or on the background, matches poorly; a cold start follows).
        stereo_candidates: also propose the nearest coherent region of a coarse disparity
            map (:func:`coarse_disparity`) and rank every candidate by its coarse
            disparity (finds the hand where the skin rule also fires on the background).
        coarse_factor: the coarse disparity map's and skin mask's downscale factor.
        coarse_max_disparity_px: largest disparity of the coarse map, image pixels, capped
            at ``max_disparity_px`` (384 px
            is a hand at 0.26 m on a Bumblebee2; nearer hands are found by skin alone).
        near_band: a near region holds the pixels whose coarse disparity is at least this
            fraction of the scene's near disparity (98th percentile of the map).
        min_skin_fraction: a near region is a candidate only when at least this fraction
            of its pixels is skin-coloured (a near grey object is not a hand).
        stereo_min_skin_share: the coarse disparity map is computed only when skin-coloured
            pixels cover at least this share of the image (skin colour is then ambiguous;
            below it the skin components are matched one by one, which is cheaper).
        stereo_extent_growth: the near region's extent is grown by this factor about its
            centre (matching on the coarse grid loses thin fingers, so the region is smaller
            than the hand; 1.2 was chosen on a development split, see bench_locator.py).
    """

    out_size: int = 128
    margin: float = 1.3
    min_area_px: int = 400
    max_candidates: int = 4
    max_disparity_px: float = 500.0
    match_side_px: int = 48
    min_match_score: float = 0.3
    min_tracking_score: float = 0.5
    stereo_candidates: bool = True
    coarse_factor: int = 4
    coarse_max_disparity_px: float = 384.0
    near_band: float = 0.8
    min_skin_fraction: float = 0.3
    stereo_min_skin_share: float = 0.25
    stereo_extent_growth: float = 1.2

    def __post_init__(self) -> None:
        if not (math.isfinite(self.stereo_extent_growth) and self.stereo_extent_growth >= 1.0):
            raise ConfigError(
                "LocatorSettings.stereo_extent_growth expected a finite value >= 1; got "
                f"{self.stereo_extent_growth}"
            )
        if self.coarse_factor < 1 or not (0.0 < self.near_band <= 1.0):
            raise ConfigError(
                "LocatorSettings.coarse_factor expected >= 1 and near_band in (0, 1]; got "
                f"{self.coarse_factor}, {self.near_band}"
            )
        if not (self.coarse_max_disparity_px >= 16.0 and self.max_disparity_px >= 8.0):
            raise ConfigError(
                "LocatorSettings expected coarse_max_disparity_px >= 16 and max_disparity_px "
                f">= 8; got {self.coarse_max_disparity_px}, {self.max_disparity_px}"
            )
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


def square_box_around(lo: np.ndarray, hi: np.ndarray, settings: LocatorSettings) -> CropBox:
    """The square crop box the locator puts around an extent.

    Args:
        lo: (2,) min (u, v) of the hand, image pixels.
        hi: (2,) max (u, v), image pixels.
        settings: ``margin`` (side over the larger extent) and ``out_size``.

    Returns:
        A box centred on the extent with side ``margin * max(extent, 8 px)``.
    """
    side = settings.margin * max(float(hi[0] - lo[0]), float(hi[1] - lo[1]), 8.0)
    cx, cy = (float(lo[0]) + float(hi[0])) / 2, (float(lo[1]) + float(hi[1])) / 2
    return CropBox(cx - side / 2, cy - side / 2, side, settings.out_size)


def box_iou(a: CropBox, b: CropBox) -> float:
    """Intersection over union of two square boxes' image areas, in [0, 1]."""
    w = min(a.x0 + a.side, b.x0 + b.side) - max(a.x0, b.x0)
    h = min(a.y0 + a.side, b.y0 + b.side) - max(a.y0, b.y0)
    inter = max(w, 0.0) * max(h, 0.0)
    return inter / (a.side**2 + b.side**2 - inter)


@cache
def _sgbm(num_disparities: int, block_px: int) -> Any:
    """An OpenCV semi-global matcher (built once per size: its set-up allocates)."""
    import cv2

    return cv2.StereoSGBM_create(
        minDisparity=0,
        numDisparities=num_disparities,
        blockSize=block_px,
        P1=8 * block_px * block_px,
        P2=32 * block_px * block_px,
        uniquenessRatio=10,
        speckleWindowSize=20,
        speckleRange=2,
        mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY,
    )


def coarse_disparity(
    small_left: np.ndarray, small_right: np.ndarray, factor: int, max_disparity_px: float
) -> np.ndarray:
    """Disparity map of a downscaled rectified pair (semi-global matching).

    Both images are padded on the left by the search range first, so that points near the
    left border (whose match may lie left of the right image) get a disparity too.

    Args:
        small_left: (h, w) uint8 grey left image, downscaled by ``factor``.
        small_right: (h, w) uint8 grey right image, downscaled by ``factor``.
        factor: the downscale factor (converts the result to image pixels).
        max_disparity_px: largest disparity searched, image pixels.

    Returns:
        (h, w) float32 disparity in full-image pixels; 0 where unmatched.
    """
    import cv2

    num = max(16, math.ceil(max_disparity_px / factor / 16) * 16)
    pad = lambda im: cv2.copyMakeBorder(im, 0, 0, num, 0, cv2.BORDER_CONSTANT, value=0)  # noqa: E731
    raw = _sgbm(num, 5).compute(pad(small_left), pad(small_right))[:, num:]
    disparity = raw.astype(np.float32) * (factor / 16.0)  # SGBM: 1/16 pixel fixed point
    disparity[raw <= 0] = 0.0
    return disparity


@dataclass(frozen=True)
class _Candidate:
    """A hand candidate on the coarse grid: its pixels, full-image box, and cues."""

    pixels: np.ndarray  # (h, w) bool, coarse grid
    lo: np.ndarray  # (2,) min (u, v), image pixels
    hi: np.ndarray  # (2,) max (u, v), image pixels
    source: str  # "skin" or "stereo"


def _components(
    mask: np.ndarray, min_area: int, limit: int, factor: int, source: str = ""
) -> list[_Candidate]:
    """Connected components of a coarse (h, w) uint8 mask, largest first, as candidates."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    order = sorted(range(1, n), key=lambda i: -int(stats[i, cv2.CC_STAT_AREA]))
    out = []
    for i in order[:limit]:
        x, y, w, h, area = (int(v) for v in stats[i])
        if area < min_area:
            break
        lo = np.array([x, y], dtype=np.float64) * factor
        hi = np.array([x + w, y + h], dtype=np.float64) * factor - 1.0
        out.append(_Candidate(labels == i, lo, hi, source))
    return out


def _near_mask(disparity: np.ndarray, near_band: float, min_area: int) -> np.ndarray:
    """(h, w) uint8 mask of the pixels within ``near_band`` of the scene's near disparity:
    the largest disparity that at least ``min_area`` pixels reach (smaller spikes do not
    count)."""
    import cv2

    valid = disparity[disparity > 0]
    if valid.size < min_area:
        return np.zeros(disparity.shape, dtype=np.uint8)
    near = float(np.partition(valid, valid.size - min_area)[valid.size - min_area])
    mask = (disparity >= near_band * near).astype(np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))


def _coarse_views(
    left: np.ndarray, gl: np.ndarray, gr: np.ndarray, factor: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pair on the coarse grid: (h, w) uint8 skin mask (255 = skin) of the left view,
    and both (h, w) uint8 grey views (h = H // factor, w = W // factor)."""
    import cv2

    size = (max(gl.shape[1] // factor, 1), max(gl.shape[0] // factor, 1))
    small = cv2.resize(left, size, interpolation=cv2.INTER_AREA)
    return (
        skin_pixels(small, 3),
        cv2.resize(gl, size, interpolation=cv2.INTER_AREA),
        cv2.resize(gr, size, interpolation=cv2.INTER_AREA),
    )


def _near_candidate(
    disparity: np.ndarray, skin: np.ndarray, settings: LocatorSettings, min_area: int
) -> _Candidate | None:
    """The nearest coherent region of the coarse disparity map, cut to its skin pixels, or
    None when there is none or too little of it is skin-coloured."""
    f = settings.coarse_factor
    near = _components(_near_mask(disparity, settings.near_band, 4 * min_area), min_area, 1, f)
    if not near:
        return None
    # The region's skin pixels: semi-global matching carries a near disparity into
    # untextured background beside the hand, which is rarely skin-coloured.
    region = near[0].pixels
    pixels = region & (skin > 0)
    if pixels.sum() < max(settings.min_skin_fraction * region.sum(), min_area):
        return None
    rows, cols = np.flatnonzero(pixels.any(1)), np.flatnonzero(pixels.any(0))
    lo = np.array([cols[0], rows[0]], dtype=np.float64) * f
    hi = np.array([cols[-1] + 1, rows[-1] + 1], dtype=np.float64) * f - 1.0
    centre, half = (lo + hi) / 2, settings.stereo_extent_growth * (hi - lo) / 2
    return _Candidate(pixels, centre - half, centre + half, "stereo")


def _cold_start(
    left: np.ndarray, gl: np.ndarray, gr: np.ndarray, settings: LocatorSettings
) -> StereoBoxes | None:
    """Locate the hand without a previous estimate (see :func:`locate_hand`)."""
    f = settings.coarse_factor
    skin, small_l, small_r = _coarse_views(left, gl, gr, f)
    min_area = max(settings.min_area_px // (f * f), 1)
    candidates = _components(skin, min_area, settings.max_candidates, f, "skin")
    skin_share = float(np.count_nonzero(skin)) / skin.size
    if not settings.stereo_candidates or skin_share < settings.stereo_min_skin_share:
        # Skin colour is selective here: match every component, the nearest match wins.
        best: StereoBoxes | None = None
        for c in candidates:
            box = square_box_around(c.lo, c.hi, settings)
            found = match_right_box(gl, gr, box, settings)
            if found is not None and (best is None or found[1] > best.disparity_px):
                best = StereoBoxes(box, found[0], found[1], found[2], "skin")
        return best
    # Skin colour fires on the background too: rank by the coarse disparity map.
    # The coarse search never goes past the full search range.
    reach = min(settings.coarse_max_disparity_px, max(settings.max_disparity_px, 16.0))
    disparity = coarse_disparity(small_l, small_r, f, reach)
    near = _near_candidate(disparity, skin, settings, min_area)
    if near is not None:
        candidates.append(near)
    ranked = []
    for c in candidates:
        d = disparity[c.pixels]
        d = d[d > 0]
        ranked.append((float(np.median(d)) if d.size else 0.0, c))
    ranked.sort(key=lambda item: -item[0])
    for coarse_d, c in ranked[:3]:
        box = square_box_around(c.lo, c.hi, settings)
        hint = coarse_d if coarse_d > 0 else None
        found = match_right_box(gl, gr, box, settings, hint, c.pixels)
        if found is not None:
            return StereoBoxes(box, found[0], found[1], found[2], c.source)
    return None


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def match_right_box(
    grey_left: np.ndarray,
    grey_right: np.ndarray,
    box: CropBox,
    settings: LocatorSettings,
    disparity_hint: float | None = None,
    pixels: np.ndarray | None = None,
    disparity_offset_px: float = 0.0,
) -> tuple[CropBox, float, float] | None:
    """Find the right-view box of a left-view box by matching along the same rows.

    Args:
        grey_left: (H, W) uint8 left image.
        grey_right: (H, W) uint8 right image.
        box: the left box.
        settings: search range and patch size.
        disparity_hint: search only within +-25% of this disparity (tracking).
        pixels: (h, w) bool, the hand's pixels on a grid that downscales the image by
            H / h and W / w (the coarse grid); only these take part in the match, so that
            the background around the hand, at another disparity, does not. None: the whole
            box.

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
    lo_d, hi_d = lo_d + disparity_offset_px, hi_d + disparity_offset_px
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
    mask = None
    if pixels is not None:
        rows = np.arange(r0, r1) * pixels.shape[0] // h
        cols = np.arange(c0, c1) * pixels.shape[1] // w
        # Grown by a coarse pixel: the hand's outline carries most of its texture.
        cut = cv2.dilate(pixels.astype(np.uint8), np.ones((3, 3), np.uint8))[np.ix_(rows, cols)]
        mask = cv2.resize(cut, patch.shape[::-1], interpolation=cv2.INTER_NEAREST)
        if mask.sum() < 0.1 * mask.size:
            mask = None
    scores = cv2.matchTemplate(strip, patch, cv2.TM_CCOEFF_NORMED, mask=mask)[0]
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
    if disparity - disparity_offset_px <= 0:
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
    if roi is not None:
        box = CropBox(float(roi[0]), float(roi[1]), float(roi[2]), settings.out_size)
        found = match_right_box(gl, gr, box, settings)
        if found is None:
            return None
        return StereoBoxes(box, found[0], found[1], found[2], "roi")
    if previous_uv_left is not None:
        box = square_box_around(previous_uv_left.min(0), previous_uv_left.max(0), settings)
        found = match_right_box(gl, gr, box, settings, previous_disparity_px)
        if found is not None and found[2] >= settings.min_tracking_score:
            return StereoBoxes(box, found[0], found[1], found[2], "tracking")
    return _cold_start(left, gl, gr, settings)
