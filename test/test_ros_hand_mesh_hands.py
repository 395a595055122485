"""Two hands in one pair (issue 18): each side on its own topics, both hands' TF frames in one
TFMessage, a side that disappears deletes its markers only, ``handedness`` restricts, the
overlay draws both. hand_mesh_node runs as a real process over real DDS.

Two-hand pairs are composed from the synthetic renders (right hands) by ``two_hand_pairs``: a
second render seen in a mirror is a left hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from node_process import NodeProcess, Peer, joints_of, stamp_key
from sensor_msgs.msg import Image, PointCloud2
from tf2_msgs.msg import TFMessage
from two_hand_pairs import TwoHands, two_hands
from visualization_msgs.msg import Marker, MarkerArray

from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2
from stereo_hand_mesh.data.sample import StereoSample
from stereo_hand_mesh.data.synth import SynthSettings, as_stereo_sample, iter_synthetic_pairs
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.pipeline.estimator import SIDES, PipelineSettings
from stereo_hand_mesh.ros.messages import joint_frame_names
from stereo_hand_mesh.ros.player import PairPublisher, pair_messages

LEFT_FRAME = "stereo_left_optical_frame"
FAST = {"smoothing": False, "tracking": False, "diagnostics_period_s": 0.5}
#: (base render, render mirrored into a left hand) of seed 5's source pairs whose hands do
#: not overlap in either view and are on different rows (the pipeline meshes both: checked in
#: the fixture).
COMPOSITES = ((3, 4), (9, 3), (0, 3))
#: The largest mean joint error of a published hand, metres (the renders give 6-15 mm).
MAX_ERROR_M = 0.04


@pytest.fixture(scope="module")
def renders() -> dict[int, StereoSample]:
    li, ri = STB_BUMBLEBEE2.camera_infos()
    wanted = sorted({k for pair in COMPOSITES for k in pair})
    settings = SynthSettings(domain="source")
    out = {}
    for k in wanted:
        (pair,) = iter_synthetic_pairs(settings, 1, seed=5, start=k)
        out[k] = as_stereo_sample(pair, k, li, ri)
    return out


@pytest.fixture(scope="module")
def composites(renders) -> list[TwoHands]:
    return [two_hands(renders[a], renders[b]) for a, b in COMPOSITES]


@pytest.fixture(scope="module")
def pipeline():
    from stereo_hand_mesh.pipeline.factory import create_pipeline

    return create_pipeline(PipelineSettings(smoothing=False, tracking=False), "onnxruntime")


def test_the_composed_pairs_hold_two_hands_the_pipeline_meshes(composites, pipeline):
    """Precondition of the node tests: on each composed pair the pipeline (ROS-free) meshes
    one right and one left hand, each near its truth."""
    pipe = pipeline.pipeline
    for k, pair in enumerate(composites):
        rig = StereoRig.from_camera_info(pair.sample.left_info, pair.sample.right_info)
        est = pipe.process_hands(pair.sample.left, pair.sample.right, rig)
        assert sorted(h.handedness for h in est.hands) == ["left", "right"], (k, est.summary())
        for side in SIDES:
            hand = est.side(side)
            err = np.linalg.norm(hand.joints - pair.truth[side], axis=1).mean()
            assert err < MAX_ERROR_M, f"composite {k}: {side} hand {err * 1e3:.1f} mm off"


def test_the_overlay_draws_each_hand_in_its_sides_colours(composites, pipeline):
    from stereo_hand_mesh.pipeline.overlay import OVERLAY_COLOURS, draw_overlay

    pair = composites[0]
    rig = StereoRig.from_camera_info(pair.sample.left_info, pair.sample.right_info)
    est = pipeline.pipeline.process_hands(pair.sample.left, pair.sample.right, rig)
    image = draw_overlay(pair.sample.left, rig, est)
    assert image.shape == pair.sample.left.shape and image is not pair.sample.left
    for side in SIDES:
        hand = est.side(side)
        uv = rig.project_left(hand.joints)
        x0, y0 = np.floor(uv.min(axis=0)).astype(int) - 5
        x1, y1 = np.ceil(uv.max(axis=0)).astype(int) + 5
        for name, colour in zip(("bones", "joints"), OVERLAY_COLOURS[side], strict=True):
            here = (image[max(y0, 0) : y1, max(x0, 0) : x1] == colour).all(axis=-1).sum()
            assert here >= 20, f"{side} hand's {name} colour {colour}: {here} pixels near it"
        other = OVERLAY_COLOURS["left" if side == "right" else "right"][1]
        inside = (image[max(y0, 0) : y1, max(x0, 0) : x1] == other).all(axis=-1).sum()
        assert inside < 20, f"the other side's joint colour near the {side} hand"
    # A single-hand estimate (what `infer` draws) still works.
    single = draw_overlay(pair.sample.left, rig, est.primary)
    assert (single != pair.sample.left).any()


# --- the node --------------------------------------------------------------------------


@pytest.fixture
def peer(ros_context):
    p = Peer(ros_context)
    for side in SIDES:
        p.subscribe(PoseArray, f"hand/{side}/joints")
        p.subscribe(PointCloud2, f"hand/{side}/vertices")
        p.subscribe(MarkerArray, f"hand/{side}/markers")
    p.subscribe(Image, "hand/overlay")
    p.subscribe(TFMessage, "/tf")
    p.subscribe(DiagnosticArray, "/diagnostics")
    yield p
    p.close()


def _connect(peer: Peer, pub: PairPublisher, node: NodeProcess) -> None:
    ok = peer.spin_until(
        lambda: (
            pub.subscribers() > 0
            and all(peer.node.count_publishers(f"hand/{s}/markers") > 0 for s in SIDES)
        ),
        30.0,
    )
    assert ok, f"hand_mesh_node did not connect; its log:\n{node.log()}"
    peer.spin_for(0.3)


def _by_stamp(peer: Peer, topic: str) -> dict[int, object]:
    return {stamp_key(m.header): m for m in peer.messages[topic]}


def _tf_of(peer: Peer, stamp: int) -> list[TFMessage]:
    return [
        m for m in peer.messages["/tf"] if any(stamp_key(t.header) == stamp for t in m.transforms)
    ]


def _markers_at(peer: Peer, side: str, stamp: int, action: int) -> list[Marker]:
    return [
        mk
        for m in peer.messages[f"hand/{side}/markers"]
        for mk in m.markers
        if mk.action == action and stamp_key(mk.header) == stamp
    ]


def _status(peer: Peer) -> dict[str, str]:
    diags = peer.messages["/diagnostics"]
    return {kv.key: kv.value for kv in diags[-1].status[0].values} if diags else {}


def test_two_hands_each_side_on_its_topics_and_one_tf_message(tmp_path, peer, composites):
    """Both sides' joints, vertices and markers per pair, each near its own hand's truth;
    one /tf message per pair with the right hand's 22 frames then the left hand's, equal to
    that side's PoseArray; markers in each side's namespaces and colours; diagnostics with
    the pair's summary; the overlay image."""
    node = NodeProcess(
        "hand_mesh_node",
        tmp_path / "node.log",
        {**FAST, "publish_overlay": True, "markers_max_rate_hz": 0.0},
    )
    try:
        pub = PairPublisher(peer.node)
        _connect(peer, pub, node)
        t0 = peer.node.get_clock().now().nanoseconds
        stamps = [t0 + i * 100_000_000 for i in range(len(composites))]
        for stamp, pair in zip(stamps, composites, strict=True):
            pub.publish(pair_messages(pair.sample, stamp))
            peer.spin_for(0.3)
        assert peer.spin_until(
            lambda: all(len(_by_stamp(peer, f"hand/{s}/joints")) >= len(stamps) for s in SIDES),
            15,
        ), node.log()
        peer.spin_for(0.3)

        for stamp, pair in zip(stamps, composites, strict=True):
            (tf,) = _tf_of(peer, stamp)  # both hands in one message
            children = [t.child_frame_id for t in tf.transforms]
            assert children == joint_frame_names("hand_", "right") + joint_frame_names(
                "hand_", "left"
            )
            assert children[0] == "hand_right_wrist" and children[22] == "hand_left_wrist"
            assert {t.header.frame_id for t in tf.transforms} == {LEFT_FRAME}
            tf_xyz = np.array(
                [[t.transform.translation.x, t.transform.translation.y,
                  t.transform.translation.z] for t in tf.transforms]
            )  # fmt: skip
            for k, side in enumerate(SIDES):
                joints = joints_of(_by_stamp(peer, f"hand/{side}/joints")[stamp])
                err = np.linalg.norm(joints - pair.truth[side], axis=1).mean()
                assert err < MAX_ERROR_M, f"{side} hand {err * 1e3:.1f} mm off its truth"
                assert np.allclose(tf_xyz[22 * k : 22 * k + 21], joints, atol=1e-9), side
                cloud = _by_stamp(peer, f"hand/{side}/vertices")[stamp]
                assert [f.name for f in cloud.fields] == ["x", "y", "z", "confidence"]
                assert cloud.header.frame_id == LEFT_FRAME
                (markers,) = [
                    m
                    for m in peer.messages[f"hand/{side}/markers"]
                    if stamp_key(m.markers[0].header) == stamp
                ]
                assert [m.ns for m in markers.markers] == [
                    f"{side}_mesh", f"{side}_joints", f"{side}_skeleton"
                ]  # fmt: skip
                assert markers.markers[0].type == Marker.TRIANGLE_LIST
            # The two hands are apart (not one hand published twice).
            right = joints_of(_by_stamp(peer, "hand/right/joints")[stamp])
            left = joints_of(_by_stamp(peer, "hand/left/joints")[stamp])
            assert np.linalg.norm(right.mean(0) - left.mean(0)) > 0.1
        colours = {
            side: peer.messages[f"hand/{side}/markers"][-1].markers[1].color for side in SIDES
        }
        assert (colours["right"].r, colours["right"].b) != (colours["left"].r, colours["left"].b)
        assert peer.messages["hand/overlay"], "no overlay"
        assert peer.spin_until(lambda: _status(peer).get("hands_meshed") == "2", 5), _status(peer)
        summary = _status(peer)["last_pair"]
        assert "right #" in summary and "left #" in summary, summary
        assert node.alive()
    finally:
        assert node.stop() == 0, node.log()


