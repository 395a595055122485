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

Two hands (``HandMotionSettings.hands = 2``): the same person's left hand joins the right one
(the model's hand mirrored, same shape and skin, each with its own forearm), each in its own
half of the view as a person facing the camera shows them: the right hand on the image's
left, the left hand on its right, palms toward the camera. The left hand has its own drift,
depth and rotation phases and its own gesture sequence (``second_gestures``, offset by half a
gesture), so the two move independently. Both are rendered into one depth buffer, so a hand
hides the other where it is nearer. Each hand's drift is fitted as above, with the extra
bound that the hand stays on its side of the middle of the view, past it by at most
``midline_overlap_px``, as seen from a camera midway between the two; the hands therefore
pass close (and may touch) only when both lean to the middle at once. Two hands side by side
need more room than one: by default they move 0.75-1.0 m from the camera instead of
0.5-0.75 m. :meth:`HandMotion.scene_at` stays the right hand's scene and
:attr:`MotionFrame.joints` the right hand's joints; :meth:`HandMotion.scenes_at` and
:attr:`MotionFrame.joints_by_side` give both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from stereo_hand_mesh.data.synth import (
    HAND_TO_CAMERA,
    HandScene,
    SceneAppearance,
    SynthSettings,
    place_hand,
    render_background_pair,
    render_scene,
    sample_appearance,
)
from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.hand.joints import FINGERS, palm_center
from stereo_hand_mesh.hand.model import HandModel, mirror_joints_to_left, mirror_to_left
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
#: The left hand's phases (two-hand motions).
_SECOND_PHASE_STREAM = 4
#: Default depth ranges of the palm centre, metres, by number of hands.
_DEFAULT_DEPTHS_M = {1: (0.5, 0.75), 2: (0.75, 1.0)}
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
    """How the simulated hands move. Angles in degrees, distances in metres.

    Attributes:
        loop_seconds: duration of one loop of the motion, seconds.
        depth_range_m: range of the palm centre's depth, metres; None (default): 0.5-0.75 m
            for one hand, 0.75-1.0 m for two (:attr:`depths_m`). The defaults suit STB's
            field of view (about 42 x 32 degrees): an open hand is about 0.2 m long, and
            both views must contain it (two hands side by side).
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
        hands: 1 (the right hand) or 2 (the right hand and the same person's left hand,
            each in its half of the view; see the module docstring).
        second_gestures: the left hand's gesture sequence (two hands), as ``gestures``.
        midline_overlap_px: (two hands) how far past the middle of the view each hand may
            reach, pixels, as seen from a camera midway between the two (negative: keep
            this far short of it).
    """

    loop_seconds: float = 8.0
    depth_range_m: tuple[float, float] | None = None
    scale_range: tuple[float, float] = (0.85, 1.1)
    gestures: tuple[str, ...] = ("spread", "fist", "relaxed", "pinch", "point")
    hold_fraction: float = 0.15
    thumb_lag_fraction: float = 0.25
    max_tilt_deg: float = 30.0
    max_roll_deg: float = 20.0
    max_drift_m: float = 0.12
    margin_px: float = 12.0
    fit_samples: int = 240
    hands: int = 1
    second_gestures: tuple[str, ...] = ("relaxed", "point", "spread", "pinch", "fist")
    midline_overlap_px: float = 16.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.loop_seconds) and self.loop_seconds > 0):
            raise ConfigError(f"loop_seconds expected > 0 seconds; got {self.loop_seconds}")
        if self.hands not in (1, 2):
            raise ConfigError(f"hands expected 1 or 2; got {self.hands!r}")
        lo, hi = self.depths_m
        if not 0.1 <= lo <= hi:
            raise ConfigError(f"depth_range_m expected 0.1 <= low <= high; got {lo}, {hi}")
        s_lo, s_hi = self.scale_range
        if not SHAPE_LIMITS[0, 0] <= s_lo <= s_hi <= SHAPE_LIMITS[1, 0]:
            raise ConfigError(
                f"scale_range expected {SHAPE_LIMITS[0, 0]} <= low <= high <= "
                f"{SHAPE_LIMITS[1, 0]}; got {s_lo}, {s_hi}"
            )
        for name in ("gestures", "second_gestures"):
            value = getattr(self, name)
            if not value or any(g not in GESTURES for g in value):
                raise ConfigError(
                    f"{name} expected a non-empty sequence of {sorted(GESTURES)}; got {value}"
                )
        if not math.isfinite(self.midline_overlap_px):
            raise ConfigError(
                f"midline_overlap_px expected a finite number of pixels; got "
                f"{self.midline_overlap_px}"
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

    @property
    def depths_m(self) -> tuple[float, float]:
        """The range of the palm centre's depth in use, metres (``depth_range_m`` or the
        default for the number of hands)."""
        if self.depth_range_m is None:
            return _DEFAULT_DEPTHS_M[self.hands]
        return self.depth_range_m

    @property
    def sides(self) -> tuple[str, ...]:
        """The hands that move: ``("right",)`` or ``("right", "left")``."""
        return ("right", "left")[: self.hands]


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


@dataclass(frozen=True)
class _Track:
    """What sets one hand's motion apart.

    Attributes:
        side: ``"right"`` or ``"left"``.
        shifts: (10,) phases of the path's harmonics, radians.
        gestures: (G, P) the gesture sequence's poses; names in ``gesture_names``.
        gesture_offset: phase by which the gesture sequence is advanced, in [0, 1).
        midway_u_px: (low, high) bounds of the hand's pixels in a camera midway between
            the two (its half of the view), or None (the whole view).
    """

    side: str
    shifts: np.ndarray
    gestures: np.ndarray
    gesture_names: tuple[str, ...]
    gesture_offset: float
    midway_u_px: tuple[float, float] | None


class HandMotion:
    """A periodic motion of one or two hands in front of ``synth.rig``, fixed by ``seed``.

    Args:
        hand: the hand model (a right hand; a left hand is its mirror image).
        synth: the domain (appearance style) and the rig the hands must stay inside.
        settings: the motion's settings (``hands``: one or two).
        seed: fixes the shape, the appearance and the phases of the motion.

    Raises:
        ConfigError: a hand does not fit inside both images (and its half of the view, with
            two hands) with the margin at some instant even without drift (smaller images,
            nearer depths or a larger margin than the rig allows).

    Examples:
        >>> from stereo_hand_mesh.hand.model import template_hand
        >>> motion = HandMotion(template_hand(), SynthSettings(), HandMotionSettings(), 0)
        >>> scene = motion.scene_at(1.5)
        >>> scene.pose.shape == (template_hand().num_pose_params,)
        True
        >>> two = HandMotion(template_hand(), SynthSettings(), HandMotionSettings(hands=2), 0)
        >>> sorted(two.scenes_at(1.5))
        ['left', 'right']
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
        self._shifts = np.random.default_rng([self.seed, _PHASE_STREAM]).uniform(
            0.0, 2.0 * math.pi, 10
        )
        self._gestures = np.stack([GESTURES[g] for g in settings.gestures])
        tracks = [_Track("right", self._shifts, self._gestures, settings.gestures, 0.0, None)]
        if settings.hands == 2:
            rig, overlap = synth.rig, settings.midline_overlap_px
            middle = 0.5 * rig.width
            tracks[0] = replace(tracks[0], midway_u_px=(-np.inf, middle + overlap))
            second = settings.second_gestures
            tracks.append(
                _Track(
                    "left",
                    np.random.default_rng([self.seed, _SECOND_PHASE_STREAM]).uniform(
                        0.0, 2.0 * math.pi, 10
                    ),
                    np.stack([GESTURES[g] for g in second]),
                    second,
                    0.5 / len(second),
                    (middle - overlap, np.inf),
                )
            )
        self._tracks = {t.side: t for t in tracks}
        self._drift = {t.side: self._fit_drift(t) for t in tracks}
        self._drift_centre_m, self._drift_amplitude_m = self._drift["right"]
        hand_points = None if settings.hands == 1 else self._hand_points()
        self.appearance: SceneAppearance = sample_appearance(
            synth, np.random.default_rng([self.seed, _APPEARANCE_STREAM]), hand, hand_points
        )

    @property
    def loop_seconds(self) -> float:
        """Duration of one loop, seconds."""
        return self.settings.loop_seconds

    @property
    def sides(self) -> tuple[str, ...]:
        """The hands that move: ``("right",)`` or ``("right", "left")``."""
        return self.settings.sides

    @property
    def drift_amplitude_m(self) -> tuple[float, float]:
        """The fitted (x, y) amplitudes of the right hand's sideways drift, metres."""
        return self.drift_amplitude_of("right")

    def drift_amplitude_of(self, side: str) -> tuple[float, float]:
        """The fitted (x, y) amplitudes of one hand's sideways drift, metres."""
        amplitude = self._drift[self._track(side).side][1]
        return (float(amplitude[0]), float(amplitude[1]))

    def _track(self, side: str) -> _Track:
        if side not in self._tracks:
            raise ConfigError(f"side expected one of {self.sides}; got {side!r}")
        return self._tracks[side]

    def _path(self, phase: float, track: _Track | None = None) -> _Path:
        s = self._shifts if track is None else track.shifts
        return _Path(
            drift_x=_harmonics(phase, (0.65, 0.35), (1, 2), s[0:2]),
            drift_y=_harmonics(phase, (0.65, 0.35), (1, 3), s[2:4]),
            depth=_harmonics(phase, (0.6, 0.4), (1, 2), s[4:6]),
            tilt_x=_harmonics(phase, (1.0,), (1,), s[6:7]),
            tilt_y=_harmonics(phase, (0.7, 0.3), (2, 1), s[7:9]),
            roll=_harmonics(phase, (1.0,), (1,), s[9:10]),
        )

    def pose_at(self, t_s: float, side: str = "right") -> tuple[np.ndarray, str]:
        """The finger pose of one hand at time ``t_s`` seconds.

        Returns:
            (P,) pose vector (radians; a left hand's are those of the right hand it
            mirrors) and the name of the nearest gesture.
        """
        track = self._track(side)
        phase = _loop_phase(t_s, self.loop_seconds)
        if track.gesture_offset:
            phase = (phase + track.gesture_offset) % 1.0
        gestures, names = track.gestures, track.gesture_names
        n = len(gestures)
        segment = min(int(phase * n), n - 1)
        local = phase * n - segment
        start, end = gestures[segment], gestures[(segment + 1) % n]
        blend = (local - self.settings.hold_fraction) / (1.0 - self.settings.hold_fraction)
        lag = self.settings.thumb_lag_fraction
        leading = float(ease_smootherstep(blend / (1.0 - lag)))
        trailing = float(ease_smootherstep((blend - lag) / (1.0 - lag)))
        closing = end[_FINGER_FLEX_PARAMS].sum() > start[_FINGER_FLEX_PARAMS].sum()
        w_thumb, w_fingers = (trailing, leading) if closing else (leading, trailing)
        weight = np.where(_THUMB_PARAMS, w_thumb, w_fingers)
        pose = (1.0 - weight) * start + weight * end
        name = names[(segment + int(blend >= 0.5)) % n]
        return pose, name

    def rotation_at(self, t_s: float, side: str = "right") -> np.ndarray:
        """(3, 3) rotation from one hand's frame to the left optical frame at ``t_s``
        (a left hand's frame is the mirrored right hand's: x -> -x first)."""
        path = self._path(_loop_phase(t_s, self.loop_seconds), self._track(side))
        return self._rotation(path)

    def _rotation(self, path: _Path) -> np.ndarray:
        tilt = np.deg2rad(self.settings.max_tilt_deg) / math.sqrt(2.0)
        roll = np.deg2rad(self.settings.max_roll_deg) * path.roll
        r_tilt = axis_angle_to_matrix(np.array([tilt * path.tilt_x, tilt * path.tilt_y, 0.0]))
        r_roll = axis_angle_to_matrix(np.array([0.0, 0.0, roll]))
        return r_tilt @ r_roll @ HAND_TO_CAMERA

    def _depth(self, path: _Path) -> float:
        lo, hi = self.settings.depths_m
        return 0.5 * (lo + hi) + 0.5 * (hi - lo) * path.depth

    def _posed_about_palm(
        self, pose: np.ndarray, rotation: np.ndarray, side: str = "right"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vertices (V, 3) and joints (21, 3), rotated, relative to the palm centre, m."""
        out = self.hand.forward(pose[None], self.shape[None])
        verts, joints = out.vertices[0], out.joints[0]
        if side == "left":
            verts, _ = mirror_to_left(verts, self.hand.faces)
            joints = mirror_joints_to_left(joints)
        verts = verts @ rotation.T
        joints = joints @ rotation.T
        palm = palm_center(joints)
        return verts - palm, joints - palm

    def _fit_drift(self, track: _Track) -> tuple[np.ndarray, np.ndarray]:
        """The constant offset (2,) and amplitude (2,) of one hand's drift, metres (x, y).

        At each sampled instant, with the palm at ``(B / 2, 0, z)`` (midway between the two
        cameras), every vertex bounds the sideways shift that keeps it inside both images:
        ``m <= fx (x + dx - tx) / z + cx < W - m`` for tx in (0, B), and the same along y;
        with two hands also inside its half of the view, ``lo <= fx (x + dx - B / 2) / z +
        cx <= hi`` (``track.midway_u_px``). The offset is the middle of the shifts allowed
        at every instant, and the amplitude the largest that the normalized drift (in
        [-1, 1]) can be scaled by.
        """
        rig, m = self.synth.rig, self.settings.margin_px
        bounds = [(0.0, m, rig.width - m), (rig.baseline_m, m, rig.width - m)]
        if track.midway_u_px is not None:
            lo_u, hi_u = track.midway_u_px
            bounds.append((0.5 * rig.baseline_m, max(lo_u, m), min(hi_u, rig.width - m)))
        lows, highs, drifts, nearest = [], [], [], np.inf
        for k in range(self.settings.fit_samples):
            t = k * self.loop_seconds / self.settings.fit_samples
            path = self._path(_loop_phase(t, self.loop_seconds), track)
            verts, _ = self._posed_about_palm(
                self.pose_at(t, track.side)[0], self._rotation(path), track.side
            )
            verts = verts + np.array([0.5 * rig.baseline_m, 0.0, self._depth(path)])
            z = verts[:, 2]
            nearest = min(nearest, float(z.min()))
            lo_x = max(
                ((lo - rig.cx) * z / rig.fx - verts[:, 0] + tx).max() for tx, lo, _ in bounds
            )
            hi_x = min(
                ((hi - rig.cx) * z / rig.fx - verts[:, 0] + tx).min() for tx, _, hi in bounds
            )
            lo_y = ((m - rig.cy) * z / rig.fy - verts[:, 1]).max()
            hi_y = ((rig.height - m - rig.cy) * z / rig.fy - verts[:, 1]).min()
            lows.append((lo_x, lo_y))
            highs.append((hi_x, hi_y))
            drifts.append((path.drift_x, path.drift_y))
        low, high, drift = np.array(lows), np.array(highs), np.array(drifts)
        depths = self.settings.depths_m
        if nearest < _NEAREST_M:
            raise ConfigError(
                f"hand motion expected every vertex at least {_NEAREST_M} m from the camera; "
                f"got {nearest:.3f} m at depths {depths} m"
            )
        short = float((low.max(axis=0) - high.min(axis=0)).max())
        if short > 0:
            where = "" if track.midway_u_px is None else f" (the {track.side} hand in its half)"
            raise ConfigError(
                f"hand motion expected the hand to fit inside both {rig.width}x{rig.height} "
                f"images{where} with a {m} px margin at depths {depths} m; got "
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

    def _hand_points(self) -> np.ndarray:
        """(N, 3) corners of the hands' boxes at instants of the loop (left optical frame,
        metres): what a table-top scene must stay below and its props away from."""
        points = []
        for side in self.sides:
            for k in range(24):
                pose, _, rotation, centre = self._placement(k * self.loop_seconds / 24, side)
                verts, _ = place_hand(self.hand, pose, self.shape, rotation, centre, side)
                points += [verts.min(axis=0), verts.max(axis=0)]
        return np.stack(points)

    def _placement(self, t_s: float, side: str) -> tuple[np.ndarray, str, np.ndarray, np.ndarray]:
        """One hand's pose (P,), gesture, rotation (3, 3) and vertex centre (3,) m at t_s."""
        rig = self.synth.rig
        track = self._tracks[side]
        path = self._path(_loop_phase(t_s, self.loop_seconds), track)
        pose, gesture = self.pose_at(t_s, side)
        rotation = self._rotation(path)
        verts, _ = self._posed_about_palm(pose, rotation, side)
        centre, amplitude = self._drift[side]
        palm = np.array(
            [
                0.5 * rig.baseline_m + centre[0] + amplitude[0] * path.drift_x,
                centre[1] + amplitude[1] * path.drift_y,
                self._depth(path),
            ]
        )
        return pose, gesture, rotation, palm + verts.mean(axis=0)

    def scene_at(self, t_s: float) -> HandScene:
        """The right hand's scene at time ``t_s`` seconds (any real; periodic with
        ``loop_seconds``).

        Returns:
            A :class:`~stereo_hand_mesh.data.synth.HandScene` with this motion's shape and
            appearance.
        """
        return self.scenes_at(t_s)["right"]

    def scenes_at(self, t_s: float) -> dict[str, HandScene]:
        """Every hand's scene at time ``t_s`` seconds, by side (``"right"`` first, then
        ``"left"`` with two hands); all share the shape and the appearance.

        Returns:
            {side: :class:`~stereo_hand_mesh.data.synth.HandScene`}; render them together
            with ``render_scene(hand, synth, scenes["right"], faces_t, rng,
            others=(scenes["left"],))`` (as :func:`render_motion_frame` does).
        """
        scenes = {}
        for side in self.sides:
            pose, gesture, rotation, centre = self._placement(t_s, side)
            scenes[side] = HandScene(
                pose=pose,
                shape=self.shape,
                rotation=rotation,
                centre_m=centre,
                appearance=self.appearance,
                gesture=gesture,
                handedness=side,
            )
        return scenes


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
        joints: (21, 3) float64 joints of the right hand in the left optical frame, metres
            (:data:`~stereo_hand_mesh.hand.joints.JOINT_NAMES` order), or None when no
            hand is in view.
        gesture: the right hand's nearest gesture's name ("" when no hand is in view).
        joints_by_side: {"right": (21, 3), "left": (21, 3)} float64 joints of each hand in
            view, left optical frame, metres (a left hand's joints are the mirrored right
            hand's, keeping their names); {} when no hand is in view. ``joints`` is
            ``joints_by_side["right"]``.
        gestures_by_side: each hand's nearest gesture's name.
    """

    index: int
    time_s: float
    left: np.ndarray
    right: np.ndarray
    joints: np.ndarray | None
    gesture: str
    joints_by_side: dict[str, np.ndarray] = field(default_factory=dict)
    gestures_by_side: dict[str, str] = field(default_factory=dict)


def render_motion_frame(
    motion: HandMotion,
    index: int,
    time_s: float,
    faces_t: torch.Tensor,
    hand_visible: bool = True,
) -> MotionFrame:
    """Render frame ``index`` of ``motion`` at ``time_s`` seconds (deterministic).

    With two hands both are rendered into one depth buffer (each hides the other where it
    is nearer), and each has its ground truth in ``joints_by_side``.

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
    scenes = motion.scenes_at(time_s)
    others = [scenes[side] for side in motion.sides[1:]]
    pair = render_scene(motion.hand, motion.synth, scenes["right"], faces_t, rng, others)
    joints = pair.annotation["joints"].astype(np.float64)
    by_side = {"right": joints}
    by_side.update({o.handedness: o.annotation["joints"].astype(np.float64) for o in pair.others})
    gestures = {side: scene.gesture for side, scene in scenes.items()}
    return MotionFrame(
        index, float(time_s), pair.left, pair.right, joints, pair.gesture, by_side, gestures
    )
