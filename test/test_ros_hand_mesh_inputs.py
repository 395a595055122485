"""hand_mesh_node's inputs as drivers publish them: QoS overrides, compressed images, corrupt
data. A real node process over real DDS, fed by a real rclpy peer."""

from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseArray
from node_process import NodeProcess, Peer, joints_of, stamp_key

from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2
from stereo_hand_mesh.data.sample import StereoSample
from stereo_hand_mesh.data.synth import SynthSettings, as_stereo_sample, iter_synthetic_pairs
from stereo_hand_mesh.ros.player import PairPublisher, compressed_pair_messages

FAST = {"smoothing": False, "tracking": False, "diagnostics_period_s": 0.3}
BEST_EFFORT = {
    f"qos_overrides./{topic}.subscription.reliability": "best_effort"
    for topic in (
        "left/image_rect/compressed",
        "left/camera_info",
        "right/image_rect/compressed",
        "right/camera_info",
    )
}


@pytest.fixture(scope="module")
def sample() -> StereoSample:
    li, ri = STB_BUMBLEBEE2.camera_infos()
    pair = next(iter_synthetic_pairs(SynthSettings(domain="source"), 1, seed=5))
    return as_stereo_sample(pair, 0, li, ri)


@pytest.fixture
def peer(ros_context):
    p = Peer(ros_context)
    p.subscribe(PoseArray, "hand/right/joints")
    p.subscribe(DiagnosticArray, "/diagnostics")
    yield p
    p.close()


def _status(peer: Peer) -> dict[str, str]:
    msgs = peer.messages["/diagnostics"]
    return {kv.key: kv.value for kv in msgs[-1].status[0].values} if msgs else {}


def _publish_until(peer: Peer, pub: PairPublisher, pair, done, timeout_s: float = 20.0) -> bool:
    """Publish ``pair`` every 2 s until ``done()`` (best effort may lose a message)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pub.publish(pair)
        if peer.spin_until(done, 2.0):
            return True
    return False


def test_compressed_input_over_best_effort_override_and_a_corrupt_jpeg(tmp_path, peer, sample):
    """With ``image_transport: compressed`` and the reliability overridden to best effort, a
    best-effort publisher of JPEG pairs (which the default, reliable, subscription would not
    match) gets joints; a truncated JPEG is one skipped pair with its reason in
    /diagnostics; the next pair is served again."""
    # The side is fixed (this test is about the input, not the side); a best-effort message
    # may be lost, so each pair is sent again (same stamp) until its answer comes.
    params = {**FAST, **BEST_EFFORT, "image_transport": "compressed", "handedness": "right"}
    node = NodeProcess("hand_mesh_node", tmp_path / "node.log", params)
    try:
        pub = PairPublisher(peer.node, reliable=False, transport="compressed")
        ok = peer.spin_until(
            lambda: pub.subscribers() > 0 and peer.node.count_publishers("hand/right/joints") > 0,
            30,
        )
        assert ok, node.log()
        peer.spin_for(0.3)
        stamp = peer.node.get_clock().now().nanoseconds
        good = compressed_pair_messages(sample, stamp)
        assert _publish_until(
            peer, pub, good, lambda: len(peer.messages["hand/right/joints"]) >= 1
        ), node.log()
        msg = peer.messages["hand/right/joints"][0]
        assert stamp_key(msg.header) == stamp
        error_m = np.linalg.norm(joints_of(msg) - sample.joints, axis=1).mean()
        assert error_m < 0.05, f"mean joint error {error_m * 1e3:.1f} mm from JPEG input"

        bad = compressed_pair_messages(sample, stamp + 100_000_000)
        bad.left.data = bytes(bad.left.data)[: len(bad.left.data) // 2]  # cut off mid-scan
        assert _publish_until(
            peer, pub, bad, lambda: int(_status(peer).get("input_errors", "0")) >= 1
        ), node.log()
        status = _status(peer)
        assert "JPEG" in status["last_error"] and "truncated" in status["last_error"], status
        assert "joints" not in status["last_result"]

        png = compressed_pair_messages(sample, stamp + 200_000_000, codec="png")
        assert _publish_until(
            peer,
            pub,
            png,
            lambda: (
                stamp + 200_000_000
                in {stamp_key(m.header) for m in peer.messages["hand/right/joints"]}
            ),
        ), node.log()
        stamps = [stamp_key(m.header) for m in peer.messages["hand/right/joints"]]
        # The corrupt pair gave nothing (a pair sent again may be answered twice).
        assert sorted(set(stamps)) == [stamp, stamp + 200_000_000]
        assert "pair skipped" in node.log()
    finally:
        assert node.stop() == 0, node.log()


def test_reliable_default_refuses_best_effort_publisher_with_a_plain_warning(tmp_path, peer):
    """Without an override the inputs are reliable: a best-effort publisher cannot match,
    and the node says which override fixes it (the default really is reliable)."""
    node = NodeProcess("hand_mesh_node", tmp_path / "node.log", FAST)
    try:
        pub = PairPublisher(peer.node, reliable=False)
        assert peer.spin_until(lambda: "subscription.reliability: best_effort" in node.log(), 30)
        assert pub.subscribers() == 0  # incompatible QoS: not matched
    finally:
        assert node.stop() == 0, node.log()
