"""Driver presets: the remappings and parameters that plug ``hand_mesh_node`` into a stereo
camera driver as it comes.

Each :class:`DriverPreset` names where a driver publishes the four inputs (under a camera
namespace the user may change) and the node parameters it needs (``rectify: true`` for raw
views). :func:`preset_remappings` turns a preset into ``(node input, driver topic)`` pairs:
``launch/hand_mesh.launch.py preset:=<name>`` passes them to the node, and
:func:`ros_remap_args` gives the same as ``--ros-args -r`` arguments for ``ros2 run``.
``config/presets/<name>.yaml`` (written by ``tools/write_configs.py``) carries each preset's
parameters and, in its header, its remappings and its one-line launch.

Free of the launch packages (not installable from PyPI): the launch file imports this module,
and the tests check every preset against rclpy's own name resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.ros.sync import IMAGE_TRANSPORTS, stereo_topics

__all__ = [
    "PRESETS",
    "DriverPreset",
    "preset_config_text",
    "preset_named",
    "preset_remappings",
    "ros_remap_args",
]


@dataclass(frozen=True)
class DriverPreset:
    """Where one driver publishes the stereo inputs.

    Attributes:
        name: the preset's name (``preset:=<name>``).
        what: the camera and driver, in words.
        camera: the driver's default namespace of the topics below (absolute).
        left_image: left image topic under ``camera`` (sensor_msgs/Image).
        left_info: left camera_info topic under ``camera``.
        right_image: right image topic under ``camera``.
        right_info: right camera_info topic under ``camera``.
        parameters: node parameters the preset sets, (name, value) pairs.
        driver: the driver's launch command the preset was written for.
        notes: what else to know (QoS, emitter, formats).
    """

    name: str
    what: str
    camera: str
    left_image: str
    left_info: str
    right_image: str
    right_info: str
    parameters: tuple[tuple[str, bool | int | float | str], ...] = field(default=())
    driver: str = ""
    notes: str = ""

    @property
    def rectify(self) -> bool:
        """True when the preset's images are raw and the node rectifies them."""
        return bool(dict(self.parameters).get("rectify", False))


#: The presets, by name.
PRESETS: dict[str, DriverPreset] = {
    p.name: p
    for p in (
        DriverPreset(
            name="zed",
            what="Stereolabs ZED, ZED 2/2i, ZED X (zed-ros2-wrapper); rectified colour views",
            camera="/zed/zed_node",
            left_image="left/image_rect_color",
            left_info="left/camera_info",
            right_image="right/image_rect_color",
            right_info="right/camera_info",
            driver="ros2 launch zed_wrapper zed_camera.launch.py camera_model:=zed2i",
            notes="camera:=/<camera_name>/zed_node when the wrapper's camera_name is not zed; "
            "images are bgra8",
        ),
        DriverPreset(
            name="realsense_ir",
            what="Intel RealSense D4xx (realsense2_camera 4.x), the rectified infrared pair "
            "infra1 (left) and infra2 (right), mono8",
            camera="/camera/camera",
            left_image="infra1/image_rect_raw",
            left_info="infra1/camera_info",
            right_image="infra2/image_rect_raw",
            right_info="infra2/camera_info",
            driver="ros2 launch realsense2_camera rs_launch.py enable_infra1:=true "
            "enable_infra2:=true depth_module.emitter_enabled:=0",
            notes="camera:=/camera for wrappers before 4.54 (topics /camera/infra1/...); turn "
            "the emitter off, its dot pattern lands on the hand",
        ),
        DriverPreset(
            name="realsense_color",
            what="Intel RealSense whose stereo imagers are colour (D405, D415 with RGB8 "
            "infrared format; realsense2_camera 4.x), the rectified infra1/infra2 pair",
            camera="/camera/camera",
            left_image="infra1/image_rect_raw",
            left_info="infra1/camera_info",
            right_image="infra2/image_rect_raw",
            right_info="infra2/camera_info",
            driver="ros2 launch realsense2_camera rs_launch.py enable_infra1:=true "
            "enable_infra2:=true depth_module.infra_format:=RGB8",
            notes="the colour camera of a D435 is a single view: it cannot be a stereo pair",
        ),
        DriverPreset(
            name="stereo_image_proc",
            what="any stereo driver followed by image_pipeline's stereo_image_proc "
            "(rectified colour views)",
            camera="/stereo",
            left_image="left/image_rect_color",
            left_info="left/camera_info",
            right_image="right/image_rect_color",
            right_info="right/camera_info",
            driver="ros2 launch stereo_image_proc stereo_image_proc.launch.py",
            notes="camera:=<the namespace the graph runs in>",
        ),
        DriverPreset(
            name="stereo_raw",
            what="any calibrated stereo driver publishing raw views (camera_calibration's "
            "camera_info: plumb_bob, rational_polynomial or equidistant); the node rectifies",
            camera="/stereo",
            left_image="left/image_raw",
            left_info="left/camera_info",
            right_image="right/image_raw",
            right_info="right/camera_info",
            parameters=(("rectify", True),),
            driver="(your camera driver, e.g. ros2 run usb_cam usb_cam_node_exe per view)",
            notes="no stereo_image_proc needed",
        ),
    )
}


