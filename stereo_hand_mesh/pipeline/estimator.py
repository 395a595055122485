"""The ROS-free per-pair pipeline: locate -> crop both views -> backend -> mesh -> confidence.

Numpy in, numpy out; no torch unless the backend is torch. The node, the ``infer`` command,
the benchmarks and the tests all drive :class:`HandMeshPipeline`.

Left hands go through mirroring: the pair is mirrored (the flipped right image becomes the
left view and vice versa, ``cx -> W - 1 - cx``), the right-hand network runs on it, and each
vertex ``(x', y, z)`` of the mirrored rig maps back to ``(B - x', y, z)`` in the original left
optical frame (the mirror swaps the cameras, which sit ``B`` apart). Tracking runs in the
mirrored (working) pair; the estimate's ``uv_left`` is in the input left image (the mirrored
right branch's uv, flipped back: ``u -> W - 1 - u``).

Confidence. Each vertex has two estimates (the left and the right branch, which share z):
their 3D distance and the vertical disparity ``|v_l - v_r|`` (0 on a rectified pair for the
same surface point) measure left-right agreement; a vertex's confidence is
``exp(-(d / sigma_m)^2 / 2) * exp(-(dv / sigma_px)^2 / 2)`` and the hand's the mean. Below
``min_confidence`` the result is "no hand" with the reason, never a mesh. A mesh whose size
no hand has (its bounding box's second-largest side under ``min_hand_extent_m``, a mesh
collapsed onto a point or a line, or its largest side over ``max_hand_extent_m``) is refused
the same way, whatever its confidence: two branches of a broken model can agree.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from stereo_hand_mesh.errors import ConfigError, ModelFileError, ShapeError
from stereo_hand_mesh.geometry.branch_meshes import meshes_from_uv
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.geometry.crop import cut_crop
from stereo_hand_mesh.pipeline.filter import OneEuroFilter
from stereo_hand_mesh.pipeline.locator import LocatorSettings, StereoBoxes, locate_hand
from stereo_hand_mesh.runtime.base import Backend, ModelInfo, normalize_crops_numpy

__all__ = [
    "HANDEDNESS",
    "HandEstimate",
    "HandMeshPipeline",
    "PipelineSettings",
    "joint_regressor_for",
]

HANDEDNESS = ("right", "left")


@dataclass(frozen=True)
class PipelineSettings:
    """Settings of :class:`HandMeshPipeline`.

    Attributes:
        handedness: ``"right"`` or ``"left"`` (through mirroring).
        min_confidence: below this overall confidence no mesh is output.
        min_hand_extent_m: smallest second-largest side of the mesh's bounding box, metres
            (a real hand's is 9-24 cm; below it the mesh is collapsed).
        max_hand_extent_m: largest side of the mesh's bounding box, metres (a real hand's is
            10-25 cm).
        confidence_sigma_m: left-right 3D distance scale of the confidence, metres.
        confidence_sigma_px: vertical disparity scale of the confidence, pixels.
        smoothing: apply the One Euro filter to vertices between pairs.
        filter_min_cutoff_hz: One Euro minimum cutoff frequency, Hz.
        filter_beta: One Euro speed coefficient, 1/m.
        tracking: start the locator from the previous estimate.
        locator: the locator's settings.
    """

    handedness: str = "right"
    min_confidence: float = 0.3
    min_hand_extent_m: float = 0.03
    max_hand_extent_m: float = 0.4
    confidence_sigma_m: float = 0.02
    confidence_sigma_px: float = 4.0
    smoothing: bool = True
    filter_min_cutoff_hz: float = 1.0
    filter_beta: float = 20.0
    tracking: bool = True
    locator: LocatorSettings = field(default_factory=LocatorSettings)

    def __post_init__(self) -> None:
        if self.handedness not in HANDEDNESS:
            raise ConfigError(f"handedness expected one of {HANDEDNESS}; got {self.handedness!r}")
        if not (0.0 <= self.min_confidence <= 1.0):
            raise ConfigError(f"min_confidence expected in [0, 1]; got {self.min_confidence}")
        if not (0.0 <= self.min_hand_extent_m < self.max_hand_extent_m):
            raise ConfigError(
                "PipelineSettings expected 0 <= min_hand_extent_m < max_hand_extent_m; got "
                f"{self.min_hand_extent_m}, {self.max_hand_extent_m}"
            )
        for name in ("confidence_sigma_m", "confidence_sigma_px", "filter_min_cutoff_hz"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"PipelineSettings.{name} expected > 0; got {value}")


@dataclass(frozen=True)
class HandEstimate:
    """The result for one stereo pair.

    Attributes:
        found: True when a mesh is output.
        reason: why not (``"no hand found"``, ``"confidence 0.12 < min_confidence 0.3"``),
            or ``"ok"``.
        confidence: overall confidence in [0, 1] (0 when no hand was located).
        vertices: (V, 3) metres, left optical frame, or None.
        joints: (21, 3) metres, left optical frame, or None.
        vertex_confidence: (V,) in [0, 1], or None.
        uv_left: (V, 2) vertices in the input left image, pixels, or None.
        boxes: the crop boxes used, or None.
        timings_ms: per-stage wall times, milliseconds.
    """

    found: bool
    reason: str
    confidence: float
    vertices: np.ndarray | None = None
    joints: np.ndarray | None = None
    vertex_confidence: np.ndarray | None = None
    uv_left: np.ndarray | None = None
    boxes: StereoBoxes | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def joint_regressor_for(info: ModelInfo) -> np.ndarray:
    """(21, V) joint regressor of a model's topology (the template hand).

    Raises:
        ModelFileError: the model was trained on another topology (e.g. MANO's, whose
            regressor the pipeline does not ship).
    """
    from stereo_hand_mesh.hand import template_hand

    if info.hand_model != "template":
        raise ModelFileError(
            f"the pipeline expected a template-topology model; got hand_model {info.hand_model!r}"
        )
    hand = template_hand()
    if hand.topology_hash != info.topology_hash:
        raise ModelFileError(
            f"model topology {info.topology_hash} expected the template hand's "
            f"{hand.topology_hash}"
        )
    return np.asarray(hand.joint_regressor)


def _implausible_extent(vertices: np.ndarray, settings: PipelineSettings) -> str | None:
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


def _mirror_rig_arrays(rig: StereoRig) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics [fx, fy, cx, cy] of the mirrored pair's (left, right) cameras."""
    w = rig.left.width
    k_l = np.array([rig.right.fx, rig.right.fy, w - 1 - rig.right.cx, rig.right.cy])
    k_r = np.array([rig.left.fx, rig.left.fy, w - 1 - rig.left.cx, rig.left.cy])
    return k_l, k_r


