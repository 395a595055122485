"""Named gestures and random natural poses of the template hand (radians).

:data:`GESTURES` maps gesture names to (P,) pose vectors (``POSE_PARAM_NAMES`` order):
``flat``, ``relaxed``, ``fist``, ``point``, ``pinch``, ``spread`` and ``count_1`` ..
``count_5``. All are free of self-intersection on the default hand (tested).
"""

from __future__ import annotations

import itertools
from types import MappingProxyType

import numpy as np

from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.hand.joints import FINGERS
from stereo_hand_mesh.hand.skeleton import (
    NUM_POSE_PARAMS,
    POSE_LIMITS,
    POSE_PARAM_NAMES,
    clip_pose,
    forward_kinematics,
    joint_frames,
    rest_joints,
)

__all__ = ["GESTURES", "gesture_pose", "pose_from_dict", "poses_collide", "sample_pose"]

_LONG_FINGERS = FINGERS[1:]


def pose_from_dict(angles: dict[str, float]) -> np.ndarray:
    """(P,) pose vector from ``{parameter name: radians}``; missing parameters are 0."""
    pose = np.zeros(NUM_POSE_PARAMS)
    for name, value in angles.items():
        if name not in POSE_PARAM_NAMES:
            raise ConfigError(f"pose parameter expected one of POSE_PARAM_NAMES; got {name!r}")
        pose[POSE_PARAM_NAMES.index(name)] = value
    return pose


def _finger(finger: str, mcp: float, pip: float, dip: float, abd: float = 0.0) -> dict:
    return {
        f"{finger}_mcp_flex": mcp,
        f"{finger}_pip_flex": pip,
        f"{finger}_dip_flex": dip,
        f"{finger}_mcp_abd": abd,
    }


def _curled(finger: str) -> dict:
    """A finger closed into the palm as in a fist."""
    return _finger(finger, 1.30, 1.55, 0.85)


def _extended(finger: str, abd: float = 0.0) -> dict:
    return _finger(finger, 0.0, 0.05, 0.05, abd)


def _thumb(cmc_flex: float, cmc_abd: float, cmc_twist: float, mcp: float, ip: float) -> dict:
    return {
        "thumb_cmc_flex": cmc_flex,
        "thumb_cmc_abd": cmc_abd,
        "thumb_cmc_twist": cmc_twist,
        "thumb_mcp_flex": mcp,
        "thumb_ip_flex": ip,
    }


#: Thumb wrapped over the middle phalanges of the curled index and middle fingers.
_THUMB_OVER_FINGERS = _thumb(0.54, 0.22, 0.47, 0.5, 0.9)
#: Thumb folded across the palm towards the ring finger's base.
_THUMB_ACROSS_PALM = _thumb(0.72, 0.0, 0.6, 0.9, 1.1)
_THUMB_RELAXED = _thumb(0.2, 0.1, 0.1, 0.15, 0.2)


def _gesture(*parts: dict) -> np.ndarray:
    merged: dict[str, float] = {}
    for part in parts:
        merged.update(part)
    return pose_from_dict(merged)


