"""The template fit's settings and result (:func:`stereo_hand_mesh.pipeline.fit.fit_hand`,
numpy; :func:`stereo_hand_mesh.model.hand_fit_torch.fit_hand_torch`, its torch twin).

They live in the hand layer so that both fits, one in the pipeline and one in the model
layer, read one definition without an upward import. The module docstring of
:mod:`stereo_hand_mesh.pipeline.fit` describes the cost they parametrize.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.hand.shape import SHAPE_LIMITS, SHAPE_PARAM_NAMES

__all__ = ["ROBUST_LOSSES", "FitSettings", "HandFit"]

#: Accepted values of :attr:`FitSettings.robust_loss`.
ROBUST_LOSSES: tuple[str, ...] = ("cauchy", "huber")


@dataclass(frozen=True)
class FitSettings:
    """Settings of :func:`~stereo_hand_mesh.pipeline.fit.fit_hand`.

    Attributes:
        max_iterations: Levenberg-Marquardt iterations (Jacobian evaluations) at most, cold
            start (``init=None``). Default 10.
        max_iterations_warm: the same for a warm start. Default 5.
        tolerance: stop when an accepted step lowers the cost by less than this fraction of
            it, once the robust scale has settled (or when the step is below 1e-7), cold
            start. Default 1e-3 (a cold start with outliers needs the extra iterations).
        tolerance_warm: the same for a warm start, which begins near the optimum with the
            outliers already down-weighted. Default 1e-2 (measured on synthetic pairs: the
            same error as 1e-3 with about one iteration fewer).
        step_tolerance_m: stop as well when an accepted step moved no joint by more than this
            many metres (once the robust scale has settled). Default 1e-4 (0.1 mm).
        robust_loss: ``"cauchy"`` (default; large residuals lose their influence) or
            ``"huber"`` (linear beyond the scale).
        robust_scale_px: scale of the robust loss, pixels. Default 4. The solver starts
            wider: at the 90th percentile of the start's keypoint errors, halved every
            iteration (graduated non-convexity), and never below ``1.4826 * median`` error,
            so that a rough start is not mistaken for outliers.
        world_prior_weight: weight of the world-landmark prior: a deviation of the model's
            centred joints from the (scale-fitted) centred landmarks costs like
            ``world_prior_weight`` times the same deviation seen in the image at the hand's
            depth. 0 disables the prior. Default 0.1 (landmarks are trusted about a tenth as
            much as the keypoints).
        pose_prior_weight: pixels per radian of deviation from the relaxed pose
            (``GESTURES["relaxed"]``). Default 1.
        shape_prior_weight: pixels per unit of deviation of a proportion (every shape factor
            but the overall ``scale``, which the stereo pair measures) from the mean shape
            (1.0). Default 10 (a 10% deviation costs like one pixel).
        min_disparity_px: smallest disparity (pixels, after the principal points' offset)
            of a keypoint usable for the cold-start triangulation. Default 1.
        initial_damping: initial Levenberg-Marquardt damping (relative to the diagonal of
            the normal matrix). Default 1e-3.
        fixed_shape: None (default: the shape is fitted per pair) or the user's 9 shape
            factors (:data:`~stereo_hand_mesh.hand.shape.SHAPE_PARAM_NAMES` order, within
            :data:`~stereo_hand_mesh.hand.shape.SHAPE_LIMITS`), e.g. a per-user calibration:
            the fit then holds the shape at these values (starts there, never steps it) and
            solves pose, rotation and translation only. The cost is unchanged (its shape
            prior is then a constant).
    """

    max_iterations: int = 10
    max_iterations_warm: int = 5
    tolerance: float = 1e-3
    tolerance_warm: float = 1e-2
    step_tolerance_m: float = 1e-4
    robust_loss: str = "cauchy"
    robust_scale_px: float = 4.0
    world_prior_weight: float = 0.1
    pose_prior_weight: float = 1.0
    shape_prior_weight: float = 10.0
    min_disparity_px: float = 1.0
    initial_damping: float = 1e-3
    fixed_shape: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.fixed_shape is not None:
            self._check_fixed_shape()
        for name in ("max_iterations", "max_iterations_warm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"FitSettings.{name} expected an integer >= 1; got {value!r}")
        if self.robust_loss not in ROBUST_LOSSES:
            raise ConfigError(
                f"FitSettings.robust_loss expected one of {ROBUST_LOSSES}; "
                f"got {self.robust_loss!r}"
            )
        positive = (
            "tolerance",
            "tolerance_warm",
            "step_tolerance_m",
            "robust_scale_px",
            "min_disparity_px",
            "initial_damping",
        )
        for f in fields(self):
            if f.name in ("max_iterations", "max_iterations_warm", "robust_loss", "fixed_shape"):
                continue
            value = getattr(self, f.name)
            ok = isinstance(value, int | float) and math.isfinite(value)
            if not ok or value < 0 or (f.name in positive and value == 0):
                bound = "> 0" if f.name in positive else ">= 0"
                raise ConfigError(
                    f"FitSettings.{f.name} expected a finite value {bound}; got {value!r}"
                )

    def _check_fixed_shape(self) -> None:
        """``fixed_shape``: a tuple of S finite floats within the shape limits (frozen: the
        settings stay hashable and comparable)."""
        value = self.fixed_shape
        names = SHAPE_PARAM_NAMES
        if not isinstance(value, tuple) or len(value) != len(names):
            raise ConfigError(
                f"FitSettings.fixed_shape expected None or a tuple of {len(names)} shape factors "
                f"({', '.join(names)}); got {value!r}"
            )
        for k, (name, v) in enumerate(zip(names, value, strict=True)):
            lo, hi = SHAPE_LIMITS[:, k]
            real = isinstance(v, int | float) and not isinstance(v, bool)
            if not (real and math.isfinite(v) and lo - 1e-9 <= v <= hi + 1e-9):
                raise ConfigError(
                    f"FitSettings.fixed_shape[{k}] ({name}) expected a value in [{lo}, {hi}]; "
                    f"got {v!r}"
                )


@dataclass(frozen=True)
class HandFit:
    """The template hand fitted to one stereo pair's keypoints.

    Pose, shape, global rotation and translation are the template's (a right hand); for a
    left hand they are those of the right hand whose mirror image (``x -> -x`` in the left
    optical frame) is the observed hand (module docstring).

    Joint orientations (``joint_rotations``): one right-handed frame per joint, its columns
    the frame's x, y, z axes in the left optical frame, origin at the joint. As in REP 103
    the frame is right-handed with x "forward": x points along the bone from the joint to
    its child (distal; for the wrist towards middle_mcp, for a tip along the bone from its
    parent, the DIP or the thumb's IP), z towards the palmar side of that bone (the side
    flexion bends it to; for the thumb the side of its pad), orthogonal to x, and
    ``y = z x x``, which points to the little-finger side of a right hand and to the thumb
    side of a left hand. The frames turn with the bones (a finger's twist turns them about x).

    Attributes:
        pose: (26,) pose parameters, radians
            (:data:`~stereo_hand_mesh.hand.skeleton.POSE_PARAM_NAMES`), within the limits.
        shape: (9,) shape factors (:data:`~stereo_hand_mesh.hand.shape.SHAPE_PARAM_NAMES`),
            within the limits.
        global_rot: (3,) axis-angle of the hand about the wrist, radians.
        trans: (3,) wrist position of the (right) template hand, metres, left optical frame.
        vertices: (V, 3) skinned vertices, metres, left optical frame (mirrored for a left
            hand: render them with ``mirror_to_left``'s flipped faces).
        joints: (21, 3) the posed kinematic skeleton's joints (see the module docstring),
            metres, left optical frame, :data:`~stereo_hand_mesh.hand.joints.JOINT_NAMES`
            order.
        joint_rotations: (21, 3, 3) joint frames (above), columns x, y, z.
        residuals_px: (2, 21) reprojection error of each joint in the left (row 0) and the
            right (row 1) view, pixels (Euclidean, unweighted; computed for every keypoint,
            also those of weight 0).
        iterations: Levenberg-Marquardt iterations used.
        cost: final cost (module docstring), pixels squared, with the robust scale
            ``robust_scale_px``.
        handedness: ``"right"`` or ``"left"``.
    """

    pose: np.ndarray
    shape: np.ndarray
    global_rot: np.ndarray
    trans: np.ndarray
    vertices: np.ndarray
    joints: np.ndarray
    joint_rotations: np.ndarray
    residuals_px: np.ndarray
    iterations: int
    cost: float
    handedness: str
