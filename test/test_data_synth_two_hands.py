"""Two hands in the simulator (issue 18): the motion keeps each hand inside both views and
in its half of the view, the render puts both hands into one depth buffer with each hand's
own ground truth, a left hand is a mirrored right hand, and the product pipeline (shipped lite
networks, ONNX Runtime, handedness auto) meshes a left and a right hand near their truths.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2, rig_for_size
from stereo_hand_mesh.data.motion import (
    HandMotion,
    HandMotionSettings,
    loop_frame_times,
    render_motion_frame,
)
from stereo_hand_mesh.data.synth import (
    HAND_TO_CAMERA,
    HandScene,
    SynthSettings,
    place_hand,
    render_scene,
)
from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.geometry import StereoRig
from stereo_hand_mesh.hand.joints import palm_center
from stereo_hand_mesh.hand.model import mirror_joints_to_left, mirror_to_left, template_hand
from stereo_hand_mesh.pipeline.estimator import HandMeshPipeline, PipelineSettings

SIDES = ("right", "left")


@pytest.fixture(scope="module")
def hand():
    return template_hand()


@pytest.fixture(scope="module")
def faces_t(hand):
    return torch.from_numpy(hand.faces.astype(np.int64))


@pytest.fixture(scope="module")
def motion(hand):
    """A two-hand motion at 640x480 on STB's rig (what the simulator renders)."""
    return HandMotion(hand, SynthSettings(domain="source"), HandMotionSettings(hands=2), 0)


@pytest.fixture(scope="module")
def frames(motion, faces_t):
    """Eight frames 1/15 s apart from 2 s into the loop (spread -> fist for the right hand,
    pinch for the left), rendered with both hands."""
    return [render_motion_frame(motion, k, 2.0 + k / 15.0, faces_t) for k in range(8)]


def _project(points: np.ndarray, rig, tx: float) -> np.ndarray:
    return np.stack(
        [
            rig.fx * (points[:, 0] - tx) / points[:, 2] + rig.cx,
            rig.fy * points[:, 1] / points[:, 2] + rig.cy,
        ],
        axis=1,
    )


def test_each_hand_stays_inside_both_views_and_its_half(motion, hand) -> None:
    rig, s = motion.synth.rig, motion.settings
    times = loop_frame_times(s.loop_seconds, 15.0)
    centres = {side: [] for side in SIDES}
    gestures = {side: [] for side in SIDES}
    depths = {side: [] for side in SIDES}
    for t in times:
        scenes = motion.scenes_at(t)
        assert list(scenes) == list(SIDES)
        for side, scene in scenes.items():
            assert scene.handedness == side
            verts, joints = place_hand(
                hand, scene.pose, scene.shape, scene.rotation, scene.centre_m, side
            )
            for tx in (0.0, rig.baseline_m):
                uv = _project(verts, rig, tx)
                inside = (
                    (uv[:, 0] >= s.margin_px)
                    & (uv[:, 0] < rig.width - s.margin_px)
                    & (uv[:, 1] >= s.margin_px)
                    & (uv[:, 1] < rig.height - s.margin_px)
                )
                assert inside.all(), f"{side} hand, t={t:.2f} s, tx={tx}: outside the image"
            # In its half of the view, seen from midway between the cameras (the fit keeps
            # the sampled instants inside; between them it moves by well under 10 px).
            u_mid = _project(verts, rig, 0.5 * rig.baseline_m)[:, 0]
            middle = 0.5 * rig.width
            if side == "right":
                assert u_mid.max() <= middle + s.midline_overlap_px + 10.0, (t, u_mid.max())
            else:
                assert u_mid.min() >= middle - s.midline_overlap_px - 10.0, (t, u_mid.min())
            centres[side].append(scene.centre_m)
            gestures[side].append(scene.gesture)
            depths[side].append(palm_center(joints)[2])
    lo, hi = s.depths_m
    assert (lo, hi) == (0.75, 1.0)
    for side in SIDES:
        c = np.array(centres[side])
        assert np.ptp(c[:, 0]) > 0.01 and np.ptp(c[:, 1]) > 0.01, f"{side}: no drift"
        assert lo - 1e-9 <= min(depths[side]) and max(depths[side]) <= hi + 1e-9
        assert np.ptp(depths[side]) > 0.5 * (hi - lo), f"{side}: no motion in depth"
    # Their own motion: different paths and gesture sequences.
    assert not np.allclose(centres["right"], centres["left"], atol=0.02)
    assert gestures["right"] != gestures["left"]
    assert set(gestures["left"]) == set(s.second_gestures)


def test_one_hand_motion_is_unchanged_by_the_second_hand_setting(hand, faces_t) -> None:
    synth = SynthSettings(rig=rig_for_size(320, 240, None))
    one = HandMotion(hand, synth, HandMotionSettings(margin_px=6.0), 3)
    assert one.sides == ("right",) and list(one.scenes_at(1.0)) == ["right"]
    assert one.settings.depths_m == (0.5, 0.75)
    frame = render_motion_frame(one, 0, 1.0, faces_t)
    assert list(frame.joints_by_side) == ["right"]
    assert np.array_equal(frame.joints_by_side["right"], frame.joints)
    empty = render_motion_frame(one, 1, 1.0, faces_t, hand_visible=False)
    assert empty.joints is None and empty.joints_by_side == {}