_GESTURES = {
    "flat": np.zeros(NUM_POSE_PARAMS),
    "relaxed": _gesture(
        _finger("index", 0.20, 0.30, 0.15),
        _finger("middle", 0.25, 0.40, 0.20),
        _finger("ring", 0.30, 0.45, 0.22),
        _finger("little", 0.35, 0.50, 0.25),
        _THUMB_RELAXED,
    ),
    "fist": _gesture(*(_curled(f) for f in _LONG_FINGERS), _THUMB_OVER_FINGERS),
    "point": _gesture(
        _extended("index"),
        *(_curled(f) for f in _LONG_FINGERS[1:]),
        _thumb(0.45, 0.2, 0.4, 0.35, 0.5),
    ),
    "pinch": _gesture(
        _finger("index", 0.55, 0.85, 0.45),
        _finger("middle", 0.25, 0.35, 0.2),
        _finger("ring", 0.3, 0.4, 0.2),
        _finger("little", 0.35, 0.45, 0.25),
        _thumb(0.36, 0.0, 0.23, 0.5, 0.0),
    ),
    "spread": _gesture(
        _extended("index", 0.30),
        _extended("middle", 0.08),
        _extended("ring", 0.20),
        _extended("little", 0.40),
        _thumb(-0.2, 0.6, 0.0, -0.1, -0.1),
    ),
    "count_1": _gesture(
        _extended("index"), *(_curled(f) for f in _LONG_FINGERS[1:]), _THUMB_OVER_FINGERS
    ),
    "count_2": _gesture(
        _extended("index", 0.15),
        _extended("middle", -0.08),
        *(_curled(f) for f in _LONG_FINGERS[2:]),
        _THUMB_OVER_FINGERS,
    ),
    "count_3": _gesture(
        _extended("index", 0.12),
        _extended("middle"),
        _extended("ring", 0.1),
        _curled("little"),
        _THUMB_OVER_FINGERS,
    ),
    "count_4": _gesture(
        _extended("index", 0.1),
        _extended("middle"),
        _extended("ring", 0.08),
        _extended("little", 0.15),
        _THUMB_ACROSS_PALM,
    ),
    "count_5": _gesture(
        _extended("index", 0.15),
        _extended("middle", 0.03),
        _extended("ring", 0.1),
        _extended("little", 0.2),
        _thumb(-0.1, 0.35, 0.0, 0.0, 0.0),
    ),
}
for _name, _pose in _GESTURES.items():
    if np.any(_pose < POSE_LIMITS[0]) or np.any(_pose > POSE_LIMITS[1]):
        raise AssertionError(f"gesture {_name} exceeds the pose limits")
    _pose.setflags(write=False)

#: Gesture name -> (P,) pose vector (radians), read-only.
GESTURES = MappingProxyType(_GESTURES)


def gesture_pose(
    name: str, rng: np.random.Generator | None = None, jitter: float = 0.0
) -> np.ndarray:
    """Pose vector of a named gesture, optionally jittered.

    Args:
        name: a key of :data:`GESTURES`.
        rng: random generator for the jitter (required when ``jitter > 0``).
        jitter: standard deviation (radians) of independent Gaussian noise added to every
            parameter; the result is clipped to the pose limits.

    Returns:
        (P,) float64 pose vector.

    Raises:
        ConfigError: unknown gesture, negative jitter, or jitter without a generator.
    """
    if name not in GESTURES:
        raise ConfigError(f"gesture expected one of {', '.join(sorted(GESTURES))}; got {name!r}")
    if jitter < 0:
        raise ConfigError(f"jitter expected >= 0 radians; got {jitter}")
    pose = np.array(GESTURES[name], dtype=np.float64)
    if jitter > 0:
        if rng is None:
            raise ConfigError("gesture_pose expected an rng when jitter > 0; got None")
        pose = clip_pose(pose + jitter * rng.standard_normal(NUM_POSE_PARAMS))
    return pose


def _index(name: str) -> int:
    return POSE_PARAM_NAMES.index(name)


#: Approximate digit radii (metres) used by the natural-pose collision check.
_DIGIT_RADIUS = {"thumb": 0.0100, "index": 0.0082, "middle": 0.0085, "ring": 0.0080,
                 "little": 0.0070}  # fmt: skip
#: Radius (metres) of the spheres on the thumb's metacarpal (the thenar eminence).
_THENAR_RADIUS = 0.015
#: Palm region (hand frame, metres) the fingers must stay in front of: x range, y range and
#: the palm-side surface height; the thenar region (x > 0.01, y < 0.06) stands higher.
_PALM_BOX = ((-0.045, 0.035), (-0.01, 0.095), 0.013)
_THENAR_HEIGHT = 0.021