def preset_named(name: str) -> DriverPreset:
    """The preset called ``name``, or ConfigError listing the presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"preset expected one of {sorted(PRESETS)}; got {name!r}") from None


def preset_remappings(
    preset: DriverPreset, camera: str | None = None, transport: str = "raw"
) -> list[tuple[str, str]]:
    """``(node input, driver topic)`` pairs of ``preset``, one per input, in
    :data:`~stereo_hand_mesh.ros.sync.STEREO_INPUT_NAMES` order.

    Args:
        preset: the driver preset.
        camera: the driver's namespace (default: the preset's); absolute or relative.
        transport: ``raw`` or ``compressed`` (the images' ``/compressed`` topics, as the node
            subscribes them with ``image_transport: compressed``).

    Raises:
        ConfigError: ``transport`` is not one of the image transports.
    """
    if transport not in IMAGE_TRANSPORTS:
        raise ConfigError(f"transport expected one of {IMAGE_TRANSPORTS}; got {transport!r}")
    base = (preset.camera if camera is None else camera).rstrip("/")
    suffix = "image_raw" if preset.rectify else "image_rect"
    inputs = stereo_topics(suffix, transport)
    image_tail = "" if transport == "raw" else f"/{transport}"
    targets = (
        preset.left_image + image_tail,
        preset.left_info,
        preset.right_image + image_tail,
        preset.right_info,
    )
    return [
        (node_input, f"{base}/{target}" if base else target)
        for node_input, target in zip(inputs, targets, strict=True)
    ]


def ros_remap_args(
    preset: DriverPreset, camera: str | None = None, transport: str = "raw"
) -> list[str]:
    """The remappings as ``--ros-args`` arguments: ``["-r", "from:=to", ...]``."""
    out: list[str] = []
    for source, target in preset_remappings(preset, camera, transport):
        out += ["-r", f"{source}:={target}"]
    return out


def _yaml_value(value: bool | int | float | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def preset_config_text(preset: DriverPreset) -> str:
    """``config/presets/<name>.yaml``: the preset's parameters for ``hand_mesh_node``, with
    its remappings and launch line in the header (a parameters file cannot remap)."""
    remaps = " ".join(ros_remap_args(preset))
    lines = [
        f"# Driver preset {preset.name}: {preset.what}.",
        "# (generated from stereo_hand_mesh/ros/driver_presets.py by tools/write_configs.py)",
        f"# Driver: {preset.driver}",
        f"# Notes: {preset.notes}" if preset.notes else "#",
        "# Launch: ros2 launch stereo_hand_mesh hand_mesh.launch.py preset:=" + preset.name,
        "# Or: ros2 run stereo_hand_mesh hand_mesh_node --ros-args --params-file <this file> "
        + remaps,
        "hand_mesh_node:",
        "  ros__parameters:",
    ]
    params = preset.parameters or (("rectify", False),)
    lines += [f"    {name}: {_yaml_value(value)}" for name, value in params]
    return "\n".join(lines) + "\n"
