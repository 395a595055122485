"""A smooth, periodic hand motion in front of a stereo rig (the simulated camera's scene).

Over one loop of ``loop_seconds`` the hand (palm toward the camera, fingers up) drifts left
and right, up and down and nearer and farther, tilts and rolls gently, and its fingers go
through a sequence of gestures of :mod:`stereo_hand_mesh.hand.poses` (by default spread ->
fist -> relaxed -> pinch -> point -> spread), holding each one for a moment and blending to
the next with a C2-smooth easing. Every component is a sum of sinusoids whose periods divide
the loop, so ``scene_at(t)`` equals ``scene_at(t + loop_seconds)`` (up to rounding) and a
looped sequence has no jump.

When the fingers close into a fist the thumb follows them, and when they open it leads, as
real hands do: blending all joints at once would push the thumb through the curling fingers.

The amplitude of the sideways drift is fitted to the rig once, at construction: the hand is
posed at ``fit_samples`` instants of the loop, and the largest drift that keeps every vertex
at least ``margin_px`` inside both images at each of them is used, times a safety factor of
0.9 (between the instants the hand moves by less than the margin).

Deterministic for (seed, t): the seed fixes the hand's shape, its appearance (skin, light,
background, sensor gains) and the phases of the drift and rotation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from stereo_hand_mesh.data.synth import (
    HAND_TO_CAMERA,
    HandScene,
    SceneAppearance,
    SynthSettings,
    render_background_pair,
    render_scene,
    sample_appearance,
)
from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.hand.joints import FINGERS, palm_center
from stereo_hand_mesh.hand.model import HandModel
from stereo_hand_mesh.hand.poses import GESTURES
from stereo_hand_mesh.hand.shape import SHAPE_LIMITS, sample_shape_vectors
from stereo_hand_mesh.hand.skeleton import POSE_PARAM_NAMES, axis_angle_to_matrix

__all__ = [
    "HandMotion",
    "HandMotionSettings",
    "MotionFrame",
    "ease_smootherstep",
    "loop_frame_times",
    "render_motion_frame",
]

#: Sub-streams of ``numpy.random.default_rng([seed, stream, ...])``.
_SHAPE_STREAM, _APPEARANCE_STREAM, _PHASE_STREAM, _NOISE_STREAM = 0, 1, 2, 3
#: Fraction of the fitted room the sideways drift uses (the room is fitted on samples).
_DRIFT_SAFETY = 0.9
#: No vertex may come nearer to the camera than this, metres.
_NEAREST_M = 0.15
#: (P,) True for the thumb's pose parameters.
_THUMB_PARAMS = np.array([name.startswith("thumb_") for name in POSE_PARAM_NAMES])
#: (P,) True for the flexion parameters of the four fingers (what "closing" means).
_FINGER_FLEX_PARAMS = np.array(
    [name.endswith("_flex") and name.split("_")[0] in FINGERS[1:] for name in POSE_PARAM_NAMES]
)


@dataclass(frozen=True)
class HandMotionSettings:
    """How the simulated hand moves. Angles in degrees, distances in metres.

    Attributes:
        loop_seconds: duration of one loop of the motion, seconds.
        depth_range_m: range of the palm centre's depth, metres. The default suits
            STB's field of view (about 42 x 32 degrees): an open hand is about 0.2 m
            long, and both views must contain it.
        scale_range: range of the hand's overall scale (the first shape parameter); the
            other shape parameters are drawn as in
            :func:`~stereo_hand_mesh.hand.shape.sample_shape_vectors`. Narrower than the
            model's limits so that large hands still have room to drift.
        gestures: names of :data:`~stereo_hand_mesh.hand.poses.GESTURES` visited in order,
            each for an equal share of the loop; the last blends back into the first.
        hold_fraction: share of each gesture's time spent holding it (the rest blends to
            the next gesture).
        thumb_lag_fraction: share of a blend by which the thumb follows the fingers when
            they close (and leads them when they open).
        max_tilt_deg: largest tilt of the palm away from facing the camera, degrees.
        max_roll_deg: largest roll of the hand about the camera axis, degrees.
        max_drift_m: cap on the amplitude of the sideways (x and y) drift, metres; the
            drift is smaller where the images leave less room.
        margin_px: every vertex stays at least this far inside both images, pixels.
        fit_samples: instants of the loop at which the drift amplitude is fitted.
    """

    loop_seconds: float = 8.0
    depth_range_m: tuple[float, float] = (0.5, 0.75)
    scale_range: tuple[float, float] = (0.85, 1.1)
    gestures: tuple[str, ...] = ("spread", "fist", "relaxed", "pinch", "point")
    hold_fraction: float = 0.15
    thumb_lag_fraction: float = 0.25
    max_tilt_deg: float = 30.0
    max_roll_deg: float = 20.0
    max_drift_m: float = 0.12
    margin_px: float = 12.0
    fit_samples: int = 240

    def __post_init__(self) -> None:
        if not (math.isfinite(self.loop_seconds) and self.loop_seconds > 0):
            raise ConfigError(f"loop_seconds expected > 0 seconds; got {self.loop_seconds}")
        lo, hi = self.depth_range_m
        if not 0.1 <= lo <= hi:
            raise ConfigError(f"depth_range_m expected 0.1 <= low <= high; got {lo}, {hi}")
        s_lo, s_hi = self.scale_range
        if not SHAPE_LIMITS[0, 0] <= s_lo <= s_hi <= SHAPE_LIMITS[1, 0]:
            raise ConfigError(
                f"scale_range expected {SHAPE_LIMITS[0, 0]} <= low <= high <= "
                f"{SHAPE_LIMITS[1, 0]}; got {s_lo}, {s_hi}"
            )
        if not self.gestures or any(g not in GESTURES for g in self.gestures):
            raise ConfigError(
                f"gestures expected a non-empty sequence of {sorted(GESTURES)}; "
                f"got {self.gestures}"
            )
        for name in ("hold_fraction", "thumb_lag_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} expected in [0, 1); got {value}")
        if not 0.0 <= self.max_tilt_deg <= 80.0:
            raise ConfigError(f"max_tilt_deg expected in [0, 80] degrees; got {self.max_tilt_deg}")
        if not 0.0 <= self.max_roll_deg <= 90.0:
            raise ConfigError(f"max_roll_deg expected in [0, 90] degrees; got {self.max_roll_deg}")
        if not self.max_drift_m >= 0.0:
            raise ConfigError(f"max_drift_m expected >= 0 metres; got {self.max_drift_m}")
        if not self.margin_px >= 0.0:
            raise ConfigError(f"margin_px expected >= 0 pixels; got {self.margin_px}")
        if self.fit_samples < 8:
            raise ConfigError(f"fit_samples expected >= 8; got {self.fit_samples}")


def ease_smootherstep(x: np.ndarray | float) -> np.ndarray:
    """Perlin's smootherstep ``6x^5 - 15x^4 + 10x^3`` of ``x`` clipped to [0, 1].

    Rises from 0 to 1 with zero first and second derivatives at both ends (C2 easing).
    """
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return x * x * x * (x * (6.0 * x - 15.0) + 10.0)


def _loop_phase(t_s: float, loop_seconds: float) -> float:
    """Position of ``t_s`` (seconds) in the loop, in [0, 1)."""
    p = (float(t_s) / loop_seconds) % 1.0
    return 0.0 if p >= 1.0 else p  # ``%`` can round up to 1.0 for tiny negative t


def _harmonics(
    phase: float, weights: tuple[float, ...], freqs: tuple[int, ...], shifts: np.ndarray
) -> float:
    """``sum_i w_i sin(2 pi f_i phase + shift_i)`` (shifts in radians): periodic in
    ``phase`` with period 1, and within [-1, 1] when the weights sum to 1."""
    return float(
        sum(
            w * math.sin(2.0 * math.pi * f * phase + s)
            for w, f, s in zip(weights, freqs, shifts, strict=True)
        )
    )


@dataclass(frozen=True)
class _Path:
    """The normalized components of the motion at one phase, each in [-1, 1]."""

    drift_x: float
    drift_y: float
    depth: float
    tilt_x: float
    tilt_y: float
    roll: float


class HandMotion:
    """A periodic hand motion in front of ``synth.rig``, fixed by ``seed``.

    Args:
        hand: the hand model.
        synth: the domain (appearance style) and the rig the hand must stay inside.
        settings: the motion's settings.
        seed: fixes the shape, the appearance and the phases of the motion.

    Raises:
        ConfigError: the hand does not fit inside both images with the margin at some
            instant even without drift (smaller images, nearer depths or a larger margin
            than the rig allows).

    Examples:
        >>> from stereo_hand_mesh.hand.model import template_hand
        >>> motion = HandMotion(template_hand(), SynthSettings(), HandMotionSettings(), 0)
        >>> scene = motion.scene_at(1.5)
        >>> scene.pose.shape == (template_hand().num_pose_params,)
        True
    """

    def __init__(
        self, hand: HandModel, synth: SynthSettings, settings: HandMotionSettings, seed: int
    ) -> None:
        self.hand = hand
        self.synth = synth
        self.settings = settings
        self.seed = int(seed)
        shape_rng = np.random.default_rng([self.seed, _SHAPE_STREAM])
        self.shape: np.ndarray = sample_shape_vectors(shape_rng, 1)[0]
        self.shape[0] = shape_rng.uniform(*settings.scale_range)
        self.shape.setflags(write=False)
        self.appearance: SceneAppearance = sample_appearance(
            synth, np.random.default_rng([self.seed, _APPEARANCE_STREAM]), hand
        )
        self._shifts = np.random.default_rng([self.seed, _PHASE_STREAM]).uniform(
            0.0, 2.0 * math.pi, 10
        )
        self._gestures = np.stack([GESTURES[g] for g in settings.gestures])
        self._drift_centre_m, self._drift_amplitude_m = self._fit_drift()

    @property
    def loop_seconds(self) -> float:
        """Duration of one loop, seconds."""
        return self.settings.loop_seconds

    @property
    def drift_amplitude_m(self) -> tuple[float, float]:
        """The fitted (x, y) amplitudes of the sideways drift, metres."""
        return (float(self._drift_amplitude_m[0]), float(self._drift_amplitude_m[1]))

    def _path(self, phase: float) -> _Path:
        s = self._shifts
        return _Path(
            drift_x=_harmonics(phase, (0.65, 0.35), (1, 2), s[0:2]),
            drift_y=_harmonics(phase, (0.65, 0.35), (1, 3), s[2:4]),
            depth=_harmonics(phase, (0.6, 0.4), (1, 2), s[4:6]),
            tilt_x=_harmonics(phase, (1.0,), (1,), s[6:7]),
            tilt_y=_harmonics(phase, (0.7, 0.3), (2, 1), s[7:9]),
            roll=_harmonics(phase, (1.0,), (1,), s[9:10]),
        )

    def pose_at(self, t_s: float) -> tuple[np.ndarray, str]:
        """The finger pose at time ``t_s`` seconds.

        Returns:
            (P,) pose vector (radians) and the name of the nearest gesture.
        """
        phase = _loop_phase(t_s, self.loop_seconds)
        n = len(self._gestures)
        segment = min(int(phase * n), n - 1)
        local = phase * n - segment
        start, end = self._gestures[segment], self._gestures[(segment + 1) % n]
        blend = (local - self.settings.hold_fraction) / (1.0 - self.settings.hold_fraction)
        lag = self.settings.thumb_lag_fraction
        leading = float(ease_smootherstep(blend / (1.0 - lag)))
        trailing = float(ease_smootherstep((blend - lag) / (1.0 - lag)))
        closing = end[_FINGER_FLEX_PARAMS].sum() > start[_FINGER_FLEX_PARAMS].sum()
        w_thumb, w_fingers = (trailing, leading) if closing else (leading, trailing)
        weight = np.where(_THUMB_PARAMS, w_thumb, w_fingers)
        pose = (1.0 - weight) * start + weight * end
        name = self.settings.gestures[(segment + int(blend >= 0.5)) % n]
        return pose, name

    def rotation_at(self, t_s: float) -> np.ndarray:
        """(3, 3) rotation from the hand frame to the left optical frame at ``t_s``."""
        path = self._path(_loop_phase(t_s, self.loop_seconds))
        return self._rotation(path)

    def _rotation(self, path: _Path) -> np.ndarray:
        tilt = np.deg2rad(self.settings.max_tilt_deg) / math.sqrt(2.0)
        roll = np.deg2rad(self.settings.max_roll_deg) * path.roll
        r_tilt = axis_angle_to_matrix(np.array([tilt * path.tilt_x, tilt * path.tilt_y, 0.0]))
        r_roll = axis_angle_to_matrix(np.array([0.0, 0.0, roll]))
        return r_tilt @ r_roll @ HAND_TO_CAMERA

    def _depth(self, path: _Path) -> float:
        lo, hi = self.settings.depth_range_m
        return 0.5 * (lo + hi) + 0.5 * (hi - lo) * path.depth

    def _posed_about_palm(
        self, pose: np.ndarray, rotation: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vertices (V, 3) and joints (21, 3), rotated, relative to the palm centre, m."""
        out = self.hand.forward(pose[None], self.shape[None])
        verts = out.vertices[0] @ rotation.T
        joints = out.joints[0] @ rotation.T
        palm = palm_center(joints)
        return verts - palm, joints - palm

    def _fit_drift(self) -> tuple[np.ndarray, np.ndarray]:
        """The constant offset (2,) and amplitude (2,) of the drift, metres (x, y).

        At each sampled instant, with the palm at ``(B / 2, 0, z)`` (midway between the two
        cameras), every vertex bounds the sideways shift that keeps it inside both images:
        ``m <= fx (x + dx - tx) / z + cx < W - m`` for tx in (0, B), and the same along y.
        The offset is the middle of the shifts allowed at every instant, and the amplitude
        the largest that the normalized drift (in [-1, 1]) can be scaled by.
        """
        rig, m = self.synth.rig, self.settings.margin_px
        lows, highs, drifts, nearest = [], [], [], np.inf
        for k in range(self.settings.fit_samples):
            t = k * self.loop_seconds / self.settings.fit_samples
            path = self._path(_loop_phase(t, self.loop_seconds))
            verts, _ = self._posed_about_palm(self.pose_at(t)[0], self._rotation(path))
            verts = verts + np.array([0.5 * rig.baseline_m, 0.0, self._depth(path)])
            z = verts[:, 2]
            nearest = min(nearest, float(z.min()))
            lo_x = max(
                ((m - rig.cx) * z / rig.fx - verts[:, 0] + tx).max()
                for tx in (0.0, rig.baseline_m)
            )
            hi_x = min(
                ((rig.width - m - rig.cx) * z / rig.fx - verts[:, 0] + tx).min()
                for tx in (0.0, rig.baseline_m)
            )
            lo_y = ((m - rig.cy) * z / rig.fy - verts[:, 1]).max()
            hi_y = ((rig.height - m - rig.cy) * z / rig.fy - verts[:, 1]).min()
            lows.append((lo_x, lo_y))
            highs.append((hi_x, hi_y))
            drifts.append((path.drift_x, path.drift_y))
        low, high, drift = np.array(lows), np.array(highs), np.array(drifts)
        if nearest < _NEAREST_M:
            raise ConfigError(
                f"hand motion expected every vertex at least {_NEAREST_M} m from the camera; "
                f"got {nearest:.3f} m at depths {self.settings.depth_range_m} m"
            )
        short = float((low.max(axis=0) - high.min(axis=0)).max())
        if short > 0:
            raise ConfigError(
                f"hand motion expected the hand to fit inside both {rig.width}x{rig.height} "
                f"images with a {m} px margin at depths {self.settings.depth_range_m} m; got "
                f"{short * 100:.1f} cm too little room; use larger images, farther depths or "
                f"a smaller margin"
            )
        centre = 0.5 * (low.max(axis=0) + high.min(axis=0))
        amplitude = np.full(2, self.settings.max_drift_m)
        for axis in range(2):
            s = drift[:, axis]
            pos, neg = s > 1e-9, s < -1e-9
            room = np.concatenate(
                [
                    (high[pos, axis] - centre[axis]) / s[pos],
                    (low[neg, axis] - centre[axis]) / s[neg],
                ]
            )
            if room.size:
                amplitude[axis] = min(amplitude[axis], _DRIFT_SAFETY * room.min())
        return centre, np.maximum(amplitude, 0.0)

    def scene_at(self, t_s: float) -> HandScene:
        """The scene at time ``t_s`` seconds (any real; periodic with ``loop_seconds``).

        Returns:
            A :class:`~stereo_hand_mesh.data.synth.HandScene` with this motion's shape and
            appearance.
        """
        path = self._path(_loop_phase(t_s, self.loop_seconds))
        pose, gesture = self.pose_at(t_s)
        rotation = self._rotation(path)
        verts, _ = self._posed_about_palm(pose, rotation)
        rig = self.synth.rig
        palm = np.array(
            [
                0.5 * rig.baseline_m
                + self._drift_centre_m[0]
                + self._drift_amplitude_m[0] * path.drift_x,
                self._drift_centre_m[1] + self._drift_amplitude_m[1] * path.drift_y,
                self._depth(path),
            ]
        )
        return HandScene(
            pose=pose,
            shape=self.shape,
            rotation=rotation,
            centre_m=palm + verts.mean(axis=0),
            appearance=self.appearance,
            gesture=gesture,
        )