def _digit_points(skeleton: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sphere centres along the digits of (B, 21, 3) skeletons.

    Returns:
        centres (B, M, 3), radii (M,), digit id (M,) of M spheres covering the phalanges
        (and the distal half of the thumb's metacarpal), each a radius short of the tip.
    """
    centres, radii, digit = [], [], []
    for f, finger in enumerate(FINGERS):
        base = 1 + 4 * f
        first = base + 1 if f == 0 else base  # the thumb starts at its MCP
        r = _DIGIT_RADIUS[finger]
        tip = skeleton[:, base + 3]
        dip = skeleton[:, base + 2]
        end = tip - r * (tip - dip) / np.linalg.norm(tip - dip, axis=-1, keepdims=True)
        chain = [skeleton[:, j] for j in range(first, base + 3)] + [end]
        if f == 0:
            chain.insert(0, 0.8 * skeleton[:, base] + 0.2 * skeleton[:, base + 1])
        for k, (a, b) in enumerate(itertools.pairwise(chain)):
            for t in (0.0, 0.34, 0.67):
                centres.append((1 - t) * a + t * b)
                radii.append(_THENAR_RADIUS if f == 0 and k == 0 else r)
                digit.append(f)
        centres.append(chain[-1])
        radii.append(r)
        digit.append(f)
    return np.stack(centres, axis=1), np.array(radii), np.array(digit)


def poses_collide(pose: np.ndarray) -> np.ndarray:
    """Cheap skeleton-level collision test of poses (default hand shape).

    Digits are approximated by chains of spheres on their bones. A pose collides when
    spheres of two different digits overlap, or when a sphere of a digit's distal part lies
    inside the palm (behind its palm-side surface within the palm's outline).

    Args:
        pose: (B, P) pose vectors (radians).

    Returns:
        (B,) bool.
    """
    joints = rest_joints()
    _, skeleton = forward_kinematics(
        np.broadcast_to(joints, (len(pose), *joints.shape)), pose, joint_frames(joints)
    )
    centres, radii, digit = _digit_points(skeleton)
    gap = np.linalg.norm(centres[:, :, None] - centres[:, None, :], axis=-1)
    reach = radii[:, None] + radii[None, :]
    other = digit[:, None] != digit[None, :]
    hit = ((gap < 0.85 * reach) & other[None]).any(axis=(1, 2))
    (x0, x1), (y0, y1), z_palm = _PALM_BOX
    x, y, z = centres[..., 0], centres[..., 1], centres[..., 2]
    surface = np.where((x > 0.01) & (y < 0.06), _THENAR_HEIGHT, z_palm)
    inside = (x > x0) & (x < x1) & (y > y0) & (y < y1) & (z < surface + radii)
    # The proximal phalanges start inside the palm; only their distal ends count.
    distal = np.ones(len(radii), dtype=bool)
    for f in range(len(FINGERS)):
        distal[np.nonzero(digit == f)[0][:3]] = False
    return hit | (inside & distal[None]).any(axis=1)


#: Largest flexion difference (radians) between neighbouring ulnar fingers in natural poses.
_MAX_CURL_GAP = 1.0


def _natural_candidates(rng: np.random.Generator, n: int) -> np.ndarray:
    lo, hi = POSE_LIMITS
    pose = np.zeros((n, NUM_POSE_PARAMS))
    spread = rng.uniform(-0.3, 1.0, n)
    for finger in _LONG_FINGERS:
        mode = rng.integers(0, 3, n)
        curl = np.where(
            mode == 0, rng.uniform(0.0, 0.25, n),
            np.where(mode == 1, rng.uniform(0.7, 1.0, n), rng.uniform(0.0, 1.0, n)),
        )  # fmt: skip
        mcp = np.clip(curl + 0.15 * rng.standard_normal(n), -0.15, 0.95)
        pip = np.clip(curl + 0.15 * rng.standard_normal(n), 0.0, 0.95)
        dip = np.clip(0.7 * pip + 0.1 * rng.standard_normal(n), 0.0, 1.0)
        i = _index(f"{finger}_mcp_flex")
        pose[:, i] = np.where(mcp >= 0, mcp * hi[i], -mcp * lo[i])
        i = _index(f"{finger}_pip_flex")
        pose[:, i] = pip * hi[i]
        i = _index(f"{finger}_dip_flex")
        pose[:, i] = dip * hi[i]
        i = _index(f"{finger}_mcp_abd")
        open_ = 1.0 - 0.7 * np.clip(mcp, 0.0, 1.0)
        amount = np.where(spread >= 0, spread * hi[i], -spread * lo[i])
        if finger == "middle":  # the middle finger is the reference of the spread
            amount = 0.3 * np.maximum(spread, 0.0) * hi[i]
        pose[:, i] = open_ * amount + 0.03 * rng.standard_normal(n)
        i = _index(f"{finger}_mcp_twist")
        pose[:, i] = 0.3 * hi[i] * rng.standard_normal(n)
    # Middle, ring and little share flexor tendons: their curls stay within a radian.
    for a, b in (("middle", "ring"), ("ring", "little"), ("middle", "ring")):
        for joint in ("mcp", "pip"):
            i, k = _index(f"{a}_{joint}_flex"), _index(f"{b}_{joint}_flex")
            pose[:, k] = np.clip(
                pose[:, k], pose[:, i] - _MAX_CURL_GAP, pose[:, i] + _MAX_CURL_GAP
            )
            pose[:, i] = np.clip(
                pose[:, i], pose[:, k] - _MAX_CURL_GAP, pose[:, k] + _MAX_CURL_GAP
            )
    for name in ("thumb_cmc_flex", "thumb_cmc_abd", "thumb_mcp_flex", "thumb_mcp_abd",
                 "thumb_ip_flex"):  # fmt: skip
        i = _index(name)
        pose[:, i] = rng.uniform(lo[i], hi[i], n)
    # The thumb pronates as it opposes (flexes towards the palm).
    flex = pose[:, _index("thumb_cmc_flex")]
    pose[:, _index("thumb_cmc_twist")] = 0.6 * np.maximum(flex, 0.0) + rng.uniform(-0.2, 0.2, n)
    return clip_pose(pose)


def sample_pose(
    rng: np.random.Generator, n: int, uniform: bool = False, max_tries: int = 50
) -> np.ndarray:
    """Random poses within the limits.

    Natural poses (default) couple the joints the way hands move: each finger gets a curl
    level (mostly open, mostly closed or anywhere) that drives MCP, PIP and DIP flexion
    with some independence (DIP follows PIP), spread is shared by the fingers and shrinks
    as they close, and the thumb is uniform over its range. Candidates whose digits collide
    with each other or the palm (:func:`poses_collide`) are redrawn.
    ``uniform=True`` draws every parameter independently and uniformly within its limits,
    without the collision check.

    Measured on the template hand: 3.2% of natural poses give meshes with self-intersecting
    triangles (1000 poses; mostly thumb contacts), against 18% for uniform poses.

    Args:
        rng: random generator.
        n: number of poses.
        uniform: independent uniform sampling instead of natural poses.
        max_tries: rounds of redrawing before giving up.

    Returns:
        (n, P) pose vectors (radians).

    Raises:
        ConfigError: ``n`` < 0, or no collision-free poses after ``max_tries`` rounds.
    """
    if n < 0:
        raise ConfigError(f"n expected >= 0; got {n}")
    lo, hi = POSE_LIMITS
    if uniform:
        return rng.uniform(lo, hi, (n, NUM_POSE_PARAMS))
    out = np.empty((0, NUM_POSE_PARAMS))
    for _ in range(max_tries):
        if len(out) >= n:
            break
        cand = _natural_candidates(rng, 2 * (n - len(out)) + 8)
        out = np.concatenate([out, cand[~poses_collide(cand)]])
    if len(out) < n:
        raise ConfigError(f"sample_pose expected to find {n} collision-free poses; got {len(out)}")
    return out[:n]
