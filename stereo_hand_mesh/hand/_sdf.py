"""Signed distance field of the rest template hand (metres, hand frame; negative inside).

The hand is a smooth union of simple solids placed on the rest skeleton: a rounded palm
slab, a forearm stub, thenar and hypothenar pads, round-cone chains for the five digits
(with knuckle bulges and rounded tips) and a thin thumb web. The template mesh
(:mod:`stereo_hand_mesh.hand.template`) takes its topology from a hand-built cage and its
geometry from this field: every vertex is projected onto the zero level set.
"""

from __future__ import annotations

import numpy as np

from stereo_hand_mesh.hand.joints import FINGERS

__all__ = ["digit_profile", "hand_sdf"]


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum with blend width ``k`` (metres)."""
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - 0.25 * k * h * h


def _round_cones(
    p: np.ndarray, a: np.ndarray, b: np.ndarray, ra: np.ndarray, rb: np.ndarray
) -> np.ndarray:
    """Exact distances (N, C) to C round cones, the convex hulls of spheres (a, ra), (b, rb).

    Args:
        p: (N, 3) points. a, b: (C, 3) sphere centres. ra, rb: (C,) radii.
    """
    ba = b - a
    l2 = np.sum(ba * ba, axis=1)
    rr = ra - rb
    a2 = l2 - rr * rr
    pa = p[:, None, :] - a[None, :, :]
    y = _dot(pa, ba[None])
    z = y - l2
    q = pa * l2[:, None] - y[..., None] * ba
    x2 = _dot(q, q)
    y2 = y * y * l2
    z2 = z * z * l2
    k = np.sign(rr) * rr * rr * x2
    d_b = np.sqrt(x2 + z2) / l2 - rb
    d_a = np.sqrt(x2 + y2) / l2 - ra
    d_side = (np.sqrt(np.maximum(x2 * a2 / l2, 0.0)) + y * rr) / l2 - ra
    return np.where(np.sign(z) * a2 * z2 > k, d_b, np.where(np.sign(y) * a2 * y2 < k, d_a, d_side))


def _ellipsoid(
    p: np.ndarray, center: np.ndarray, radii: np.ndarray, rot: np.ndarray
) -> np.ndarray:
    """Approximate distance to an ellipsoid; ``rot`` (3, 3) columns are its axes."""
    q = (p - center) @ rot
    k0 = np.sqrt(_dot(q / radii, q / radii))
    k1 = np.sqrt(_dot(q / radii**2, q / radii**2))
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def _polygon2d(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Signed distance (N,) of 2D points (N, 2) to a simple polygon (M, 2)."""
    d = np.sum((p - poly[0]) ** 2, axis=1)
    sign = np.ones(len(p))
    n = len(poly)
    for i in range(n):
        vi, vj = poly[i], poly[i - 1]
        e = vj - vi
        w = p - vi
        t = np.clip((w @ e) / float(e @ e), 0.0, 1.0)
        bvec = w - t[:, None] * e
        d = np.minimum(d, np.sum(bvec * bvec, axis=1))
        c1 = p[:, 1] >= vi[1]
        c2 = p[:, 1] < vj[1]
        c3 = e[0] * w[:, 1] > e[1] * w[:, 0]
        flip = (c1 & c2 & c3) | (~c1 & ~c2 & ~c3)
        sign = np.where(flip, -sign, sign)
    return sign * np.sqrt(d)


def _rounded_slab(
    p: np.ndarray, poly: np.ndarray, z_center: float, half_thickness: float, radius: float
) -> np.ndarray:
    """Polygon extruded along z with half-thickness, every edge rounded by ``radius``."""
    qx = _polygon2d(p[:, :2], poly)
    qz = np.abs(p[:, 2] - z_center) - half_thickness
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qz, 0.0) ** 2)
    return outside + np.minimum(np.maximum(qx, qz), 0.0) - radius


def _chain_point(joints: np.ndarray, chain: tuple[int, ...], s: float) -> np.ndarray:
    """Point at parameter ``s`` along a joint chain (integer s = joint ``chain[s]``)."""
    i = min(int(np.floor(s)), len(chain) - 2)
    t = s - i
    return (1.0 - t) * joints[chain[i]] + t * joints[chain[i + 1]]


#: Radius profiles (metres) along each digit: (chain parameter, radius). Parameter 0 is the
#: MCP (CMC for the thumb), 1 the next joint, ...; the last node is placed so the surface
#: reaches the tip joint.
_PROFILES: dict[str, tuple[tuple[float, float], ...]] = {
    "thumb": (
        (0.15, 0.0125), (0.6, 0.0120), (1.0, 0.0112), (1.5, 0.0102),
        (2.0, 0.0104), (2.45, 0.0098), (-1.0, 0.0086),
    ),
    "index": (
        (0.0, 0.0100), (0.5, 0.0090), (1.0, 0.0090), (1.5, 0.0080),
        (2.0, 0.0079), (2.45, 0.0077), (-1.0, 0.0068),
    ),
    "middle": (
        (0.0, 0.0102), (0.5, 0.0092), (1.0, 0.0093), (1.5, 0.0082),
        (2.0, 0.0081), (2.45, 0.0078), (-1.0, 0.0069),
    ),
    "ring": (
        (0.0, 0.0096), (0.5, 0.0087), (1.0, 0.0088), (1.5, 0.0078),
        (2.0, 0.0076), (2.45, 0.0074), (-1.0, 0.0065),
    ),
    "little": (
        (0.0, 0.0086), (0.5, 0.0077), (1.0, 0.0078), (1.5, 0.0070),
        (2.0, 0.0068), (2.45, 0.0066), (-1.0, 0.0058),
    ),
}  # fmt: skip
#: Palm-normal thickness of the fingers relative to their width.
_FINGER_FLATNESS = 0.9


