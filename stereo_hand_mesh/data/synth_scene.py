"""What a camera sees around and on a synthetic hand: forearm, skin detail, lights, props,
table-top backgrounds and the camera's motion blur and compression.

The pieces :func:`~stereo_hand_mesh.data.synth.render_scene` adds to the template hand so
that a network trained on real photographs recognises the renders:

* **forearm** (:class:`ArmSpec`, :func:`forearm_mesh`): a tapered elliptic tube that
  continues the hand from its wrist (bent at the wrist by a random flexion and deviation),
  and sometimes a sleeve over it. It is separate geometry: the hand mesh, its faces, joints
  and masks are those of the hand model alone.
* **skin** (:class:`HandSkinMap`, :func:`skin_detail`): on the hand, in its rest-pose
  coordinates (so the detail follows the skin): flexion creases across the fingers' palmar
  side at the MCP/PIP/DIP (IP) joints, knuckle wrinkles on their back, three palm lines,
  nails on the fingertips' back, and fine relief (used as a bump map).
* **light** (:class:`LightRig`, :func:`sample_light_rig`): set-ups ``studio`` (soft, even),
  ``room`` (warm key from above, strong fill), ``window`` (cool side light), ``overhead``
  (hard light from above) and ``flash`` (a light at the camera, falling off with the
  square of the distance); hemispheric ambient; :func:`shade_surface` shades with wrap
  lighting (a per-channel wrap: light scattered under the skin reaches further in red) and
  a Blinn-Phong specular term.
* **backgrounds** (:class:`BackgroundScene`, :func:`sample_background_scene`): procedural
  only (the repository holds no photographs and nothing is downloaded): a table-top plane
  (wood, dark cloth, laminate or paper textures) below the hand with a wall behind it
  (painted, with shelves, posters and boxes), and a few boxes and cylinders (:class:`Prop`)
  standing on the table; one of them may be held between the thumb and the index finger.
  (The existing photo collages of :mod:`~stereo_hand_mesh.data.synth_style` use the
  photographs that scikit-image ships in its wheel.)
* **camera** (:func:`motion_blur`, :func:`jpeg_roundtrip`): linear motion blur of the
  moving hand (and arm) over the still background, and JPEG compression artefacts.

All of it is numpy/OpenCV and deterministic for a given ``numpy.random.Generator``. Frames:
the hand frame (+y toward the fingers, +z palmar, metres) and the camera optical frame.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from stereo_hand_mesh.errors import ConfigError

__all__ = [
    "LIGHT_SETUPS",
    "ArmSpec",
    "BackgroundScene",
    "HandSkinMap",
    "LightRig",
    "Plane",
    "Prop",
    "SceneExtras",
    "forearm_mesh",
    "held_prop",
    "jpeg_roundtrip",
    "motion_blur",
    "nearest_bones",
    "prop_mesh",
    "sample_arm",
    "sample_background_scene",
    "sample_light_rig",
    "shade_surface",
    "skin_detail",
    "vertex_occlusion",
]

LIGHT_SETUPS = ("studio", "room", "window", "overhead", "flash")

#: Material ids of the rendered surfaces.
MAT_HAND, MAT_ARM, MAT_SLEEVE, MAT_PROP = 0, 1, 2, 3


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _readonly(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.setflags(write=False)


# ----------------------------------------------------------------------------- forearm


@dataclass(frozen=True)
class ArmSpec:
    """The forearm (and sleeve) continuing a hand from its wrist.

    Attributes:
        length_m: length of the forearm from the wrist, metres.
        flex_rad: wrist flexion (the arm turns about the hand's x axis), radians.
        deviation_rad: radial/ulnar deviation (about the hand's z axis), radians.
        girth: scale of the cross-section relative to the hand's wrist.
        sleeve_from_m: distance from the wrist where a sleeve starts, metres; ``inf``: none.
        sleeve_rgb: (3,) linear albedo of the sleeve.
    """

    length_m: float = 0.3
    flex_rad: float = 0.0
    deviation_rad: float = 0.0
    girth: float = 1.0
    sleeve_from_m: float = math.inf
    sleeve_rgb: tuple[float, float, float] = (0.2, 0.25, 0.4)

    def __post_init__(self) -> None:
        if not self.length_m > 0.02:
            raise ConfigError(f"ArmSpec.length_m expected > 0.02 metres; got {self.length_m}")
        if not self.girth > 0.0:
            raise ConfigError(f"ArmSpec.girth expected > 0; got {self.girth}")


#: Rings and segments of the forearm tube.
_ARM_RINGS, _ARM_SEGMENTS = 12, 20


def _tube(
    centres: np.ndarray, ex: np.ndarray, ez: np.ndarray, radii: np.ndarray, segments: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An open elliptic tube through ``centres`` (R, 3) with per-ring radii (R, 2) along the
    unit axes ``ex``, ``ez`` (3,): vertices (R * S, 3), outward normals (R * S, 3) and
    faces (2 * (R - 1) * S, 3)."""
    phi = np.arange(segments) * (2.0 * math.pi / segments)
    c, s = np.cos(phi), np.sin(phi)
    verts = (
        centres[:, None, :]
        + (radii[:, 0:1] * c[None, :])[:, :, None] * ex
        + (radii[:, 1:2] * s[None, :])[:, :, None] * ez
    ).reshape(-1, 3)
    # Normal of an ellipse (a cos, b sin): (b cos, a sin).
    normals = (
        (radii[:, 1:2] * c[None, :])[:, :, None] * ex
        + (radii[:, 0:1] * s[None, :])[:, :, None] * ez
    ).reshape(-1, 3)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    r = np.arange(len(centres) - 1)[:, None]
    k = np.arange(segments)[None, :]
    a, b = r * segments + k, r * segments + (k + 1) % segments
    faces = np.concatenate(
        [np.stack([a, a + segments, b + segments], -1), np.stack([a, b + segments, b], -1)]
    ).reshape(-1, 3)
    return verts, normals, faces


def forearm_mesh(
    hand_vertices: np.ndarray, wrist: np.ndarray, spec: ArmSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The forearm (and sleeve) of a posed hand, in the hand frame.

    The tube starts 15 mm distal of the wrist joint, inside the hand (so no seam shows),
    0.8 times as wide and 0.9 times as thick as the hand's vertices within 12 mm of the
    wrist, and widens over 12 cm to 1.15 x 1.4 times that (a forearm's muscles), then narrows
    slightly toward the elbow.

    Args:
        hand_vertices: (V, 3) posed hand vertices, hand frame, metres.
        wrist: (3,) the wrist joint, hand frame, metres.
        spec: the arm.

    Returns:
        vertices (A, 3) m and outward normals (A, 3), hand frame; faces (G, 3) int64
        indexing the vertices; material (G,) int64 (:data:`MAT_ARM` or :data:`MAT_SLEEVE`).
    """
    near = hand_vertices[np.abs(hand_vertices[:, 1] - wrist[1]) < 0.012]
    if len(near) < 8:
        near = hand_vertices
    lo, hi = near.min(axis=0), near.max(axis=0)
    centre0 = np.array([0.5 * (lo[0] + hi[0]), wrist[1] + 0.015, 0.5 * (lo[2] + hi[2])])
    r0 = spec.girth * np.array([0.4 * (hi[0] - lo[0]), 0.45 * (hi[2] - lo[2])])
    r0 = np.clip(r0, 0.012, 0.032)
    ca, sa = math.cos(spec.flex_rad), math.sin(spec.flex_rad)
    cd, sd = math.cos(spec.deviation_rad), math.sin(spec.deviation_rad)
    # Proximal direction: -y, turned about x (flexion toward the palm, +z) then z.
    d = np.array([0.0, -ca, sa])
    d = np.array([cd * d[0] - sd * d[1], sd * d[0] + cd * d[1], d[2]])
    ex = _unit(np.array([1.0, 0.0, 0.0]) - d[0] * d)
    ez = _unit(np.cross(ex, d))
    t = np.concatenate([[0.0, 0.02], np.linspace(0.05, spec.length_m, _ARM_RINGS - 2)])
    grow = np.clip(t / 0.12, 0.0, 1.0)
    grow = grow * grow * (3.0 - 2.0 * grow)
    taper = 1.0 - 0.12 * np.clip((t - 0.15) / 0.15, 0.0, 1.0)
    radii = r0[None, :] * (1.0 + np.outer(grow, [0.15, 0.4])) * taper[:, None]
    centres = centre0[None, :] + t[:, None] * d[None, :]
    verts, normals, faces = _tube(centres, ex, ez, radii, _ARM_SEGMENTS)
    # A cap at the elbow end: a fan to the last ring's centre.
    last = len(verts) - _ARM_SEGMENTS
    tip = len(verts)
    verts = np.concatenate([verts, centres[-1:]])
    normals = np.concatenate([normals, d[None]])
    k = np.arange(_ARM_SEGMENTS)
    cap = np.stack([last + k, np.full(_ARM_SEGMENTS, tip), last + (k + 1) % _ARM_SEGMENTS], -1)
    faces = np.concatenate([faces, cap])
    material = np.full(len(faces), MAT_ARM, np.int64)
    if math.isfinite(spec.sleeve_from_m) and spec.sleeve_from_m < spec.length_m - 0.02:
        ts = np.linspace(spec.sleeve_from_m, spec.length_m, 6)
        g = np.clip(ts / 0.12, 0.0, 1.0)
        g = g * g * (3.0 - 2.0 * g)
        tp = 1.0 - 0.12 * np.clip((ts - 0.15) / 0.15, 0.0, 1.0)
        rs = r0[None, :] * (1.0 + np.outer(g, [0.15, 0.4])) * tp[:, None] * 1.3 + 0.004
        sv, sn, sf = _tube(centre0[None, :] + ts[:, None] * d[None, :], ex, ez, rs, _ARM_SEGMENTS)
        faces = np.concatenate([faces, sf + len(verts)])
        verts = np.concatenate([verts, sv])
        normals = np.concatenate([normals, sn])
        material = np.concatenate([material, np.full(len(sf), MAT_SLEEVE, np.int64)])
    return verts, normals, faces.astype(np.int64), material


def sample_arm(rng: np.random.Generator, sleeve_probability: float) -> ArmSpec:
    """A random forearm: 45-65 cm long (the upper arm continues it: it leaves the image),
    wrist flexion within +-35 degrees, deviation within +-15 degrees, girth 0.9-1.1, a
    sleeve from 4-20 cm with ``sleeve_probability``."""
    length = float(rng.uniform(0.45, 0.65))
    flex = float(np.deg2rad(rng.uniform(-35.0, 35.0)))
    dev = float(np.deg2rad(rng.uniform(-15.0, 15.0)))
    girth = float(rng.uniform(0.9, 1.1))
    sleeve = rng.random() < sleeve_probability
    start = float(rng.uniform(0.04, 0.2)) if sleeve else math.inf
    hue = rng.uniform(0.0, 1.0)
    base = np.array(
        [0.5 + 0.5 * math.cos(2 * math.pi * (hue + k / 3.0)) for k in range(3)], np.float64
    )
    rgb = tuple(float(v) for v in (0.03 + 0.45 * base * rng.uniform(0.2, 1.0)))
    return ArmSpec(length, flex, dev, girth, start, rgb)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- skin


@dataclass(frozen=True)
class HandSkinMap:
    """Where the skin's features lie on a hand model's rest pose (hand frame, metres).

    Attributes:
        joints: (21, 3) rest joints.
        bone_start, bone_end: (15, 3) the finger bones (MCP->PIP, PIP->DIP, DIP->tip for the
            four fingers; thumb MCP->IP, IP->tip, CMC->MCP), metres.
        bone_radius: (15,) mean distance of the bone's vertices from its axis, metres.
        crease_joint: (14,) index of the bone that starts at each creased joint.
        palm_lines: (3, K, 2) polylines (x, y) of the heart, head and life lines.
        palmar_z: (15,) z of the bones' axes (the palmar side has z above it).
    """

    joints: np.ndarray
    bone_start: np.ndarray
    bone_end: np.ndarray
    bone_radius: np.ndarray
    palm_lines: np.ndarray

    @classmethod
    def build(cls, rest_vertices: np.ndarray, joint_regressor: np.ndarray) -> HandSkinMap:
        """From a hand model's rest vertices (V, 3) and joint regressor (21, V)."""
        j = joint_regressor @ rest_vertices
        chains = [(1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20)]
        starts, ends = [], []
        for chain in chains:
            for a, b in itertools.pairwise(chain):
                starts.append(j[a])
                ends.append(j[b])
        s, e = np.array(starts), np.array(ends)
        radius = np.empty(len(s))
        for i in range(len(s)):
            axis = e[i] - s[i]
            length = np.linalg.norm(axis)
            t = (rest_vertices - s[i]) @ axis / length**2
            radial = np.linalg.norm(rest_vertices - s[i] - np.outer(t, axis), axis=1)
            sel = (t > 0.2) & (t < 0.8) & (radial < 0.02)
            radius[i] = np.median(radial[sel]) if sel.sum() >= 4 else 0.008
        wrist, idx, mid, ring, lit = j[0], j[5], j[9], j[13], j[17]
        thumb = j[2]

        def lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
            return a + (b - a) * t

        # Palm lines in the palm's plane (x, y): heart line below the MCPs from the little
        # finger's edge toward the index/middle gap; head line from the thumb-index web across
        # the palm; life line around the thumb's base.
        edge = lit + np.array([0.01 if lit[0] > idx[0] else -0.01, 0.0, 0.0])
        heart = [
            lerp(lerp(edge, wrist, 0.22), edge, 0.0),
            lerp(lerp(ring, wrist, 0.25), ring, 0.0),
            lerp(lerp(mid, wrist, 0.2), mid, 0.0),
            lerp(lerp(idx, mid, 0.5), wrist, 0.12),
        ]
        web = lerp(idx, thumb, 0.45)
        head = [
            web,
            lerp(lerp(mid, wrist, 0.38), web, 0.1),
            lerp(lerp(ring, wrist, 0.45), edge, 0.1),
            lerp(lerp(edge, wrist, 0.5), ring, 0.05),
        ]
        life = [
            web,
            lerp(web, wrist, 0.35) + (idx - lit) * 0.08,
            lerp(web, wrist, 0.7) + (idx - lit) * 0.02,
            lerp(wrist, mid, 0.08),
        ]
        lines = np.array([[p[:2] for p in line] for line in (heart, head, life)])
        out = cls(j, s, e, radius, lines)
        _readonly(out.joints, out.bone_start, out.bone_end, out.bone_radius, out.palm_lines)
        return out


@dataclass(frozen=True)
class SkinLook:
    """Per-hand parameters of the skin's detail.

    Attributes:
        crease_depth: darkening at the centre of a crease (0-1).
        line_depth: darkening at the centre of a palm line (0-1).
        nail_rgb: (3,) linear albedo of the nails.
        relief_mm: amplitude of the fine relief (bump), millimetres.
        relief_freq: (4, 3) spatial frequencies of the relief, radians per metre.
        relief_phase: (4,) phases, radians.
        palm_lighter: how much lighter the palm is than the back (0-0.3).
    """

    crease_depth: float
    line_depth: float
    nail_rgb: tuple[float, float, float]
    relief_mm: float
    relief_freq: np.ndarray
    relief_phase: np.ndarray
    palm_lighter: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> SkinLook:
        freq = rng.normal(size=(4, 3))
        freq *= (2.0 * math.pi / rng.uniform(0.003, 0.008, 4))[:, None] / np.linalg.norm(
            freq, axis=1, keepdims=True
        )
        out = cls(
            crease_depth=float(rng.uniform(0.15, 0.35)),
            line_depth=float(rng.uniform(0.1, 0.25)),
            nail_rgb=tuple(float(v) for v in rng.uniform(0.9, 1.1, 3) * [0.78, 0.62, 0.58]),  # type: ignore[arg-type]
            relief_mm=float(rng.uniform(0.1, 0.3)),
            relief_freq=freq,
            relief_phase=rng.uniform(0.0, 2.0 * math.pi, 4),
            palm_lighter=float(rng.uniform(0.05, 0.2)),
        )
        _readonly(out.relief_freq, out.relief_phase)
        return out


def _detail_by_bone(
    skin_map: HandSkinMap,
    look: SkinLook,
    p: np.ndarray,
    bones: np.ndarray,
    shade: np.ndarray,
    height: np.ndarray,
    nail: np.ndarray,
) -> None:
    """The creases and nails of :func:`skin_detail`, each point by its own bone (in place)."""
    on = np.nonzero(bones >= 0)[0]
    if not len(on):
        return
    b = bones[on]
    f32 = np.float32
    start, end = skin_map.bone_start.astype(f32)[b], skin_map.bone_end.astype(f32)[b]
    rad = skin_map.bone_radius.astype(f32)[b]
    axis = end - start
    length = np.sqrt((axis * axis).sum(axis=1))
    u = axis / length[:, None]
    rel = p[on].astype(f32) - start
    t = (rel * u).sum(axis=1)
    rv = rel - t[:, None] * u
    palmar = rv[:, 2] > 0.0
    has_next = b % 3 != 2  # the end joint starts the next bone (not at a fingertip)
    # Creases reach about 8 mm from their joint: only points that near are evaluated.
    g = np.zeros(len(on), f32)
    near_start = np.nonzero(np.abs(t) < 0.008)[0]
    g[near_start] = _crease(look, b[near_start], t[near_start], palmar[near_start])
    near_end = np.nonzero((np.abs(t - length) < 0.008) & has_next)[0]
    g[near_end] = np.maximum(
        g[near_end],
        _crease(look, b[near_end] + 1, t[near_end] - length[near_end], palmar[near_end]),
    )
    shade[on] *= 1.0 - look.crease_depth * g
    height[on] -= 0.0004 * g
    tip = np.nonzero(~has_next)[0]
    if len(tip):
        side = np.cross(u[tip], np.array([0.0, 0.0, 1.0]))
        side /= np.maximum(np.linalg.norm(side, axis=1, keepdims=True), 1e-12)
        lateral = np.abs((rv[tip] * side).sum(axis=1))
        r = rad[tip]
        along = (t[tip] / length[tip] - 0.45) / 0.5
        inside = (
            (~palmar[tip]) & (along > 0.0) & (along < 1.15) & (lateral < 0.75 * r)
            & (rv[tip, 2] < -0.4 * r)
        )  # fmt: skip
        soft = np.clip(np.minimum(along, 1.15 - along) * 6.0, 0.0, 1.0) * np.clip(
            (0.75 * r - lateral) / (0.2 * r), 0.0, 1.0
        )
        nail[on[tip]] = inside * soft


def nearest_bones(skin_map: HandSkinMap, rest_points: np.ndarray) -> np.ndarray:
    """(N,) int64: the finger bone (index into ``skin_map.bone_start``) nearest each rest
    point (N, 3), or -1 where none is within 1.6 of its radius (the palm)."""
    best = np.full(len(rest_points), -1, np.int64)
    best_d = np.full(len(rest_points), np.inf)
    for b in range(len(skin_map.bone_start)):
        s, e = skin_map.bone_start[b], skin_map.bone_end[b]
        axis = e - s
        t = np.clip((rest_points - s) @ axis / float(axis @ axis), 0.0, 1.0)
        d = np.linalg.norm(rest_points - s - t[:, None] * axis, axis=1)
        inside = (d < 1.6 * skin_map.bone_radius[b]) & (d < best_d)
        best[inside], best_d[inside] = b, d[inside]
    return best


def _crease(look: SkinLook, bone: np.ndarray, t: np.ndarray, palmar: np.ndarray) -> np.ndarray:
    """Crease strength in [0, 1] at distance ``t`` (N,) metres past the start joint of
    ``bone`` (N,): one groove on the palmar side (two at a PIP; wider at an MCP), fine
    wrinkles on the back; none at the thumb's CMC."""
    kind = bone % 3
    w = 0.0006 + 0.0004 * (kind == 0)
    groove = np.exp(-0.5 * (t / w) ** 2)
    second = np.exp(-0.5 * ((t - 0.003) / w) ** 2) * (kind == 1)
    wrinkles = (0.5 + 0.5 * np.cos(t * 2.0 * math.pi / 0.0015)) * np.exp(-0.5 * (t / 0.003) ** 2)
    g = np.where(palmar, groove + 0.7 * second, 0.5 * wrinkles)
    return np.clip(g, 0.0, 1.0) * ((kind != 0) | (bone >= 3))


def skin_detail(
    skin_map: HandSkinMap,
    look: SkinLook,
    rest_points: np.ndarray,
    bones: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Albedo factor, relief height and nail weight of hand surface points.

    Args:
        skin_map: the hand model's feature map.
        look: this hand's skin parameters.
        rest_points: (N, 3) the points' rest-pose positions, hand frame, metres.
        bones: (N,) the finger bone each point lies on (:func:`nearest_bones`, -1: palm);
            given, each point is shaded by its own bone's joints only (one pass instead of
            one per bone); None: by every bone near it.

    Returns:
        shade (N,) albedo factor (creases, palm lines, lighter palm), height (N,) metres
        (relief minus the creases' grooves, for bump mapping), nail (N,) in [0, 1].
    """
    p = rest_points
    n = len(p)
    shade = np.ones(n, np.float32)
    phase = p.astype(np.float32) @ look.relief_freq.T.astype(np.float32)
    height = np.sin(phase + look.relief_phase.astype(np.float32)).mean(axis=1)
    height *= np.float32(look.relief_mm * 1e-3)
    nail = np.zeros(n, np.float32)
    s, e, rad = skin_map.bone_start, skin_map.bone_end, skin_map.bone_radius
    if bones is not None:
        _detail_by_bone(skin_map, look, p, bones, shade, height, nail)
    for b in range(len(s) if bones is None else 0):
        axis = e[b] - s[b]
        length = float(np.linalg.norm(axis))
        u = axis / length
        # A box around the bone's neighbourhood first (cheap), then the exact test.
        reach = 1.6 * rad[b]
        lo = np.minimum(s[b] - 0.5 * axis, s[b] + 1.2 * axis) - reach
        hi = np.maximum(s[b] - 0.5 * axis, s[b] + 1.2 * axis) + reach
        cand = np.nonzero(((p >= lo) & (p <= hi)).all(axis=1))[0]
        if not len(cand):
            continue
        rel = p[cand] - s[b]
        t = rel @ u
        radial_v = rel - t[:, None] * u
        radial = np.sqrt((radial_v * radial_v).sum(axis=1))
        near = (radial < reach) & (t > -0.5 * length) & (t < 1.2 * length)
        if not near.any():
            continue
        idx = cand[near]
        tt, rv = t[near], radial_v[near]
        palmar = rv[:, 2] > 0.0
        # Creases across the finger at the bone's start joint (not the thumb's CMC).
        if b % 3 != 0 or b >= 3:
            w = 0.0006 + 0.0004 * (b % 3 == 0)
            groove = np.exp(-0.5 * (tt / w) ** 2)
            # The palmar side has one deep crease (two at the PIP), the back fine wrinkles.
            second = np.exp(-0.5 * ((tt - 0.003) / w) ** 2) * (b % 3 == 1)
            wrinkles = (0.5 + 0.5 * np.cos(tt * 2.0 * math.pi / 0.0015)) * np.exp(
                -0.5 * (tt / 0.003) ** 2
            )
            g = np.where(palmar, groove + 0.7 * second, 0.5 * wrinkles)
            shade[idx] *= 1.0 - look.crease_depth * np.clip(g, 0.0, 1.0)
            height[idx] -= 0.0004 * np.clip(g, 0.0, 1.0)
        # Nails: the back of the last bone, from 45% of it to past its end.
        if b % 3 == 2:
            lateral = np.abs(rv @ _unit(np.cross(u, np.array([0.0, 0.0, 1.0]))))
            along = (tt / length - 0.45) / 0.5
            inside = (
                (~palmar)
                & (along > 0.0)
                & (along < 1.15)
                & (lateral < 0.75 * rad[b])
                & (rv[:, 2] < -0.4 * rad[b])
            )
            soft = np.clip(np.minimum(along, 1.15 - along) * 6.0, 0.0, 1.0) * np.clip(
                (0.75 * rad[b] - lateral) / (0.2 * rad[b]), 0.0, 1.0
            )
            nail[idx] = np.maximum(nail[idx], inside * soft)
    # Palm lines on the palmar side of the palm.
    in_palm = (p[:, 2] > skin_map.joints[9][2] - 0.002) & (p[:, 1] < skin_map.joints[9][1])
    if in_palm.any():
        idx = np.nonzero(in_palm)[0]
        xy = p[idx, :2].astype(np.float32)
        # Distance to the nearest segment of the three polylines, all segments at once.
        a = np.concatenate([line[:-1] for line in skin_map.palm_lines]).astype(np.float32)
        ab = np.concatenate([np.diff(line, axis=0) for line in skin_map.palm_lines])
        ab = ab.astype(np.float32)
        rel = xy[:, None, :] - a[None]  # (N, S, 2)
        t = np.clip((rel * ab).sum(axis=2) / (ab * ab).sum(axis=1), 0.0, 1.0)
        off = rel - t[:, :, None] * ab
        d = np.sqrt((off * off).sum(axis=2).min(axis=1))
        g = np.exp(-0.5 * (d / 0.0007) ** 2)
        shade[idx] *= (1.0 - look.line_depth * g) * (1.0 + look.palm_lighter)
        height[idx] -= 0.0003 * g
    return shade, height, nail


def vertex_occlusion(
    vertices: np.ndarray, normals: np.ndarray, radius_m: float = 0.015
) -> np.ndarray:
    """Ambient occlusion of a posed mesh's vertices from surfaces facing them.

    A vertex is darkened by every other vertex within ``radius_m`` that lies in front of its
    tangent plane and faces it (the gaps between touching fingers, the inside of a fist, a
    thumb over the palm); vertices of one convex surface lie behind each other's tangent
    planes and do not count. A cheap stand-in for ray-traced occlusion.

    Args:
        vertices: (V, 3) metres.
        normals: (V, 3) unit outward normals.
        radius_m: reach of the occlusion, metres.

    Returns:
        (V,) visibility of the sky in [0.35, 1] (1: unoccluded).
    """
    from scipy.spatial import cKDTree

    pairs = cKDTree(vertices).query_pairs(radius_m, output_type="ndarray")
    occ = np.zeros(len(vertices))
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        d = vertices[j] - vertices[i]
        dist = np.maximum(np.linalg.norm(d, axis=1), 1e-6)
        u = d / dist[:, None]
        facing = np.clip((normals[i] * u).sum(1), 0.0, None) * np.clip(
            -(normals[j] * u).sum(1), 0.0, None
        )
        w = facing * (1.0 - dist / radius_m)
        np.add.at(occ, i, w)
        np.add.at(occ, j, w)
    return np.clip(1.0 - 0.12 * occ, 0.35, 1.0)


# ----------------------------------------------------------------------------- light


@dataclass(frozen=True)
class LightRig:
    """The lights of one scene, camera optical frame.

    Attributes:
        setup: one of :data:`LIGHT_SETUPS`.
        key_dir: (3,) unit vector toward the key light.
        key_rgb: (3,) key light intensity per channel.
        fill_dir: (3,) unit vector toward the fill light.
        fill_rgb: (3,) fill light intensity.
        up: (3,) world up.
        sky_rgb: (3,) ambient light from above.
        ground_rgb: (3,) ambient light from below.
        flash_rgb: (3,) intensity at ``flash_ref_m`` of a light at the camera (zero: none).
        flash_ref_m: distance at which the flash gives ``flash_rgb``, metres.
        wrap: (3,) wrap-lighting width per channel (subsurface scattering reaches further in
            red).
        shadows: cast shadows of the key light (shadow map).
    """

    setup: str
    key_dir: np.ndarray
    key_rgb: np.ndarray
    fill_dir: np.ndarray
    fill_rgb: np.ndarray
    up: np.ndarray
    sky_rgb: np.ndarray
    ground_rgb: np.ndarray
    flash_rgb: np.ndarray
    flash_ref_m: float
    wrap: np.ndarray
    shadows: bool

    def __post_init__(self) -> None:
        if self.setup not in LIGHT_SETUPS:
            raise ConfigError(f"LightRig.setup expected one of {LIGHT_SETUPS}; got {self.setup!r}")
        _readonly(
            self.key_dir, self.key_rgb, self.fill_dir, self.fill_rgb, self.up, self.sky_rgb,
            self.ground_rgb, self.flash_rgb, self.wrap,
        )  # fmt: skip

    def irradiance_plane(self, normal: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """(N, 3) float32 light reaching a matte surface with one normal (3,) at depths
        (N,) metres."""
        cos_up = float(normal @ self.up)
        amb = 0.5 * (1 + cos_up) * self.sky_rgb + 0.5 * (1 - cos_up) * self.ground_rgb
        out = amb + max(float(normal @ self.key_dir), 0.0) * self.key_rgb
        out = (out + max(float(normal @ self.fill_dir), 0.0) * self.fill_rgb).astype(np.float32)
        flash = (self.flash_rgb * max(-float(normal[2]), 0.0)).astype(np.float32)
        if not flash.any():
            return np.broadcast_to(out, (len(depth), 3))
        falloff = (np.float32(self.flash_ref_m) / np.maximum(depth, 0.05).astype(np.float32)) ** 2
        return out[None, :] + falloff[:, None] * flash[None, :]


def sample_light_rig(
    setup: str, rng: np.random.Generator, up: np.ndarray, brightness: float, shadows: bool
) -> LightRig:
    """A random light rig of a set-up.

    Args:
        setup: one of :data:`LIGHT_SETUPS`.
        rng: random generator.
        up: (3,) world up in the camera frame.
        brightness: overall scale of the intensities.
        shadows: cast shadows of the key light.
    """
    up = _unit(np.asarray(up, np.float64))
    side = _unit(np.cross(up, np.array([0.0, 0.0, 1.0])))
    toward_cam = np.array([0.0, 0.0, -1.0])
    white = np.ones(3)
    warm = np.array([1.12, 1.0, 0.8])
    cool = np.array([0.88, 0.97, 1.12])
    jitter = rng.uniform(0.95, 1.05, 3)
    flash = np.zeros(3)
    if setup == "studio":
        key = _unit(toward_cam + rng.uniform(-0.35, 0.35) * side + rng.uniform(0.0, 0.4) * up)
        key_rgb, fill_rgb = 0.45 * white, 0.2 * white
        sky, ground = 0.45 * white, 0.35 * white
    elif setup == "room":
        key = _unit(up + rng.uniform(0.2, 0.8) * toward_cam + rng.uniform(-0.6, 0.6) * side)
        key_rgb, fill_rgb = 0.6 * warm, 0.15 * warm
        sky, ground = 0.35 * warm, 0.18 * warm
    elif setup == "window":
        sign = 1.0 if rng.random() < 0.5 else -1.0
        key = _unit(sign * side + rng.uniform(0.1, 0.6) * toward_cam + rng.uniform(0.0, 0.5) * up)
        key_rgb, fill_rgb = 0.85 * cool, 0.05 * warm
        sky, ground = 0.22 * cool, 0.1 * warm
    elif setup == "overhead":
        key = _unit(up + rng.uniform(-0.25, 0.25) * side + rng.uniform(0.0, 0.3) * toward_cam)
        key_rgb, fill_rgb = 0.9 * white, 0.06 * white
        sky, ground = 0.2 * white, 0.08 * white
    elif setup == "flash":
        key = _unit(up + 0.3 * toward_cam)
        key_rgb, fill_rgb = 0.08 * warm, 0.0 * white
        sky, ground = 0.1 * warm, 0.05 * warm
        flash = 0.75 * np.array([1.0, 0.98, 0.95])
    else:
        raise ConfigError(f"light setup expected one of {LIGHT_SETUPS}; got {setup!r}")
    fill = _unit(toward_cam - 0.5 * key)
    s = brightness * jitter
    return LightRig(
        setup=setup,
        key_dir=key,
        key_rgb=key_rgb * s,
        fill_dir=fill,
        fill_rgb=fill_rgb * s,
        up=up,
        sky_rgb=sky * s,
        ground_rgb=ground * s,
        flash_rgb=flash * brightness,
        flash_ref_m=float(rng.uniform(0.5, 0.7)),
        wrap=np.array([0.45, 0.25, 0.18]) * rng.uniform(0.7, 1.2),
        shadows=shadows,
    )


def shade_surface(
    albedo: np.ndarray,
    normals: np.ndarray,
    points: np.ndarray,
    eye: np.ndarray,
    rig: LightRig,
    specular: np.ndarray,
    shininess: float,
    lit: np.ndarray | None = None,
    wrap: bool = True,
    occlusion: np.ndarray | None = None,
) -> np.ndarray:
    """Wrap-lit diffuse plus Blinn-Phong specular radiance of surface points.

    Args:
        albedo: (N, 3) linear RGB.
        normals: (N, 3) unit normals, camera frame (turned toward the eye if they face away).
        points: (N, 3) positions, metres, left optical frame.
        eye: (3,) the viewing camera's centre, metres, left optical frame.
        rig: the lights.
        specular: (N,) specular reflectance (0: matte).
        shininess: Blinn-Phong exponent.
        lit: (N,) 1 where the key light reaches the point (None: everywhere).
        wrap: wrap lighting (skin) rather than Lambert.
        occlusion: (N,) ambient visibility in [0, 1] (:func:`vertex_occlusion`): scales the
            ambient and fill light, and the key light by its square root (None: 1).

    Returns:
        (N, 3) linear RGB radiance.
    """
    f32 = np.float32
    albedo, normals = albedo.astype(f32, copy=False), normals.astype(f32, copy=False)
    specular = specular.astype(f32, copy=False)
    key_dir, fill_dir, up = (v.astype(f32) for v in (rig.key_dir, rig.fill_dir, rig.up))
    view = eye.astype(f32)[None, :] - points.astype(f32)
    dist = np.maximum(np.sqrt((view * view).sum(axis=1, keepdims=True)), f32(1e-6))
    view /= dist
    n = normals * np.where((normals * view).sum(axis=1, keepdims=True) < 0.0, f32(-1), f32(1))
    w = rig.wrap[None, :].astype(f32) if wrap else np.zeros((1, 3), f32)

    def diffuse(cos: np.ndarray) -> np.ndarray:
        return np.clip((cos[:, None] + w) / (1.0 + w), 0.0, None)

    cos_key = n @ key_dir
    key = diffuse(cos_key) * rig.key_rgb[None, :].astype(f32)
    if lit is not None:
        key = key * (0.15 + 0.85 * lit[:, None]) if wrap else key * lit[:, None]
    cos_up = n @ up
    sky, ground = rig.sky_rgb.astype(f32), rig.ground_rgb.astype(f32)
    amb = f32(0.5) * (1 + cos_up)[:, None] * sky + f32(0.5) * (1 - cos_up)[:, None] * ground
    light = amb + diffuse(n @ fill_dir) * rig.fill_rgb[None, :].astype(f32)
    if occlusion is not None:
        light = light * occlusion[:, None]
        key = key * np.sqrt(occlusion)[:, None]
    light = light + key
    spec_lights = [(key_dir, rig.key_rgb, lit), (fill_dir, rig.fill_rgb, None)]
    if rig.flash_rgb.any():
        to_flash = view  # the flash sits at the camera
        falloff = (f32(rig.flash_ref_m) / dist[:, 0]) ** 2
        cos_f = (n * to_flash).sum(axis=1)
        light = light + diffuse(cos_f) * rig.flash_rgb[None, :].astype(f32) * falloff[:, None]
    out = albedo * light
    for ldir, lrgb, mask in spec_lights:
        h = ldir[None, :] + view
        h /= np.maximum(np.sqrt((h * h).sum(axis=1, keepdims=True)), f32(1e-9))
        s = np.clip((n * h).sum(axis=1), 0.0, 1.0) ** f32(shininess) * (n @ ldir > 0)
        if mask is not None:
            s = s * mask
        out += (specular * s)[:, None] * lrgb[None, :].astype(f32)
    if rig.flash_rgb.any():
        s = np.clip((n * view).sum(axis=1), 0.0, 1.0) ** f32(shininess) * falloff
        out += (specular * s)[:, None] * rig.flash_rgb[None, :].astype(f32)
    return out


# ----------------------------------------------------------------------------- background


@dataclass(frozen=True)
class Plane:
    """A textured plane of the background, left optical frame.

    Point ``origin + s * axis_u + t * axis_v`` shows texel ``(t / texel_m + v0, s / texel_m
    + u0)`` of ``texture`` (wrapped around).

    Attributes:
        origin: (3,) metres.
        axis_u, axis_v: (3,) orthonormal in-plane axes.
        texture: (Ht, Wt, 3) float32 linear albedo.
        texel_m: size of a texel, metres.
    """

    origin: np.ndarray
    axis_u: np.ndarray
    axis_v: np.ndarray
    texture: np.ndarray
    texel_m: float

    def __post_init__(self) -> None:
        _readonly(self.origin, self.axis_u, self.axis_v, self.texture)

    @property
    def normal(self) -> np.ndarray:
        """(3,) unit normal toward the camera's side."""
        n = _unit(np.cross(self.axis_u, self.axis_v))
        return -n if float(n @ self.origin) > 0 else n


@dataclass(frozen=True)
class Prop:
    """A box or cylinder in the scene, left optical frame.

    Attributes:
        kind: ``"box"`` or ``"cylinder"``.
        centre: (3,) metres.
        axes: (3, 3) rows: the prop's x, y, z axes (its y is its height axis).
        size: (3,) full extents along its axes, metres (a cylinder: diameter, height, -).
        rgb: (3,) linear albedo.
    """

    kind: str
    centre: np.ndarray
    axes: np.ndarray
    size: np.ndarray
    rgb: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.kind not in ("box", "cylinder"):
            raise ConfigError(f"Prop.kind expected 'box' or 'cylinder'; got {self.kind!r}")
        _readonly(self.centre, self.axes, self.size)


def prop_mesh(prop: Prop) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices (N, 3), normals (N, 3) and faces (M, 3) of a prop (flat-shaded box, smooth
    cylinder with flat caps), left optical frame."""
    half = 0.5 * prop.size
    if prop.kind == "box":
        verts, normals, faces = [], [], []
        for axis in range(3):
            for sign in (-1.0, 1.0):
                a, b = (axis + 1) % 3, (axis + 2) % 3
                corners = []
                for ca, cb in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                    c = np.zeros(3)
                    c[axis], c[a], c[b] = sign * half[axis], ca * half[a], cb * half[b]
                    corners.append(c)
                base = len(verts)
                verts += corners
                n = np.zeros(3)
                n[axis] = sign
                normals += [n] * 4
                faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
        v, nn, f = np.array(verts), np.array(normals), np.array(faces, np.int64)
    else:
        seg = 18
        r, h = half[0], half[1]
        centres = np.array([[0.0, -h, 0.0], [0.0, h, 0.0]])
        v, nn, f = _tube(
            centres, np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), np.full((2, 2), r), seg
        )
        caps_v, caps_n, caps_f = [v], [nn], [f]
        count = len(v)
        for ring, y in ((0, -h), (1, h)):
            rim = v[ring * seg : (ring + 1) * seg]
            caps_v += [rim, np.array([[0.0, y, 0.0]])]
            n = np.array([0.0, np.sign(y), 0.0])
            caps_n += [np.tile(n, (seg + 1, 1))]
            k = np.arange(seg)
            centre = count + seg
            caps_f.append(np.stack([count + k, np.full(seg, centre), count + (k + 1) % seg], -1))
            count += seg + 1
        v, nn, f = np.concatenate(caps_v), np.concatenate(caps_n), np.concatenate(caps_f)
    return v @ prop.axes + prop.centre, nn @ prop.axes, f.astype(np.int64)


@dataclass(frozen=True)
class BackgroundScene:
    """A procedural table-top scene behind the hand.

    Attributes:
        table: the table plane (horizontal in the world, below the hand).
        wall: the wall behind it (vertical).
        props: boxes and cylinders standing on the table or held by the hand.
    """

    table: Plane
    wall: Plane
    props: tuple[Prop, ...] = field(default_factory=tuple)
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def radiance_and_depth(
        self, rig_k: np.ndarray, size: tuple[int, int], tx_m: float, lights: LightRig
    ) -> tuple[np.ndarray, np.ndarray]:
        """The planes seen by the camera at ``tx_m`` along x: (H, W, 3) float32 radiance
        and (H, W) float32 depth (metres). Read-only arrays, cached per camera and lights
        (a moving hand in front of a still scene renders it once per view)."""
        key = (tuple(float(v) for v in rig_k), tuple(size), float(tx_m), id(lights))
        hit = self._cache.get(key)
        if hit is not None and hit[0] is lights:
            return hit[1], hit[2]
        radiance, depth = self._render(rig_k, size, tx_m, lights)
        radiance.setflags(write=False)
        depth.setflags(write=False)
        if len(self._cache) >= 8:
            self._cache.clear()
        self._cache[key] = (lights, radiance, depth)
        return radiance, depth

    def _render(
        self, rig_k: np.ndarray, size: tuple[int, int], tx_m: float, lights: LightRig
    ) -> tuple[np.ndarray, np.ndarray]:
        h, w = size
        fx, fy, cx, cy = (float(v) for v in rig_k)
        rx = ((np.arange(w, dtype=np.float32) - cx) / fx)[None, :]
        ry = ((np.arange(h, dtype=np.float32) - cy) / fy)[:, None]
        eye = np.array([tx_m, 0.0, 0.0])
        best_t = np.full((h, w), np.inf, np.float32)
        out = np.zeros((h, w, 3), np.float32)
        for plane in (self.wall, self.table):
            n = plane.normal.astype(np.float32)
            denom = rx * n[0] + ry * n[1] + n[2]
            num = np.float32(n @ (plane.origin - eye))
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                t = num / denom
            t[~(t > 0.05)] = np.inf
            use = t < best_t
            if not use.any():
                continue
            t_use = np.where(use, t, np.float32(1.0))
            o = (plane.origin - eye).astype(np.float32)
            th, tw = plane.texture.shape[:2]
            maps = []
            for axis, period in ((plane.axis_u, tw), (plane.axis_v, th)):
                a = axis.astype(np.float32) / np.float32(plane.texel_m)
                # (ray * t - (origin - eye)) . axis / texel, wrapped into the texture.
                m = (rx * a[0] + ry * a[1] + a[2]) * t_use - np.float32(o @ a)
                maps.append(np.mod(m, np.float32(period)))
            texel_px = float(plane.texel_m * fx / np.median(t_use[use]))
            tex = plane.texture
            if texel_px < 0.7:  # a texel smaller than a pixel: low-pass first
                tex = cv2.GaussianBlur(tex, (0, 0), 0.5 / max(texel_px, 0.1))
            sampled = cv2.remap(
                tex, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP
            )
            irr = lights.irradiance_plane(plane.normal, t_use.reshape(-1)).reshape(-1, 3)
            if irr.strides[0] == 0:  # the same light everywhere
                sampled *= irr[0]
            else:
                sampled *= irr.reshape(h, w, 3)
            np.copyto(out, sampled, where=use[:, :, None])
            np.copyto(best_t, t, where=use)
        best_t[~np.isfinite(best_t)] = 50.0
        return out, best_t


def _value_noise(
    rng: np.random.Generator, h: int, w: int, cell_px: float, octaves: int = 3
) -> np.ndarray:
    """(h, w) float32 smooth noise in about [-1, 1]: octaves of bilinearly upsampled grids."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        gh, gw = max(2, int(h / cell_px) + 2), max(2, int(w / cell_px) + 2)
        grid = rng.uniform(-1.0, 1.0, (gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
        cell_px /= 2.0
    return out / total


def _texture(kind: str, rng: np.random.Generator, size: int = 512) -> tuple[np.ndarray, float]:
    """A procedural (size, size, 3) float32 linear albedo texture and its texel size (m)."""
    n1 = _value_noise(rng, size, size, size / 6)
    n2 = _value_noise(rng, size, size, 12.0, 2)
    if kind == "wood":
        texel = 0.0015
        base = np.array([0.35, 0.2, 0.1]) * rng.uniform(0.5, 1.3)
        y = np.arange(size, dtype=np.float32)[:, None]
        rings = np.sin((y + 25.0 * n1) * (2 * math.pi / rng.uniform(9.0, 20.0)))
        grain = 0.75 + 0.12 * rings + 0.08 * n2
        grain = grain * (1.0 + 0.05 * rng.normal(size=(1, size)).astype(np.float32))
        tex = grain[:, :, None] * base[None, None, :]
    elif kind == "cloth":
        texel = 0.0008
        base = np.full(3, rng.uniform(0.01, 0.06)) * rng.uniform(0.85, 1.15, 3)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        weave = 0.5 + 0.25 * np.sin(xx * 2.1) * np.sin(yy * 2.1)
        tex = (1.0 + 0.35 * n1 + 0.3 * n2 + 0.25 * weave)[:, :, None] * base[None, None, :]
    elif kind == "laminate":
        texel = 0.002
        base = np.full(3, rng.uniform(0.3, 0.75)) * rng.uniform(0.9, 1.1, 3)
        tex = (1.0 + 0.06 * n1 + 0.03 * n2)[:, :, None] * base[None, None, :]
    elif kind == "paper":
        texel = 0.002
        base = np.full(3, rng.uniform(0.6, 0.85))
        tex = (1.0 + 0.04 * n1 + 0.05 * n2)[:, :, None] * base[None, None, :]
        for _ in range(int(rng.integers(2, 7))):  # sheets, notes, a book
            y0, x0 = rng.integers(0, size - 60, 2)
            hh, ww = rng.integers(40, 200, 2)
            tex[y0 : y0 + hh, x0 : x0 + ww] = rng.uniform(0.05, 0.8, 3)
    elif kind == "wall":
        texel = 0.004
        base = np.full(3, rng.uniform(0.35, 0.8)) * rng.uniform(0.85, 1.1, 3)
        tex = (1.0 + 0.05 * n1 + 0.02 * n2)[:, :, None] * base[None, None, :]
        for _ in range(int(rng.integers(3, 10))):  # shelves, posters, boxes, a screen, a door
            y0, x0 = rng.integers(0, size - 40, 2)
            hh, ww = rng.integers(20, 220, 2)
            colour = rng.uniform(0.02, 0.7, 3) * (
                rng.uniform(0.2, 1.0) if rng.random() < 0.5 else 1.0
            )
            patch = colour[None, None, :] * (1.0 + 0.15 * n2[:hh, :ww, None])
            tex[y0 : y0 + hh, x0 : x0 + ww] = patch[: size - y0, : size - x0]
            if rng.random() < 0.4:  # a frame or shelf edge
                tex[y0 : y0 + 4, x0 : x0 + ww] *= 0.4
    else:
        raise ConfigError(f"texture kind unknown: {kind!r}")
    return np.clip(tex, 0.0, 1.0).astype(np.float32), texel


TABLE_TEXTURES = ("wood", "cloth", "laminate", "paper")


def sample_background_scene(
    rng: np.random.Generator,
    up: np.ndarray,
    hand_points: np.ndarray,
    clearance_m: float,
    prop_count: tuple[int, int],
    rig_k: np.ndarray,
    size: tuple[int, int],
) -> BackgroundScene:
    """A table below the hand, a wall behind it and props standing on the table.

    Args:
        rng: random generator.
        up: (3,) world up in the camera frame (the table's normal).
        hand_points: (N, 3) points that must stay above the table (the hand), metres.
        clearance_m: the table lies at least this far below every hand point, metres.
        prop_count: (min, max) props on the table.
        rig_k: (4,) fx, fy, cx, cy of the left camera (props are placed in its view).
        size: (H, W) image size.
    """
    up = _unit(np.asarray(up, np.float64))
    fwd = _unit(np.array([0.0, 0.0, 1.0]) - up[2] * up)
    right = _unit(np.cross(up, fwd)) * -1.0
    lowest = float((hand_points @ up).min())
    height = lowest - clearance_m - float(rng.uniform(0.0, 0.1))
    table_origin = up * height
    wall_dist = float(max((hand_points @ fwd).max() + 0.3, rng.uniform(0.9, 2.2)))
    wall_origin = table_origin + fwd * wall_dist
    kind = TABLE_TEXTURES[int(rng.integers(len(TABLE_TEXTURES)))]
    table_tex, table_texel = _texture(kind, rng)
    wall_tex, wall_texel = _texture("wall", rng)
    angle = rng.uniform(0, 2 * math.pi)
    tu = math.cos(angle) * right + math.sin(angle) * fwd
    tv = np.cross(up, tu)
    table = Plane(table_origin, tu, tv, table_tex, table_texel)
    wall = Plane(wall_origin, right, -up, wall_tex, wall_texel)
    props: list[Prop] = []
    fx, fy, cx, cy = (float(v) for v in rig_k)
    h, w = size
    # The hand's box in the image, grown by a third: props stay out of it.
    uv = hand_points[:, :2] / hand_points[:, 2:3] * [fx, fy] + [cx, cy]
    grow = 0.33 * (uv.max(axis=0) - uv.min(axis=0))
    box_lo, box_hi = uv.min(axis=0) - grow, uv.max(axis=0) + grow
    for _ in range(int(rng.integers(prop_count[0], prop_count[1] + 1))):
        for _attempt in range(10):
            u, v = rng.uniform(0.05, 0.95) * w, rng.uniform(0.3, 1.0) * h
            ray = np.array([(u - cx) / fx, (v - cy) / fy, 1.0])
            denom = float(ray @ up)
            if abs(denom) < 1e-3:
                continue
            t = height / denom
            if not 0.2 < t < wall_dist * 1.5:
                continue
            foot = ray * t
            dims = rng.uniform(0.03, 0.12, 3)
            # Not over the hand in the image (its forearm may still pass behind or in front).
            reach = float(np.linalg.norm(dims)) * fx / t
            if (np.abs(np.array([u, v]) - np.clip([u, v], box_lo, box_hi)) < reach).all():
                continue
            kind_p = "box" if rng.random() < 0.6 else "cylinder"
            yaw = rng.uniform(0, 2 * math.pi)
            ax = math.cos(yaw) * right + math.sin(yaw) * fwd
            axes = np.stack([ax, up, np.cross(ax, up)])
            centre = foot + up * (0.5 * dims[1])
            props.append(Prop(kind_p, centre, axes, dims, _prop_colour(rng)))
            break
    return BackgroundScene(table, wall, tuple(props))


def _prop_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    """A toy block's saturated colour or a household object's muted one (linear)."""
    if rng.random() < 0.6:
        rgb = np.array([0.03, 0.03, 0.03])
        rgb[int(rng.integers(3))] = rng.uniform(0.3, 0.7)
        rgb[int(rng.integers(3))] += rng.uniform(0.0, 0.3)
    else:
        rgb = np.full(3, rng.uniform(0.05, 0.7)) * rng.uniform(0.8, 1.2, 3)
    return tuple(float(c) for c in np.clip(rgb, 0.0, 1.0))  # type: ignore[return-value]


def held_prop(
    thumb_tip: np.ndarray, index_tip: np.ndarray, up: np.ndarray, rgb: tuple[float, float, float]
) -> Prop | None:
    """A small block held between the thumb and index tips (left optical frame), or None
    when the tips are too close or too far apart to hold one (2-8 cm)."""
    gap = float(np.linalg.norm(index_tip - thumb_tip))
    if not 0.02 < gap < 0.08:
        return None
    ax = _unit(index_tip - thumb_tip)
    other = _unit(np.cross(ax, up if abs(float(ax @ up)) < 0.9 else np.array([1.0, 0, 0])))
    axes = np.stack([ax, other, np.cross(ax, other)])
    size = np.array([gap * 0.9, 0.03, 0.03])
    return Prop("box", 0.5 * (thumb_tip + index_tip), axes, size, rgb)


# ----------------------------------------------------------------------------- camera


def motion_blur(layer: np.ndarray, alpha: np.ndarray, length_px: float, angle: float):
    """Linear motion blur of a moving layer (radiance (H, W, 3), coverage (H, W)).

    Returns the blurred premultiplied layer and coverage; composite as
    ``layer + (1 - alpha) * background``.
    """
    n = max(math.ceil(length_px) | 1, 3)
    kernel = np.zeros((n, n), np.float32)
    c = (n - 1) / 2.0
    dx, dy = math.cos(angle), math.sin(angle)
    for t in np.linspace(-0.5 * length_px, 0.5 * length_px, 4 * n):
        x, y = c + t * dx, c + t * dy
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        for xi, yi, wgt in (
            (x0, y0, (1 - fx) * (1 - fy)),
            (x0 + 1, y0, fx * (1 - fy)),
            (x0, y0 + 1, (1 - fx) * fy),
            (x0 + 1, y0 + 1, fx * fy),
        ):
            if 0 <= xi < n and 0 <= yi < n:
                kernel[yi, xi] += wgt
    kernel /= kernel.sum()
    pre = layer * alpha[:, :, None]
    return cv2.filter2D(pre, -1, kernel), cv2.filter2D(alpha, -1, kernel)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB through JPEG at ``quality`` (1-100) and back."""
    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ConfigError(f"JPEG encoding failed at quality {quality}")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])


@dataclass(frozen=True)
class SceneExtras:
    """Everything the realistic renderer adds to a :class:`~stereo_hand_mesh.data.synth.
    SceneAppearance` (see the module docstring).

    Attributes:
        arm: the forearm (None: a hand alone).
        lights: the light rig.
        skin: the skin's detail parameters.
        background: a table-top scene (None: the appearance's fronto-parallel plane).
        hold_rgb: (3,) albedo of a block held between the thumb and index tips when the
            pose allows one (None: nothing held).
        motion_blur_px: (2,) range of the hand's motion blur length, pixels.
        motion_blur_probability: chance of motion blur on a pair.
        jpeg_quality: (2,) range of the JPEG quality.
        jpeg_probability: chance that a pair is JPEG-compressed.
    """

    arm: ArmSpec | None
    lights: LightRig
    skin: SkinLook
    background: BackgroundScene | None = None
    hold_rgb: tuple[float, float, float] | None = None
    motion_blur_px: tuple[float, float] = (0.0, 0.0)
    motion_blur_probability: float = 0.0
    jpeg_quality: tuple[int, int] = (90, 95)
    jpeg_probability: float = 0.0
