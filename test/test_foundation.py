"""Foundation: the environment, the package files and the ROS compatibility layer."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import REPO, start_python

from stereo_hand_mesh.errors import EncodingError
from stereo_hand_mesh.ros.image_conversion import (
    SUPPORTED_ENCODINGS,
    array_to_image_msg,
    image_msg_to_array,
    image_msg_to_rgb8,
    rgb8_to_encoding,
)
from stereo_hand_mesh.ros.sync import SyncSettings, make_synchronizer
from stereo_hand_mesh.ros.tf_broadcast import TfBroadcaster


def test_ros_environment_is_local_and_unique(ros_context):
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    domain = int(os.environ["ROS_DOMAIN_ID"])
    assert 10 <= domain < 100
    assert ros_context.get_domain_id() == domain


def test_ros_messages_import_in_venv():
    code = "import rclpy, tf2_msgs.msg, sensor_msgs.msg, visualization_msgs.msg; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_package_xml_names_every_ros_dependency():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    deps = {e.text for e in root if e.tag.endswith("depend")}
    needed = {
        "rclpy", "sensor_msgs", "geometry_msgs", "visualization_msgs", "std_srvs",
        "diagnostic_msgs", "tf2_ros", "tf2_msgs", "message_filters", "cv_bridge",
        "python3-numpy", "python3-opencv",
    }  # fmt: skip
    assert needed <= deps, needed - deps
    assert root.find("export/build_type").text == "ament_python"


def test_console_script_installed_and_honest():
    exe = os.path.join(os.path.dirname(sys.executable), "stereo-hand-mesh")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "synth" in out.stdout


# ---------------------------------------------------------------- image conversion


@pytest.mark.parametrize("encoding", sorted(SUPPORTED_ENCODINGS))
def test_image_round_trip_every_encoding(encoding):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    native = rgb8_to_encoding(rgb, encoding)
    msg = array_to_image_msg(native, encoding)
    assert np.array_equal(image_msg_to_array(msg), native)
    back = image_msg_to_rgb8(msg)
    assert back.shape == (7, 5, 3) and back.dtype == np.uint8
    if encoding in ("rgb8", "bgr8", "rgba8", "bgra8"):
        assert np.array_equal(back, rgb)
    else:  # grey: all three channels equal the luma
        assert np.array_equal(back[..., 0], back[..., 2])


def test_image_with_row_padding_and_big_endian_mono16():
    from sensor_msgs.msg import Image

    values = (np.arange(12).reshape(3, 4) * 300).astype(">u2")
    padded = np.zeros((3, 10), np.uint8)
    padded[:, :8] = values.view(np.uint8).reshape(3, 8)
    msg = Image(height=3, width=4, encoding="mono16", is_bigendian=1, step=10)
    msg.data = padded.tobytes()
    assert np.array_equal(image_msg_to_array(msg), values.astype(np.uint16))


@pytest.mark.parametrize(
    ("encoding", "height", "width", "nbytes", "needle"),
    [
        ("32FC1", 2, 2, 16, "32FC1"),
        ("bayer_rggb8", 2, 2, 4, "bayer_rggb8"),
        ("rgb8", 0, 0, 0, "positive size"),
        ("rgb8", 4, 4, 10, "bytes"),
    ],
)
def test_bad_images_give_clear_errors(encoding, height, width, nbytes, needle):
    from sensor_msgs.msg import Image

    msg = Image(height=height, width=width, encoding=encoding, step=width * 3)
    msg.data = bytes(nbytes)
    with pytest.raises(EncodingError, match=needle):
        image_msg_to_rgb8(msg)


# ---------------------------------------------------------------- synchronizer


def _image(stamp_s: float, frame: str):
    from sensor_msgs.msg import Image

    msg = Image(height=1, width=1, encoding="mono8", step=1)
    msg.data = b"\x00"
    msg.header.frame_id = frame
    msg.header.stamp.sec = int(stamp_s)
    msg.header.stamp.nanosec = round((stamp_s - int(stamp_s)) * 1e9)
    return msg


@pytest.mark.parametrize("approximate", [True, False])
def test_fallback_synchronizer_over_dds(make_node, spin_until, approximate):
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image

    qos = QoSProfile(depth=50)
    pub_node, sub_node = make_node("sync_pub"), make_node("sync_sub")
    pairs: list[tuple[float, float]] = []

    def on_pair(left, right):
        to_s = lambda m: m.header.stamp.sec + m.header.stamp.nanosec * 1e-9  # noqa: E731
        pairs.append((round(to_s(left), 3), round(to_s(right), 3)))

    sync = make_synchronizer(
        sub_node,
        [(Image, "left/image_rect"), (Image, "right/image_rect")],
        on_pair,
        SyncSettings(queue_size=10, approximate=approximate, slop_s=0.01),
        qos,
        prefer_native=False,
    )
    assert sync.backend == "fallback"
    pub_l = pub_node.create_publisher(Image, "left/image_rect", qos)
    pub_r = pub_node.create_publisher(Image, "right/image_rect", qos)
    assert spin_until(
        [pub_node, sub_node],
        lambda: pub_l.get_subscription_count() and pub_r.get_subscription_count(),
    )
    # Even frames: right 3 ms after left (approximate match) or equal (exact); odd frames:
    # right 50 ms late, outside the slop, never paired.
    expected = []
    for k in range(10):
        t = 100.0 + 0.1 * k
        offset = (0.0 if not approximate else 0.003) if k % 2 == 0 else 0.05
        pub_l.publish(_image(t, "left"))
        pub_r.publish(_image(t + offset, "right"))
        if k % 2 == 0:
            expected.append((round(t, 3), round(t + offset, 3)))
    spin_until([pub_node, sub_node], lambda: len(pairs) >= len(expected), timeout_s=5.0)
    spin_until([pub_node, sub_node], lambda: False, timeout_s=0.3)  # nothing extra arrives
    assert pairs == expected
    assert sync.dropped >= 5


# ---------------------------------------------------------------- tf broadcaster


def test_fallback_tf_broadcaster_reaches_another_process(make_node, spin_until):
    from rclpy.qos import QoSProfile
    from tf2_msgs.msg import TFMessage

    node = make_node("tf_listener")
    got: list = []
    node.create_subscription(TFMessage, "/tf", got.append, QoSProfile(depth=100))
    child = start_python(
        """
        import time, rclpy
        from geometry_msgs.msg import TransformStamped
        from stereo_hand_mesh.ros.tf_broadcast import make_tf_broadcaster
        rclpy.init()
        node = rclpy.create_node("tf_talker")
        br = make_tf_broadcaster(node, prefer_native=False)
        assert br.backend == "fallback"
        for _ in range(100):
            t = TransformStamped()
            t.header.frame_id = "stereo_left_optical_frame"
            t.child_frame_id = "hand_index_tip"
            t.transform.translation.x = 0.125
            t.transform.rotation.w = 1.0
            br.sendTransform([t])
            time.sleep(0.1)
        """
    )
    try:
        assert spin_until([node], lambda: bool(got), timeout_s=15.0), child.stderr.read()
    finally:
        child.kill()
        child.wait()
    tf = got[0].transforms[0]
    assert tf.child_frame_id == "hand_index_tip"
    assert tf.header.frame_id == "stereo_left_optical_frame"
    assert tf.transform.translation.x == pytest.approx(0.125)


def test_in_process_tf_broadcaster_publishes_on_tf(make_node):
    node = make_node("tf_pub")
    br = TfBroadcaster(node)
    assert node.get_publisher_names_and_types_by_node("tf_pub", "/") is not None
    assert any(name == "/tf" for name, _ in node.get_topic_names_and_types())
    br.sendTransform([])


# ---------------------------------------------------------------- network: loopback only

_RTPS = b"RTPS"


def _sniff(stop: threading.Event, seen: dict[str, int]) -> None:
    ETH_P_ALL = 0x0003
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.settimeout(0.2)
    try:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            ifname = addr[0]
            if len(data) < 14 + 20 + 8 or struct.unpack("!H", data[12:14])[0] != 0x0800:
                continue  # not IPv4 over Ethernet framing
            ihl = (data[14] & 0x0F) * 4
            if data[23] != 17:  # not UDP
                continue
            payload = data[14 + ihl + 8 :]
            if payload.startswith(_RTPS):
                key = "lo" if ifname == "lo" else "other"
                seen[key] = seen.get(key, 0) + 1
                if key == "other":
                    seen.setdefault("other_ifaces", set()).add(ifname)
    finally:
        sock.close()


def test_dds_traffic_stays_on_loopback():
    """Capture every interface while two ROS processes discover each other and talk."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)).close()
    except PermissionError:
        pytest.skip("raw packet capture needs CAP_NET_RAW (CI runs as root)")
    stop, seen = threading.Event(), {}
    sniffer = threading.Thread(target=_sniff, args=(stop, seen), daemon=True)
    sniffer.start()
    code = """
        import time, rclpy
        from std_msgs.msg import String
        rclpy.init()
        node = rclpy.create_node("net_probe")
        pub = node.create_publisher(String, "net_probe", 10)
        node.create_subscription(String, "net_probe", lambda m: None, 10)
        end = time.time() + 3.0
        while time.time() < end:
            pub.publish(String(data="x" * 64))
            rclpy.spin_once(node, timeout_sec=0.05)
        """
    procs = [start_python(code), start_python(code)]
    for p in procs:
        p.wait(timeout=30)
    time.sleep(0.3)
    stop.set()
    sniffer.join()
    assert seen.get("lo", 0) > 0, "sniffer saw no RTPS on loopback: capture is broken"
    assert seen.get("other", 0) == 0, f"RTPS left loopback on {seen.get('other_ifaces')}"


def test_numpy_layers_do_not_import_torch():
    """The ONNX Runtime / TensorRT path must not pay for torch (DESIGN.md)."""
    code = (
        "import sys; import stereo_hand_mesh.geometry, stereo_hand_mesh.data, "
        "stereo_hand_mesh.hand, stereo_hand_mesh.train.metrics, "
        "stereo_hand_mesh.ros.image_conversion, stereo_hand_mesh.ros.sync; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
