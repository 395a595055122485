"""Driver presets: every preset remaps the node's four inputs onto its driver's topics, as
rclpy itself resolves the names, for raw and compressed images."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.ros.driver_presets import (
    PRESETS,
    preset_config_text,
    preset_named,
    preset_remappings,
    ros_remap_args,
)
from stereo_hand_mesh.ros.hand_mesh_parameters import HAND_MESH_PARAMETERS
from stereo_hand_mesh.ros.sync import stereo_topics

REPO = Path(__file__).resolve().parents[1]

#: The driver topics each preset must reach (written out here, not derived from the presets).
EXPECTED = {
    "zed": (
        "/zed/zed_node/left/image_rect_color",
        "/zed/zed_node/left/camera_info",
        "/zed/zed_node/right/image_rect_color",
        "/zed/zed_node/right/camera_info",
    ),
    "realsense_ir": (
        "/camera/camera/infra1/image_rect_raw",
        "/camera/camera/infra1/camera_info",
        "/camera/camera/infra2/image_rect_raw",
        "/camera/camera/infra2/camera_info",
    ),
    "realsense_color": (
        "/camera/camera/infra1/image_rect_raw",
        "/camera/camera/infra1/camera_info",
        "/camera/camera/infra2/image_rect_raw",
        "/camera/camera/infra2/camera_info",
    ),
    "stereo_image_proc": (
        "/stereo/left/image_rect_color",
        "/stereo/left/camera_info",
        "/stereo/right/image_rect_color",
        "/stereo/right/camera_info",
    ),
    "stereo_raw": (
        "/stereo/left/image_raw",
        "/stereo/left/camera_info",
        "/stereo/right/image_raw",
        "/stereo/right/camera_info",
    ),
}


def test_the_presets_are_the_expected_ones():
    assert set(PRESETS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_preset_remaps_the_four_inputs_as_rclpy_resolves_them(ros_context, name, transport):
    """A real rclpy node started with the preset's ``-r`` arguments resolves each of the
    four input names the node subscribes to the driver's topic (images: ``/compressed``)."""
    preset = preset_named(name)
    suffix = "image_raw" if preset.rectify else "image_rect"
    inputs = stereo_topics(suffix, transport)
    remaps = preset_remappings(preset, transport=transport)
    assert [source for source, _ in remaps] == list(inputs)
    expected = list(EXPECTED[name])
    if transport == "compressed":
        expected[0] += "/compressed"
        expected[2] += "/compressed"
    from rclpy.node import Node

    node = Node(
        f"preset_{name}_{transport}",
        context=ros_context,
        cli_args=["--ros-args", *ros_remap_args(preset, transport=transport)],
    )
    try:
        resolved = [node.resolve_topic_name(t) for t in inputs]
        # An input the preset forgot resolves to /<input>: the check fails on it.
        assert resolved == expected, resolved
        assert len(set(resolved)) == 4
    finally:
        node.destroy_node()


def test_camera_namespace_replaces_the_presets():
    remaps = dict(preset_remappings(PRESETS["realsense_ir"], camera="/camera/"))
    assert remaps["left/image_rect"] == "/camera/infra1/image_rect_raw"
    assert remaps["right/camera_info"] == "/camera/infra2/camera_info"


def test_unknown_preset_and_transport_are_refused():
    with pytest.raises(ConfigError, match=r"preset expected one of .*'zed'.*got 'zedd'"):
        preset_named("zedd")
    with pytest.raises(ConfigError, match="transport expected one of"):
        preset_remappings(PRESETS["zed"], transport="theora")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_config_files_are_generated_and_declared(name):
    path = REPO / "config" / "presets" / f"{name}.yaml"
    text = path.read_text()
    assert text == preset_config_text(PRESETS[name]), f"{path} is stale: tools/write_configs.py"
    params = yaml.safe_load(text)["hand_mesh_node"]["ros__parameters"]
    declared = {s.name for s in HAND_MESH_PARAMETERS}
    assert set(params) <= declared
    assert params.get("rectify", False) == PRESETS[name].rectify
    assert f"preset:={name}" in text
    for target in EXPECTED[name]:
        assert f":={target}" in text


def test_readme_shows_the_one_line_launch_of_every_preset():
    readme = (REPO / "README.md").read_text()
    for name in EXPECTED:
        assert f"ros2 launch stereo_hand_mesh hand_mesh.launch.py preset:={name}" in readme, name
