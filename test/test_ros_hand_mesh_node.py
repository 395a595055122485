"""hand_mesh_node as a real process, talked to over real DDS from a real rclpy peer."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from model_files import collapsed_model
from node_process import NodeProcess, Peer, joints_of, stamp_key
from sensor_msgs.msg import Image, PointCloud2
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2
from stereo_hand_mesh.data.sample import StereoSample
from stereo_hand_mesh.data.synth import SynthSettings, as_stereo_sample, iter_synthetic_pairs
from stereo_hand_mesh.hand import JOINT_NAMES, template_hand
from stereo_hand_mesh.pipeline.estimator import SIDES
from stereo_hand_mesh.ros.messages import joint_frame_names
from stereo_hand_mesh.ros.player import PairPublisher, pair_messages
from stereo_hand_mesh.runtime.keypoint_nets import keypoint_model_files

LEFT_FRAME = "stereo_left_optical_frame"
FAST = {"smoothing": False, "tracking": False, "diagnostics_period_s": 0.5}


@pytest.fixture(scope="module")
def samples() -> list[StereoSample]:
    """Six source-domain pairs with a hand (640x480, STB rig) and ground truth.

    Pairs 2 and 5 of this seed are left out: the real-trained palm detector misses the first
    and the second falls near min_confidence (our renders do not look real enough yet; the
    simulator issue makes them so). These tests are about the node, not the model."""
    li, ri = STB_BUMBLEBEE2.camera_infos()
    pairs = list(iter_synthetic_pairs(SynthSettings(domain="source"), 8, seed=5))
    return [as_stereo_sample(pairs[k], i, li, ri) for i, k in enumerate((0, 1, 3, 4, 6, 7))]


@pytest.fixture
def peer(ros_context):
    p = Peer(ros_context)
    for msg_type, topic in (
        *((PoseArray, f"hand/{side}/joints") for side in SIDES),
        *((PointCloud2, f"hand/{side}/vertices") for side in SIDES),
        *((MarkerArray, f"hand/{side}/markers") for side in SIDES),
        (Image, "hand/overlay"),
        (TFMessage, "/tf"),
        (DiagnosticArray, "/diagnostics"),
    ):
        p.subscribe(msg_type, topic)
    yield p
    p.close()


def _connect(peer: Peer, pub: PairPublisher, node: NodeProcess) -> None:
    ok = peer.spin_until(
        lambda: pub.subscribers() > 0 and peer.node.count_publishers("hand/right/joints") > 0,
        30.0,
    )
    assert ok, f"hand_mesh_node did not connect; its log:\n{node.log()}"
    peer.spin_for(0.3)


def _no_hand(sample: StereoSample) -> StereoSample:
    grey = np.full_like(sample.left, 128)
    return StereoSample(grey, grey.copy(), sample.left_info, sample.right_info, index=99)


def test_outputs_carry_stamp_frame_and_names(tmp_path, peer, samples):
    node = NodeProcess(
        "hand_mesh_node",
        tmp_path / "node.log",
        {**FAST, "publish_overlay": True, "markers_max_rate_hz": 0.0},
    )
    try:
        pub = PairPublisher(peer.node)
        _connect(peer, pub, node)
        t0 = peer.node.get_clock().now().nanoseconds
        stamps = [t0 + i * 100_000_000 for i in range(len(samples))]
        for stamp, sample in zip(stamps, samples, strict=True):
            pub.publish(pair_messages(sample, stamp))
            peer.spin_for(0.25)
        assert peer.spin_until(lambda: len(peer.messages["hand/right/joints"]) >= len(stamps), 10)

        joints = {stamp_key(m.header): m for m in peer.messages["hand/right/joints"]}
        assert sorted(joints) == stamps
        errors = [
            np.linalg.norm(joints_of(joints[s]) - smp.joints, axis=1).mean()
            for s, smp in zip(stamps, samples, strict=True)
        ]
        assert np.median(errors) < 0.04, f"median joint error {np.median(errors)} m"

        right = ("hand/right/joints", "hand/right/vertices", "hand/right/markers")
        for topic in (*right, "hand/overlay", "/tf"):
            msgs = peer.messages[topic]
            assert msgs, f"nothing on {topic}"
            for m in msgs:
                headers = [t.header for t in m.transforms] if topic == "/tf" else None
                headers = headers or (
                    [mk.header for mk in m.markers] if topic.endswith("markers") else [m.header]
                )
                for h in headers:
                    assert h.frame_id == LEFT_FRAME, topic
                    assert stamp_key(h) in stamps, topic

        # Right hands only: the left side's topics stay silent.
        for topic in ("hand/left/joints", "hand/left/vertices", "hand/left/markers"):
            assert not peer.messages[topic], f"a right hand was published on {topic}"
        tf = peer.messages["/tf"][-1]
        assert [t.child_frame_id for t in tf.transforms] == joint_frame_names("hand_", "right")
        q = tf.transforms[-1].transform.rotation
        assert abs(q.x**2 + q.y**2 + q.z**2 + q.w**2 - 1) < 1e-9
        # Joint frames turn with the fitted skeleton: unit, not the identity, the same in the
        # PoseArray of that pair, and x along the bone (wrist -> middle_mcp for the wrist).
        poses = joints[stamp_key(tf.transforms[0].header)].poses
        for t, pose in zip(tf.transforms[:21], poses, strict=True):
            r, o = t.transform.rotation, pose.orientation
            assert abs(r.x**2 + r.y**2 + r.z**2 + r.w**2 - 1) < 1e-6
            assert np.allclose([r.x, r.y, r.z, r.w], [o.x, o.y, o.z, o.w], atol=1e-6)
        r = tf.transforms[0].transform.rotation
        assert abs(r.w) < 0.999, "the wrist frame is the identity"
        x_axis = np.array([1 - 2 * (r.y**2 + r.z**2), 2 * (r.x * r.y + r.w * r.z),
                           2 * (r.x * r.z - r.w * r.y)])  # fmt: skip
        p = [np.array([t.transform.translation.x, t.transform.translation.y,
                       t.transform.translation.z]) for t in tf.transforms]  # fmt: skip
        bone = p[JOINT_NAMES.index("middle_mcp")] - p[0]
        assert x_axis @ bone / np.linalg.norm(bone) > 0.8, (x_axis, bone)
        cloud = peer.messages["hand/right/vertices"][-1]
        assert [f.name for f in cloud.fields] == ["x", "y", "z", "confidence"]
        assert cloud.width == template_hand().num_vertices and cloud.point_step == 16
        markers = peer.messages["hand/right/markers"][-1].markers
        assert [m.ns for m in markers] == ["right_mesh", "right_joints", "right_skeleton"]
        assert markers[0].type == Marker.TRIANGLE_LIST
        assert len(markers[0].points) == 3 * template_hand().num_faces
        overlay = peer.messages["hand/overlay"][-1]
        assert (overlay.width, overlay.height) == (640, 480)

        # A pair without a hand: no joints for it, the markers are deleted, diagnostics say so.
        empty_stamp = stamps[-1] + 100_000_000
        pub.publish(pair_messages(_no_hand(samples[0]), empty_stamp))
        assert peer.spin_until(
            lambda: any(
                mk.action == Marker.DELETEALL and stamp_key(mk.header) == empty_stamp
                for m in peer.messages["hand/right/markers"]
                for mk in m.markers
            ),
            10,
        ), node.log()
        # Diagnostics judge the last second: once the meshes before it age out, they say why.
        assert peer.spin_until(
            lambda: "no hand" in peer.messages["/diagnostics"][-1].status[0].message, 5
        ), peer.messages["/diagnostics"][-1].status[0]
        assert empty_stamp not in {stamp_key(m.header) for m in peer.messages["hand/right/joints"]}
        status = peer.messages["/diagnostics"][-1].status[0]
        values = {kv.key: kv.value for kv in status.values}
        assert values["backend"].startswith("onnxruntime-cpu")
        assert int(values["meshes_published"]) == len(stamps)
        assert node.alive()
        # With ONNX Runtime the node never loads torch (start-up time, memory).
        maps = Path(f"/proc/{node.proc.pid}/maps").read_text()
        assert "libtorch" not in maps and "onnxruntime" in maps
    finally:
        assert node.stop() == 0, node.log()


def test_one_tf_message_per_pair_a_no_hand_pair_then_a_good_one_and_frame_prefix_checks(
    tmp_path, peer, samples
):
    """A pair without a hand, then a good pair (a right hand): the good one gets its mesh and
    one /tf message with all 21 joint frames and 'hand_right_palm' (default frame_prefix
    'hand_'), every transform stamped with that pair and parented to the left frame. A
    frame_prefix with a leading slash is refused at run time; a valid new prefix renames the
    frames from the next pair on."""
    from stereo_hand_mesh.hand.joints import JOINT_NAMES

    node = NodeProcess("hand_mesh_node", tmp_path / "node.log", FAST)
    try:
        pub = PairPublisher(peer.node)
        _connect(peer, pub, node)

        def tf_of(stamp: int) -> list:
            return [
                m
                for m in peer.messages["/tf"]
                if any(stamp_key(t.header) == stamp for t in m.transforms)
            ]

        def last_status() -> str:
            diags = peer.messages["/diagnostics"]
            return diags[-1].status[0].message if diags else ""

        empty = peer.node.get_clock().now().nanoseconds
        pub.publish(pair_messages(_no_hand(samples[0]), empty))
        assert peer.spin_until(lambda: "no hand" in last_status(), 10), node.log()
        good = empty + 100_000_000
        pub.publish(pair_messages(samples[1], good))
        assert peer.spin_until(lambda: _has_output(peer, good), 10), node.log()
        peer.spin_for(0.3)
        assert not _has_output(peer, empty) and not tf_of(empty)

        (tf,) = tf_of(good)  # one message for the pair
        children = [t.child_frame_id for t in tf.transforms]
        assert children == [f"hand_right_{name}" for name in JOINT_NAMES] + ["hand_right_palm"]
        assert len(children) == 22 and children[0] == "hand_right_wrist"
        assert {stamp_key(t.header) for t in tf.transforms} == {good}
        assert {t.header.frame_id for t in tf.transforms} == {LEFT_FRAME}
        joints = joints_of(
            {stamp_key(m.header): m for m in peer.messages["hand/right/joints"]}[good]
        )
        tf_xyz = np.array(
            [[t.transform.translation.x, t.transform.translation.y, t.transform.translation.z]
             for t in tf.transforms[:21]]
        )  # fmt: skip
        assert np.allclose(tf_xyz, joints, atol=1e-9)

        refused = peer.set_parameters("/hand_mesh_node", {"frame_prefix": "/hand_"})
        assert refused is not None and not refused[0].successful
        assert "leading slash" in refused[0].reason and "'/hand_'" in refused[0].reason
        accepted = peer.set_parameters("/hand_mesh_node", {"frame_prefix": "robot1_"})
        assert accepted is not None and accepted[0].successful, accepted
        renamed = good + 100_000_000
        pub.publish(pair_messages(samples[2], renamed))
        assert peer.spin_until(lambda: bool(tf_of(renamed)), 10), node.log()
        (tf,) = tf_of(renamed)
        assert tf.transforms[0].child_frame_id == "robot1_right_wrist"
        assert tf.transforms[-1].child_frame_id == "robot1_right_palm"
        assert node.alive()
    finally:
        assert node.stop() == 0, node.log()


def _bad(sample: StereoSample, stamp: int, kind: str):
    msgs = pair_messages(sample, stamp)
    if kind == "encoding":
        msgs.left.encoding = "yuv422"
    elif kind == "sizes":
        small = pair_messages(
            StereoSample(
                sample.left[::2, ::2].copy(),
                sample.right[::2, ::2].copy(),
                sample.left_info,
                sample.right_info,
                0,
            ),
            stamp,
        )
        msgs = type(msgs)(msgs.left, msgs.left_info, small.right, msgs.right_info)
    elif kind == "zero_p":
        msgs.left_info.p = np.zeros(12)
    elif kind == "nan_p":
        p = np.array(msgs.right_info.p)
        p[2] = np.nan
        msgs.right_info.p = p
    elif kind == "zero_baseline":
        p = np.array(msgs.right_info.p)
        p[3] = 0.0
        msgs.right_info.p = p
    elif kind == "empty":
        msgs.left.height = msgs.left.width = msgs.left.step = 0
        msgs.left.data = b""
    return msgs


BAD_INPUTS = {
    "encoding": "image encoding expected one of",
    "sizes": "right image expected 640x480 (the left size); got 320x240",
    "zero_p": "expected positive focal lengths",
    "nan_p": "expected finite values",
    "zero_baseline": "baseline > 0",
    "empty": "image expected a positive size; got 0x0",
}


def _has_output(peer: Peer, stamp: int) -> bool:
    return stamp in {stamp_key(m.header) for m in peer.messages["hand/right/joints"]}


def _deleted_at(peer: Peer, stamp: int, side: str = "right") -> bool:
    """A DELETEALL marker with this stamp arrived on hand/<side>/markers."""
    return any(
        mk.action == Marker.DELETEALL and stamp_key(mk.header) == stamp
        for m in peer.messages[f"hand/{side}/markers"]
        for mk in m.markers
    )


def test_bad_inputs_are_logged_and_the_next_good_pair_is_processed(tmp_path, peer, samples):
    """Each bad pair follows a good one: it is logged, deletes the mesh RViz shows (DELETEALL
    with the bad pair's stamp) and the next good pair gives a mesh again."""
    node = NodeProcess("hand_mesh_node", tmp_path / "node.log", FAST)
    try:
        pub = PairPublisher(peer.node)
        _connect(peer, pub, node)
        stamp = peer.node.get_clock().now().nanoseconds
        pub.publish(pair_messages(samples[1], stamp))
        assert peer.spin_until(lambda: _has_output(peer, stamp), 10), node.log()
        for kind, expected in BAD_INPUTS.items():
            stamp += 100_000_000
            pub.publish(_bad(samples[0], stamp, kind))
            assert peer.spin_until(lambda s=stamp: _deleted_at(peer, s), 5), (
                f"no DELETEALL for the bad pair '{kind}' after a mesh; log:\n{node.log()}"
            )
            good = stamp + 50_000_000
            pub.publish(pair_messages(samples[1], good))
            assert peer.spin_until(
                lambda g=good: (
                    g in {stamp_key(m.header) for m in peer.messages["hand/right/joints"]}
                ),
                10,
            ), f"no output for the good pair after bad input '{kind}'; log:\n{node.log()}"
            assert expected in node.log(), f"'{expected}' not logged for {kind}:\n{node.log()}"
            assert stamp not in {stamp_key(m.header) for m in peer.messages["hand/right/joints"]}

        # Stamps further apart than the slop: never paired, and the node says why.
        for _ in range(12):
            stamp += 100_000_000
            m = pair_messages(samples[0], stamp)
            late = pair_messages(samples[0], stamp + 350_000_000)  # never 0.1 s steps apart
            pub.publish(type(m)(m.left, m.left_info, late.right, late.right_info))
            peer.spin_for(0.1)
        assert peer.spin_until(lambda: "are not synchronized" in node.log(), 5), node.log()
        # Images without camera_info.
        for _ in range(12):
            stamp += 100_000_000
            m = pair_messages(samples[0], stamp)
            pub.left.publish(m.left)
            pub.right.publish(m.right)
            peer.spin_for(0.1)
        assert peer.spin_until(lambda: "none on left camera_info" in node.log(), 5), node.log()
        stamp += 100_000_000
        pub.publish(pair_messages(samples[2], stamp))
        assert peer.spin_until(
            lambda: stamp in {stamp_key(m.header) for m in peer.messages["hand/right/joints"]}, 10
        ), node.log()
        assert node.alive()
    finally:
        assert node.stop() == 0, node.log()


def test_a_broken_models_collapsed_mesh_is_refused_and_deletes_the_shown_one(
    tmp_path, peer, samples
):
    """Good pair -> mesh; then a model whose two branches agree on a mesh collapsed onto a
    point (confidence 1) -> no mesh is published (the pipeline's size check), DELETEALL with
    that pair's stamp, the reason in /diagnostics, and the node keeps serving."""
    node = NodeProcess("hand_mesh_node", tmp_path / "node.log", FAST)
    collapsed = collapsed_model(tmp_path / "collapsed.onnx")
    try:
        pub = PairPublisher(peer.node)
        _connect(peer, pub, node)
        stamp = peer.node.get_clock().now().nanoseconds
        pub.publish(pair_messages(samples[0], stamp))
        assert peer.spin_until(lambda: _has_output(peer, stamp), 10), node.log()
        assert not _deleted_at(peer, stamp)
        results = peer.set_parameters("/hand_mesh_node", {"model_file_path": str(collapsed)})
        assert results is not None and all(r.successful for r in results)
        reply = peer.call(Trigger, "/hand_mesh_node/reload_model", Trigger.Request())
        assert reply is not None and reply.success, (reply, node.log())
        bad = stamp + 100_000_000
        pub.publish(pair_messages(samples[1], bad))
        assert peer.spin_until(lambda: _deleted_at(peer, bad), 10), node.log()

        def last_status() -> str:
            diags = peer.messages["/diagnostics"]
            return diags[-1].status[0].message if diags else ""

        assert peer.spin_until(lambda: "implausible mesh" in last_status(), 10), last_status()
        peer.spin_for(0.5)
        assert not _has_output(peer, bad)
        assert bad not in {stamp_key(t.header) for m in peer.messages["/tf"] for t in m.transforms}
        # Only one DELETEALL while no mesh is shown: a second refused pair sends none.
        again = bad + 100_000_000
        pub.publish(pair_messages(samples[2], again))
        peer.spin_for(1.0)
        assert not _deleted_at(peer, again)
        assert node.alive()
    finally:
        assert node.stop() == 0, node.log()


def test_reload_mid_stream_and_a_corrupt_model_is_refused(tmp_path, peer, samples):
    node = NodeProcess("hand_mesh_node", tmp_path / "node.log", FAST)
    new_model = tmp_path / "adapted.onnx"  # a landmark network in its own file
    shutil.copy(keypoint_model_files("lite")["landmarks_onnx"], new_model)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx model" * 100)
    sent: list[int] = []
    stop = threading.Event()
    try:
        pub = PairPublisher(peer.node)
        _connect(peer, pub, node)

        def stream() -> None:
            i = 0
            while not stop.is_set():
                stamp = peer.node.get_clock().now().nanoseconds
                pub.publish(pair_messages(samples[i % len(samples)], stamp))
                sent.append(stamp)
                i += 1
                time.sleep(0.1)

        thread = threading.Thread(target=stream, daemon=True)
        thread.start()
        peer.spin_for(1.5)
        results = peer.set_parameters("/hand_mesh_node", {"model_file_path": str(new_model)})
        assert results is not None and all(r.successful for r in results)
        reply = peer.call(Trigger, "/hand_mesh_node/reload_model", Trigger.Request())
        assert reply is not None and reply.success, reply
        assert str(new_model) in reply.message
        peer.spin_for(1.5)
        peer.set_parameters("/hand_mesh_node", {"model_file_path": str(corrupt)})
        refused = peer.call(Trigger, "/hand_mesh_node/reload_model", Trigger.Request())
        assert refused is not None and not refused.success
        assert "keeps running" in refused.message and "corrupt.onnx" in refused.message
        peer.spin_for(1.5)
        stop.set()
        thread.join()
        peer.spin_for(1.0)
        got = {stamp_key(m.header) for m in peer.messages["hand/right/joints"]}
        missing = [s for s in sent[:-2] if s not in got]
        assert len(missing) <= 2, (
            f"{len(missing)} of {len(sent)} pairs without output: "
            f"{[sent.index(s) for s in missing]}"
            f"\n{node.log()}\n{peer.messages['/diagnostics'][-1].status[0]}"
        )
        status = {kv.key: kv.value for kv in peer.messages["/diagnostics"][-1].status[0].values}
        assert status["model"] == str(new_model)  # the corrupt file never replaced it
        assert node.alive()
    finally:
        stop.set()
        assert node.stop() == 0, node.log()


def test_rectify_true_reads_raw_topics(tmp_path, peer, samples):
    node = NodeProcess("hand_mesh_node", tmp_path / "node.log", {**FAST, "rectify": True})
    try:
        pub = PairPublisher(peer.node, image_suffix="image_raw")
        _connect(peer, pub, node)
        stamp = peer.node.get_clock().now().nanoseconds
        pub.publish(pair_messages(samples[0], stamp))
        assert peer.spin_until(lambda: len(peer.messages["hand/right/joints"]) >= 1, 10), (
            node.log()
        )
        err = np.linalg.norm(
            joints_of(peer.messages["hand/right/joints"][0]) - samples[0].joints, axis=1
        )
        assert err.mean() < 0.05
    finally:
        assert node.stop() == 0, node.log()


def _rotation(axis: str, degrees: float) -> np.ndarray:
    import cv2

    vec = np.zeros(3)
    vec["xyz".index(axis)] = np.radians(degrees)
    return cv2.Rodrigues(vec)[0]


def _raw_view(rect: np.ndarray, raw_info) -> np.ndarray:
    """The raw image a camera with ``raw_info``'s K, D, R (rectified by its P) sees, made from
    the rectified image: each raw pixel samples the rectified pixel OpenCV maps it to."""
    import cv2

    h, w = rect.shape[:2]
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    raw_px = np.stack([u, v], axis=-1).reshape(-1, 1, 2)
    rect_px = cv2.undistortPoints(
        raw_px, raw_info.K, raw_info.D, R=raw_info.R, P=raw_info.P[:, :3]
    ).reshape(h, w, 2)
    rect_px = rect_px.astype(np.float32)
    return cv2.remap(rect, rect_px[..., 0], rect_px[..., 1], cv2.INTER_LINEAR)


def test_rectify_true_undoes_real_distortion_and_rotation(tmp_path, peer, samples):
    """Raw views with plumb_bob distortion (k1 about -0.2) and rectification rotations of 0.8
    deg, made from a rectified pair: with ``rectify: true`` and that camera_info the node's
    joints agree with the ROS-free pipeline on the rectified pair itself. The same raw images
    with R = identity in the camera_info (what a node ignoring R would see) give joints far
    off: the check can fail, and a camera_info that changes only R is not served stale maps."""
    from dataclasses import replace

    from stereo_hand_mesh.geometry.camera import StereoRig
    from stereo_hand_mesh.pipeline.factory import create_pipeline
    from stereo_hand_mesh.ros.hand_mesh_node import pipeline_settings_from
    from stereo_hand_mesh.ros.hand_mesh_parameters import HAND_MESH_PARAMETERS

    # Pair 6 of the seed: on the realistic renders the network's thumb on pair 1 moves by up
    # to 68 mm when the images are resampled by 0.3 px (pair 6: 4 mm), which is the model's
    # instability, not the node's rectification under test.
    sample = samples[4]
    tilt = _rotation("x", 0.3)
    raw_left = replace(
        sample.left_info,
        D=np.array([-0.22, 0.07, 0.0012, -0.0008, 0.0]),
        R=_rotation("y", 0.8) @ tilt,
    )
    raw_right = replace(
        sample.right_info,
        D=np.array([-0.18, 0.05, -0.0006, 0.001, 0.0]),
        R=_rotation("y", -0.8) @ tilt,
    )
    left, right = _raw_view(sample.left, raw_left), _raw_view(sample.right, raw_right)
    assert np.abs(left.astype(int) - sample.left).mean() > 5  # the distortion is not trivial
    raw = StereoSample(left, right, raw_left, raw_right, index=0)
    unrotated = StereoSample(
        left, right, replace(raw_left, R=np.eye(3)), replace(raw_right, R=np.eye(3)), index=0
    )

    # Reference: the node's pipeline, ROS-free, on the rectified pair.
    params = {s.name: s.default for s in HAND_MESH_PARAMETERS} | FAST
    pipeline = create_pipeline(pipeline_settings_from(params), "onnxruntime").pipeline
    rig = StereoRig.from_camera_info(sample.left_info, sample.right_info)
    reference = pipeline.process(sample.left, sample.right, rig, 0.0, None)
    assert reference.found, reference.reason

    node = NodeProcess("hand_mesh_node", tmp_path / "node.log", {**FAST, "rectify": True})
    try:
        pub = PairPublisher(peer.node, image_suffix="image_raw")
        _connect(peer, pub, node)
        stamp = peer.node.get_clock().now().nanoseconds
        joints = {}
        for key, pair in (("raw", raw), ("unrotated", unrotated)):
            stamp += 100_000_000
            pub.publish(pair_messages(pair, stamp))
            assert peer.spin_until(lambda s=stamp: _has_output(peer, s), 10), node.log()
            msg = {stamp_key(m.header): m for m in peer.messages["hand/right/joints"]}[stamp]
            joints[key] = joints_of(msg)
        gap_mm = np.linalg.norm(joints["raw"] - reference.joints, axis=1) * 1e3
        assert gap_mm.mean() < 10.0 and gap_mm.max() < 25.0, (
            f"rectify: true vs the rectified input: mean {gap_mm.mean():.1f} mm, max "
            f"{gap_mm.max():.1f} mm at joint {int(gap_mm.argmax())}"
        )
        error_mm = np.linalg.norm(joints["raw"] - sample.joints, axis=1).mean() * 1e3
        assert error_mm < 50.0, f"mean joint error {error_mm:.1f} mm"
        wrong_mm = np.linalg.norm(joints["unrotated"] - reference.joints, axis=1).mean() * 1e3
        assert wrong_mm > 40.0, f"ignoring R moved the joints only {wrong_mm:.1f} mm"
    finally:
        assert node.stop() == 0, node.log()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"model_file_path": "/nonexistent/model.onnx"}, "/nonexistent/model.onnx does not exist"),
        ({"model_file_path": "CORRUPT"}, "corrupt"),
        ({"min_confidence": 2.0}, "min_confidence"),
        ({"backend": "cuda"}, "backend"),
        ({"engine_file_path": "/etc/passwd"}, "expected a file ending in .plan or .engine"),
        ({"engine_file_path": "/etc/x.plan"}, "expected a file inside engine_cache_dir"),
        ({"engine_file_path": "../x.plan"}, "expected a file inside engine_cache_dir"),
        ({"frame_prefix": "/hand_"}, "frame_prefix expected a TF frame prefix without a leading"),
    ],
)
def test_bad_start_up_gives_a_clear_error_and_a_non_zero_exit(tmp_path, params, expected):
    if params.get("model_file_path") == "CORRUPT":
        bad = tmp_path / "model.onnx"
        bad.write_bytes(b"\x08\x01garbage")
        params = {"model_file_path": str(bad)}
    node = NodeProcess("hand_mesh_node", tmp_path / "node.log", params)
    code = node.wait_exit(60)
    log = node.log_path.read_text()
    assert code != 0, log
    assert "cannot start" in log and expected.lower() in log.lower(), log