def digit_profile(joints: np.ndarray, finger: str) -> list[tuple[np.ndarray, float]]:
    """Sphere centres (metres) and radii along a digit, proximal to distal."""
    f = FINGERS.index(finger)
    chain = (1, 2, 3, 4) if f == 0 else tuple(range(1 + 4 * f, 5 + 4 * f))
    out = []
    for s, r in _PROFILES[finger]:
        if s < 0:
            tip = joints[chain[-1]]
            d = tip - joints[chain[-2]]
            c = tip - r * d / np.linalg.norm(d)
        else:
            c = _chain_point(joints, chain, s)
        out.append((c, r))
    return out


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) distance of (N, 3) points to the segment from a to b."""
    ab = b - a
    t = np.clip((p - a) @ ab / float(ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - a - t[:, None] * ab, axis=1)


def _union_digit(
    d: np.ndarray, p: np.ndarray, joints: np.ndarray, finger: str, scale: float, blend: float
) -> np.ndarray:
    """Smooth union of the field ``d`` (N,) with one digit's chain of round cones.

    The digit's distance (times ``scale``) is evaluated only where a cheap lower bound (its
    distance to a bounding capsule) does not already put it ``blend`` beyond ``d``; elsewhere
    the smooth minimum returns ``d`` exactly, so culling changes no value.
    """
    nodes = digit_profile(joints, finger)
    centers = np.array([c for c, _ in nodes])
    radii = np.array([r for _, r in nodes])
    a, b = centers[0], centers[-1]
    reach = float(np.max(_segment_distance(centers, a, b) + radii))
    lower = scale * (_segment_distance(p, a, b) - reach)
    near = np.nonzero(lower < d + blend)[0]
    if near.size == 0:
        return d
    dist = _round_cones(p[near], centers[:-1], centers[1:], radii[:-1], radii[1:]).min(axis=1)
    out = d.copy()
    out[near] = _smin(d[near], scale * dist, blend)
    return out


def _frame_along(direction: np.ndarray) -> np.ndarray:
    """Rotation whose second column is ``direction`` and third is as close to +z as possible."""
    y = direction / np.linalg.norm(direction)
    z = np.array([0.0, 0.0, 1.0]) - y[2] * y
    z /= np.linalg.norm(z)
    return np.stack([np.cross(y, z), y, z], axis=1)


def hand_sdf(points: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Signed distance (metres, negative inside) of points to the rest template hand.

    Args:
        points: (N, 3) query points, metres, hand frame.
        joints: (21, 3) rest joints from :func:`~stereo_hand_mesh.hand.skeleton.rest_joints`.

    Returns:
        (N,) signed distances; exact near most of the surface, a bound near blends.
    """
    p = np.asarray(points, dtype=np.float64)
    mcp = {f: joints[1 + 4 * i] for i, f in enumerate(FINGERS) if i > 0}
    poly = np.array(
        [
            [-0.0255, 0.004],
            [0.0215, 0.004],
            [0.0255, 0.040],
            [mcp["index"][0] + 0.001, mcp["index"][1] - 0.002],
            [mcp["middle"][0], mcp["middle"][1] + 0.002],
            [mcp["ring"][0], mcp["ring"][1] - 0.001],
            [mcp["little"][0] + 0.002, mcp["little"][1] - 0.004],
            [-0.0335, 0.040],
        ]
    )
    d = _rounded_slab(p, poly, z_center=0.0005, half_thickness=0.0015, radius=0.0115)
    # Forearm stub, capped just proximal of the wrist.
    wrist_rot = np.eye(3)
    d = _smin(
        d,
        _ellipsoid(p, np.array([-0.002, 0.0, 0.0]), np.array([0.028, 0.024, 0.0170]), wrist_rot),
        0.012,
    )
    # Thenar (thumb ball) and hypothenar pads on the palm side.
    thenar_dir = joints[2] - joints[1]
    d = _smin(
        d,
        _ellipsoid(
            p,
            joints[1] + 0.30 * thenar_dir + np.array([-0.006, -0.004, 0.002]),
            np.array([0.014, 0.024, 0.0110]),
            _frame_along(thenar_dir),
        ),
        0.018,
    )
    d = _smin(
        d,
        _ellipsoid(
            p,
            np.array([-0.026, 0.040, 0.004]),
            np.array([0.0110, 0.030, 0.0115]),
            _frame_along(np.array([-0.1, 1.0, 0.0])),
        ),
        0.010,
    )
    # Fingers join the palm with a small fillet (the web between fingers); their
    # cross-section is slightly flattened along the palm normal.
    q = p * np.array([1.0, 1.0, 1.0 / _FINGER_FLATNESS])
    for finger in FINGERS[1:]:
        d = _union_digit(d, q, joints, finger, _FINGER_FLATNESS, 0.006)
    d = _union_digit(d, p, joints, "thumb", 1.0, 0.014)
    return d