def test_two_hand_settings_are_checked(hand) -> None:
    with pytest.raises(ConfigError, match="hands expected 1 or 2"):
        HandMotionSettings(hands=3)
    with pytest.raises(ConfigError, match="second_gestures"):
        HandMotionSettings(hands=2, second_gestures=("wave",))
    with pytest.raises(ConfigError, match="midline_overlap_px"):
        HandMotionSettings(hands=2, midline_overlap_px=float("nan"))
    # Two hands side by side do not fit at one hand's depths.
    with pytest.raises(ConfigError, match="in its half"):
        HandMotion(
            hand, SynthSettings(), HandMotionSettings(hands=2, depth_range_m=(0.5, 0.75)), 0
        )
    motion = HandMotion(hand, SynthSettings(), HandMotionSettings(hands=1), 0)
    with pytest.raises(ConfigError, match="side expected one of"):
        motion.pose_at(0.0, "left")


def test_a_left_hand_is_the_mirrored_right_hand(hand) -> None:
    """place_hand's left hand: the right hand posed, mirrored in its own frame (x -> -x),
    then rotated and moved; its surface faces outward (flipped faces)."""
    pose = np.zeros(hand.num_pose_params)
    pose[3] = 0.4
    shape = np.ones(hand.num_shape_params)
    rot, centre = HAND_TO_CAMERA.copy(), np.array([0.05, 0.0, 0.6])
    verts_l, joints_l = place_hand(hand, pose, shape, rot, centre, "left")
    rest = hand.forward(pose[None], shape[None])
    mirrored_v, faces_l = mirror_to_left(rest.vertices[0], hand.faces)
    expected_v = mirrored_v @ rot.T
    offset = centre - expected_v.mean(axis=0)
    np.testing.assert_allclose(verts_l, expected_v + offset, atol=1e-12)
    np.testing.assert_allclose(
        joints_l, mirror_joints_to_left(rest.joints[0]) @ rot.T + offset, atol=1e-12
    )

    # Outward normals: the signed volume of the closed-ish mesh keeps its sign.
    def volume(v, f):
        return float(np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum())

    verts_r, _ = place_hand(hand, pose, shape, rot, centre)
    assert np.sign(volume(verts_l, faces_l)) == np.sign(volume(verts_r, hand.faces))
    # Palm toward the camera, fingers up: the right thumb on the image's right of the
    # palm, the left thumb on its left.
    _, joints_r = place_hand(hand, pose, shape, rot, centre)
    assert joints_r[4, 0] > palm_center(joints_r)[0]
    assert joints_l[4, 0] < palm_center(joints_l)[0]
    with pytest.raises(ConfigError, match="handedness"):
        dataclasses.replace(
            HandScene(pose, shape, rot, centre, None),  # type: ignore[arg-type]
            handedness="both",
        )


def test_ground_truth_of_each_hand_lies_on_its_own_pixels(frames, motion) -> None:
    rig = motion.synth.rig
    for frame in frames:
        assert set(frame.joints_by_side) == set(SIDES)
        np.testing.assert_array_equal(frame.joints_by_side["right"], frame.joints)
        for side, joints in frame.joints_by_side.items():
            assert joints.shape == (21, 3) and np.isfinite(joints).all()
            for tx in (0.0, rig.baseline_m):
                uv = _project(joints, rig, tx)
                assert (uv >= 0).all() and (uv[:, 0] < rig.width).all(), (side, frame.index)
        # The right hand on the image's left, the left hand on its right.
        u_r = _project(frame.joints_by_side["right"], rig, 0.0)[:, 0].mean()
        u_l = _project(frame.joints_by_side["left"], rig, 0.0)[:, 0].mean()
        assert u_r < u_l, frame.index


