"""The moving synthetic hand (data/motion.py) and the stereo_camera_sim node (real rclpy).

ROS-free tests check the motion itself: periodic, deterministic, smooth, inside both images,
collision-free gesture blends. The ROS tests start ``.venv/bin/stereo_camera_sim`` as a real
process (this run's ROS_DOMAIN_ID, loopback only) and subscribe from the test process.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from geometry_msgs.msg import PoseArray
from node_process import NodeProcess, Peer, joints_of, stamp_key
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from stereo_hand_mesh.data.camera_info_yaml import (
    DEFAULT_LEFT_FRAME_ID,
    DEFAULT_RIGHT_FRAME_ID,
    STB_BUMBLEBEE2,
    rig_for_size,
)
from stereo_hand_mesh.data.motion import (
    HandMotion,
    HandMotionSettings,
    ease_smootherstep,
    loop_frame_times,
    render_motion_frame,
)
from stereo_hand_mesh.data.synth import SynthSettings, place_hand
from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.hand.joints import NUM_JOINTS, palm_center
from stereo_hand_mesh.hand.model import template_hand
from stereo_hand_mesh.hand.poses import GESTURES, poses_collide
from stereo_hand_mesh.ros.stereo_camera_sim import StereoCameraSimConfig

SMALL = (320, 240)
#: Largest movement of any joint between two frames at 15 Hz on the default 8 s loop, m.
MAX_STEP_M = 0.05


@pytest.fixture(scope="module")
def small_rig():
    return rig_for_size(*SMALL, None)


@pytest.fixture(scope="module")
def motion(small_rig) -> HandMotion:
    return HandMotion(template_hand(), SynthSettings(rig=small_rig), HandMotionSettings(), 3)


def _posed(motion: HandMotion, t: float) -> tuple[np.ndarray, np.ndarray]:
    scene = motion.scene_at(t)
    return place_hand(motion.hand, scene.pose, scene.shape, scene.rotation, scene.centre_m)


def _project(points: np.ndarray, rig, tx_m: float) -> np.ndarray:
    """(N, 3) left-frame points -> (N, 2) pixels in the camera at ``tx_m`` along x."""
    return np.stack(
        [
            rig.fx * (points[:, 0] - tx_m) / points[:, 2] + rig.cx,
            rig.fy * points[:, 1] / points[:, 2] + rig.cy,
        ],
        axis=1,
    )


# ------------------------------------------------------------------------------------------
# The motion (ROS-free)


def test_motion_is_periodic(motion):
    loop = motion.loop_seconds
    for t in (0.0, 0.37, 2.5, 5.01, 7.99):
        a, b, c = motion.scene_at(t), motion.scene_at(t + loop), motion.scene_at(t - 3 * loop)
        for other in (b, c):
            for field in ("pose", "rotation", "centre_m"):
                diff = np.abs(getattr(a, field) - getattr(other, field)).max()
                assert diff < 1e-9, f"{field} at t={t} differs by {diff} one loop later"
            assert a.gesture == other.gesture


def test_motion_is_deterministic_per_seed(small_rig):
    hand, synth = template_hand(), SynthSettings(rig=small_rig)
    a = HandMotion(hand, synth, HandMotionSettings(), 7)
    b = HandMotion(hand, synth, HandMotionSettings(), 7)
    c = HandMotion(hand, synth, HandMotionSettings(), 8)
    for t in (0.0, 1.3, 6.6):
        sa, sb, sc = a.scene_at(t), b.scene_at(t), c.scene_at(t)
        assert np.array_equal(sa.centre_m, sb.centre_m)
        assert np.array_equal(sa.rotation, sb.rotation) and np.array_equal(sa.pose, sb.pose)
        assert not np.array_equal(sa.centre_m, sc.centre_m)
    assert np.array_equal(a.shape, b.shape) and not np.array_equal(a.shape, c.shape)
    assert np.array_equal(a.appearance.albedo, b.appearance.albedo)
    assert not np.array_equal(a.appearance.albedo, c.appearance.albedo)
    # Shape and appearance do not change over time.
    assert a.scene_at(0.0).appearance is a.scene_at(4.0).appearance
    assert np.array_equal(a.scene_at(0.0).shape, a.scene_at(4.0).shape)


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_motion_is_smooth_and_stays_inside_both_images(small_rig, seed):
    settings = HandMotionSettings()
    motion = HandMotion(template_hand(), SynthSettings(rig=small_rig), settings, seed)
    times = loop_frame_times(settings.loop_seconds, 15.0)
    joints, palms_z, tilts = [], [], []
    for t in times:
        verts, j = _posed(motion, t)
        joints.append(j)
        palms_z.append(palm_center(j)[2])
        for tx in (0.0, small_rig.baseline_m):
            uv = _project(verts, small_rig, tx)
            m = settings.margin_px
            inside = (
                (uv[:, 0] >= m)
                & (uv[:, 0] < small_rig.width - m)
                & (uv[:, 1] >= m)
                & (uv[:, 1] < small_rig.height - m)
            )
            assert inside.all(), f"t={t:.2f} s, tx={tx}: {np.sum(~inside)} vertices outside"
        # The palm normal (hand +z, palmar) points at the camera (-z) within the tilt.
        normal = motion.rotation_at(t) @ np.array([0.0, 0.0, 1.0])
        tilts.append(np.degrees(np.arccos(np.clip(-normal[2], -1.0, 1.0))))
    joints = np.array(joints)
    # Consecutive frames, including the wrap from the last frame back to the first.
    steps = np.linalg.norm(np.diff(np.concatenate([joints, joints[:1]]), axis=0), axis=2)
    k, j = np.unravel_index(steps.argmax(), steps.shape)
    assert steps.max() < MAX_STEP_M, f"joint {j} moves {steps.max() * 100:.1f} cm at frame {k}"
    lo, hi = settings.depths_m
    assert lo - 1e-9 <= min(palms_z) and max(palms_z) <= hi + 1e-9
    assert max(palms_z) - min(palms_z) > 0.5 * (hi - lo), "the hand should move in depth"
    assert max(tilts) <= settings.max_tilt_deg + 1e-6
    centres = np.array([motion.scene_at(t).centre_m for t in times])
    assert np.ptp(centres[:, 0]) > 0.01 and np.ptp(centres[:, 1]) > 0.01, "no sideways drift"


def test_gestures_are_held_then_blended_without_collisions(motion):
    settings = motion.settings
    n = len(settings.gestures)
    segment = motion.loop_seconds / n
    for i, name in enumerate(settings.gestures):
        t = (i + 0.5 * settings.hold_fraction) * segment  # inside the hold
        pose, gesture = motion.pose_at(t)
        assert gesture == name
        assert np.array_equal(pose, GESTURES[name])
    poses = np.array([motion.pose_at(t)[0] for t in np.linspace(0.0, motion.loop_seconds, 800)])
    assert not poses_collide(poses).any(), "a gesture blend makes the digits collide"
    # Continuous: no parameter jumps between dense samples (0.01 s apart).
    assert np.abs(np.diff(poses, axis=0)).max() < 0.05


def test_ease_smootherstep_rises_smoothly_from_0_to_1():
    x = np.linspace(-0.5, 1.5, 2001)
    y = ease_smootherstep(x)
    assert y[x <= 0].max() == 0.0 and y[x >= 1].min() == 1.0
    assert (np.diff(y) >= 0).all()
    h = 1e-4
    for end in (0.0, 1.0):  # zero slope at both ends
        slope = (ease_smootherstep(end + h) - ease_smootherstep(end - h)) / (2 * h)
        assert abs(slope) < 1e-6
    assert ease_smootherstep(0.5) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"loop_seconds": 0.0}, "loop_seconds"),
        ({"depth_range_m": (0.7, 0.5)}, "depth_range_m"),
        ({"gestures": ("fist", "wave")}, "gestures"),
        ({"gestures": ()}, "gestures"),
        ({"hold_fraction": 1.0}, "hold_fraction"),
        ({"max_tilt_deg": 120.0}, "max_tilt_deg"),
        ({"scale_range": (0.5, 1.0)}, "scale_range"),
        ({"fit_samples": 2}, "fit_samples"),
    ],
)
def test_motion_settings_reject_bad_values(change, name):
    with pytest.raises(ConfigError, match=name):
        dataclasses.replace(HandMotionSettings(), **change)


def test_a_hand_that_cannot_fit_is_refused(small_rig):
    near = HandMotionSettings(depth_range_m=(0.3, 0.35))
    with pytest.raises(ConfigError, match="too little room"):
        HandMotion(template_hand(), SynthSettings(rig=small_rig), near, 0)


def test_loop_frame_times():
    t = loop_frame_times(8.0, 15.0)
    assert len(t) == 120 and t[0] == 0.0
    assert np.allclose(np.diff(t), 8.0 / 120)
    assert len(loop_frame_times(1.0, 14.6)) == 15  # rounded: the loop stays seamless
    with pytest.raises(ConfigError, match="rate_hz"):
        loop_frame_times(8.0, 0.0)


def test_rendered_frames_carry_their_ground_truth(motion, small_rig):
    faces_t = torch.from_numpy(motion.hand.faces.astype(np.int64))
    frame = render_motion_frame(motion, 5, 1.25, faces_t)
    again = render_motion_frame(motion, 5, 1.25, faces_t)
    assert frame.left.shape == (small_rig.height, small_rig.width, 3)
    assert frame.left.dtype == np.uint8 and frame.right.shape == frame.left.shape
    assert np.array_equal(frame.left, again.left) and np.array_equal(frame.right, again.right)
    _, joints = _posed(motion, 1.25)
    assert frame.joints is not None and frame.joints.shape == (NUM_JOINTS, 3)
    assert np.abs(frame.joints - joints).max() < 1e-6
    empty = render_motion_frame(motion, 5, 1.25, faces_t, hand_visible=False)
    assert empty.joints is None and empty.left.shape == frame.left.shape
    # The hand covers part of the image: the frames differ there, not everywhere.
    changed = np.abs(frame.left.astype(int) - empty.left.astype(int)).max(axis=2) > 40
    assert 0.002 < changed.mean() < 0.5


# ------------------------------------------------------------------------------------------
# Node configuration (ROS-free)


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"domain": "sunny"}, "domain"),
        ({"encoding": "yuv422"}, "encoding"),
        ({"rate_hz": 0.0}, "rate_hz"),
        ({"width": 0}, "width"),
        ({"height": -5}, "height"),
        ({"left_frame_id": "/left"}, "left_frame_id"),
        ({"rate_hz": 240.0, "loop_seconds": 600.0}, "loop_seconds"),
    ],
)
def test_sim_config_rejects_bad_values(change, name):
    with pytest.raises(ConfigError, match=name):
        StereoCameraSimConfig(**change)


def test_sim_config_frame_counts():
    assert StereoCameraSimConfig().frames_per_loop == 120
    assert StereoCameraSimConfig(max_frames=30).loop_frames == 30
    assert StereoCameraSimConfig(max_frames=500).loop_frames == 120


# ------------------------------------------------------------------------------------------
# The node (real processes, real rclpy)

_BEST_EFFORT = QoSProfile(depth=200, reliability=ReliabilityPolicy.BEST_EFFORT)
_TOPICS = (
    (Image, "left/image_rect", _BEST_EFFORT),
    (Image, "right/image_rect", _BEST_EFFORT),
    (CameraInfo, "left/camera_info", _BEST_EFFORT),
    (CameraInfo, "right/camera_info", _BEST_EFFORT),
    (PoseArray, "sim/gt_joints", 200),
)


@pytest.fixture
def peer(ros_context):
    p = Peer(ros_context, "sim_test_peer")
    for msg_type, topic, qos in _TOPICS:
        p.subscribe(msg_type, topic, qos)
    yield p
    p.close()


def _run_sim(peer: Peer, tmp_path, params: dict, timeout_s: float = 60.0) -> str:
    """Run the sim until it exits by itself (max_frames) while ``peer`` listens."""
    params = {**params, "wait_for_subscribers": True}
    node = NodeProcess("stereo_camera_sim", tmp_path / "sim.log", params)
    try:
        exited = peer.spin_until(lambda: not node.alive(), timeout_s)
        peer.spin_for(0.3)
    finally:
        code = node.stop()
    log = node.log_path.read_text()
    assert exited, f"stereo_camera_sim did not stop after max_frames; its log:\n{log}"
    assert code == 0, f"stereo_camera_sim exited with {code}; its log:\n{log}"
    return log


def test_sim_publishes_stamped_stereo_frames_with_ground_truth(tmp_path, peer):
    # 120 frames per loop at 30 Hz over 4 s: the same per-frame motion as 15 Hz over 8 s.
    rate, loop, frames = 30.0, 4.0, 140
    params = {
        "rate_hz": rate,
        "loop_seconds": loop,
        "width": SMALL[0],
        "height": SMALL[1],
        "max_frames": frames,
        "encoding": "bgr8",
        "seed": 2,
    }
    log = _run_sim(peer, tmp_path, params)
    assert "rendered 120 frames" in log, log
    msgs = peer.messages
    gts = msgs["sim/gt_joints"]
    # Reliable, and the sim waited for our subscriptions: every ground truth arrives.
    assert len(gts) == frames, f"{len(gts)} of {frames} ground truths arrived; log:\n{log}"
    for _, topic, _ in _TOPICS:
        assert len(msgs[topic]) >= 0.7 * frames, f"{topic}: {len(msgs[topic])} of {frames}"

    # All five messages of a frame carry one stamp; frame ids as documented.
    stamps = {topic: {stamp_key(m.header) for m in msgs[topic]} for _, topic, _ in _TOPICS}
    gt_stamps = [stamp_key(m.header) for m in gts]
    assert gt_stamps == sorted(gt_stamps) and len(set(gt_stamps)) == len(gt_stamps)
    common = set.intersection(*stamps.values())
    assert len(common) >= 0.7 * frames
    for topic, seen in stamps.items():
        assert seen <= set(gt_stamps), f"{topic} carries stamps of no frame"
    for topic in ("left/image_rect", "left/camera_info", "sim/gt_joints"):
        assert {m.header.frame_id for m in msgs[topic]} == {DEFAULT_LEFT_FRAME_ID}
    for topic in ("right/image_rect", "right/camera_info"):
        assert {m.header.frame_id for m in msgs[topic]} == {DEFAULT_RIGHT_FRAME_ID}

    # camera_info: STB scaled to 320x240, right P[0, 3] = -fx * B; images of that size.
    left_info, right_info = msgs["left/camera_info"][0], msgs["right/camera_info"][0]
    fx = STB_BUMBLEBEE2.fx * SMALL[0] / STB_BUMBLEBEE2.width
    assert left_info.k[0] == pytest.approx(fx) and left_info.p[3] == 0.0
    assert right_info.p[0] == pytest.approx(fx)
    assert right_info.p[3] == pytest.approx(-fx * STB_BUMBLEBEE2.baseline_m)
    for side, info in (("left", left_info), ("right", right_info)):
        assert (info.width, info.height) == SMALL
        for img in msgs[f"{side}/image_rect"]:
            assert (img.width, img.height, img.encoding) == (*SMALL, "bgr8")
            assert img.step == 3 * img.width and len(img.data) == img.step * img.height

    # Ground truth: 21 joints with identity orientations, inside both images.
    k = np.array(left_info.k).reshape(3, 3)
    baseline = -right_info.p[3] / right_info.p[0]
    joints = np.array([joints_of(m) for m in gts])
    assert joints.shape[1:] == (NUM_JOINTS, 3)
    assert all(p.orientation.w == 1.0 for p in gts[0].poses)
    for tx in (0.0, baseline):
        u = k[0, 0] * (joints[..., 0] - tx) / joints[..., 2] + k[0, 2]
        v = k[1, 1] * joints[..., 1] / joints[..., 2] + k[1, 2]
        assert (u >= 0).all() and (u < SMALL[0]).all() and (v >= 0).all() and (v < SMALL[1]).all()

    # Published at the configured rate (stamps), smooth from frame to frame, and periodic:
    # the frame one loop later repeats exactly.
    dt = np.diff(np.array(gt_stamps)) * 1e-9
    assert np.median(dt) == pytest.approx(1.0 / rate, rel=0.1)
    consecutive = dt < 1.5 / rate
    steps = np.linalg.norm(np.diff(joints, axis=0), axis=2).max(axis=1)[consecutive]
    assert steps.max() < MAX_STEP_M, f"a joint moves {steps.max() * 100:.1f} cm in one frame"
    n = round(rate * loop)
    assert consecutive.all(), "a ground-truth message was lost (reliable QoS)"
    assert len(joints) > n
    assert np.array_equal(joints[n:], joints[: len(joints) - n])
    assert not np.array_equal(joints[1], joints[0])


def test_sim_without_hand_publishes_empty_ground_truth_in_the_given_frames(tmp_path, peer):
    params = {"rate_hz": 20.0, "width": 160, "height": 120, "max_frames": 12}
    params.update(hand_visible=False, left_frame_id="cam_l", right_frame_id="cam_r")
    _run_sim(peer, tmp_path, params)
    gts = peer.messages["sim/gt_joints"]
    assert len(gts) == 12 and all(len(m.poses) == 0 for m in gts)
    images = peer.messages["left/image_rect"]
    assert images and (images[0].width, images[0].height) == (160, 120)
    assert {stamp_key(m.header) for m in images} <= {stamp_key(m.header) for m in gts}
    for topic, frame_id in (("sim/gt_joints", "cam_l"), ("left/camera_info", "cam_l")):
        assert {m.header.frame_id for m in peer.messages[topic]} == {frame_id}
    for topic in ("right/image_rect", "right/camera_info"):
        assert {m.header.frame_id for m in peer.messages[topic]} == {"cam_r"}


def test_sim_with_two_hands_publishes_each_hands_ground_truth(tmp_path, ros_context):
    """hands: 2: the left hand's joints on sim/gt_joints_left with the right hand's stamp,
    QoS and frame; each hand inside both images, on its own side of the view."""
    peer = Peer(ros_context, "sim_two_hands_peer")
    try:
        for msg_type, topic, qos in _TOPICS:
            peer.subscribe(msg_type, topic, qos)
        peer.subscribe(PoseArray, "sim/gt_joints_left", 200)
        frames = 24
        params = {"rate_hz": 15.0, "loop_seconds": 8.0, "width": SMALL[0], "height": SMALL[1]}
        params.update(max_frames=frames, hands=2, seed=1)
        log = _run_sim(peer, tmp_path, params)
    finally:
        peer.close()
    assert "two hands visible" in log and "and sim/gt_joints_left" in log, log
    right, left = peer.messages["sim/gt_joints"], peer.messages["sim/gt_joints_left"]
    # Reliable, depth 10, like sim/gt_joints: every frame's left-hand truth arrives.
    assert len(right) == frames and len(left) == frames, (len(right), len(left), log)
    assert [stamp_key(m.header) for m in left] == [stamp_key(m.header) for m in right]
    assert {m.header.frame_id for m in left} == {DEFAULT_LEFT_FRAME_ID}
    info = peer.messages["left/camera_info"][0]
    k = np.array(info.k).reshape(3, 3)
    baseline = STB_BUMBLEBEE2.baseline_m
    us = {}
    for side, msgs in (("right", right), ("left", left)):
        joints = np.array([joints_of(m) for m in msgs])
        assert joints.shape == (frames, NUM_JOINTS, 3)
        for tx in (0.0, baseline):
            u = k[0, 0] * (joints[..., 0] - tx) / joints[..., 2] + k[0, 2]
            v = k[1, 1] * joints[..., 1] / joints[..., 2] + k[1, 2]
            assert (u >= 0).all() and (u < SMALL[0]).all(), side
            assert (v >= 0).all() and (v < SMALL[1]).all(), side
        us[side] = (k[0, 0] * joints[..., 0] / joints[..., 2] + k[0, 2]).mean(axis=1)
        steps = np.linalg.norm(np.diff(joints, axis=0), axis=2).max()
        assert steps < MAX_STEP_M, f"{side}: a joint moves {steps * 100:.1f} cm in one frame"
    # The right hand on the image's left, the left hand on its right, in every frame.
    assert (us["right"] < us["left"]).all()


def test_sim_with_one_hand_publishes_no_left_hand_topic(tmp_path, ros_context):
    peer = Peer(ros_context, "sim_one_hand_peer")
    params = {"rate_hz": 10.0, "width": 160, "height": 120, "max_frames": 20}
    node = NodeProcess("stereo_camera_sim", tmp_path / "sim.log", params)
    try:
        peer.subscribe(PoseArray, "sim/gt_joints", 200)
        peer.subscribe(PoseArray, "sim/gt_joints_left", 200)
        assert peer.spin_until(lambda: len(peer.messages["sim/gt_joints"]) >= 3, 60), node.log()
        right_publishers = peer.node.count_publishers("sim/gt_joints")
        left_publishers = peer.node.count_publishers("sim/gt_joints_left")
    finally:
        node.stop()
        peer.close()
    assert (right_publishers, left_publishers) == (1, 0)
    assert not peer.messages["sim/gt_joints_left"]
    assert "one hand visible" in node.log_path.read_text()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"domain": "sunny"}, ("domain", "sunny")),
        ({"encoding": "yuv422"}, ("encoding", "yuv422")),
        ({"rate_hz": 0.0}, ("rate_hz", "0.0")),
        ({"width": 0}, ("width", "0")),
        ({"left_frame_id": "/left"}, ("left_frame_id", "without a leading slash", "'/left'")),
        ({"right_frame_id": "right cam"}, ("right_frame_id", "'right cam'")),
    ],
)
def test_bad_parameters_give_a_clear_error_and_a_non_zero_exit(tmp_path, params, expected):
    node = NodeProcess("stereo_camera_sim", tmp_path / "sim.log", params)
    code = node.wait_exit(60)
    log = node.log_path.read_text()
    assert code != 0, log
    assert "ERROR" in log and all(word in log for word in expected), log
