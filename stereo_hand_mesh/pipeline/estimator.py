"""The ROS-free per-pair pipeline: find the hand -> rotated crops of both views -> the
real-trained keypoint network -> stereo keypoints to metric 3D -> the template hand fitted
into a mesh -> confidence -> temporal filter.

Numpy in, numpy out; no torch unless the networks run on torch. The node, the ``infer`` and
``eval`` commands, the benchmarks and the tests all drive :class:`HandMeshPipeline`.

Per pair, for up to ``max_hands`` hands (:meth:`HandMeshPipeline.process_hands`; each hand is
a track of its own: identity, side, crops, warm start, filter):

1. **Find the hands.** While tracking, each view's crop of a hand comes from the previous
   pair's keypoints of that hand in that view
   (:func:`~stereo_hand_mesh.pipeline.palm.roi_from_landmarks`). With no hand tracked (and,
   while fewer than ``max_hands`` are, every ``new_hand_search_period`` pairs) the palm
   detector runs on both letterboxed views in one batch; each left palm is paired with a
   right-view palm on the same rows (rectified pair) at a positive disparity
   (:func:`pair_all_palms`), and each palm gives an upright crop
   (:func:`~stereo_hand_mesh.pipeline.palm.roi_from_palm`). A palm on a tracked hand is that
   hand. An external ROI (left image, ``(x0, y0, side)``) replaces the left palms.
2. **Keypoints.** The landmark network runs on both crops of every hand in one batch: 21
   keypoints per view, presence, handedness and metric world landmarks. A new hand's crops
   are re-cut once from these keypoints and the network runs again (``refine_cold_start``).
   A view whose presence is below ``min_presence`` means no hand there (a tracked hand is
   forgotten). Two candidates whose keypoints overlap in both views are one hand
   (``duplicate_iou``).
   **Side.** A new hand's side is the sign of its two views' summed log-odds of being a
   right hand; views that disagree firmly (``handedness_margin``) drop it, and
   ``handedness: right|left`` drops hands both views put on the other side. A tracked hand
   keeps its side unless the network's running evidence turns firmly the other way.
3. **3D.** Each keypoint's disparity ``(u_l - cx_l) - (u_r - cx_r)`` gives its depth.
4. **Mesh.** The template hand is fitted to both views' keypoints
   (:func:`~stereo_hand_mesh.pipeline.fit.fit_hand`, warm-started from the previous pair):
   vertices, joints and a rotation per joint in the left optical frame.
5. **Confidence.** Per joint: the vertical disagreement of its two keypoints (``|v_l - v_r|``,
   0 on a rectified pair) and the fit's reprojection residual, each through a Gaussian whose
   scale is ``confidence_sigma_crop`` times the crops' side (keypoint noise grows with the
   hand's size in the image). The hand's: the lower presence of the two views, times the
   mean row agreement, times the Gaussian of the median residual. Below ``min_confidence``,
   or a mesh of a size no hand has (:func:`implausible_extent`), or non-finite numbers: no
   mesh, and the reason.
6. **Filter.** A One Euro filter over the vertices and joints when the pair has a stamp.

The published joints are the fitted ones or the raw triangulated keypoints
(``published_joints``); the real-data benchmark (``benchmarks/bench_real.py``) says which is
closer on real pairs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from stereo_hand_mesh.errors import ConfigError, ShapeError, StereoHandMeshError
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.geometry.crop import RotatedCrop, cut_crop
from stereo_hand_mesh.pipeline.filter import OneEuroFilter
from stereo_hand_mesh.pipeline.fit import FitSettings, HandFit, fit_hand
from stereo_hand_mesh.pipeline.locator import LocatorSettings, StereoBoxes
from stereo_hand_mesh.pipeline.palm import (
    PALM_INPUT_SIZE,
    PalmDetection,
    decode_palms,
    letterbox,
    roi_from_landmarks,
    roi_from_palm,
)
from stereo_hand_mesh.runtime.keypoint_nets import HandNets

__all__ = [
    "HANDEDNESS",
    "PUBLISHED_JOINTS",
    "SIDES",
    "HandEstimate",
    "HandMeshPipeline",
    "HandsEstimate",
    "PipelineSettings",
    "StereoCrops",
    "implausible_extent",
    "pair_all_palms",
    "pair_palms",
]

HANDEDNESS = ("auto", "right", "left")
#: The sides a hand can be (a left hand is fitted as a mirrored right template).
SIDES = ("right", "left")
PUBLISHED_JOINTS = ("blended", "fitted", "triangulated")


@dataclass(frozen=True)
class PipelineSettings:
    """Settings of :class:`HandMeshPipeline` (and of the legacy mesh-uv pipeline, which reads
    the shared ones and ``locator``).

    Attributes:
        handedness: ``"auto"`` (each hand's side read from the landmark network, both views
            agreeing), or ``"right"`` / ``"left"``: only hands of that side (a hand the
            network puts on the other side is dropped, with the reason).
        max_hands: the most hands per pair (MediaPipe Hands' ``num_hands``).
        new_hand_search_period: while fewer than ``max_hands`` hands are tracked, the palm
            detector looks for more every this many pairs (1: every pair; with no hand
            tracked it runs on every pair).
        handedness_margin: a new hand's two views disagree on its side when one view's
            P(right) is above ``0.5 + margin`` and the other's below ``0.5 - margin``; it is
            then dropped. Otherwise the side is that of the summed log-odds of both views.
        same_side_margin: under ``auto``, two hands of one side and none of the other stay so
            only if both views of the less certain one say that side beyond ``0.5 +-
            same_side_margin`` (two people); else it takes the other side (one person's two
            hands, one misread: the network misreads a side on some views).
        duplicate_iou: two candidate hands whose keypoints' bounding boxes overlap by more
            than this (intersection over union) in both views are one hand: the older track
            (or the more present candidate) is kept. A new palm whose crop overlaps a tracked
            hand's by more than this is that hand.
        min_confidence: below this overall confidence no mesh is output.
        min_presence: below this landmark-network presence in either view, no hand.
        palm_min_score: the palm detector's score threshold at a cold start.
        stereo_row_tolerance: a right-view palm pairs with the left one when their centres'
            rows differ by at most this fraction of the palm's height.
        palm_box_m: the smallest and largest palm box (metres) a left palm and its
            right-view twin may imply through their disparity (:func:`pair_all_palms`).
        refine_cold_start: at a cold start, re-cut the crops from the first keypoints and
            run the landmark network once more.
        published_joints: ``"blended"`` (each joint fitted where the template explains its
            keypoints within ``blend_residual_px`` in both views, else triangulated),
            ``"fitted"`` (the template's joints) or ``"triangulated"`` (the keypoints'
            stereo depth, straight).
        blend_residual_px: the largest reprojection residual of a fitted joint that
            ``"blended"`` publishes, pixels.
        min_hand_extent_m: smallest second-largest side of the mesh's bounding box, metres
            (a real hand's is 9-24 cm; below it the mesh is collapsed).
        max_hand_extent_m: largest side of the mesh's bounding box, metres (a real hand's is
            10-25 cm).
        confidence_sigma_crop: scale of the row disagreement and of the fit residual in the
            confidence, as a fraction of the crops' side.
        confidence_sigma_m: legacy mesh-uv path: scale of the distance between the two
            branches' vertices in the confidence, metres.
        confidence_sigma_px: legacy mesh-uv path: scale of the vertical disparity, pixels.
        smoothing: apply the One Euro filter to vertices and joints between pairs.
        filter_min_cutoff_hz: One Euro minimum cutoff frequency, Hz.
        filter_beta: One Euro speed coefficient, 1/m.
        tracking: crop the next pair from this pair's keypoints (and warm-start the fit).
        fit: the template fit's settings.
        locator: the skin/stereo locator's settings (legacy mesh-uv pipeline only).
    """

    handedness: str = "auto"
    max_hands: int = 2
    new_hand_search_period: int = 5
    handedness_margin: float = 0.25
    same_side_margin: float = 0.45
    duplicate_iou: float = 0.4
    min_confidence: float = 0.3
    min_presence: float = 0.5
    palm_min_score: float = 0.5
    stereo_row_tolerance: float = 0.5
    palm_box_m: tuple[float, float] = (0.04, 0.2)
    refine_cold_start: bool = True
    published_joints: str = "blended"
    blend_residual_px: float = 8.0
    min_hand_extent_m: float = 0.03
    max_hand_extent_m: float = 0.4
    confidence_sigma_crop: float = 0.04
    confidence_sigma_m: float = 0.02
    confidence_sigma_px: float = 4.0
    smoothing: bool = True
    filter_min_cutoff_hz: float = 1.0
    filter_beta: float = 20.0
    tracking: bool = True
    fit: FitSettings = field(default_factory=FitSettings)
    locator: LocatorSettings = field(default_factory=LocatorSettings)

    def __post_init__(self) -> None:
        if self.handedness not in HANDEDNESS:
            raise ConfigError(f"handedness expected one of {HANDEDNESS}; got {self.handedness!r}")
        if self.published_joints not in PUBLISHED_JOINTS:
            raise ConfigError(
                f"published_joints expected one of {PUBLISHED_JOINTS}; got "
                f"{self.published_joints!r}"
            )
        if not (isinstance(self.max_hands, int) and 1 <= self.max_hands <= 4):
            raise ConfigError(f"max_hands expected an integer in [1, 4]; got {self.max_hands!r}")
        if not (isinstance(self.new_hand_search_period, int) and self.new_hand_search_period >= 1):
            raise ConfigError(
                "new_hand_search_period expected an integer >= 1 (pairs); got "
                f"{self.new_hand_search_period!r}"
            )
        lo, hi = self.palm_box_m
        if not (0.0 < lo < hi and math.isfinite(hi)):
            raise ConfigError(f"palm_box_m expected 0 < smallest < largest; got {self.palm_box_m}")
        if not (0.0 <= self.same_side_margin < 0.5):
            raise ConfigError(
                f"same_side_margin expected in [0, 0.5); got {self.same_side_margin}"
            )
        if not (0.0 <= self.handedness_margin < 0.5):
            raise ConfigError(
                f"handedness_margin expected in [0, 0.5); got {self.handedness_margin}"
            )
        for name in ("min_confidence", "min_presence", "duplicate_iou"):
            if not (0.0 <= getattr(self, name) <= 1.0):
                raise ConfigError(f"{name} expected in [0, 1]; got {getattr(self, name)}")
        if not (0.0 < self.palm_min_score < 1.0):
            raise ConfigError(f"palm_min_score expected in (0, 1); got {self.palm_min_score}")
        if not (0.0 <= self.min_hand_extent_m < self.max_hand_extent_m):
            raise ConfigError(
                "PipelineSettings expected 0 <= min_hand_extent_m < max_hand_extent_m; got "
                f"{self.min_hand_extent_m}, {self.max_hand_extent_m}"
            )
        for name in (
            "confidence_sigma_crop",
            "confidence_sigma_m",
            "confidence_sigma_px",
            "filter_min_cutoff_hz",
            "stereo_row_tolerance",
            "blend_residual_px",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"PipelineSettings.{name} expected > 0; got {value}")


@dataclass(frozen=True)
class StereoCrops:
    """The rotated crops of one pair's two views (image pixels of each view).

    Attributes:
        left: the left view's crop.
        right: the right view's crop.
    """

    left: RotatedCrop
    right: RotatedCrop


@dataclass(frozen=True)
class HandEstimate:
    """The result for one stereo pair.

    Attributes:
        found: True when a mesh is output.
        reason: why not (``"no hand found"``, ``"confidence 0.12 < min_confidence 0.3"``),
            or ``"ok"``.
        confidence: overall confidence in [0, 1] (0 when no hand was located).
        vertices: (V, 3) metres, left optical frame, or None.
        joints: (21, 3) metres, left optical frame (``published_joints``), or None.
        vertex_confidence: (V,) in [0, 1], or None.
        uv_left: (V, 2) vertices in the input left image, pixels, or None.
        boxes: the crops used (:class:`StereoCrops`; the legacy pipeline's
            :class:`~stereo_hand_mesh.pipeline.locator.StereoBoxes`), or None.
        timings_ms: per-stage wall times, milliseconds.
        joint_rotations: (21, 3, 3) rotation of each joint's frame in the left optical frame
            (columns are the frame's axes; :mod:`stereo_hand_mesh.pipeline.fit`), or None.
        joint_confidence: (21,) in [0, 1], or None.
        keypoints: (2, 21, 2) the network's keypoints in the left and right images, pixels,
            or None (also set when no mesh is output but keypoints were found).
        triangulated_joints: (21, 3) the keypoints' stereo positions, metres, or None.
        fitted_joints: (21, 3) the template's fitted joints, metres, or None.
        presence: (2,) the landmark network's presence in the left and right views, or None.
        handedness_right: (2,) the network's probability that each view shows a right hand,
            or None.
        fit: the template fit behind the mesh (parameters, residuals), or None; where
            adaptation starts its differentiable refinement.
        hand_id: the hand's identity, kept while it is tracked (0, 1, ... in order of
            first sight; -1 when no hand was located).
        handedness: ``"right"`` or ``"left"``: the side the template was (or would have
            been) fitted as; ``""`` when no hand was located.
    """

    found: bool
    reason: str
    confidence: float
    vertices: np.ndarray | None = None
    joints: np.ndarray | None = None
    vertex_confidence: np.ndarray | None = None
    uv_left: np.ndarray | None = None
    boxes: StereoCrops | StereoBoxes | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    joint_rotations: np.ndarray | None = None
    joint_confidence: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    triangulated_joints: np.ndarray | None = None
    fitted_joints: np.ndarray | None = None
    presence: np.ndarray | None = None
    handedness_right: np.ndarray | None = None
    fit: HandFit | None = None
    hand_id: int = -1
    handedness: str = ""


@dataclass(frozen=True)
class HandsEstimate:
    """The result for one stereo pair with every hand in it.

    Attributes:
        hands: the hands with a mesh (``found``), by ``hand_id``.
        dropped: the hands located but given no mesh, each with its reason (a view without
            the hand, views that disagree on its side, a low confidence, a duplicate...).
        reason: ``"ok"`` when some hand has a mesh; else why none (the dropped hands'
            reasons, or why no hand was located).
        timings_ms: per-stage wall times of the pair, milliseconds.
    """

    hands: tuple[HandEstimate, ...]
    dropped: tuple[HandEstimate, ...]
    reason: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        """True when at least one hand has a mesh."""
        return bool(self.hands)

    def side(self, handedness: str) -> HandEstimate | None:
        """The most confident meshed hand of a side (``"right"`` or ``"left"``), or None."""
        own = [h for h in self.hands if h.handedness == handedness]
        return max(own, key=lambda h: h.confidence) if own else None

    @property
    def primary(self) -> HandEstimate:
        """The most confident meshed hand; else the most confident dropped one; else a
        not-found estimate with :attr:`reason` (what single-hand callers read)."""
        if self.hands:
            return max(self.hands, key=lambda h: h.confidence)
        if self.dropped:
            best = max(self.dropped, key=lambda h: h.confidence)
            return replace(best, timings_ms=self.timings_ms)
        return HandEstimate(False, self.reason, 0.0, timings_ms=self.timings_ms)

    def summary(self) -> str:
        """One line: each meshed hand's side, id and confidence, then why others dropped."""
        parts = [f"{h.handedness} #{h.hand_id} ({h.confidence:.2f})" for h in self.hands]
        text = ("meshes: " + ", ".join(parts)) if parts else self.reason
        if self.hands and self.dropped:
            text += "; dropped: " + "; ".join(h.reason for h in self.dropped)
        return text


def implausible_extent(vertices: np.ndarray, settings: PipelineSettings) -> str | None:
    """Why a mesh of this size is no hand, or None when its size is a hand's.

    Args:
        vertices: (V, 3) finite vertices, metres.
        settings: ``min_hand_extent_m`` and ``max_hand_extent_m``.
    """
    sides = np.sort(vertices.max(axis=0) - vertices.min(axis=0))[::-1]
    if sides[1] < settings.min_hand_extent_m or sides[0] > settings.max_hand_extent_m:
        return (
            f"implausible mesh: bounding box {sides[0]:.3f} x {sides[1]:.3f} x {sides[2]:.3f} m"
            f" (a hand's second side >= {settings.min_hand_extent_m:.2f} m, largest <= "
            f"{settings.max_hand_extent_m:.2f} m)"
        )
    return None


def _twin_disparity(
    pl: PalmDetection, pr: PalmDetection, rig: StereoRig, row_tolerance: float
) -> float | None:
    """The disparity ``(u_l - cx_l) - (u_r - cx_r)`` of a left palm and a right palm that can
    be its twin (centres' rows within ``row_tolerance`` left-palm heights, disparity
    positive), else None."""
    disparity = (pl.box[0] - rig.left.cx) - (pr.box[0] - rig.right.cx)
    same_rows = abs(pl.box[1] - pr.box[1]) <= row_tolerance * pl.box[3]
    return float(disparity) if same_rows and disparity > 0.0 else None


#: Palms per view that the stereo pairing considers (the detector's best ones).
_MAX_PALMS = 6


def pair_all_palms(
    left: list[PalmDetection],
    right: list[PalmDetection],
    rig: StereoRig,
    row_tolerance: float,
    palm_box_m: tuple[float, float] = (0.04, 0.2),
) -> list[tuple[PalmDetection, PalmDetection]]:
    """Every left palm with its right-view twin, best first; each palm used once.

    A right palm can be a left one's twin when their centres' rows differ by at most
    ``row_tolerance`` times the left palm's height (a rectified pair puts a point on the same
    row in both views), its disparity ``d = (u_l - cx_l) - (u_r - cx_r)`` is positive (in
    front of the cameras), and the palm box's size that disparity implies,
    ``baseline * box_px / d``, is a hand's (``palm_box_m``; whatever the depth, a palm's box
    in pixels over its disparity is its size over the baseline). Of all ways to pair the
    palms, the one with the most pairs wins, then the highest product of the scores: two
    hands on the same rows are not crossed over (a greedy choice by score can pair one hand's
    left palm with the other hand's right palm and leave the second hand unpaired).

    Args:
        left: palms of the left view, image pixels (the first ``_MAX_PALMS`` are used).
        right: palms of the right view, image pixels (likewise).
        rig: the rectified rig.
        row_tolerance: in palm heights.
        palm_box_m: the smallest and largest palm box, metres (measured: 4.8-12 cm on
            tabletop_a and on our renders).
    """
    left, right = left[:_MAX_PALMS], right[:_MAX_PALMS]
    score = np.full((len(left), len(right)), -np.inf)
    for i, pl in enumerate(left):
        for j, pr in enumerate(right):
            disparity = _twin_disparity(pl, pr, rig, row_tolerance)
            if disparity is None:
                continue
            size_m = rig.baseline * float(max(pl.box[2], pl.box[3])) / disparity
            if palm_box_m[0] <= size_m <= palm_box_m[1]:
                score[i, j] = math.log(max(pl.score * pr.score, 1e-12))
    best: tuple[int, float, tuple[int, ...]] = (0, 0.0, ())

    def search(i: int, used: tuple[int, ...], count: int, total: float) -> None:
        nonlocal best
        if i == len(left):
            if (count, total) > best[:2]:
                best = (count, total, used)
            return
        for j in range(len(right)):
            if j not in used and np.isfinite(score[i, j]):
                search(i + 1, (*used, j), count + 1, total + float(score[i, j]))
        search(i + 1, (*used, -1), count, total)

    search(0, (), 0, 0.0)
    pairs = [(i, j) for i, j in enumerate(best[2]) if j >= 0]
    pairs.sort(key=lambda ij: -score[ij])
    return [(left[i], right[j]) for i, j in pairs]


def pair_palms(
    left: list[PalmDetection], right: list[PalmDetection], rig: StereoRig, row_tolerance: float
) -> tuple[PalmDetection, PalmDetection] | None:
    """The best single left palm with its right-view match, or None.

    A right palm matches a left one when their centres' rows differ by at most
    ``row_tolerance`` times the left palm's height and its disparity
    ``(u_l - cx_l) - (u_r - cx_r)`` is positive. Pairs are ranked by the product of the
    scores (:func:`pair_all_palms` pairs every hand of a view).

    Args:
        left: palms of the left view, image pixels.
        right: palms of the right view, image pixels.
        rig: the rectified rig.
        row_tolerance: in palm heights.
    """
    best, best_score = None, 0.0
    for pl in left:
        for pr in right:
            twin = _twin_disparity(pl, pr, rig, row_tolerance) is not None
            if twin and pl.score * pr.score > best_score:
                best, best_score = (pl, pr), pl.score * pr.score
    return best


def _published(
    s: PipelineSettings, fit: HandFit, triangulated: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """(21, 3) the joints ``published_joints`` asks for, metres (a keypoint triangulated
    behind the cameras is never published: the fitted joint stands in)."""
    if s.published_joints == "fitted":
        return fit.joints
    use_tri = valid.copy()
    if s.published_joints == "blended":
        explained = np.abs(fit.residuals_px).max(axis=0) <= s.blend_residual_px
        use_tri &= ~explained
    return np.where(use_tri[:, None], triangulated, fit.joints)


def _matched_palm(
    left: np.ndarray,
    right: np.ndarray,
    palm: PalmDetection,
    rig: StereoRig,
    settings: LocatorSettings,
) -> tuple[PalmDetection, PalmDetection] | None:
    """The left palm and its right-view twin found by matching the palm's pixels along the
    same rows (normalized cross-correlation), or None when nothing matches well enough."""
    import cv2

    from stereo_hand_mesh.geometry.crop import CropBox
    from stereo_hand_mesh.pipeline.locator import match_right_box

    side = float(max(palm.box[2], palm.box[3])) * settings.margin
    box = CropBox(palm.box[0] - side / 2, palm.box[1] - side / 2, side, 1)
    grey = [cv2.cvtColor(v, cv2.COLOR_RGB2GRAY) for v in (left, right)]
    found = match_right_box(*grey, box, settings, disparity_offset_px=rig.disparity_offset)
    if found is None:
        return None
    shift = np.array([found[1], 0.0])
    twin = PalmDetection(
        found[2], np.r_[palm.box[:2] - shift, palm.box[2:]], palm.keypoints - shift
    )
    return palm, twin


def _network_input(crops: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB -> (N, 3, S, S) float32 in [0, 1]."""
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32) * np.float32(
        1.0 / 255.0
    )


@dataclass(frozen=True)
class _Keypoints:
    """The landmark network's reading of both views (image pixels, left then right)."""

    uv: np.ndarray  # (2, 21, 2) image pixels
    presence: np.ndarray  # (2,)
    handedness_right: np.ndarray  # (2,)
    world: np.ndarray  # (2, 21, 3) metres, image axes, about the hand's centre


@dataclass
class _Track:
    """One hand followed from pair to pair (mutable: the pipeline's own state)."""

    hand_id: int
    side: str
    side_logit: float  # running log-odds that the hand is a right one
    crops: StereoCrops  # this pair's crops; the next pair's once estimated
    fit: HandFit | None
    filter: OneEuroFilter


@dataclass
class _Candidate:
    """A hand located in this pair: its crops, keypoints and (for a tracked one) its track."""

    crops: StereoCrops
    kp: _Keypoints
    track: _Track | None


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-4, 1.0 - 1e-4)
    return np.log(q / (1.0 - q))


def _keypoint_box(uv: np.ndarray) -> np.ndarray:
    """(4,) x0, y0, x1, y1 of (21, 2) keypoints, pixels."""
    return np.r_[uv.min(axis=0), uv.max(axis=0)]


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (4,) x0, y0, x1, y1 boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _same_hand(a: _Keypoints, b: _Keypoints, min_iou: float) -> bool:
    """True when two candidates' keypoints overlap by more than ``min_iou`` in BOTH views
    (two hands that overlap in one view only lie at different depths: two hands)."""
    return all(
        _box_iou(_keypoint_box(a.uv[v]), _keypoint_box(b.uv[v])) > min_iou for v in range(2)
    )


def _crop_box(crop: RotatedCrop) -> np.ndarray:
    """(4,) the axis-aligned bounds of a crop's inscribed circle, pixels (rotation-free)."""
    r = crop.side / 2
    return np.array([crop.cx - r, crop.cy - r, crop.cx + r, crop.cy + r])


class HandMeshPipeline:
    """Stereo pair in, hand meshes out (see the module docstring).

    Hands are tracked independently: each keeps its identity (``hand_id``), its side, its
    crops, its fit (the warm start) and its filter while both views see it.

    Args:
        nets: the palm detector and the landmark network
            (:func:`~stereo_hand_mesh.runtime.keypoint_nets.create_hand_nets`).
        settings: the pipeline's settings.
    """

    def __init__(self, nets: HandNets, settings: PipelineSettings | None = None) -> None:
        from stereo_hand_mesh.hand import template_hand
        from stereo_hand_mesh.hand.skeleton import BONE_JOINTS

        self.nets = nets
        self.backend = nets  # ``.name`` for diagnostics, as the legacy pipeline's backend
        self.settings = settings or PipelineSettings()
        hand = template_hand()
        self._faces = {"right": hand.faces, "left": np.ascontiguousarray(hand.faces[:, ::-1])}
        self._vertex_weights = np.asarray(hand.skin_weights)  # (V, K) for vertex confidence
        self._bone_joints = np.asarray(BONE_JOINTS)
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._pairs_since_search = 0

    @property
    def faces(self) -> np.ndarray:
        """(F, 3) triangles of the output mesh for the restricted side (``"right"`` under
        ``"auto"``; :meth:`faces_for` gives each side's)."""
        return self.faces_for("left" if self.settings.handedness == "left" else "right")

    def faces_for(self, handedness: str) -> np.ndarray:
        """(F, 3) triangles, outward for a hand of that side (a left hand is a mirrored right
        one: its winding flips)."""
        if handedness not in SIDES:
            raise ConfigError(f"handedness expected one of {SIDES}; got {handedness!r}")
        return self._faces[handedness]

    def update_settings(self, settings: PipelineSettings) -> None:
        """Apply new settings from the next pair on (tracks and filters restart)."""
        self.settings = settings
        self.reset()

    def reset(self) -> None:
        """Forget every tracked hand and its filter (e.g. after a model swap); identities
        go on counting up."""
        self._tracks = []
        self._pairs_since_search = 0

    # ------------------------------------------------------------------ stages

    def _detect(
        self, left: np.ndarray, right: np.ndarray, rig: StereoRig, roi: tuple | None
    ) -> tuple[list[StereoCrops], list[str]]:
        """Search: the crops of every hand the palm detector finds in both views, best
        first, and why the other palms give no hand (or why there is none at all).

        With an ``roi``, the detector's left input is that region instead of the whole left
        view (a palm found in it gives the crop's rotation; none: an upright crop of it), and
        only its best hand is returned."""
        s = self.settings
        views = [left, right]
        roi_box = None
        if roi is not None:
            x0, y0, side = (float(v) for v in roi)
            if not (math.isfinite(x0 + y0 + side) and side > 0):
                raise ConfigError(f"roi expected finite (x0, y0, side > 0); got {roi}")
            roi_box = RotatedCrop(x0 + side / 2 - 0.5, y0 + side / 2 - 0.5, side, 0.0, 192)
            views[0] = cut_crop(left, roi_box)
        squares, maps = zip(*(letterbox(v, PALM_INPUT_SIZE) for v in views))
        maps = list(maps)
        if roi_box is not None:  # square -> ROI crop -> left image
            m = roi_box.inverse_affine()
            maps[0] = np.concatenate(
                [m[:, :2] @ maps[0][:, :2], m @ np.r_[maps[0][:, 2], 1.0][:, None]], 1
            )
        out = self.nets.detector.run(_network_input(np.stack(squares)))
        palms = [
            decode_palms(out["regressors"][i], out["scores"][i], maps[i], s.palm_min_score)
            for i in range(2)
        ]
        size = self.nets.landmarks.input_size
        if roi_box is not None and not palms[0]:  # no palm in the region: upright, whole
            c = np.array([roi_box.cx, roi_box.cy])
            keypoints = np.tile(c, (7, 1)) - np.array([0.0, 1.0]) * (np.arange(7) == 2)[:, None]
            side = roi_box.side / 2.6  # roi_from_palm grows the palm 2.6 times
            palms[0] = [PalmDetection(1.0, np.r_[c[0], c[1] + side / 2, side, side], keypoints)]
        if not palms[0]:
            return [], ["no hand found (no palm in the left view)"]
        if roi_box is not None:
            palms[0] = palms[0][:1]
        pairs = pair_all_palms(palms[0], palms[1], rig, s.stereo_row_tolerance, s.palm_box_m)
        paired = {id(pl) for pl, _ in pairs}
        notes = []
        # A left palm whose right twin the detector missed or put off the rows: match its
        # pixels along the same rows.
        for pl in palms[0]:
            if id(pl) not in paired and len(pairs) < s.max_hands:
                twin = _matched_palm(left, right, pl, rig, s.locator)
                if twin is not None:
                    pairs.append(twin)
                else:
                    notes.append(
                        f"hand seen in the left view only (palm at {pl.box[0]:.0f}, "
                        f"{pl.box[1]:.0f} px): no right-view palm on its rows at a positive "
                        "disparity, and its pixels match nothing there"
                    )
        crops = [StereoCrops(roi_from_palm(pl, size), roi_from_palm(pr, size)) for pl, pr in pairs]
        return crops, notes

    def _keypoints(
        self, left: np.ndarray, right: np.ndarray, crops: list[StereoCrops]
    ) -> list[_Keypoints]:
        """The landmark network on both crops of every hand as one batch."""
        size = self.nets.landmarks.input_size
        if not crops:
            return []
        # Plain bilinear sampling, no low-pass: how MediaPipe feeds these networks (and 0.6 ms
        # less per pair).
        flat = [c for pair in crops for c in (pair.left, pair.right)]
        views = [left, right] * len(crops)
        batch = np.stack([cut_crop(v, c, antialias=False) for v, c in zip(views, flat)])
        out = self.nets.landmarks.run(_network_input(batch))
        n = len(flat)
        raw = out["landmarks"].reshape(n, 21, 3).astype(np.float64)
        world = out["world_landmarks"].reshape(n, 21, 3).astype(np.float64)
        presence = out["presence"].reshape(n).astype(np.float64)
        handed = out["handedness"].reshape(n).astype(np.float64)
        uv = np.empty((n, 21, 2))
        for i, crop in enumerate(flat):
            if crop.out_size != size:
                raise ShapeError(f"crop expected side {size}; got {crop.out_size}")
            # The network's x, y are continuous crop coordinates (0 at the edge): pixel
            # centres sit at +0.5.
            uv[i] = crop.to_image(raw[i, :, :2] - 0.5)
            c, s_ = math.cos(crop.angle), math.sin(crop.angle)
            world[i, :, :2] = world[i, :, :2] @ np.array([[c, s_], [-s_, c]])  # crop -> image
        return [
            _Keypoints(uv[2 * k : 2 * k + 2], presence[2 * k : 2 * k + 2],
                       handed[2 * k : 2 * k + 2], world[2 * k : 2 * k + 2])
            for k in range(len(crops))
        ]  # fmt: skip

    # ------------------------------------------------------------------ the pair

    def process(
        self,
        left: np.ndarray,
        right: np.ndarray,
        rig: StereoRig,
        stamp_s: float | None = None,
        roi: tuple[float, float, float] | None = None,
    ) -> HandEstimate:
        """The most confident hand of one rectified stereo pair (:meth:`process_hands`'
        :attr:`~HandsEstimate.primary`): what single-hand callers read.

        Args and raises: as :meth:`process_hands`.
        """
        return self.process_hands(left, right, rig, stamp_s, roi).primary

    def process_hands(
        self,
        left: np.ndarray,
        right: np.ndarray,
        rig: StereoRig,
        stamp_s: float | None = None,
        roi: tuple[float, float, float] | None = None,
    ) -> HandsEstimate:
        """Estimate every hand (up to ``max_hands``) in one rectified stereo pair.

        Args:
            left: (H, W, 3) uint8 RGB left rectified image.
            right: (H, W, 3) uint8 RGB right rectified image.
            rig: the rectified rig (from the two CameraInfo).
            stamp_s: time of the pair, seconds (for the filter); None for single images.
            roi: optional external region ``(x0, y0, side)`` in left image pixels; it
                replaces the left view's palm detection: the pair is a cold start of the one
                hand in it.

        Raises:
            ShapeError: images of different sizes, not RGB, or not matching the CameraInfo.
            ConfigError: an invalid ``roi``.
        """
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        for name, image in (("left", left), ("right", right)):
            if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
                raise ShapeError(
                    f"{name} image expected shape (H, W, 3) RGB; got "
                    f"{getattr(image, 'shape', type(image).__name__)}"
                )
            if image.shape[:2] != (rig.left.height, rig.left.width):
                raise ShapeError(
                    f"{name} image expected {rig.left.width}x{rig.left.height} (its "
                    f"camera_info); got {image.shape[1]}x{image.shape[0]}"
                )
        s = self.settings
        if roi is not None or not s.tracking:
            self.reset()
        dropped: list[HandEstimate] = []
        # 1. The tracked hands, all in one batch; a hand either view lost is forgotten.
        candidates: list[_Candidate] = []
        tracked_before = len(self._tracks)
        if self._tracks:
            kps = self._keypoints(left, right, [t.crops for t in self._tracks])
            times["keypoints"] = (time.perf_counter() - t0) * 1e3
            for track, kp in zip(self._tracks, kps, strict=True):
                if kp.presence.min() >= s.min_presence:
                    candidates.append(_Candidate(track.crops, kp, track))
        # 2. A search for more hands: with none tracked, or a tracked hand just lost, and
        # else every ``new_hand_search_period`` pairs while there is room.
        self._pairs_since_search += 1
        search = not candidates or (
            len(candidates) < s.max_hands
            and (
                len(candidates) < tracked_before
                or self._pairs_since_search >= s.new_hand_search_period
            )
        )
        none_reason = "no hand found"
        if search:
            self._pairs_since_search = 0
            t1 = time.perf_counter()
            found, notes = self._detect(left, right, rig, roi)
            times["detect"] = (time.perf_counter() - t1) * 1e3
            dropped.extend(self._dropped(note) for note in notes if not note.startswith("no "))
            if not found:
                none_reason = notes[0] if notes else none_reason
            else:
                held = [_crop_box(c.crops.left) for c in candidates]
                fresh = [
                    crops for crops in found
                    if all(_box_iou(_crop_box(crops.left), b) <= s.duplicate_iou for b in held)
                ]  # fmt: skip
                t2 = time.perf_counter()
                kps = self._keypoints(left, right, fresh)
                if s.refine_cold_start:
                    ok = [k for k, kp in enumerate(kps) if kp.presence.min() >= s.min_presence]
                    again = [self._crops_from(kps[k].uv, fresh[k]) for k in ok]
                    for k, crops, kp in zip(ok, again, self._keypoints(left, right, again)):
                        fresh[k], kps[k] = crops, kp
                times["keypoints"] = times.get("keypoints", 0.0) + (time.perf_counter() - t2) * 1e3
                for crops, kp in zip(fresh, kps, strict=True):
                    if kp.presence.min() < s.min_presence:
                        view = "left" if kp.presence[0] < s.min_presence else "right"
                        dropped.append(
                            self._dropped(
                                f"no hand in the {view} view (presence "
                                f"{kp.presence.min():.2f} < min_presence "
                                f"{s.min_presence:.2f})",
                                crops,
                                kp,
                            )
                        )
                    else:
                        candidates.append(_Candidate(crops, kp, None))
        # 3. One hand, one candidate: overlapping keypoints are the same hand (the older
        # track, else the more present candidate, stays).
        candidates.sort(
            key=lambda c: (c.track is None, c.track.hand_id if c.track else 0,
                           -float(c.kp.presence.min()))
        )  # fmt: skip
        kept: list[_Candidate] = []
        for cand in candidates:
            twin = next((k for k in kept if _same_hand(k.kp, cand.kp, s.duplicate_iou)), None)
            if twin is not None:
                what = f"#{twin.track.hand_id}" if twin.track else "another candidate"
                dropped.append(self._dropped(f"duplicate of hand {what}", cand.crops, cand.kp))
            elif len(kept) >= s.max_hands:
                dropped.append(
                    self._dropped(f"more than max_hands {s.max_hands}", cand.crops, cand.kp)
                )
            else:
                kept.append(cand)
        # 4. Each hand's side, then its mesh.
        hands: list[HandEstimate] = []
        tracks: list[_Track] = []
        sided: list[tuple[_Candidate, _Track]] = []
        for cand in kept:  # tracked hands first: a new hand's side may depend on theirs
            track = self._side_of(cand, {t.side for _, t in sided})
            if isinstance(track, str):
                dropped.append(self._dropped(track, cand.crops, cand.kp))
            else:
                sided.append((cand, track))
        self._one_person([t for _, t in sided])
        for cand, track in sided:
            est = self._estimate(cand.kp, cand.crops, track, rig, stamp_s, times)
            if est.found:
                hands.append(est)
                tracks.append(track)
            else:
                dropped.append(est)
        if dropped and len(tracks) < s.max_hands:  # a hand located, not meshed: look again
            self._pairs_since_search = s.new_hand_search_period
        self._tracks = tracks
        hands = sorted((replace(h, timings_ms=times) for h in hands), key=lambda h: h.hand_id)
        if hands:
            reason = "ok"
        elif dropped:
            reason = "; ".join(h.reason for h in dropped)
        else:
            reason = none_reason if search else "no hand found"
        return HandsEstimate(tuple(hands), tuple(dropped), reason, times)

    def _side_of(self, cand: _Candidate, taken: set[str]) -> _Track | str:
        """The candidate's track (a new one for a new hand) with its side, or why the hand
        is dropped (views that disagree on a new hand's side, or the side not asked for).

        Under ``auto``, a new hand whose side the network leaves open (views that disagree,
        or a side not firmly said by both views) while the other hands of the pair hold one
        side (``taken``) gets the other side: a person's two hands."""
        s = self.settings
        p = cand.kp.handedness_right
        logit = float(_logit(p).sum())
        track = cand.track
        if track is None:
            hi, lo = 0.5 + s.handedness_margin, 0.5 - s.handedness_margin
            side = "right" if logit >= 0.0 else "left"
            free = [x for x in SIDES if x not in taken]
            if s.handedness == "auto":
                firm = p.min() > hi or p.max() < lo
                if p.max() > hi and p.min() < lo:  # the views disagree
                    if len(free) != 1:
                        return (
                            f"the views disagree on the hand's side (P(right) {p[0]:.2f} left "
                            f"view, {p[1]:.2f} right view)"
                        )
                    side, logit = free[0], 0.0
                elif side in taken and not firm and len(free) == 1:
                    side = free[0]
                    logit = -logit
            if s.handedness != "auto":  # the asked side, unless both views say the other
                other = p.max() < 0.5 if s.handedness == "right" else p.min() > 0.5
                if other:
                    return (
                        f"a {'left' if s.handedness == 'right' else 'right'} hand in both "
                        f"views (P(right) {p[0]:.2f}, {p[1]:.2f}); handedness is "
                        f"{s.handedness}"
                    )
                side = s.handedness
            track = _Track(
                self._next_id, side, logit, cand.crops, None,
                OneEuroFilter(s.filter_min_cutoff_hz, s.filter_beta),
            )  # fmt: skip
            self._next_id += 1
            return track
        # A tracked hand keeps its side unless the network's running evidence turns firmly
        # the other way (hysteresis: two hands crossing do not swap sides).
        track.side_logit = 0.8 * track.side_logit + 0.2 * logit
        flip = 2.0 * _logit(np.array([0.5 + s.handedness_margin]))[0]
        if s.handedness == "auto":
            if track.side == "right" and track.side_logit < -flip:
                track.side, track.fit = "left", None
            elif track.side == "left" and track.side_logit > flip:
                track.side, track.fit = "right", None
        track.crops = cand.crops
        return track

    def _one_person(self, tracks: list[_Track]) -> None:
        """Under ``auto``: two hands of one side and none of the other are most likely one
        person's two hands with one side misread, so the hand whose evidence for that side is
        the weaker (its summed, or running, log-odds) takes the other side, unless both its
        views say the side beyond ``0.5 +- same_side_margin`` (two people's hands)."""
        s = self.settings
        if s.handedness != "auto":
            return
        firm = 2.0 * float(_logit(np.array([0.5 + s.same_side_margin]))[0])
        for side, other in (("right", "left"), ("left", "right")):
            same = [t for t in tracks if t.side == side]
            if len(same) < 2 or any(t.side == other for t in tracks):
                continue
            sign = 1.0 if side == "right" else -1.0
            weakest = min(same, key=lambda t: sign * t.side_logit)
            if sign * weakest.side_logit < firm:
                weakest.side, weakest.fit = other, None
                weakest.side_logit = -weakest.side_logit
                weakest.filter.reset()
            return

    def _crops_from(self, uv: np.ndarray, crops: StereoCrops) -> StereoCrops:
        """The next crops from (2, 21, 2) keypoints; the given ones where keypoints are bad."""
        size = self.nets.landmarks.input_size
        try:
            return StereoCrops(roi_from_landmarks(uv[0], size), roi_from_landmarks(uv[1], size))
        except StereoHandMeshError:
            return crops

    def _estimate(
        self,
        kp: _Keypoints,
        crops: StereoCrops,
        track: _Track,
        rig: StereoRig,
        stamp_s: float | None,
        times: dict[str, float],
    ) -> HandEstimate:
        s = self.settings
        t3 = time.perf_counter()

        def none(reason: str, confidence: float = 0.0) -> HandEstimate:
            return self._dropped(reason, crops, kp, confidence, track)

        tri = rig.triangulate(kp.uv[0], kp.uv[1])
        if tri.valid.sum() < 4:
            return none(
                f"keypoints behind the cameras ({int((~tri.valid).sum())} of 21 at a "
                "non-positive disparity): the two views disagree"
            )
        # Keypoint noise scales with the hand's size in the image: the scales are a fraction
        # of the crops' side.
        sigma_px = s.confidence_sigma_crop * 0.5 * (crops.left.side + crops.right.side)
        dv = np.abs(kp.uv[0, :, 1] - kp.uv[1, :, 1])
        agree = np.exp(-0.5 * (dv / sigma_px) ** 2) * tri.valid
        k_l = np.array([rig.left.fx, rig.left.fy, rig.left.cx, rig.left.cy])
        k_r = np.array([rig.right.fx, rig.right.fy, rig.right.cx, rig.right.cy])
        world = kp.world[int(np.argmax(kp.presence))]
        try:
            fit = fit_hand(
                kp.uv[0],
                kp.uv[1],
                k_l,
                k_r,
                rig.baseline,
                np.stack([agree, agree]),
                world,
                track.fit if s.tracking else None,
                s.fit,
                track.side,
            )
        except StereoHandMeshError as err:
            return none(f"template fit failed: {err}")
        times["fit"] = times.get("fit", 0.0) + (time.perf_counter() - t3) * 1e3
        residual = np.abs(fit.residuals_px).max(axis=0)  # (21,) the worse view, pixels
        joint_conf = agree * np.exp(-0.5 * (residual / sigma_px) ** 2)
        # The hand's: rows agree, and the hand model explains most keypoints (the median
        # residual: the template's wrist and thumb sit off the network's by ~20 px on real
        # hands, a convention gap and no sign of a wrong match).
        explained = float(np.exp(-0.5 * (np.median(residual) / sigma_px) ** 2))
        confidence = float(kp.presence.min() * agree.mean() * explained)
        vertices = fit.vertices
        joints = _published(s, fit, tri.points, tri.valid)
        if not (np.isfinite(vertices).all() and np.isfinite(joints).all()):
            return none("non-finite mesh (NaN or inf vertices)")
        implausible = implausible_extent(vertices, s)
        if implausible is not None:
            return none(implausible, confidence)
        if confidence < s.min_confidence:
            return none(
                f"confidence {confidence:.2f} < min_confidence {s.min_confidence:.2f}",
                confidence,
            )
        if s.smoothing and stamp_s is not None:
            both = track.filter(np.concatenate([vertices, joints]), stamp_s)
            vertices, joints = both[: len(vertices)], both[len(vertices) :]
        vertex_conf = self._vertex_weights @ joint_conf[self._bone_joints]
        track.crops = self._crops_from(kp.uv, crops)
        track.fit = fit
        return HandEstimate(
            True,
            "ok",
            confidence,
            vertices,
            joints,
            vertex_conf,
            rig.project_left(vertices),
            crops,
            dict(times),
            fit.joint_rotations,
            joint_conf,
            kp.uv,
            tri.points,
            fit.joints,
            kp.presence,
            kp.handedness_right,
            fit,
            track.hand_id,
            track.side,
        )

    def _dropped(
        self,
        reason: str,
        crops: StereoCrops | None = None,
        kp: _Keypoints | None = None,
        confidence: float = 0.0,
        track: _Track | None = None,
    ) -> HandEstimate:
        """A hand given no mesh, with its reason (its track, if any, is forgotten)."""
        return HandEstimate(
            False,
            reason,
            confidence,
            boxes=crops,
            keypoints=None if kp is None else kp.uv,
            presence=None if kp is None else kp.presence,
            handedness_right=None if kp is None else kp.handedness_right,
            hand_id=-1 if track is None else track.hand_id,
            handedness="" if track is None else track.side,
        )