def test_a_side_that_disappears_deletes_its_markers_only(tmp_path, peer, composites):
    """Two hands, then the right hand alone: a DELETEALL on hand/left/markers with that
    pair's stamp while the right side's markers are sent again (no DELETEALL there), and
    that pair's /tf carries only the right hand's frames. Then a pair without a hand: a
    DELETEALL on the right side, none again on the left (nothing shown there)."""
    node = NodeProcess("hand_mesh_node", tmp_path / "node.log", FAST)
    pair = composites[0]
    try:
        pub = PairPublisher(peer.node)
        _connect(peer, pub, node)
        both = peer.node.get_clock().now().nanoseconds
        pub.publish(pair_messages(pair.sample, both))
        assert peer.spin_until(
            lambda: all(_markers_at(peer, s, both, Marker.ADD) for s in SIDES), 10
        ), node.log()

        right_only = both + 100_000_000
        pub.publish(pair_messages(pair.right_only, right_only))
        assert peer.spin_until(
            lambda: _markers_at(peer, "left", right_only, Marker.DELETEALL), 10
        ), node.log()
        assert peer.spin_until(lambda: _markers_at(peer, "right", right_only, Marker.ADD), 5)
        peer.spin_for(0.3)
        assert not _markers_at(peer, "right", right_only, Marker.DELETEALL)
        (deleted,) = _markers_at(peer, "left", right_only, Marker.DELETEALL)
        assert deleted.header.frame_id == LEFT_FRAME
        assert right_only in _by_stamp(peer, "hand/right/joints")
        assert right_only not in _by_stamp(peer, "hand/left/joints")
        (tf,) = _tf_of(peer, right_only)
        assert [t.child_frame_id for t in tf.transforms] == joint_frame_names("hand_", "right")

        empty = right_only + 100_000_000
        grey = np.full_like(pair.sample.left, 128)
        no_hand = StereoSample(grey, grey.copy(), pair.sample.left_info, pair.sample.right_info, 0)
        pub.publish(pair_messages(no_hand, empty))
        assert peer.spin_until(lambda: _markers_at(peer, "right", empty, Marker.DELETEALL), 10)
        peer.spin_for(0.5)
        assert not _markers_at(peer, "left", empty, Marker.DELETEALL)
        assert not _tf_of(peer, empty)
        assert node.alive()
    finally:
        assert node.stop() == 0, node.log()