def test_launch_and_config_files_match_the_nodes():
    """Every executable a launch file names exists; every YAML key is a declared parameter."""
    import ast

    import yaml

    from stereo_hand_mesh.ros.parameters import node_parameter_tables

    repo = Path(__file__).resolve().parents[1]
    setup = (repo / "setup.py").read_text()
    launches = sorted((repo / "launch").glob("*.launch.py"))
    assert {p.name for p in launches} >= {
        "hand_mesh.launch.py",
        "adaptation.launch.py",
        "demo.launch.py",
    }
    # The nodes each launch file must start (launch_ros.actions.Node of this package).
    wanted = {
        "hand_mesh.launch.py": {"hand_mesh_node"},
        "adaptation.launch.py": {"adaptation_node"},
        "demo.launch.py": {"stereo_camera_sim", "hand_mesh_node"},
    }
    for path in launches:
        tree = ast.parse(path.read_text())
        node_names = {
            alias.asname or alias.name
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module == "launch_ros.actions"
            for alias in n.names
            if alias.name == "Node"
        }
        assert node_names, f"{path.name} does not import launch_ros.actions.Node"
        ours = set()
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            if not (isinstance(call.func, ast.Name) and call.func.id in node_names):
                continue
            kw = {k.arg: k.value for k in call.keywords}
            assert isinstance(kw.get("package"), ast.Constant), (path.name, ast.dump(call))
            assert isinstance(kw.get("executable"), ast.Constant), (path.name, ast.dump(call))
            exe = kw["executable"].value
            if kw["package"].value == "stereo_hand_mesh":
                assert f'"{exe} = stereo_hand_mesh.' in setup, (path.name, exe)
                assert (repo / ".venv" / "bin" / exe).exists(), exe
                ours.add(exe)
        assert ours, f"{path.name} starts no launch_ros Node of stereo_hand_mesh"
        assert wanted.get(path.name, set()) <= ours, (path.name, ours)
    tables = node_parameter_tables()
    for node_name, (filename, specs) in tables.items():
        doc = yaml.safe_load((repo / "config" / filename).read_text())
        keys = set(doc[node_name]["ros__parameters"])
        assert keys == {s.name for s in specs}, filename
    for extra in sorted((repo / "config").glob("*.yaml")):
        doc = yaml.safe_load(extra.read_text())
        for node_name, section in doc.items():
            declared = {s.name for s in tables[node_name][1]}
            assert set(section["ros__parameters"]) <= declared, (extra.name, node_name)
    # The configs and the README's parameter tables are what the tables generate.
    check = subprocess.run(
        [sys.executable, str(repo / "tools" / "write_configs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    # RViz shows topics the node publishes.
    rviz = yaml.safe_load((repo / "config" / "hand_mesh.rviz").read_text())
    topics = {
        d["Topic"]["Value"]
        for d in rviz["Visualization Manager"]["Displays"]
        if isinstance(d.get("Topic"), dict)
    }
    assert topics == {
        *(f"/hand/{side}/{what}" for side in SIDES for what in ("markers", "joints", "vertices")),
        "/hand/overlay",
    }
    tf_displays = [
        d
        for d in rviz["Visualization Manager"]["Displays"]
        if d.get("Class") == "rviz_default_plugins/TF"
    ]
    assert len(tf_displays) == 1, "the RViz config expected one TF display"
    assert tf_displays[0].get("Enabled", True) is True
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == LEFT_FRAME


def test_an_external_roi_replaces_the_palm_detection(tmp_path, peer, samples):
    """An ROI on hand/roi is where the node looks for the left hand: one on an empty corner
    gives no mesh (the hand elsewhere in the image is not taken), one around the hand gives
    it, and once the ROI is older than roi_timeout_s the palm detector searches the whole
    view again."""
    from sensor_msgs.msg import RegionOfInterest

    node = NodeProcess(
        "hand_mesh_node",
        tmp_path / "node.log",
        {**FAST, "min_confidence": 0.0, "roi_timeout_s": 1.0},
    )
    try:
        pub = PairPublisher(peer.node)
        roi_pub = peer.node.create_publisher(RegionOfInterest, "hand/roi", 10)
        _connect(peer, pub, node)
        sample = samples[1]
        assert peer.spin_until(lambda: roi_pub.get_subscription_count() > 0, 10)

        def published(stamp: int) -> bool:
            return stamp in {stamp_key(m.header) for m in peer.messages["hand/right/joints"]}

        lo, hi = sample.uv_left.min(axis=0), sample.uv_left.max(axis=0)
        corner = 0 if lo[0] > 200 else 640 - 150  # a 150 px square away from the hand
        roi_pub.publish(RegionOfInterest(x_offset=corner, y_offset=0, width=150, height=150))
        peer.spin_for(0.2)
        empty = peer.node.get_clock().now().nanoseconds
        pub.publish(pair_messages(sample, empty))
        peer.spin_for(1.5)
        assert not published(empty), "a mesh came from outside the ROI"

        side = float(max(hi - lo)) * 1.3
        cx, cy = (lo + hi) / 2
        roi = RegionOfInterest(
            x_offset=int(cx - side / 2), y_offset=int(cy - side / 2),
            width=int(side), height=int(side),
        )  # fmt: skip
        roi_pub.publish(roi)
        peer.spin_for(0.2)
        with_roi = empty + 100_000_000
        pub.publish(pair_messages(sample, with_roi))
        assert peer.spin_until(lambda: published(with_roi), 10), node.log()
        joints = {stamp_key(m.header): m for m in peer.messages["hand/right/joints"]}[with_roi]
        assert np.linalg.norm(joints_of(joints) - sample.joints, axis=1).mean() < 0.08

        roi_pub.publish(RegionOfInterest(x_offset=corner, y_offset=0, width=150, height=150))
        peer.spin_for(1.5)  # the empty ROI is now stale: the whole view is searched
        late = with_roi + 100_000_000
        pub.publish(pair_messages(sample, late))
        assert peer.spin_until(lambda: published(late), 10), node.log()
    finally:
        assert node.stop() == 0, node.log()
