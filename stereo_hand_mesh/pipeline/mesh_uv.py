"""The synthetic-trained mesh network's per-pair path (legacy models): locate -> crop both
views -> per-vertex uv -> mesh -> confidence.

This is how models of the mesh-uv kind (``stereo-hand-mesh pretrain``/``adapt`` checkpoints
and their ONNX exports, ``models/default.*``) run: the adaptation node still produces them and
the seed paper's experiment (``benchmarks/paper_tables.py``) uses them. The product's default
path is the real-trained keypoint network of :mod:`stereo_hand_mesh.pipeline.estimator`.

Numpy in, numpy out; no torch unless the backend is torch.

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

import time
from dataclasses import replace

import numpy as np

from stereo_hand_mesh.errors import ConfigError, ModelFileError, ShapeError
from stereo_hand_mesh.geometry.branch_meshes import meshes_from_uv
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.geometry.crop import cut_crop
from stereo_hand_mesh.model.preprocess import normalize_crops
from stereo_hand_mesh.pipeline.estimator import (
    HandEstimate,
    HandsEstimate,
    PipelineSettings,
    implausible_extent,
)
from stereo_hand_mesh.pipeline.filter import OneEuroFilter
from stereo_hand_mesh.pipeline.locator import StereoBoxes, locate_hand
from stereo_hand_mesh.runtime.base import Backend, ModelInfo

__all__ = ["MeshUVPipeline", "joint_regressor_for"]


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


def _mirror_rig_arrays(rig: StereoRig) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics [fx, fy, cx, cy] of the mirrored pair's (left, right) cameras."""
    w = rig.left.width
    k_l = np.array([rig.right.fx, rig.right.fy, w - 1 - rig.right.cx, rig.right.cy])
    k_r = np.array([rig.left.fx, rig.left.fy, w - 1 - rig.left.cx, rig.left.cy])
    return k_l, k_r


class MeshUVPipeline:
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
        from stereo_hand_mesh.hand import template_hand

        #: (F, 3) triangles of the output mesh (the template's winding, as this path always had)
        self.faces = template_hand().faces
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
        x = normalize_crops(crops, info.normalization, channels_last=True)
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
        implausible = implausible_extent(vertices, s)
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

    def process_hands(
        self,
        left: np.ndarray,
        right: np.ndarray,
        rig: StereoRig,
        stamp_s: float | None = None,
        roi: tuple[float, float, float] | None = None,
    ) -> HandsEstimate:
        """:meth:`process`' one hand as a :class:`HandsEstimate`, so that callers drive both
        pipelines alike. The hand is ``hand_id`` 0 of side ``settings.handedness``
        (``"right"`` under ``"auto"``: this path reads no handedness from the image); located
        but refused, it is the one dropped hand.

        Args and raises: as :meth:`process`.
        """
        est = self.process(left, right, rig, stamp_s, roi)
        side = "left" if self.settings.handedness == "left" else "right"
        if est.found:
            return HandsEstimate(
                (replace(est, hand_id=0, handedness=side),), (), "ok", est.timings_ms
            )
        dropped = (replace(est, handedness=side),) if est.boxes is not None else ()
        return HandsEstimate((), dropped, est.reason, est.timings_ms)

    def _none(
        self,
        reason: str,
        confidence: float,
        times: dict[str, float],
        boxes: StereoBoxes | None = None,
    ) -> HandEstimate:
        self.reset()
        return HandEstimate(False, reason, confidence, boxes=boxes, timings_ms=times)
