"""Synthetic stereo pairs of the template hand, with ground truth, in two domains.

Each pair: a natural pose or gesture, a random hand shape and global rotation, the hand 0.3-0.9
m in front of a rectified rig (default: STB's Bumblebee2, 640x480), rendered into both views
with the differentiable rasterizer (used here without gradients), then passed through the
domain's sensor model. Ground truth: joints and vertices in the left optical frame (metres),
their projections in both views (pixels), joint visibility, and the hand masks (the hand's
pixels that nothing hides).

Two looks (:class:`SynthSettings` ``look``). ``"real"`` (default; what a network trained on
real photographs recognises, :mod:`~stereo_hand_mesh.data.synth_scene`): the hand continues
into a forearm (sometimes in a sleeve), its skin has creases, palm lines, nails, relief and
ambient occlusion between touching parts, shaded with wrap lighting and a specular term
under one of the domain's light set-ups (studio, room, window, overhead, flash); behind it a
procedural table-top scene with props (one may be held between thumb and index) or the
domain's background plane; the camera adds motion blur and JPEG artefacts to its sensor
model. ``"plain"``: the hand alone, Lambert-shaded by one light (with a shadow map for cast
shadows in the target domain), over a fronto-parallel background plane seen with its proper
disparity (what the legacy mesh-uv network was trained on).

Deterministic: pair ``i`` of a split uses ``numpy.random.default_rng([seed, i])``, so a
split can be regenerated, extended or generated in parallel with identical results.

:func:`render_pair` draws a random :class:`HandScene` and renders it with
:func:`render_scene`; other scene sources (the moving hand of
:mod:`stereo_hand_mesh.data.motion`) build their own scenes and render them the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2, StereoRigSpec
from stereo_hand_mesh.data.sample import StereoSample
from stereo_hand_mesh.data.synth_scene import (
    MAT_ARM,
    MAT_HAND,
    MAT_PROP,
    MAT_SLEEVE,
    ArmSpec,
    HandSkinMap,
    SceneExtras,
    SkinLook,
    forearm_mesh,
    held_prop,
    jpeg_roundtrip,
    motion_blur,
    nearest_bones,
    prop_mesh,
    sample_arm,
    sample_background_scene,
    sample_light_rig,
    shade_surface,
    skin_detail,
    vertex_occlusion,
)
from stereo_hand_mesh.data.synth_style import (
    DomainStyle,
    apply_sensor,
    sample_background_plane,
    sample_gains,
    sample_skin_albedo,
    shade_lambert,
    style_for,
)
from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields
from stereo_hand_mesh.hand.model import (
    HandModel,
    mirror_joints_to_left,
    mirror_to_left,
    template_hand,
)
from stereo_hand_mesh.hand.poses import gesture_pose, sample_pose
from stereo_hand_mesh.hand.shape import sample_shape_vectors
from stereo_hand_mesh.hand.skeleton import axis_angle_to_matrix
from stereo_hand_mesh.render.rasterizer import rasterize

__all__ = [
    "HAND_TO_CAMERA",
    "LOOKS",
    "SIDES",
    "HandScene",
    "HandTruth",
    "RenderedPair",
    "SceneAppearance",
    "SynthSettings",
    "as_stereo_sample",
    "iter_synthetic_pairs",
    "place_hand",
    "render_background_pair",
    "render_pair",
    "render_scene",
    "sample_appearance",
]

#: Looks of the renders (:class:`SynthSettings`).
LOOKS = ("real", "plain")
#: Sides a rendered hand can be (:class:`HandScene` ``handedness``).
SIDES = ("right", "left")

#: (3, 3) rotation from the hand frame (+y fingers, +z palmar) to the camera optical frame
#: (x right, y down, z forward): palm toward the camera, fingers up.
HAND_TO_CAMERA = np.diag([1.0, -1.0, -1.0])
HAND_TO_CAMERA.setflags(write=False)


@dataclass(frozen=True)
class SynthSettings:
    """What :func:`render_pair` renders.

    Attributes:
        domain: ``"source"`` or ``"target"``.
        rig: the rectified stereo rig (size, intrinsics, baseline).
        depth_range_m: range of the hand centre's depth, metres.
        max_tilt_deg: largest rotation of the hand away from palm-facing-camera, degrees.
        margin_px: the hand's projected vertices stay this far inside both images.
        shadow_map_px: resolution of the shadow map (target domain).
        look: ``"real"`` (default): the hand continues into a forearm, with skin detail,
            the domain's light set-ups, table-top scenes, props and camera effects
            (:mod:`~stereo_hand_mesh.data.synth_scene`); ``"plain"``: the hand alone,
            Lambert-shaded, in front of the background plane (what the legacy mesh-uv
            network was trained on).
    """

    domain: str = "source"
    rig: StereoRigSpec = STB_BUMBLEBEE2
    depth_range_m: tuple[float, float] = (0.3, 0.9)
    max_tilt_deg: float = 70.0
    margin_px: int = 8
    shadow_map_px: int = 256
    look: str = "real"

    def __post_init__(self) -> None:
        style_for(self.domain)
        if self.look not in LOOKS:
            raise ConfigError(f"look expected one of {LOOKS}; got {self.look!r}")
        lo, hi = self.depth_range_m
        if not 0.1 <= lo <= hi:
            raise ConfigError(f"depth_range_m expected 0.1 <= low <= high; got {lo}, {hi}")


@dataclass(frozen=True)
class HandTruth:
    """The ground truth of one more hand of a rendered pair (see ``RenderedPair.others``).

    Attributes:
        handedness: ``"right"`` or ``"left"``.
        mask_left, mask_right: (H, W) bool: the hand's pixels that nothing hides.
        annotation: as ``RenderedPair.annotation``, for this hand.
        gesture: the gesture name.
    """

    handedness: str
    mask_left: np.ndarray
    mask_right: np.ndarray
    annotation: dict[str, np.ndarray]
    gesture: str


@dataclass(frozen=True)
class RenderedPair:
    """One rendered stereo pair and its ground truth.

    Attributes:
        left, right: (H, W, 3) uint8 RGB images.
        mask_left, mask_right: (H, W) bool hand masks (the hand's pixels that nothing,
            another hand included, hides).
        annotation: ``joints`` (21, 3) m and ``vertices`` (V, 3) m in the left optical
            frame; ``uv_left``/``uv_right`` (21, 2) px; ``vertices_uv_left``/``_right``
            (V, 2) px; ``visibility`` (21,) bool (joint unoccluded in the left view, other
            hands included); ``gesture`` is not stored (free text).
        gesture: the gesture name (or ``"random"``).
        others: the ground truth of the other hands of the scene (``render_scene``'s
            ``others``, in their order); empty for a one-hand scene.
    """

    left: np.ndarray
    right: np.ndarray
    mask_left: np.ndarray
    mask_right: np.ndarray
    annotation: dict[str, np.ndarray]
    gesture: str
    others: tuple[HandTruth, ...] = ()


def _choose_gesture(style: DomainStyle, rng: np.random.Generator) -> str:
    names = sorted(style.gesture_weights)
    p = np.array([style.gesture_weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _random_rotation(rng: np.random.Generator, max_tilt_deg: float) -> np.ndarray:
    """(3, 3) hand-to-camera rotation: palm-facing base, random roll, then tilt."""
    roll = rng.uniform(-np.pi * 0.6, np.pi * 0.6)
    axis = rng.normal(size=3)
    axis[2] = 0.0
    axis /= max(np.linalg.norm(axis), 1e-9)
    tilt = np.deg2rad(max_tilt_deg) * np.sqrt(rng.uniform())
    r_roll = axis_angle_to_matrix(np.array([0.0, 0.0, roll]))
    r_tilt = axis_angle_to_matrix(axis * tilt)
    return r_tilt @ r_roll @ HAND_TO_CAMERA


def _project(points: np.ndarray, k: np.ndarray, tx_m: float) -> np.ndarray:
    """(N, 3) left-frame points -> (N, 2) pixels of a camera shifted by tx_m along x."""
    x = points[:, 0] - tx_m
    return np.stack(
        [k[0] * x / points[:, 2] + k[2], k[1] * points[:, 1] / points[:, 2] + k[3]], axis=1
    )


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = np.zeros_like(vertices)
    for c in range(3):
        np.add.at(vn, faces[:, c], fn)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch single-threaded inside (the process-wide setting is restored after).

    A scene's rasterization is a few small kernels: on a 2-core machine shared with other
    processes, torch's second thread waits for a core far longer than the work takes
    (measured under load: 0.7 s with 2 threads, 10 ms with 1, for the same scene).
    """
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


