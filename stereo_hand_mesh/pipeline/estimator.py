"""The ROS-free per-pair pipeline: find the hand -> rotated crops of both views -> the
real-trained keypoint network -> stereo keypoints to metric 3D -> the template hand fitted
into a mesh -> confidence -> temporal filter.

Numpy in, numpy out; no torch unless the networks run on torch. The node, the ``infer`` and
``eval`` commands, the benchmarks and the tests all drive :class:`HandMeshPipeline`.

Per pair:

1. **Find the hand.** While tracking, each view's crop comes from the previous pair's
   keypoints in that view (:func:`~stereo_hand_mesh.pipeline.palm.roi_from_landmarks`). At a
   cold start the palm detector runs on both letterboxed views in one batch; the left view's
   best palm is paired with the right view's palm on the same rows (rectified pair) at a
   positive disparity (:func:`pair_palms`), and each palm gives an upright crop
   (:func:`~stereo_hand_mesh.pipeline.palm.roi_from_palm`). An external ROI (left image,
   ``(x0, y0, side)``) replaces the left palm.
2. **Keypoints.** The landmark network runs on both crops in one batch: 21 keypoints per view,
   presence, handedness and metric world landmarks. At a cold start the crops are re-cut
   once from these keypoints and the network runs again (``refine_cold_start``). A view whose
   presence is below ``min_presence`` means no hand (while tracking: a cold start first).
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
from dataclasses import dataclass, field

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
    "HandEstimate",
    "HandMeshPipeline",
    "PipelineSettings",
    "StereoCrops",
    "implausible_extent",
    "pair_palms",
]

HANDEDNESS = ("right", "left")
PUBLISHED_JOINTS = ("blended", "fitted", "triangulated")


@dataclass(frozen=True)
class PipelineSettings:
    """Settings of :class:`HandMeshPipeline` (and of the legacy mesh-uv pipeline, which reads
    the shared ones and ``locator``).

    Attributes:
        handedness: ``"right"`` or ``"left"``: the hand the template is fitted as.
        min_confidence: below this overall confidence no mesh is output.
        min_presence: below this landmark-network presence in either view, no hand.
        palm_min_score: the palm detector's score threshold at a cold start.
        stereo_row_tolerance: a right-view palm pairs with the left one when their centres'
            rows differ by at most this fraction of the palm's height.
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

    handedness: str = "right"
    min_confidence: float = 0.3
    min_presence: float = 0.5
    palm_min_score: float = 0.5
    stereo_row_tolerance: float = 0.5
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
        for name in ("min_confidence", "min_presence"):
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


def pair_palms(
    left: list[PalmDetection], right: list[PalmDetection], rig: StereoRig, row_tolerance: float
) -> tuple[PalmDetection, PalmDetection] | None:
    """The best left palm with its right-view match, or None.

    A right palm matches a left one when their centres' rows differ by at most
    ``row_tolerance`` times the left palm's height (a rectified pair puts a point on the same
    row in both views) and its disparity ``(u_l - cx_l) - (u_r - cx_r)`` is positive (in
    front of the cameras). Pairs are ranked by the product of the scores.

    Args:
        left: palms of the left view, image pixels.
        right: palms of the right view, image pixels.
        rig: the rectified rig.
        row_tolerance: in palm heights.
    """
    best, best_score = None, 0.0
    for pl in left:
        for pr in right:
            disparity = (pl.box[0] - rig.left.cx) - (pr.box[0] - rig.right.cx)
            same_rows = abs(pl.box[1] - pr.box[1]) <= row_tolerance * pl.box[3]
            if same_rows and disparity > 0.0 and pl.score * pr.score > best_score:
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