def test_handedness_restricts_to_one_side(tmp_path, peer, composites):
    """``handedness: right``: of two hands only the right one is published (nothing on the
    left topics, right frames only), the left one is dropped with the reason in the log and
    the diagnostics. Set live to ``left``: from the next pair only the left hand."""
    node = NodeProcess("hand_mesh_node", tmp_path / "node.log", {**FAST, "handedness": "right"})
    pair = composites[0]
    try:
        pub = PairPublisher(peer.node)
        _connect(peer, pub, node)
        first = peer.node.get_clock().now().nanoseconds
        pub.publish(pair_messages(pair.sample, first))
        assert peer.spin_until(lambda: first in _by_stamp(peer, "hand/right/joints"), 10), (
            node.log()
        )
        peer.spin_for(0.5)
        assert not peer.messages["hand/left/joints"] and not peer.messages["hand/left/markers"]
        (tf,) = _tf_of(peer, first)
        assert [t.child_frame_id for t in tf.transforms] == joint_frame_names("hand_", "right")
        joints = joints_of(_by_stamp(peer, "hand/right/joints")[first])
        assert np.linalg.norm(joints - pair.truth["right"], axis=1).mean() < MAX_ERROR_M
        assert peer.spin_until(lambda: "handedness is right" in node.log(), 5), node.log()
        assert "dropped" in node.log()
        assert peer.spin_until(
            lambda: "handedness is right" in _status(peer).get("last_pair", ""), 5
        ), _status(peer)
        assert _status(peer)["hands_meshed"] == "1"

        done = peer.set_parameters("/hand_mesh_node", {"handedness": "left"})
        assert done is not None and done[0].successful, done
        refused = peer.set_parameters("/hand_mesh_node", {"handedness": "both"})
        assert refused is not None and not refused[0].successful
        assert "handedness" in refused[0].reason
        second = first + 100_000_000
        pub.publish(pair_messages(pair.sample, second))
        assert peer.spin_until(lambda: second in _by_stamp(peer, "hand/left/joints"), 10), (
            node.log()
        )
        peer.spin_for(0.3)
        assert second not in _by_stamp(peer, "hand/right/joints")
        (tf,) = _tf_of(peer, second)
        assert [t.child_frame_id for t in tf.transforms] == joint_frame_names("hand_", "left")
        joints = joints_of(_by_stamp(peer, "hand/left/joints")[second])
        assert np.linalg.norm(joints - pair.truth["left"], axis=1).mean() < MAX_ERROR_M
        # The right side's markers, shown before, are deleted with this pair.
        assert _markers_at(peer, "right", second, Marker.DELETEALL)
        assert node.alive()
    finally:
        assert node.stop() == 0, node.log()