def _raster(vertices: np.ndarray, faces_t: torch.Tensor, k4: np.ndarray, hw: tuple[int, int]):
    with torch.no_grad(), _one_torch_thread():
        frags = rasterize(
            torch.from_numpy(vertices[None]).float(),
            faces_t,
            torch.from_numpy(np.asarray(k4, np.float32)[None]),
            hw,
        )
    return (
        frags.depth[0].numpy(),
        frags.face_index[0].numpy(),
        frags.bary[0].numpy(),
        frags.mask[0].numpy(),
    )


def _interp(values: np.ndarray, faces: np.ndarray, face_index: np.ndarray, bary: np.ndarray):
    """Per-pixel interpolation of per-vertex values at covered pixels -> (n_covered, C)."""
    covered = face_index >= 0
    tri = faces[face_index[covered]]
    w = bary[covered]
    return (values[tri] * w[:, :, None]).sum(axis=1), covered


@dataclass(frozen=True)
class _ShadowMap:
    """Depth of the hand seen from the light (a pinhole camera 0.6 m along the light).

    Built once per pair and queried by both views with :meth:`lit`.
    """

    eye: np.ndarray  # (3,) light camera centre, left optical frame, metres
    rot: np.ndarray  # (3, 3) left optical frame -> light camera
    focal_px: float
    depth: np.ndarray  # (S, S) metres
    mask: np.ndarray  # (S, S) bool

    @classmethod
    def build(
        cls, vertices: np.ndarray, faces_t: torch.Tensor, light_dir: np.ndarray, size: int
    ) -> _ShadowMap:
        centre = vertices.mean(axis=0)
        eye = centre + light_dir * 0.6
        fwd = -light_dir
        up = np.array([0.0, 1.0, 0.0]) if abs(fwd[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
        right = np.cross(up, fwd)
        right /= np.linalg.norm(right)
        rot = np.stack([right, np.cross(fwd, right), fwd])
        radius = np.linalg.norm(vertices - centre, axis=1).max()
        f = 0.5 * size * 0.6 / radius
        k4 = np.array([f, f, size / 2, size / 2])
        depth, _, _, mask = _raster((vertices - eye) @ rot.T, faces_t, k4, (size, size))
        return cls(eye, rot, f, depth, mask)

    def lit(self, points: np.ndarray) -> np.ndarray:
        """(N,) float32: 1 where ``points`` (N, 3) (left optical frame) see the light."""
        size = self.depth.shape[0]
        lp = (points - self.eye) @ self.rot.T
        u = np.clip(
            np.round(self.focal_px * lp[:, 0] / lp[:, 2] + size / 2).astype(int), 0, size - 1
        )
        v = np.clip(
            np.round(self.focal_px * lp[:, 1] / lp[:, 2] + size / 2).astype(int), 0, size - 1
        )
        # A 5 mm bias against self-shadow acne.
        occluder = np.where(self.mask[v, u], self.depth[v, u], np.inf)
        return (lp[:, 2] <= occluder + 0.005).astype(np.float32)


@dataclass(frozen=True)
class SceneAppearance:
    """Everything but the hand's geometry that a rendered pair depends on.

    Arrays are read-only so that one appearance can be shared by many scenes.

    Attributes:
        albedo: (V, 3) float32 per-vertex skin albedo, linear RGB in [0, 1].
        light_dir: (3,) unit vector from the surface toward the light, left optical frame.
        ambient: ambient light intensity.
        diffuse: directional light intensity.
        background: (H, W + W // 2, 3) float32 linear RGB texture of the background plane
            (see :func:`~stereo_hand_mesh.data.synth_style.sample_background_plane`).
        background_depth_m: depth of the fronto-parallel background plane, metres (pushed
            back to 0.2 m behind the hand when the hand reaches further).
        gains: (3,) float32 white-balance gains shared by both views.
        extras: forearm, light rig, skin detail, table-top scene and camera effects
            (:class:`~stereo_hand_mesh.data.synth_scene.SceneExtras`); None renders the hand
            alone, Lambert-shaded by ``light_dir``, ``ambient`` and ``diffuse``, in front of
            the background plane (the look before the forearm and skin detail existed).
    """

    albedo: np.ndarray
    light_dir: np.ndarray
    ambient: float
    diffuse: float
    background: np.ndarray
    background_depth_m: float
    gains: np.ndarray
    extras: SceneExtras | None = None

    def __post_init__(self) -> None:
        check_shape(self.albedo, (None, 3), "SceneAppearance.albedo")
        check_shape(self.light_dir, (3,), "SceneAppearance.light_dir")
        check_shape(self.background, (None, None, 3), "SceneAppearance.background")
        check_shape(self.gains, (3,), "SceneAppearance.gains")
        for arr in (self.albedo, self.light_dir, self.background, self.gains):
            arr.setflags(write=False)


@dataclass(frozen=True)
class HandScene:
    """One hand in front of the rig, and how it looks.

    The hand is posed and shaped in its own frame, rotated by ``rotation`` and then moved
    so that the mean of its vertices lands on ``centre_m`` (see :func:`place_hand`). A left
    hand is the model's (right) hand mirrored in its own frame (x -> -x, as
    :func:`~stereo_hand_mesh.hand.model.mirror_to_left` does) before the rotation: ``pose``
    and ``shape`` are those of that right hand, and its joints keep their names.

    Attributes:
        pose: (P,) pose parameters of the hand model, radians.
        shape: (S,) shape vector of the hand model (``HandShape.to_vector`` order).
        rotation: (3, 3) rotation from the hand frame to the left optical frame.
        centre_m: (3,) position of the vertices' mean in the left optical frame, metres.
        appearance: lights, skin, background and sensor gains.
        gesture: a name for the pose (free text, e.g. ``"fist"`` or ``"random"``).
        handedness: ``"right"`` (default) or ``"left"``.
    """

    pose: np.ndarray
    shape: np.ndarray
    rotation: np.ndarray
    centre_m: np.ndarray
    appearance: SceneAppearance
    gesture: str = ""
    handedness: str = "right"

    def __post_init__(self) -> None:
        check_shape(self.pose, (None,), "HandScene.pose")
        check_shape(self.shape, (None,), "HandScene.shape")
        check_shape(self.rotation, (3, 3), "HandScene.rotation")
        check_shape(self.centre_m, (3,), "HandScene.centre_m")
        if self.handedness not in SIDES:
            raise ConfigError(
                f"HandScene.handedness expected one of {SIDES}; got {self.handedness!r}"
            )


def _hand_frame(
    hand: HandModel, pose: np.ndarray, shape: np.ndarray, handedness: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The posed hand in its own frame: vertices (V, 3) m, joints (21, 3) m and faces
    (F, 3) int64; a left hand is the right hand mirrored (x -> -x, faces flipped)."""
    rest = hand.forward(pose[None], shape[None])
    verts, joints = rest.vertices[0], rest.joints[0]
    faces = hand.faces.astype(np.int64)
    if handedness == "left":
        verts, faces = mirror_to_left(verts, faces)
        joints = mirror_joints_to_left(joints)
    return verts, joints, faces


def place_hand(
    hand: HandModel,
    pose: np.ndarray,
    shape: np.ndarray,
    rotation: np.ndarray,
    centre_m: np.ndarray,
    handedness: str = "right",
) -> tuple[np.ndarray, np.ndarray]:
    """Pose, rotate and move the hand so that its vertices' mean lands on ``centre_m``.

    Args:
        hand: the hand model.
        pose: (P,) pose parameters, radians.
        shape: (S,) shape vector.
        rotation: (3, 3) hand frame -> left optical frame.
        centre_m: (3,) target of the vertices' mean, left optical frame, metres.
        handedness: ``"right"``, or ``"left"``: the hand mirrored in its own frame first
            (see :class:`HandScene`).

    Returns:
        vertices (V, 3) and joints (21, 3), metres, left optical frame.
    """
    verts_h, joints_h, _ = _hand_frame(hand, pose, shape, handedness)
    verts = verts_h @ rotation.T
    joints = joints_h @ rotation.T
    centre = verts.mean(axis=0)
    return verts - centre + centre_m, joints - centre + centre_m


def _inside_both_views(verts: np.ndarray, rig: StereoRigSpec, margin_px: float) -> bool:
    """True when every vertex (V, 3) projects at least ``margin_px`` inside both images."""
    k4 = np.array([rig.fx, rig.fy, rig.cx, rig.cy])
    ok = True
    for tx in (0.0, rig.baseline_m):
        uv = _project(verts, k4, tx)
        ok &= bool(
            (uv[:, 0] >= margin_px).all()
            and (uv[:, 0] < rig.width - margin_px).all()
            and (uv[:, 1] >= margin_px).all()
            and (uv[:, 1] < rig.height - margin_px).all()
        )
    return ok


def _place_randomly(
    hand: HandModel,
    rng: np.random.Generator,
    settings: SynthSettings,
    pose: np.ndarray,
    shape: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """A random rotation (3, 3) and vertex centre (3,) m that keep the hand inside both
    images."""
    rig = settings.rig
    rest = hand.forward(pose[None], shape[None])
    for _attempt in range(50):
        rot = _random_rotation(rng, settings.max_tilt_deg)
        verts = rest.vertices[0] @ rot.T
        centre = verts.mean(axis=0)
        z = rng.uniform(*settings.depth_range_m)
        # Sample the centre's pixel in the left image, then back-project at depth z.
        u = rng.uniform(0.2, 0.8) * rig.width
        v = rng.uniform(0.2, 0.8) * rig.height
        target = np.array([(u - rig.cx) * z / rig.fx, (v - rig.cy) * z / rig.fy, z])
        verts = verts - centre + target
        if verts[:, 2].min() < 0.15:
            continue
        if _inside_both_views(verts, rig, settings.margin_px):
            return rot, target
    raise ConfigError(
        f"could not place the hand inside both {rig.width}x{rig.height} images at depth "
        f"{settings.depth_range_m} m in 50 tries; enlarge the images or the depth range"
    )


def _background_view(texture: np.ndarray, shift_px: float, width: int) -> np.ndarray:
    """Cut a (H, width, 3) view from the wider texture, starting ``shift_px`` columns in."""
    mat = np.array([[1.0, 0.0, shift_px], [0.0, 1.0, 0.0]], dtype=np.float32)
    return cv2.warpAffine(
        texture,
        mat,
        (width, texture.shape[0]),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )


def _world_up(pitch_deg: float) -> np.ndarray:
    """(3,) world up in the optical frame of a level camera pitched down by ``pitch_deg``."""
    t = np.deg2rad(pitch_deg)
    return np.array([0.0, -np.cos(t), -np.sin(t)])


def sample_appearance(
    settings: SynthSettings,
    rng: np.random.Generator,
    hand: HandModel,
    hand_points: np.ndarray | None = None,
) -> SceneAppearance:
    """Draw skin, lights, background, gains and the scene's extras in the style of
    ``settings.domain``.

    Args:
        settings: the domain and the rig (the background texture is cut to its size).
        rng: random generator (consumed in a fixed order: skin, light, background, gains,
            then the extras: forearm, light rig, skin detail, table-top scene, camera effects).
        hand: the hand model (the skin texture follows its rest vertices).
        hand_points: (N, 3) points of the placed hand (left optical frame, metres) that a
            table-top scene must stay below; None: a hand 0.6 m in front of the camera,
            moving by up to 0.2 m (the simulator's motion).

    Returns:
        The appearance.
    """
    style = style_for(settings.domain)
    rig = settings.rig
    albedo_v = sample_skin_albedo(style, rng, hand.template_vertices)
    elev = np.deg2rad(rng.uniform(*style.light_elevation_deg))
    azim = rng.uniform(0, 2 * np.pi)
    # Direction from the surface toward the light, mostly from the camera side (-z).
    light_dir = np.array([np.sin(elev) * np.cos(azim), np.sin(elev) * np.sin(azim), -np.cos(elev)])
    ambient = rng.uniform(*style.ambient)
    diffuse = rng.uniform(*style.diffuse)
    texture, bg_depth = sample_background_plane(style, rng, rig.height, rig.width)
    gains = sample_gains(style, rng)
    if settings.look == "plain":
        return SceneAppearance(albedo_v, light_dir, ambient, diffuse, texture, bg_depth, gains)
    # The extras.
    arm = sample_arm(rng, style.sleeve_probability)
    up = _world_up(rng.uniform(*style.camera_pitch_deg))
    setups = sorted(style.light_setups)
    p = np.array([style.light_setups[k] for k in setups], dtype=np.float64)
    setup = setups[int(rng.choice(len(setups), p=p / p.sum()))]
    lights = sample_light_rig(setup, rng, up, rng.uniform(*style.brightness), style.shadows)
    skin = SkinLook.sample(rng)
    scene = None
    if rng.random() < style.tabletop_probability:
        if hand_points is None:
            hand_points = np.array([[0.0, -0.2, 0.45], [0.0, 0.2, 0.8], [0.2, 0.0, 0.6]])
        k4 = np.array([rig.fx, rig.fy, rig.cx, rig.cy])
        scene = sample_background_scene(
            rng, up, hand_points, 0.04, style.prop_count, k4, (rig.height, rig.width)
        )
    hold = None
    if rng.random() < style.hold_probability:
        hold = tuple(float(c) for c in rng.uniform(0.03, 0.6, 3))
    extras = SceneExtras(
        arm=arm,
        lights=lights,
        skin=skin,
        background=scene,
        hold_rgb=hold,  # type: ignore[arg-type]
        motion_blur_px=style.motion_blur_px,
        motion_blur_probability=style.motion_blur_probability,
        jpeg_quality=style.jpeg_quality,
        jpeg_probability=style.jpeg_probability,
    )
    return SceneAppearance(
        albedo_v, lights.key_dir.copy(), ambient, diffuse, texture, bg_depth, gains, extras
    )


def _background_radiance(
    appearance: SceneAppearance, rig: StereoRigSpec, tx_m: float, depth_m: float
) -> np.ndarray:
    """(H, W, 3) float32 linear radiance of the background plane seen by the camera at
    ``tx_m`` along x, with the plane at ``depth_m``."""
    a = appearance
    bg_lit = np.float32(a.ambient + a.diffuse * max(-a.light_dir[2], 0.0))
    return _background_view(a.background, rig.fx * tx_m / depth_m, rig.width) * bg_lit


def render_background_pair(
    settings: SynthSettings, appearance: SceneAppearance, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Render the background plane alone (no hand in view) into both views.

    Args:
        settings: the domain (sensor model) and the rig.
        appearance: the scene's lights, background and gains (the skin is unused).
        rng: random generator of the sensor noise.

    Returns:
        left and right (H, W, 3) uint8 RGB images.
    """
    style = style_for(settings.domain)
    rig = settings.rig
    extras = appearance.extras
    views = []
    for tx in (0.0, rig.baseline_m):
        if extras is None:
            radiance = _background_radiance(appearance, rig, tx, appearance.background_depth_m)
        else:
            radiance, _ = _backdrop(settings, appearance, tx, appearance.background_depth_m)
            if extras.background is not None and extras.background.props:
                radiance = _with_props(radiance, extras, rig, tx)
        views.append(apply_sensor(radiance.astype(np.float32), style, rng, appearance.gains))
    return views[0], views[1]


def _with_props(
    radiance: np.ndarray, extras: SceneExtras, rig: StereoRigSpec, tx: float
) -> np.ndarray:
    """The background's props drawn over its radiance (H, W, 3) in the camera at ``tx``."""
    assert extras.background is not None
    meshes = [(*prop_mesh(p), p.rgb) for p in extras.background.props]
    offsets = np.cumsum([0] + [len(m[0]) for m in meshes[:-1]])
    verts = np.concatenate([m[0] for m in meshes])
    normals = np.concatenate([m[1] for m in meshes])
    albedo = np.concatenate([np.tile(m[3], (len(m[0]), 1)) for m in meshes])
    faces = np.concatenate([m[2] + o for m, o in zip(meshes, offsets)])
    eye = np.array([tx, 0.0, 0.0])
    k4 = np.array([rig.fx, rig.fy, rig.cx, rig.cy])
    depth, face_index, bary, mask = _raster(
        verts - eye, torch.from_numpy(faces), k4, (rig.height, rig.width)
    )
    if not mask.any():
        return radiance
    rows, cols = np.nonzero(mask)
    tri = faces[face_index[mask]]
    wts = bary[mask][:, :, None]
    z = depth[mask]
    pts = np.stack([(cols - rig.cx) * z / rig.fx + tx, (rows - rig.cy) * z / rig.fy, z], 1)
    n = (normals[tri] * wts).sum(axis=1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    out = radiance.copy()
    out[mask] = shade_surface(
        (albedo[tri] * wts).sum(axis=1), n, pts, eye, extras.lights,
        np.full(len(z), _SPECULAR[MAT_PROP]), _SHININESS, wrap=False,
    )  # fmt: skip
    return out


def render_scene(
    hand: HandModel,
    settings: SynthSettings,
    scene: HandScene,
    faces_t: torch.Tensor,
    rng: np.random.Generator,
    others: Sequence[HandScene] = (),
) -> RenderedPair:
    """Render a given scene into both views of ``settings.rig`` (no gradients).

    Args:
        hand: the hand model (its faces must be ``faces_t``).
        settings: the domain (lighting model, sensor model) and the rig.
        scene: the hand's pose, shape, placement and appearance.
        faces_t: (F, 3) int64 faces of ``hand`` as a tensor (built once by the caller).
        rng: random generator of the sensor noise (left view first, then right).
        others: more hands in the same scene (e.g. the other hand of the same person),
            rendered with their own pose, shape, placement, side and skin, into the same
            depth buffer as ``scene``'s hand (so each hides the other where it is nearer).
            Lights, background, props and camera effects are ``scene``'s; each hand has
            its own forearm (its appearance's, or ``scene``'s when its appearance has no
            extras); a held prop goes to ``scene``'s hand only.

    Returns:
        The pair with ``scene``'s ground truth, and the others' in ``others``. Nothing
        checks that the hands are inside the images or apart from each other.
    """
    scenes = (scene, *others)
    if scene.appearance.extras is not None:
        return _render_realistic(hand, settings, scenes, rng)
    style = style_for(settings.domain)
    rig = settings.rig
    h, w = rig.height, rig.width
    k4 = np.array([rig.fx, rig.fy, rig.cx, rig.cy])
    placed = [_hand_in_scene(hand, sc) for sc in scenes]
    verts = np.concatenate([p[0] for p in placed])
    if len(scenes) == 1 and scene.handedness == "right":
        faces = hand.faces
    else:
        starts = np.cumsum([0] + [len(p[0]) for p in placed[:-1]])
        faces = np.concatenate([p[2] + o for p, o in zip(placed, starts, strict=True)])
        faces_t = torch.from_numpy(faces)
    face_hand = np.repeat(np.arange(len(scenes)), [len(p[2]) for p in placed])
    a = scene.appearance
    albedo_v = (
        a.albedo
        if len(scenes) == 1
        else np.concatenate([np.asarray(sc.appearance.albedo) for sc in scenes])
    )
    normals_v = _vertex_normals(verts, faces)
    bg_depth = max(a.background_depth_m, float(verts[:, 2].max()) + 0.2)

    shadow = (
        _ShadowMap.build(verts, faces_t, a.light_dir, settings.shadow_map_px)
        if style.shadows
        else None
    )
    images, masks = [], []
    depth_left = None
    for view, tx in (("left", 0.0), ("right", rig.baseline_m)):
        cam_verts = verts - np.array([tx, 0.0, 0.0])
        depth, face_index, bary, mask = _raster(cam_verts, faces_t, k4, (h, w))
        radiance = _background_radiance(a, rig, tx, bg_depth)
        if mask.any():
            albedo, covered = _interp(albedo_v, faces, face_index, bary)
            normal, _ = _interp(normals_v, faces, face_index, bary)
            normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
            lit = None
            if shadow is not None:
                rows, cols = np.nonzero(covered)
                z = depth[covered]
                pts = np.stack(
                    [(cols - rig.cx) * z / rig.fx + tx, (rows - rig.cy) * z / rig.fy, z], axis=1
                )
                lit = shadow.lit(pts)
            radiance[covered] = shade_lambert(
                albedo, normal, a.light_dir, a.ambient, a.diffuse, lit
            )
        images.append(apply_sensor(radiance.astype(np.float32), style, rng, a.gains))
        masks.append(mask if len(scenes) == 1 else (mask, face_hand[face_index]))
        if view == "left":
            depth_left = depth

    assert depth_left is not None
    if len(scenes) == 1:
        return _pair_with_truth(
            rig, placed[0][0], placed[0][1], images, masks, masks[0], depth_left, scene.gesture
        )
    hand_masks = [[m & (owner == k) for m, owner in masks] for k in range(len(scenes))]
    return _pair_with_others(rig, scenes, placed, images, hand_masks, masks[0][0], depth_left)


def _hand_in_scene(hand: HandModel, scene: HandScene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A scene's hand placed in the left optical frame: vertices (V, 3) m, joints (21, 3) m
    and its faces (F, 3) int64 (flipped for a left hand)."""
    verts_h, joints_h, faces = _hand_frame(hand, scene.pose, scene.shape, scene.handedness)
    verts = verts_h @ scene.rotation.T
    joints = joints_h @ scene.rotation.T
    centre = verts.mean(axis=0)  # as place_hand does it (the same floating-point result)
    return verts - centre + scene.centre_m, joints - centre + scene.centre_m, faces


def _pair_with_others(
    rig: StereoRigSpec,
    scenes: Sequence[HandScene],
    placed: Sequence[tuple[np.ndarray, ...]],
    images: list[np.ndarray],
    hand_masks: list[list[np.ndarray]],
    surface_mask: np.ndarray,
    depth_left: np.ndarray,
) -> RenderedPair:
    """The pair of a scene with several hands: the first hand's truth, the others' in
    ``others`` (``hand_masks[k]``: hand k's unhidden pixels in the left and right view)."""
    truths = [
        _pair_with_truth(
            rig, p[0], p[1], images, hand_masks[k], surface_mask, depth_left, sc.gesture
        )
        for k, (sc, p) in enumerate(zip(scenes, placed, strict=True))
    ]
    others = tuple(
        HandTruth(sc.handedness, t.mask_left, t.mask_right, t.annotation, t.gesture)
        for sc, t in zip(scenes[1:], truths[1:], strict=True)
    )
    return replace(truths[0], others=others)


def _pair_with_truth(
    rig: StereoRigSpec,
    verts: np.ndarray,
    joints: np.ndarray,
    images: list[np.ndarray],
    masks: list[np.ndarray],
    surface_mask: np.ndarray,
    depth_left: np.ndarray,
    gesture: str,
) -> RenderedPair:
    """The rendered pair with its annotation; ``surface_mask`` (H, W) marks where
    ``depth_left`` holds a surface that may hide a joint."""
    h, w = rig.height, rig.width
    k4 = np.array([rig.fx, rig.fy, rig.cx, rig.cy])
    uv_left = _project(joints, k4, 0.0)
    uv_right = _project(joints, k4, rig.baseline_m)
    col = np.clip(np.round(uv_left[:, 0]).astype(int), 0, w - 1)
    row = np.clip(np.round(uv_left[:, 1]).astype(int), 0, h - 1)
    surface = np.where(surface_mask[row, col], depth_left[row, col], np.inf)
    # A joint lies inside the finger (about 8 mm below the skin): visible when no other
    # surface is more than 15 mm in front of it.
    visibility = joints[:, 2] <= surface + 0.015
    annotation = {
        "joints": joints.astype(np.float32),
        "vertices": verts.astype(np.float32),
        "uv_left": uv_left.astype(np.float32),
        "uv_right": uv_right.astype(np.float32),
        "vertices_uv_left": _project(verts, k4, 0.0).astype(np.float32),
        "vertices_uv_right": _project(verts, k4, rig.baseline_m).astype(np.float32),
        "visibility": visibility,
    }
    return RenderedPair(images[0], images[1], masks[0], masks[1], annotation, gesture)


_SKIN_MAPS: dict[str, tuple[HandSkinMap, np.ndarray]] = {}


def _skin_map(hand: HandModel) -> tuple[HandSkinMap, np.ndarray]:
    """The hand model's skin feature map and the finger bone of each face (F,) (-1: palm),
    built once per topology."""
    key = hand.topology_hash
    if key not in _SKIN_MAPS:
        skin_map = HandSkinMap.build(hand.template_vertices, hand.joint_regressor)
        centres = np.asarray(hand.template_vertices)[hand.faces].mean(axis=1)
        _SKIN_MAPS[key] = (skin_map, nearest_bones(skin_map, centres))
    return _SKIN_MAPS[key]


@dataclass(frozen=True)
class _SceneMesh:
    """Every surface of a scene as one mesh for the rasterizer (left optical frame).

    Parts in order: each hand followed by its forearm (and sleeve), then the props.
    """

    verts: np.ndarray  # (N, 3) metres
    normals: np.ndarray  # (N, 3)
    albedo: np.ndarray  # (N, 3) linear
    rest: np.ndarray  # (N, 3) texture coordinates: rest-pose hand frame, metres
    occlusion: np.ndarray  # (N,) ambient visibility in [0, 1]
    faces: np.ndarray  # (M, 3) int64
    material: np.ndarray  # (M,) int64
    face_hand: np.ndarray  # (M,) int64: the hand (scene order) a hand face is of; -1 others
    hand_face: np.ndarray  # (M,) int64: a hand face's index in the model's faces; -1 others
    arm_vertex: np.ndarray  # (N,) bool: the forearms' (and sleeves') vertices
    arm_face: np.ndarray  # (M,) bool: the forearms' (and sleeves') faces


def _arm_spec_for(arm: ArmSpec, rotation: np.ndarray) -> ArmSpec:
    """The arm with its flexion and deviation mirrored (or removed) when it would point at
    the camera (rotation: hand frame -> left optical frame)."""
    for flex, dev in (
        (arm.flex_rad, arm.deviation_rad),
        (-arm.flex_rad, arm.deviation_rad),
        (-arm.flex_rad, -arm.deviation_rad),
        (0.0, 0.0),
    ):
        d = np.array([0.0, -np.cos(flex), np.sin(flex)])
        d = np.array(
            [
                np.cos(dev) * d[0] - np.sin(dev) * d[1],
                np.sin(dev) * d[0] + np.cos(dev) * d[1],
                d[2],
            ]
        )
        if (rotation @ d)[2] >= -0.2:
            break
    return replace(arm, flex_rad=flex, deviation_rad=dev)


def _hand_parts(
    hand: HandModel, scene: HandScene, arm: ArmSpec | None
) -> tuple[list[tuple], list[np.ndarray], np.ndarray, np.ndarray]:
    """One hand's mesh parts (the hand, then its forearm) as (verts, normals, albedo, rest,
    faces, material) tuples, their ambient occlusion, and the hand's vertices (V, 3) and
    joints (21, 3) in the left frame."""
    verts_h, joints_h, faces = _hand_frame(hand, scene.pose, scene.shape, scene.handedness)
    rot = scene.rotation
    shift = scene.centre_m - (verts_h @ rot.T).mean(axis=0)
    verts = verts_h @ rot.T + shift
    joints = joints_h @ rot.T + shift
    normals = _vertex_normals(verts, faces)
    occlusion = [vertex_occlusion(verts, normals)]
    parts = [
        (
            verts,
            normals,
            np.asarray(scene.appearance.albedo, np.float64),
            np.asarray(hand.template_vertices, np.float64),
            faces,
            np.full(len(faces), MAT_HAND, np.int64),
        )
    ]
    if arm is not None:
        spec = _arm_spec_for(arm, rot)
        av, an, af, am = forearm_mesh(verts_h, joints_h[0], spec)
        # Shorter where it would come near the camera (a forearm reaching toward the lens
        # leaves the image; its faces near z = 0 would be huge on screen).
        while (av @ rot.T + shift)[:, 2].min() < 0.2 and spec.length_m > 0.06:
            spec = replace(spec, length_m=0.7 * spec.length_m)
            av, an, af, am = forearm_mesh(verts_h, joints_h[0], spec)
        near_wrist = np.abs(hand.template_vertices[:, 1] - hand.template_vertices[:, 1].min())
        skin = scene.appearance.albedo[near_wrist < 0.03].mean(axis=0)
        along = np.linalg.norm(av - joints_h[0], axis=1)
        tone = 1.0 + 0.06 * np.sin(along * 40.0 + av[:, 0] * 90.0)[:, None]
        albedo = np.clip(skin[None, :] * tone, 0.0, 1.0)
        sleeve_v = np.unique(af[am == MAT_SLEEVE])
        albedo[sleeve_v] = np.asarray(arm.sleeve_rgb)
        parts.append((av @ rot.T + shift, an @ rot.T, albedo, av, af, am))
        occlusion.append(np.ones(len(av)))
    return parts, occlusion, verts, joints


def _scene_mesh(
    hand: HandModel, scenes: Sequence[HandScene], extras: SceneExtras
) -> tuple[_SceneMesh, list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The scene's mesh, and each hand's vertices (V, 3) and joints (21, 3) in the left
    frame and its faces (F, 3) indexing its own vertices (``scenes``' order; the first hand
    may hold a prop)."""
    parts: list[tuple] = []
    occlusion: list[np.ndarray] = []
    hand_of_part: list[int] = []
    hands_verts, hands_joints, hands_faces = [], [], []
    for k, scene in enumerate(scenes):
        own = scene.appearance.extras if scene.appearance.extras is not None else extras
        p, o, verts, joints = _hand_parts(hand, scene, own.arm)
        parts += p
        occlusion += o
        hand_of_part += [k] + [-1] * (len(p) - 1)
        hands_verts.append(verts)
        hands_joints.append(joints)
        hands_faces.append(p[0][4])
    props = list(extras.background.props) if extras.background is not None else []
    if extras.hold_rgb is not None:
        up = extras.lights.up
        held = held_prop(hands_joints[0][4], hands_joints[0][8], up, extras.hold_rgb)
        if held is not None:
            props.append(held)
    for prop in props:
        pv, pn, pf = prop_mesh(prop)
        rgb = np.tile(np.asarray(prop.rgb, np.float64), (len(pv), 1))
        parts.append((pv, pn, rgb, np.zeros_like(pv), pf, np.full(len(pf), MAT_PROP, np.int64)))
        occlusion.append(np.ones(len(pv)))
        hand_of_part.append(-1)
    offsets = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
    material = np.concatenate([p[5] for p in parts])
    is_arm = (material == MAT_ARM) | (material == MAT_SLEEVE)
    faces = np.concatenate([p[4] + o for p, o in zip(parts, offsets)])
    arm_vertex = np.zeros(int(offsets[-1]) + len(parts[-1][0]), bool)
    arm_vertex[np.unique(faces[is_arm])] = True
    mesh = _SceneMesh(
        verts=np.concatenate([p[0] for p in parts]),
        normals=np.concatenate([p[1] for p in parts]),
        albedo=np.concatenate([p[2] for p in parts]),
        rest=np.concatenate([p[3] for p in parts]),
        occlusion=np.concatenate(occlusion),
        faces=faces,
        material=material,
        face_hand=np.concatenate([np.full(len(p[4]), k) for p, k in zip(parts, hand_of_part)]),
        hand_face=np.concatenate(
            [
                np.arange(len(p[4])) if k >= 0 else np.full(len(p[4]), -1)
                for p, k in zip(parts, hand_of_part)
            ]
        ),
        arm_vertex=arm_vertex,
        arm_face=is_arm,
    )
    return mesh, hands_verts, hands_joints, hands_faces


def _backdrop(
    settings: SynthSettings, appearance: SceneAppearance, tx: float, bg_depth: float
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) radiance and (H, W) depth of what lies behind the meshes in one view."""
    rig = settings.rig
    extras = appearance.extras
    assert extras is not None
    k4 = np.array([rig.fx, rig.fy, rig.cx, rig.cy])
    if extras.background is not None:
        return extras.background.radiance_and_depth(k4, (rig.height, rig.width), tx, extras.lights)
    irr = extras.lights.irradiance_plane(np.array([0.0, 0.0, -1.0]), np.array([bg_depth]))
    view = _background_view(appearance.background, rig.fx * tx / bg_depth, rig.width)
    depth = np.full((rig.height, rig.width), bg_depth, np.float32)
    return view * irr.astype(np.float32)[0], depth


def _bump_normals(
    normals: np.ndarray,
    height: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    depth: np.ndarray,
    fx: float,
    shape: tuple[int, int],
) -> np.ndarray:
    """Normals (N, 3) tilted by the screen-space gradient of a relief (N,) metres."""
    img = np.zeros(shape, np.float32)
    img[rows, cols] = height
    covered = np.zeros(shape, np.uint8)
    covered[rows, cols] = 1
    inner = cv2.erode(covered, np.ones((3, 3), np.uint8))[rows, cols] > 0
    gx = (img[rows, np.minimum(cols + 1, shape[1] - 1)] - img[rows, np.maximum(cols - 1, 0)]) * 0.5
    gy = (img[np.minimum(rows + 1, shape[0] - 1), cols] - img[np.maximum(rows - 1, 0), cols]) * 0.5
    metres_per_px = depth / fx
    sx = np.clip(gx / metres_per_px, -0.6, 0.6) * inner
    sy = np.clip(gy / metres_per_px, -0.6, 0.6) * inner
    out = normals.copy()
    out[:, 0] -= sx
    out[:, 1] -= sy
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


#: How far the forearm is pushed back in the depth test against the hand, metres.
_ARM_DEPTH_BIAS_M = 0.06
#: Specular reflectance and Blinn-Phong exponent by material (hand, arm, sleeve, prop).
_SPECULAR = np.array([0.05, 0.035, 0.004, 0.12])
_SHININESS = 24.0


def _render_realistic(
    hand: HandModel,
    settings: SynthSettings,
    scenes: Sequence[HandScene],
    rng: np.random.Generator,
) -> RenderedPair:
    """:func:`render_scene` with the appearance's extras (forearm, skin detail, lights,
    props, table-top scene, motion blur, JPEG); the first scene's appearance rules."""
    style = style_for(settings.domain)
    rig = settings.rig
    h, w = rig.height, rig.width
    k4 = np.array([rig.fx, rig.fy, rig.cx, rig.cy])
    scene = scenes[0]
    a = scene.appearance
    extras = a.extras
    assert extras is not None
    mesh, hands_verts, hands_joints, hands_faces = _scene_mesh(hand, scenes, extras)
    faces_all = torch.from_numpy(mesh.faces)
    verts = np.concatenate(hands_verts)
    bg_depth = max(a.background_depth_m, float(verts[:, 2].max()) + 0.2)
    lights = extras.lights
    if len(scenes) == 1 and scene.handedness == "right":
        hand_faces_t = torch.from_numpy(hand.faces.astype(np.int64))
    else:  # every hand casts shadows (left hands with their flipped faces)
        starts = np.cumsum([0] + [len(v) for v in hands_verts[:-1]])
        hand_faces_t = torch.from_numpy(
            np.concatenate([f + o for f, o in zip(hands_faces, starts, strict=True)])
        )
    shadow = (
        _ShadowMap.build(verts, hand_faces_t, lights.key_dir, settings.shadow_map_px)
        if lights.shadows
        else None
    )
    # Per pair (both views alike): motion blur, then JPEG.
    blur = None
    if rng.random() < extras.motion_blur_probability:
        blur = (float(rng.uniform(*extras.motion_blur_px)), float(rng.uniform(0.0, np.pi)))
    quality = None
    if rng.random() < extras.jpeg_probability:
        quality = int(rng.integers(extras.jpeg_quality[0], extras.jpeg_quality[1] + 1))
    skin_map, face_bone = _skin_map(hand)
    vertex_attrs = np.concatenate(
        [mesh.albedo, mesh.normals, mesh.rest, mesh.occlusion[:, None]], axis=1
    ).astype(np.float32)
    images, masks = [], []
    depth_left = surface_left = None
    for view, tx in (("left", 0.0), ("right", rig.baseline_m)):
        eye = np.array([tx, 0.0, 0.0])
        cam = mesh.verts - eye
        # The forearm loses the depth test to the hand within 6 cm (it starts inside the
        # hand): pushed back along each view ray, so its outline does not move.
        arm = cam[mesh.arm_vertex]
        cam[mesh.arm_vertex] = (
            arm * (1.0 + _ARM_DEPTH_BIAS_M / np.linalg.norm(arm, axis=1))[:, None]
        )
        depth, face_index, bary, _ = _raster(cam, faces_all, k4, (h, w))
        on_arm = (face_index >= 0) & mesh.arm_face[face_index]
        if on_arm.any():  # the true depth of the forearm's pixels
            rows, cols = np.nonzero(on_arm)
            ray = np.sqrt(((cols - rig.cx) / rig.fx) ** 2 + ((rows - rig.cy) / rig.fy) ** 2 + 1)
            depth[on_arm] -= _ARM_DEPTH_BIAS_M / ray
        background, back_depth = _backdrop(settings, a, tx, bg_depth)
        covered = (face_index >= 0) & (depth < back_depth)
        owner = np.where(covered, mesh.face_hand[face_index], -1)
        layer = np.zeros((h, w, 3), np.float32)
        flat = np.flatnonzero(covered)
        if len(flat):
            rows, cols = np.divmod(flat, w)
            fid = face_index.reshape(-1)[flat]
            tri = mesh.faces[fid]
            wts = bary.reshape(-1, 3)[flat]
            # Every per-vertex attribute interpolated in one pass (float32 columns: albedo,
            # normal, rest position, occlusion).
            attrs = sum(vertex_attrs[tri[:, k]] * wts[:, k : k + 1] for k in range(3))
            albedo, normal, rest = attrs[:, 0:3], attrs[:, 3:6], attrs[:, 6:9]
            occlusion = attrs[:, 9]
            normal /= np.maximum(np.sqrt((normal * normal).sum(axis=1, keepdims=True)), 1e-9)
            mat = mesh.material[fid]
            z = depth.reshape(-1)[flat]
            pts = np.stack([(cols - rig.cx) * z / rig.fx + tx, (rows - rig.cy) * z / rig.fy, z], 1)
            spec = _SPECULAR[mat]
            relief = np.zeros(len(z))
            on_hand = mat == MAT_HAND
            if on_hand.any():
                shade, height, nail = skin_detail(
                    skin_map, extras.skin, rest[on_hand], face_bone[mesh.hand_face[fid[on_hand]]]
                )
                alb = albedo[on_hand] * shade[:, None]
                nail_rgb = np.asarray(extras.skin.nail_rgb)
                albedo[on_hand] = alb * (1 - nail[:, None]) + nail[:, None] * nail_rgb
                relief[on_hand] = height
                spec[on_hand] = spec[on_hand] + 0.15 * nail
            on_arm = mat == MAT_ARM
            if on_arm.any():
                look = extras.skin
                relief[on_arm] = (
                    np.sin(rest[on_arm] @ look.relief_freq.T + look.relief_phase).mean(axis=1)
                    * look.relief_mm * 1e-3
                )  # fmt: skip
            normal = _bump_normals(normal, relief, rows, cols, z, rig.fx, (h, w))
            lit = shadow.lit(pts) if shadow is not None else None
            skin = (mat == MAT_HAND) | (mat == MAT_ARM)
            out = np.empty_like(albedo)
            for sel, wrap in ((skin, True), (~skin, False)):
                if sel.any():
                    out[sel] = shade_surface(
                        albedo[sel], normal[sel], pts[sel], eye, lights, spec[sel], _SHININESS,
                        None if lit is None else lit[sel], wrap=wrap, occlusion=occlusion[sel],
                    )  # fmt: skip
            layer.reshape(-1, 3)[flat] = out
        alpha = covered.astype(np.float32)
        if blur is not None:
            layer, alpha = motion_blur(layer, alpha, *blur)
            radiance = layer + (1.0 - alpha)[:, :, None] * background
        else:
            radiance = np.where(covered[:, :, None], layer, background)
        image = apply_sensor(radiance.astype(np.float32), style, rng, a.gains)
        if quality is not None:
            image = jpeg_roundtrip(image, quality)
        images.append(image)
        masks.append(owner)
        if view == "left":
            depth_left, surface_left = depth, covered
    assert depth_left is not None and surface_left is not None
    hand_masks = [[owner == k for owner in masks] for k in range(len(scenes))]
    if len(scenes) == 1:
        return _pair_with_truth(rig, hands_verts[0], hands_joints[0], images, hand_masks[0],
                                surface_left, depth_left, scene.gesture)  # fmt: skip
    placed = list(zip(hands_verts, hands_joints, strict=True))
    return _pair_with_others(rig, scenes, placed, images, hand_masks, surface_left, depth_left)


def render_pair(
    hand: HandModel, settings: SynthSettings, seed: int, index: int, faces_t: torch.Tensor
) -> RenderedPair:
    """Render pair ``index`` of a split with ``seed`` (deterministic).

    Draws, from ``numpy.random.default_rng([seed, index])`` and in this order: the gesture
    and pose, the shape, the placement, the appearance, then the sensor noise of both views.
    """
    rng = np.random.default_rng([seed, index])
    style = style_for(settings.domain)
    gesture = _choose_gesture(style, rng)
    pose = (
        sample_pose(rng, 1)[0] if gesture == "random" else gesture_pose(gesture, rng, jitter=0.08)
    )
    shape = sample_shape_vectors(rng, 1)[0]
    rotation, centre = _place_randomly(hand, rng, settings, pose, shape)
    verts, _ = place_hand(hand, pose, shape, rotation, centre)
    appearance = sample_appearance(settings, rng, hand, verts)
    scene = HandScene(pose, shape, rotation, centre, appearance, gesture)
    return render_scene(hand, settings, scene, faces_t, rng)


def iter_synthetic_pairs(
    settings: SynthSettings, count: int, seed: int, start: int = 0
) -> Iterator[RenderedPair]:
    """Render pairs ``start .. start + count - 1`` of the split with ``seed``."""
    if count < 0:
        raise ConfigError(f"count expected >= 0; got {count}")
    hand = template_hand()
    faces_t = torch.from_numpy(hand.faces.astype(np.int64))
    for i in range(start, start + count):
        yield render_pair(hand, settings, seed, i, faces_t)


def as_stereo_sample(
    pair: RenderedPair, index: int, left_info: CameraInfoFields, right_info: CameraInfoFields
) -> StereoSample:
    """Wrap a rendered pair as the StereoSample the bag writer takes."""
    a = pair.annotation
    return StereoSample(
        left=pair.left,
        right=pair.right,
        left_info=left_info,
        right_info=right_info,
        index=index,
        mask_left=pair.mask_left,
        mask_right=pair.mask_right,
        joints=a["joints"].astype(np.float64),
        vertices=a["vertices"].astype(np.float64),
        uv_left=a["uv_left"].astype(np.float64),
        uv_right=a["uv_right"].astype(np.float64),
        visibility=a["visibility"],
    )