def test_both_hands_share_one_depth_buffer(hand, faces_t) -> None:
    """Two hands that overlap in the image: where both cover a pixel the nearer one shows
    (against each hand rendered alone), the farther hand's mask loses those pixels and its
    joints behind the nearer hand are not visible."""
    rig = rig_for_size(320, 240, None)
    synth = SynthSettings(domain="source", rig=rig, look="plain")
    motion = HandMotion(hand, synth, HandMotionSettings(margin_px=4.0), 1)
    base = motion.scene_at(0.0)
    pose = np.zeros(hand.num_pose_params)
    near = HandScene(pose, base.shape, HAND_TO_CAMERA.copy(), np.array([0.08, 0.0, 0.45]),
                     base.appearance, "spread", "right")  # fmt: skip
    far = HandScene(pose, base.shape, HAND_TO_CAMERA.copy(), np.array([0.10, 0.01, 0.6]),
                    base.appearance, "spread", "left")  # fmt: skip

    def alone(scene):
        return render_scene(hand, synth, scene, faces_t, np.random.default_rng(0))

    both = render_scene(hand, synth, near, faces_t, np.random.default_rng(0), others=(far,))
    near_alone, far_alone = alone(near), alone(far)
    assert len(both.others) == 1 and both.others[0].handedness == "left"
    other = both.others[0]
    overlap = near_alone.mask_left & far_alone.mask_left
    assert overlap.sum() > 500, "the test scene should overlap the hands"
    # The nearer hand keeps every pixel it had alone; the farther loses the overlap.
    np.testing.assert_array_equal(both.mask_left, near_alone.mask_left)
    np.testing.assert_array_equal(other.mask_left, far_alone.mask_left & ~overlap)
    assert not (both.mask_left & other.mask_left).any()
    np.testing.assert_array_equal(both.mask_right, near_alone.mask_right)
    assert not (both.mask_right & other.mask_right).any()
    # Each hand's annotation is its own (as rendered alone).
    np.testing.assert_allclose(both.annotation["joints"], near_alone.annotation["joints"])
    np.testing.assert_allclose(other.annotation["joints"], far_alone.annotation["joints"])
    # The farther hand's joints inside the nearer hand's silhouette are hidden; alone, they
    # were visible.
    uv = np.round(other.annotation["uv_left"]).astype(int)
    hidden = near_alone.mask_left[uv[:, 1], uv[:, 0]] & far_alone.annotation["visibility"]
    assert hidden.sum() >= 3
    assert not other.annotation["visibility"][hidden].any()


@pytest.mark.parametrize("domain", ["source", "target"])
def test_the_realistic_render_keeps_each_hand_and_its_forearm(hand, domain) -> None:
    """The realistic look (forearms, skin detail; the target domain's shadow map of both
    hands): each hand's mask lies around its joints' projections, the masks do not overlap,
    and the frame carries both hands' truths."""
    motion = HandMotion(hand, SynthSettings(domain=domain), HandMotionSettings(hands=2), 4)
    rig = motion.synth.rig
    faces_t = torch.from_numpy(hand.faces.astype(np.int64))
    pair_hands = render_motion_frame(motion, 0, 1.0, faces_t)
    scenes = motion.scenes_at(pair_hands.time_s)
    rendered = render_scene(
        motion.hand,
        motion.synth,
        scenes["right"],
        torch.from_numpy(motion.hand.faces.astype(np.int64)),
        np.random.default_rng(0),
        others=(scenes["left"],),
    )
    masks = {"right": rendered.mask_left, "left": rendered.others[0].mask_left}
    assert not (masks["right"] & masks["left"]).any()
    for side, mask in masks.items():
        joints = pair_hands.joints_by_side[side]
        uv = np.round(_project(joints, rig, 0.0)).astype(int)
        on_own = mask[uv[:, 1], uv[:, 0]].mean()
        other = masks["left" if side == "right" else "right"]
        assert on_own > 0.6, f"{side}: {on_own:.2f} of its joints on its own pixels"
        assert not other[uv[:, 1], uv[:, 0]].any(), f"{side}: joints on the other hand"


@pytest.fixture(scope="module")
def nets():
    from stereo_hand_mesh.runtime.keypoint_nets import create_hand_nets

    return create_hand_nets("onnxruntime", "lite", intra_op_threads=1)


def test_the_pipeline_meshes_a_right_and_a_left_hand_near_their_truths(nets, frames) -> None:
    """The product pipeline with handedness auto reads the left hand as a left hand and the
    right hand as a right hand, each near its own ground truth, the sides kept while the
    hands are tracked."""
    rig = StereoRig.from_camera_info(*STB_BUMBLEBEE2.camera_infos())
    pipe = HandMeshPipeline(nets, PipelineSettings(smoothing=False))
    assert pipe.settings.handedness == "auto" and pipe.settings.max_hands == 2
    ids: dict[int, str] = {}
    both = 0
    for frame in frames:
        est = pipe.process_hands(frame.left, frame.right, rig, stamp_s=frame.time_s)
        for h in est.hands:
            assert ids.setdefault(h.hand_id, h.handedness) == h.handedness, "side swapped"
        found = {side: est.side(side) for side in SIDES}
        if all(found.values()):
            both += 1
        for side, h in found.items():
            if h is None:
                continue
            own = np.linalg.norm(h.joints - frame.joints_by_side[side], axis=1).mean()
            other_side = "left" if side == "right" else "right"
            other = np.linalg.norm(h.joints - frame.joints_by_side[other_side], axis=1).mean()
            assert own < 0.03, f"frame {frame.index}, {side}: {1e3 * own:.1f} mm"
            assert other > 0.1, f"frame {frame.index}, {side} hand lies on the other hand"
    assert both >= len(frames) - 1, f"both hands meshed in {both} of {len(frames)} pairs"
    assert sorted(ids.values()) == ["left", "right"]
