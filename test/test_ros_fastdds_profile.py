"""The Fast DDS profile a node process loads by itself (config/fastdds_udp_inputs.xml): when
it is chosen, when the user's choice wins, and that Fast DDS accepts it and delivers images
through it from a publisher with other transports."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import start_python
from sensor_msgs.msg import Image

from stereo_hand_mesh.ros.fastdds_profile import (
    NODE_PROFILE,
    PROFILE_ENV_VARS,
    RECEIVE_BUFFER_BYTES,
    node_profile_path,
    receive_buffer_note,
    use_node_profile,
)

REPO = Path(__file__).resolve().parents[1]
NS = {"dds": "http://www.eprosima.com"}


def test_the_profile_is_the_checkouts_file():
    assert node_profile_path() == REPO / "config" / NODE_PROFILE
    assert node_profile_path().is_file()


def test_the_profiles_readers_announce_udp_only_with_a_large_receive_buffer():
    root = ET.parse(node_profile_path()).getroot()
    participants = root.findall("dds:profiles/dds:participant", NS)
    assert len(participants) == 1
    assert participants[0].get("is_default_profile") == "true"
    locators = participants[0].findall("dds:rtps/dds:defaultUnicastLocatorList/dds:locator", NS)
    kinds = [child.tag.split("}")[1] for loc in locators for child in loc]
    assert kinds == ["udpv4"], f"data locators expected UDPv4 only; got {kinds}"
    descriptors = root.findall(".//dds:transport_descriptors/dds:transport_descriptor", NS)
    transports = {d.findtext("dds:transport_id", namespaces=NS): d for d in descriptors}
    used = [
        t.text for t in participants[0].findall("dds:rtps/dds:userTransports/dds:transport_id", NS)
    ]
    assert set(used) <= set(transports), f"undeclared transports in {used}"
    udp = [t for t in used if transports[t].findtext("dds:type", namespaces=NS) == "UDPv4"]
    assert len(udp) == 1
    buffer = transports[udp[0]].findtext("dds:receiveBufferSize", namespaces=NS)
    assert int(buffer) == RECEIVE_BUFFER_BYTES >= 4 * 1024 * 1024


def test_use_node_profile_sets_the_variable_of_the_distributions_fastdds(tmp_path):
    path = str(node_profile_path())
    env: dict[str, str] = {"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp", "ROS_DISTRO": "kilted"}
    assert use_node_profile(env, cwd=tmp_path) == node_profile_path()
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == path
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in env  # deprecated there: a warning each start
    env = {"ROS_DISTRO": "jazzy"}  # Fast DDS 2: the older name
    assert use_node_profile(env, cwd=tmp_path) == node_profile_path()
    assert all(env[name] == path for name in PROFILE_ENV_VARS)
    assert use_node_profile({}, cwd=tmp_path) == node_profile_path()  # the default RMW


@pytest.mark.parametrize(
    "env",
    [
        {"FASTDDS_DEFAULT_PROFILES_FILE": "/users/own.xml"},
        {"FASTRTPS_DEFAULT_PROFILES_FILE": "/users/own.xml"},
        {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"},
    ],
)
def test_use_node_profile_leaves_the_users_choice(tmp_path, env):
    before = dict(env)
    assert use_node_profile(env, cwd=tmp_path) is None
    assert env == before


def test_a_default_profiles_file_in_the_working_directory_wins_unless_fastdds_skips_it(tmp_path):
    (tmp_path / "DEFAULT_FASTDDS_PROFILES.xml").write_text("<dds/>")
    assert use_node_profile({}, cwd=tmp_path) is None
    assert use_node_profile({"SKIP_DEFAULT_XML_FILE": "1"}, cwd=tmp_path) == node_profile_path()


def test_receive_buffer_note_only_when_the_kernel_caps_the_buffer(tmp_path):
    rmem_max = tmp_path / "rmem_max"
    rmem_max.write_text("212992\n")
    note = receive_buffer_note(rmem_max)
    assert note is not None and "212992" in note and "sysctl" in note
    rmem_max.write_text(f"{RECEIVE_BUFFER_BYTES}\n")
    assert receive_buffer_note(rmem_max) is None
    assert receive_buffer_note(tmp_path / "absent") is None


_SUBSCRIBER = """
    import sys, time, rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node("profile_subscriber")
    got = []
    node.create_subscription(
        Image, "profile_images", lambda m: got.append(len(m.data)),
        QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while len(got) < 3 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    print("received", len(got), sorted(set(got)), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
"""


def test_fastdds_loads_the_profile_and_whole_images_arrive(make_node, spin_until):
    """A subscriber process on the profile gets 640x480 rgb8 images from a publisher on this
    run's other profile (shared memory), and Fast DDS reports no error about the XML."""
    env_before = {name: os.environ.get(name) for name in PROFILE_ENV_VARS}
    for name in PROFILE_ENV_VARS:
        os.environ[name] = str(node_profile_path())
    try:
        child = start_python(_SUBSCRIBER)
    finally:
        for name, value in env_before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        node = make_node("profile_publisher")
        pub = node.create_publisher(
            Image, "profile_images", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )
        assert spin_until([node], lambda: pub.get_subscription_count() > 0, 30.0)
        data = np.random.default_rng(0).integers(0, 255, 640 * 480 * 3, dtype=np.uint8)
        msg = Image(height=480, width=640, encoding="rgb8", step=1920, data=data.tobytes())
        for _ in range(5):
            pub.publish(msg)
            spin_until([node], lambda: False, 0.1)
        out, err = child.communicate(timeout=40)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert "received 3 [921600]" in out, f"stdout: {out!r}; stderr: {err[-2000:]!r}"
    assert "XMLPARSER" not in err and "Error" not in err, err[-2000:]