class HandMeshPipeline:
    """Stereo pair in, hand mesh out (see the module docstring).

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
        self._right_faces = hand.faces
        self._left_faces = np.ascontiguousarray(hand.faces[:, ::-1])
        self._vertex_weights = np.asarray(hand.skin_weights)  # (V, K) for vertex confidence
        self._bone_joints = np.asarray(BONE_JOINTS)
        self._filter = OneEuroFilter(self.settings.filter_min_cutoff_hz, self.settings.filter_beta)
        self._crops: StereoCrops | None = None  # the next pair's crops while tracking
        self._fit: HandFit | None = None

    @property
    def faces(self) -> np.ndarray:
        """(F, 3) triangles of the output mesh, outward for the fitted hand (a left hand is
        a mirrored right one: its winding flips)."""
        return self._right_faces if self.settings.handedness == "right" else self._left_faces

    def update_settings(self, settings: PipelineSettings) -> None:
        """Apply new settings from the next pair on (the filter restarts)."""
        self.settings = settings
        self._filter = OneEuroFilter(settings.filter_min_cutoff_hz, settings.filter_beta)
        self.reset()

    def reset(self) -> None:
        """Forget the tracking state and the filter (e.g. after a model swap)."""
        self._filter.reset()
        self._crops = None
        self._fit = None

    # ------------------------------------------------------------------ stages

    def _detect(
        self, left: np.ndarray, right: np.ndarray, rig: StereoRig, roi: tuple | None
    ) -> StereoCrops | str:
        """Cold start: the crops from the palm detector, or why there are none.

        With an ``roi``, the detector's left input is that region instead of the whole left
        view (a palm found in it gives the crop's rotation; none: an upright crop of it)."""
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
            return "no hand found (no palm in the left view)"
        pair = pair_palms(palms[0], palms[1], rig, s.stereo_row_tolerance)
        if pair is None:  # the right palm missed or off the rows: match the left one's pixels
            pair = _matched_palm(left, right, palms[0][0], rig, s.locator)
        if pair is None:
            return (
                "hand seen in the left view only: no right-view palm on its rows at a positive "
                "disparity, and its pixels match nothing there"
            )
        return StereoCrops(roi_from_palm(pair[0], size), roi_from_palm(pair[1], size))

    def _keypoints(self, left: np.ndarray, right: np.ndarray, crops: StereoCrops) -> _Keypoints:
        """The landmark network on both crops as one batch."""
        size = self.nets.landmarks.input_size
        # Plain bilinear sampling, no low-pass: how MediaPipe feeds these networks (and 0.6 ms
        # less per pair).
        views = ((left, crops.left), (right, crops.right))
        batch = np.stack([cut_crop(v, c, antialias=False) for v, c in views])
        out = self.nets.landmarks.run(_network_input(batch))
        raw = out["landmarks"].reshape(2, 21, 3).astype(np.float64)
        world = out["world_landmarks"].reshape(2, 21, 3).astype(np.float64)
        uv = np.empty((2, 21, 2))
        for i, crop in enumerate((crops.left, crops.right)):
            if crop.out_size != size:
                raise ShapeError(f"crop expected side {size}; got {crop.out_size}")
            # The network's x, y are continuous crop coordinates (0 at the edge): pixel
            # centres sit at +0.5.
            uv[i] = crop.to_image(raw[i, :, :2] - 0.5)
            c, s_ = math.cos(crop.angle), math.sin(crop.angle)
            world[i, :, :2] = world[i, :, :2] @ np.array([[c, s_], [-s_, c]])  # crop -> image
        return _Keypoints(
            uv,
            out["presence"].reshape(2).astype(np.float64),
            out["handedness"].reshape(2).astype(np.float64),
            world,
        )

    # ------------------------------------------------------------------ the pair

    def process(
        self,
        left: np.ndarray,
        right: np.ndarray,
        rig: StereoRig,
        stamp_s: float | None = None,
        roi: tuple[float, float, float] | None = None,
    ) -> HandEstimate:
        """Estimate the hand in one rectified stereo pair.

        Args:
            left: (H, W, 3) uint8 RGB left rectified image.
            right: (H, W, 3) uint8 RGB right rectified image.
            rig: the rectified rig (from the two CameraInfo).
            stamp_s: time of the pair, seconds (for the filter); None for single images.
            roi: optional external region ``(x0, y0, side)`` in left image pixels; it
                replaces the left view's palm detection (the pair is then a cold start).

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
        crops = self._crops if (s.tracking and roi is None) else None
        kp = None
        if crops is not None:  # tracking: keep it only if both views still see a hand
            kp = self._keypoints(left, right, crops)
            times["keypoints"] = (time.perf_counter() - t0) * 1e3
            if kp.presence.min() < s.min_presence:
                crops, kp = None, None
        if crops is None:
            t1 = time.perf_counter()
            found = self._detect(left, right, rig, roi)
            times["detect"] = (time.perf_counter() - t1) * 1e3
            if isinstance(found, str):
                return self._none(found, 0.0, times)
            t2 = time.perf_counter()
            kp = self._keypoints(left, right, found)
            if s.refine_cold_start and kp.presence.min() >= s.min_presence:
                found = self._crops_from(kp.uv, found)
                kp = self._keypoints(left, right, found)
            crops = found
            times["keypoints"] = times.get("keypoints", 0.0) + (time.perf_counter() - t2) * 1e3
        assert kp is not None
        if kp.presence.min() < s.min_presence:
            view = "left" if kp.presence[0] < s.min_presence else "right"
            return self._none(
                f"no hand in the {view} view (presence {kp.presence.min():.2f} < min_presence "
                f"{s.min_presence:.2f})",
                0.0,
                times,
                crops,
                kp,
            )
        return self._estimate(kp, crops, rig, stamp_s, times)

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
        rig: StereoRig,
        stamp_s: float | None,
        times: dict[str, float],
    ) -> HandEstimate:
        s = self.settings
        t3 = time.perf_counter()
        tri = rig.triangulate(kp.uv[0], kp.uv[1])
        if tri.valid.sum() < 4:
            return self._none(
                f"keypoints behind the cameras ({int((~tri.valid).sum())} of 21 at a "
                "non-positive disparity): the two views disagree",
                0.0,
                times,
                crops,
                kp,
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
                self._fit if s.tracking else None,
                s.fit,
                s.handedness,
            )
        except StereoHandMeshError as err:
            return self._none(f"template fit failed: {err}", 0.0, times, crops, kp)
        times["fit"] = (time.perf_counter() - t3) * 1e3
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
            return self._none("non-finite mesh (NaN or inf vertices)", 0.0, times, crops, kp)
        implausible = implausible_extent(vertices, s)
        if implausible is not None:
            return self._none(implausible, confidence, times, crops, kp)
        if confidence < s.min_confidence:
            return self._none(
                f"confidence {confidence:.2f} < min_confidence {s.min_confidence:.2f}",
                confidence,
                times,
                crops,
                kp,
            )
        if s.smoothing and stamp_s is not None:
            both = self._filter(np.concatenate([vertices, joints]), stamp_s)
            vertices, joints = both[: len(vertices)], both[len(vertices) :]
        vertex_conf = self._vertex_weights @ joint_conf[self._bone_joints]
        self._crops = self._crops_from(kp.uv, crops)
        self._fit = fit
        return HandEstimate(
            True,
            "ok",
            confidence,
            vertices,
            joints,
            vertex_conf,
            rig.project_left(vertices),
            crops,
            times,
            fit.joint_rotations,
            joint_conf,
            kp.uv,
            tri.points,
            fit.joints,
            kp.presence,
            kp.handedness_right,
            fit,
        )

    def _none(
        self,
        reason: str,
        confidence: float,
        times: dict[str, float],
        crops: StereoCrops | None = None,
        kp: _Keypoints | None = None,
    ) -> HandEstimate:
        self.reset()
        return HandEstimate(
            False,
            reason,
            confidence,
            boxes=crops,
            timings_ms=times,
            keypoints=None if kp is None else kp.uv,
            presence=None if kp is None else kp.presence,
            handedness_right=None if kp is None else kp.handedness_right,
        )