def loop_frame_times(loop_seconds: float, rate_hz: float) -> np.ndarray:
    """Times (N,) in seconds of the frames of one loop played at ``rate_hz``.

    ``N = max(1, round(rate_hz * loop_seconds))`` frames, evenly spaced over the loop, so
    playing them over and over at ``rate_hz`` repeats the motion without a jump (its
    period becomes ``N / rate_hz``, within half a frame of ``loop_seconds``).

    Raises:
        ConfigError: ``loop_seconds`` or ``rate_hz`` not positive.
    """
    if not (loop_seconds > 0 and rate_hz > 0):
        raise ConfigError(
            f"loop_frame_times expected loop_seconds > 0 and rate_hz > 0; got "
            f"{loop_seconds}, {rate_hz}"
        )
    n = max(1, round(rate_hz * loop_seconds))
    return np.arange(n) * (loop_seconds / n)


@dataclass(frozen=True)
class MotionFrame:
    """One rendered frame of a :class:`HandMotion`.

    Attributes:
        index: frame number (selects the sensor noise).
        time_s: time in the motion, seconds.
        left, right: (H, W, 3) uint8 RGB images.
        joints: (21, 3) float64 joints in the left optical frame, metres
            (:data:`~stereo_hand_mesh.hand.joints.JOINT_NAMES` order), or None when no
            hand is in view.
        gesture: the nearest gesture's name ("" when no hand is in view).
    """

    index: int
    time_s: float
    left: np.ndarray
    right: np.ndarray
    joints: np.ndarray | None
    gesture: str


def render_motion_frame(
    motion: HandMotion,
    index: int,
    time_s: float,
    faces_t: torch.Tensor,
    hand_visible: bool = True,
) -> MotionFrame:
    """Render frame ``index`` of ``motion`` at ``time_s`` seconds (deterministic).

    Args:
        motion: the motion (its rig and domain decide the images).
        index: frame number; the sensor noise comes from
            ``default_rng([motion.seed, 3, index])``.
        time_s: time in the motion, seconds.
        faces_t: (F, 3) int64 faces of ``motion.hand`` as a tensor.
        hand_visible: False renders the background alone (the "no hand" case).

    Returns:
        The frame.
    """
    if index < 0:
        raise ConfigError(f"frame index expected >= 0; got {index}")
    rng = np.random.default_rng([motion.seed, _NOISE_STREAM, index])
    if not hand_visible:
        left, right = render_background_pair(motion.synth, motion.appearance, rng)
        return MotionFrame(index, float(time_s), left, right, None, "")
    scene = motion.scene_at(time_s)
    pair = render_scene(motion.hand, motion.synth, scene, faces_t, rng)
    joints = pair.annotation["joints"].astype(np.float64)
    return MotionFrame(index, float(time_s), pair.left, pair.right, joints, scene.gesture)
