"""The realistic look of the synthetic renders: forearm, skin detail, light, backgrounds,
camera effects (data/synth_scene.py), and how render_scene uses them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from stereo_hand_mesh.data.camera_info_yaml import rig_for_size
from stereo_hand_mesh.data.synth import SynthSettings, iter_synthetic_pairs, render_pair
from stereo_hand_mesh.data.synth_scene import (
    ArmSpec,
    BackgroundScene,
    HandSkinMap,
    Plane,
    Prop,
    SkinLook,
    forearm_mesh,
    jpeg_roundtrip,
    motion_blur,
    prop_mesh,
    sample_light_rig,
    shade_surface,
    skin_detail,
    vertex_occlusion,
)
from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.hand.model import template_hand


@pytest.fixture(scope="module")
def hand():
    return template_hand()


def _rest(hand):
    out = hand.forward(np.zeros((1, hand.num_pose_params)))
    return out.vertices[0], out.joints[0]


# --- forearm ---------------------------------------------------------------------------


def test_straight_forearm_runs_down_from_the_wrist_and_faces_out(hand) -> None:
    verts, joints = _rest(hand)
    arm_v, arm_n, faces, material = forearm_mesh(verts, joints[0], ArmSpec(length_m=0.3))
    assert faces.max() < len(arm_v) and material.shape == (len(faces),)
    # Along -y from 15 mm above the wrist to 0.3 m below it.
    assert arm_v[:, 1].max() == pytest.approx(joints[0][1] + 0.015 + 0.0, abs=0.04)
    assert arm_v[:, 1].min() == pytest.approx(joints[0][1] + 0.015 - 0.3, abs=1e-6)
    # Thinner than the hand at the wrist ring, and the normals point away from the axis.
    first_ring = arm_v[:20]
    near = verts[np.abs(verts[:, 1] - joints[0][1]) < 0.012]
    assert np.ptp(first_ring[:, 0]) < np.ptp(near[:, 0])
    centre = first_ring.mean(axis=0)
    assert ((first_ring - centre) * arm_n[:20]).sum(axis=1).min() > 0


def test_wrist_flexion_turns_the_forearm_toward_the_palm(hand) -> None:
    verts, joints = _rest(hand)
    flexed, *_ = forearm_mesh(verts, joints[0], ArmSpec(length_m=0.3, flex_rad=0.5))
    straight, *_ = forearm_mesh(verts, joints[0], ArmSpec(length_m=0.3))
    # +z is palmar: the far end moves by about length * sin(0.5) toward it.
    dz = flexed[-1, 2] - straight[-1, 2]
    assert dz == pytest.approx(0.3 * math.sin(0.5), abs=0.01)


def test_sleeve_is_a_second_material_beyond_its_start(hand) -> None:
    verts, joints = _rest(hand)
    spec = ArmSpec(length_m=0.3, sleeve_from_m=0.1, sleeve_rgb=(0.1, 0.2, 0.3))
    arm_v, _, faces, material = forearm_mesh(verts, joints[0], spec)
    sleeve_v = np.unique(faces[material == 2])
    assert len(sleeve_v) > 0
    assert arm_v[sleeve_v, 1].max() <= joints[0][1] + 0.015 - 0.1 + 1e-9
    with pytest.raises(ConfigError):
        ArmSpec(length_m=0.0)


# --- skin ------------------------------------------------------------------------------


def _surface_point(verts, joints, joint, palmar: bool):
    """The rest vertex nearest the joint on its palmar (+z) or back (-z) side."""
    side = verts[:, 2] > joints[joint][2] if palmar else verts[:, 2] < joints[joint][2]
    d = np.linalg.norm(verts - joints[joint], axis=1) + 1e3 * ~side
    return verts[np.argmin(d)]


def test_creases_darken_the_palmar_side_at_the_joints_only(hand) -> None:
    skin_map = HandSkinMap.build(hand.template_vertices, hand.joint_regressor)
    look = SkinLook.sample(np.random.default_rng(0))
    look = dataclasses.replace(look, palm_lighter=0.0)
    joints = skin_map.joints
    pip, dip = joints[10], joints[11]  # middle finger
    # Points on the palmar surface line of the middle finger: at the PIP and mid-bone.
    radius = skin_map.bone_radius[7]
    at_joint = pip + np.array([0.0, 0.0, radius])
    mid_bone = 0.5 * (pip + dip) + np.array([0.0, 0.0, radius])
    shade, height, nail = skin_detail(skin_map, look, np.stack([at_joint, mid_bone]))
    assert shade[0] < 1.0 - 0.5 * look.crease_depth
    assert shade[1] > 0.97
    assert height[0] < height[1]
    assert (nail == 0).all()


def test_nails_lie_on_the_back_of_the_fingertips(hand) -> None:
    skin_map = HandSkinMap.build(hand.template_vertices, hand.joint_regressor)
    look = SkinLook.sample(np.random.default_rng(1))
    dip, tip = skin_map.joints[7], skin_map.joints[8]  # index
    radius = skin_map.bone_radius[5]
    on_nail = dip + 0.75 * (tip - dip) - np.array([0.0, 0.0, radius])
    pad = dip + 0.75 * (tip - dip) + np.array([0.0, 0.0, radius])
    _, _, nail = skin_detail(skin_map, look, np.stack([on_nail, pad]))
    assert nail[0] > 0.9 and nail[1] == 0.0


def test_detail_by_own_bone_matches_the_detail_by_every_bone(hand) -> None:
    from stereo_hand_mesh.data.synth_scene import nearest_bones

    skin_map = HandSkinMap.build(hand.template_vertices, hand.joint_regressor)
    look = SkinLook.sample(np.random.default_rng(2))
    rng = np.random.default_rng(3)
    faces = np.asarray(hand.faces)
    face = np.repeat(np.arange(len(faces)), 3)
    w = rng.dirichlet([1.0, 1.0, 1.0], size=len(face))
    pts = (np.asarray(hand.template_vertices)[faces[face]] * w[:, :, None]).sum(axis=1)
    bones = nearest_bones(skin_map, np.asarray(hand.template_vertices)[faces].mean(axis=1))
    slow = skin_detail(skin_map, look, pts)
    fast = skin_detail(skin_map, look, pts, bones[face])
    for name, a, b in zip(("shade", "height", "nail"), slow, fast, strict=True):
        off = np.abs(a - b) > 0.05 * max(float(np.abs(a).max()), 1e-9)
        # Only where a face near a joint lies on the other bone than the crease's.
        assert off.mean() < 0.04, f"{name}: {off.mean():.1%} of the points differ"
    assert (fast[2] > 0.5).sum() > 100  # nails were drawn


# --- light -----------------------------------------------------------------------------


def test_wrap_lighting_reaches_past_the_terminator_redder_than_lambert() -> None:
    rig = sample_light_rig("window", np.random.default_rng(0), np.array([0, -1.0, 0]), 1.0, False)
    rig = dataclasses.replace(
        rig,
        sky_rgb=np.zeros(3),
        ground_rgb=np.zeros(3),
        fill_rgb=np.zeros(3),
        key_rgb=np.ones(3),
    )
    # A normal perpendicular to the key light: Lambert gives nothing there.
    normal = np.cross(rig.key_dir, [0.0, 1.0, 0.0])
    normal /= np.linalg.norm(normal)
    if normal[2] > 0:
        normal = -normal
    args = (np.ones((1, 3)), normal[None], np.array([[0, 0, 0.5]]), np.zeros(3), rig)
    lambert = shade_surface(*args, np.zeros(1), 20.0, wrap=False)
    wrapped = shade_surface(*args, np.zeros(1), 20.0, wrap=True)
    assert np.abs(lambert).max() < 1e-6
    assert wrapped[0, 0] > wrapped[0, 2] > 0.0


def test_specular_peaks_at_the_mirror_direction_and_flash_falls_with_distance() -> None:
    rig = sample_light_rig("flash", np.random.default_rng(0), np.array([0, -1.0, 0]), 1.0, False)
    rig = dataclasses.replace(
        rig, sky_rgb=np.zeros(3), ground_rgb=np.zeros(3), key_rgb=np.zeros(3), fill_rgb=np.zeros(3)
    )
    n = np.array([[0.0, 0.0, -1.0]])  # facing the camera (and the flash at it)
    near = shade_surface(np.ones((1, 3)), n, np.array([[0, 0, 0.4]]), np.zeros(3), rig,
                         np.zeros(1), 20.0, wrap=False)  # fmt: skip
    far = shade_surface(np.ones((1, 3)), n, np.array([[0, 0, 0.8]]), np.zeros(3), rig,
                        np.zeros(1), 20.0, wrap=False)  # fmt: skip
    np.testing.assert_allclose(near / far, 4.0, rtol=1e-5)
    tilted = np.array([[math.sin(0.6), 0.0, -math.cos(0.6)]])
    shiny = [
        shade_surface(
            np.zeros((1, 3)),
            nn,
            np.array([[0, 0, 0.5]]),
            np.zeros(3),
            rig,
            np.ones(1),
            20.0,
            wrap=False,
        )[0, 0]
        for nn in (n, tilted)
    ]
    assert shiny[0] > 10 * shiny[1] > 0.0


def test_unknown_light_setup_is_refused() -> None:
    with pytest.raises(ConfigError, match="light setup"):
        sample_light_rig("disco", np.random.default_rng(0), np.array([0, -1.0, 0]), 1.0, False)


# --- occlusion -------------------------------------------------------------------------


def test_vertex_occlusion_matches_a_naive_loop() -> None:
    rng = np.random.default_rng(3)
    verts = rng.uniform(-0.02, 0.02, (60, 3))
    normals = rng.normal(size=(60, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    radius = 0.015
    occ = np.zeros(60)
    for i in range(60):
        for j in range(60):
            d = verts[j] - verts[i]
            dist = np.linalg.norm(d)
            if i == j or dist > radius:
                continue
            u = d / dist
            facing = max(normals[i] @ u, 0.0) * max(-(normals[j] @ u), 0.0)
            occ[i] += facing * (1.0 - dist / radius)
    expected = np.clip(1.0 - 0.12 * occ, 0.35, 1.0)
    got = vertex_occlusion(verts, normals, radius)
    worst = int(np.abs(got - expected).argmax())
    assert np.abs(got - expected).max() < 1e-12, (
        f"vertex {worst}: {got[worst]} vs {expected[worst]}"
    )


def test_a_convex_surface_is_not_occluded() -> None:
    phi = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    z = np.linspace(-0.01, 0.01, 5)
    pts = np.array([[0.01 * np.cos(p), 0.01 * np.sin(p), zz] for p in phi for zz in z])
    normals = pts * [1, 1, 0]
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    assert (vertex_occlusion(pts, normals) == 1.0).all()
    # Turned inward (the inside of a tube), the same points occlude each other.
    assert vertex_occlusion(pts, -normals).max() < 1.0


# --- background and props --------------------------------------------------------------


def test_table_and_wall_depths_lie_on_their_planes() -> None:
    tex = np.full((64, 64, 3), 0.5, np.float32)
    up = np.array([0.0, -math.cos(0.5), -math.sin(0.5)])
    fwd = np.array([0.0, -math.sin(0.5), math.cos(0.5)])
    right = np.cross(up, fwd) * -1.0
    table = Plane(up * -0.4, right, np.cross(up, right), tex, 0.01)
    wall = Plane(up * -0.4 + fwd * 1.5, right, -up, tex, 0.01)
    scene = BackgroundScene(table, wall)
    rig = rig_for_size(160, 120, None)
    k4 = np.array([rig.fx, rig.fy, rig.cx, rig.cy])
    lights = sample_light_rig("room", np.random.default_rng(0), up, 1.0, False)
    for tx in (0.0, rig.baseline_m):
        _, depth = scene.radiance_and_depth(k4, (120, 160), tx, lights)
        rows, cols = np.mgrid[0:120, 0:160]
        pts = np.stack(
            [(cols - rig.cx) * depth / rig.fx + tx, (rows - rig.cy) * depth / rig.fy, depth], -1
        )
        on_table = np.abs((pts - table.origin) @ table.normal) < 1e-4
        on_wall = np.abs((pts - wall.origin) @ wall.normal) < 1e-4
        assert (on_table | on_wall | (depth == 50.0)).all()
        assert on_table.any() and on_wall.any()
    # Cached per view: the same arrays come back, read-only.
    again, _ = scene.radiance_and_depth(k4, (120, 160), 0.0, lights)
    assert again is scene.radiance_and_depth(k4, (120, 160), 0.0, lights)[0]
    assert not again.flags.writeable


def test_box_prop_is_closed_and_flat_shaded() -> None:
    prop = Prop("box", np.array([0.0, 0.0, 0.5]), np.eye(3), np.array([0.1, 0.2, 0.3]), (1, 0, 0))
    verts, normals, faces = prop_mesh(prop)
    np.testing.assert_allclose(np.ptp(verts, axis=0), [0.1, 0.2, 0.3], atol=1e-12)
    assert len(faces) == 12
    # Every face's vertices share its outward normal.
    for f in faces:
        assert (normals[f] == normals[f[0]]).all()
        centre = verts[f].mean(axis=0) - prop.centre
        assert centre @ normals[f[0]] > 0
    with pytest.raises(ConfigError):
        Prop("cone", np.zeros(3), np.eye(3), np.ones(3), (1, 1, 1))


# --- camera ----------------------------------------------------------------------------


def test_motion_blur_keeps_the_layer_energy_and_smears_along_its_direction() -> None:
    layer = np.zeros((41, 41, 3), np.float32)
    alpha = np.zeros((41, 41), np.float32)
    alpha[20, 20] = 1.0
    layer[20, 20] = 1.0
    pre, cov = motion_blur(layer, alpha, 8.0, 0.0)  # horizontal
    assert cov.sum() == pytest.approx(1.0, abs=1e-5)
    assert pre[..., 0].sum() == pytest.approx(1.0, abs=1e-5)
    cols = np.nonzero(cov.sum(axis=0) > 1e-6)[0]
    rows = np.nonzero(cov.sum(axis=1) > 1e-6)[0]
    assert np.ptp(cols) >= 7 and np.ptp(rows) <= 1


def test_jpeg_roundtrip_keeps_a_smooth_image_close() -> None:
    ramp = np.linspace(0, 255, 80)[None, :, None] * np.ones((60, 1, 3))
    image = (ramp * [1.0, 0.8, 0.6]).astype(np.uint8)
    out = jpeg_roundtrip(image, 40)
    assert out.shape == image.shape and out.dtype == np.uint8
    err = np.abs(out.astype(int) - image)
    assert 0 < err.mean() < 4, f"mean error {err.mean():.2f}"


# --- the renderer ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    return rig_for_size(320, 240, None)


def test_real_look_keeps_the_hand_and_its_masks(hand, small) -> None:
    faces_t = torch.from_numpy(hand.faces.astype(np.int64))
    real = render_pair(hand, SynthSettings(rig=small), 4, 0, faces_t)
    plain = render_pair(hand, SynthSettings(rig=small, look="plain"), 4, 0, faces_t)
    # The same hand, placed alike: the joints and the hand's masks agree (the forearm never
    # hides the hand; in the source domain nothing else comes in front of it).
    np.testing.assert_allclose(real.annotation["joints"], plain.annotation["joints"])
    assert (real.mask_left == plain.mask_left).mean() > 0.998


def test_the_forearm_continues_the_hand_outside_its_mask(hand, small) -> None:
    from stereo_hand_mesh.data.synth import (
        HAND_TO_CAMERA,
        HandScene,
        render_scene,
        sample_appearance,
    )
    from stereo_hand_mesh.hand.poses import gesture_pose

    settings = SynthSettings(rig=small)
    appearance = sample_appearance(settings, np.random.default_rng(2), hand)
    no_arm = dataclasses.replace(
        appearance, extras=dataclasses.replace(appearance.extras, arm=None)
    )
    pose = gesture_pose("spread", np.random.default_rng(0), jitter=0.0)
    shape = _shape_vector()
    faces_t = torch.from_numpy(hand.faces.astype(np.int64))
    pairs = []
    for a in (appearance, no_arm):
        scene = HandScene(pose, shape, HAND_TO_CAMERA.copy(), np.array([0.0, -0.03, 0.6]), a)
        pairs.append(render_scene(hand, settings, scene, faces_t, np.random.default_rng(5)))
    with_arm, without = pairs
    assert np.array_equal(with_arm.mask_left, without.mask_left)
    changed = np.abs(with_arm.left.astype(int) - without.left).max(axis=2) > 30
    mask = with_arm.mask_left
    # The arm: a large region below the palm-up hand (fingers up: the wrist is at the
    # bottom), outside the hand's mask, reaching the image's lower part.
    assert changed.sum() > 0.1 * mask.sum()
    assert (changed & mask).sum() < 0.01 * changed.sum()
    rows = np.nonzero(changed.any(axis=1))[0]
    hand_rows = np.nonzero(mask.any(axis=1))[0]
    assert rows.max() > hand_rows.max() + 10


def _shape_vector() -> np.ndarray:
    from stereo_hand_mesh.hand.shape import sample_shape_vectors

    return sample_shape_vectors(np.random.default_rng(0), 1)[0]


def test_renders_are_deterministic_by_seed(small) -> None:
    settings = SynthSettings(domain="target", rig=small)
    a = list(iter_synthetic_pairs(settings, 2, seed=9))
    b = list(iter_synthetic_pairs(settings, 2, seed=9, start=0))
    c = list(iter_synthetic_pairs(settings, 1, seed=10))
    for p, q in zip(a, b, strict=True):
        assert np.array_equal(p.left, q.left) and np.array_equal(p.right, q.right)
        assert np.array_equal(p.mask_left, q.mask_left)
    assert not np.array_equal(a[0].left, c[0].left)


def test_unknown_look_is_refused() -> None:
    with pytest.raises(ConfigError, match="look"):
        SynthSettings(look="cartoon")