class HandMeshPipeline:
    """Stereo pair in, hand mesh out (see the module docstring).

    Args:
        backend: an inference backend (:func:`~stereo_hand_mesh.runtime.create_backend`).
        joint_regressor: (21, V) joint regressor of the model's topology.
        settings: the pipeline's settings.

    Raises:
        ConfigError: the regressor does not fit the backend's model.
    """

    def __init__(
        self,
        backend: Backend,
        joint_regressor: np.ndarray,
        settings: PipelineSettings | None = None,
    ) -> None:
        self.backend = backend
        self.settings = settings or PipelineSettings()
        if joint_regressor.shape != (21, backend.info.num_vertices):
            raise ConfigError(
                f"joint_regressor expected shape (21, {backend.info.num_vertices}); got "
                f"{joint_regressor.shape}"
            )
        self.regressor = np.asarray(joint_regressor, dtype=np.float64)
        self._filter = OneEuroFilter(self.settings.filter_min_cutoff_hz, self.settings.filter_beta)
        self._previous_uv: np.ndarray | None = None  # (V, 2) working-pair left uv, pixels
        self._previous_disparity: float | None = None

    def update_settings(self, settings: PipelineSettings) -> None:
        """Apply new settings from the next pair on (the filter restarts)."""
        self.settings = settings
        self._filter = OneEuroFilter(settings.filter_min_cutoff_hz, settings.filter_beta)
        self.reset()

    def reset(self) -> None:
        """Forget the tracking state and the filter (e.g. after a model swap)."""
        self._filter.reset()
        self._previous_uv = None
        self._previous_disparity = None

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
            roi: optional external region ``(x0, y0, side)`` in left image pixels (right
                hands only).

        Raises:
            ShapeError: images of different sizes, or not matching the CameraInfo size.
            ConfigError: an ``roi`` with handedness ``left``, or an invalid ``roi``.
        """
        t0 = time.perf_counter()
        times: dict[str, float] = {}
        if left.shape[:2] != (rig.left.height, rig.left.width):
            raise ShapeError(
                f"left image expected {rig.left.width}x{rig.left.height} (its camera_info); "
                f"got {left.shape[1]}x{left.shape[0]}"
            )
        mirror = self.settings.handedness == "left"
        if mirror:
            left, right = np.ascontiguousarray(right[:, ::-1]), np.ascontiguousarray(left[:, ::-1])
            k_l, k_r = _mirror_rig_arrays(rig)
            if roi is not None:
                raise ConfigError(
                    "roi expected handedness 'right' (a left-image ROI has no place in the "
                    "mirrored pair); got handedness 'left' with an roi"
                )
        else:
            k_l = np.array([rig.left.fx, rig.left.fy, rig.left.cx, rig.left.cy])
            k_r = np.array([rig.right.fx, rig.right.fy, rig.right.cx, rig.right.cy])
        boxes = locate_hand(
            left,
            right,
            self.settings.locator,
            previous_uv_left=self._previous_uv if self.settings.tracking else None,
            previous_disparity_px=self._previous_disparity if self.settings.tracking else None,
            roi=roi,
        )
        times["locate"] = (time.perf_counter() - t0) * 1e3
        if boxes is None:
            return self._none("no hand found", 0.0, times)
        t1 = time.perf_counter()
        info = self.backend.info
        crops = np.stack([cut_crop(left, boxes.left), cut_crop(right, boxes.right)])
        x = normalize_crops_numpy(crops, info)
        times["crop"] = (time.perf_counter() - t1) * 1e3
        t2 = time.perf_counter()
        uv, _ = self.backend.infer(x)
        times["inference"] = (time.perf_counter() - t2) * 1e3
        t3 = time.perf_counter()
        frac = uv.astype(np.float64)
        meshes = meshes_from_uv(
            frac[0:1],
            frac[1:2],
            boxes.left.as_array()[None],
            boxes.right.as_array()[None],
            k_l[None],
            k_r[None],
            np.array([rig.baseline]),
        )
        left_v, right_v = meshes.left[0], meshes.right[0]
        dist = np.linalg.norm(left_v - right_v, axis=1)
        dv = np.abs(meshes.uv_left[0, :, 1] - meshes.uv_right[0, :, 1])
        s = self.settings
        vconf = np.exp(-0.5 * (dist / s.confidence_sigma_m) ** 2) * np.exp(
            -0.5 * (dv / s.confidence_sigma_px) ** 2
        )
        vertices = 0.5 * (left_v + right_v)
        disparity = float(np.median(meshes.uv_left[0, :, 0] - meshes.uv_right[0, :, 0]))
        if mirror:
            vertices = vertices.copy()
            vertices[:, 0] = rig.baseline - vertices[:, 0]
        times["triangulate"] = (time.perf_counter() - t3) * 1e3
        if not np.isfinite(vertices).all():
            return self._none("non-finite mesh (NaN or inf vertices)", 0.0, times, boxes)
        confidence = float(vconf.mean())
        implausible = _implausible_extent(vertices, s)
        if implausible is not None:
            return self._none(implausible, confidence, times, boxes)
        if confidence < s.min_confidence:
            return self._none(
                f"confidence {confidence:.2f} < min_confidence {s.min_confidence:.2f}",
                confidence,
                times,
                boxes,
            )
        if s.smoothing and stamp_s is not None:
            vertices = self._filter(vertices, stamp_s)
        joints = self.regressor @ vertices
        uv_work = meshes.uv_left[0]
        uv_left = uv_work
        if mirror:  # the input left image is the working pair's right view, flipped
            uv_left = meshes.uv_right[0].copy()
            uv_left[:, 0] = rig.left.width - 1 - uv_left[:, 0]
        self._previous_uv, self._previous_disparity = uv_work, disparity
        return HandEstimate(True, "ok", confidence, vertices, joints, vconf, uv_left, boxes, times)

    def _none(
        self,
        reason: str,
        confidence: float,
        times: dict[str, float],
        boxes: StereoBoxes | None = None,
    ) -> HandEstimate:
        self.reset()
        return HandEstimate(False, reason, confidence, boxes=boxes, timings_ms=times)
