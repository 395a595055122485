"""hand_mesh_node on a stereo camera.

    ros2 launch stereo_hand_mesh hand_mesh.launch.py preset:=zed
    ros2 launch stereo_hand_mesh hand_mesh.launch.py preset:=realsense_ir
    ros2 launch stereo_hand_mesh hand_mesh.launch.py preset:=realsense_color
    ros2 launch stereo_hand_mesh hand_mesh.launch.py preset:=stereo_image_proc camera:=/stereo
    ros2 launch stereo_hand_mesh hand_mesh.launch.py camera:=/my_cam
    ros2 launch stereo_hand_mesh hand_mesh.launch.py config:=/path/my_hand_mesh.yaml

Arguments:
    config: parameters file (default: the package's config/hand_mesh.yaml).
    preset: a driver preset (stereo_hand_mesh/ros/driver_presets.py: zed, realsense_ir,
        realsense_color, stereo_image_proc, stereo_raw) whose remappings and parameters are
        applied; none (default): the node subscribes <camera>/left/image_rect,
        <camera>/left/camera_info, <camera>/right/image_rect, <camera>/right/camera_info
        (image_raw with rectify: true).
    camera: namespace of the stereo camera's topics (default: the preset's, else none).
    image_transport: raw (default) or compressed (<image topic>/compressed, JPEG or PNG).
    namespace: namespace of the node and its outputs (default: none).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from stereo_hand_mesh.ros.driver_presets import PRESETS, preset_named, preset_remappings
from stereo_hand_mesh.ros.sync import IMAGE_TRANSPORTS, stereo_topics


def _node(context, *_args, **_kwargs):
    preset_name = LaunchConfiguration("preset").perform(context)
    camera = LaunchConfiguration("camera").perform(context)
    transport = LaunchConfiguration("image_transport").perform(context)
    parameters = [LaunchConfiguration("config"), {"image_transport": transport}]
    if preset_name == "none":
        base = camera.rstrip("/")
        topics = [*stereo_topics("image_rect", transport), *stereo_topics("image_raw", transport)]
        remappings = [(t, f"{base}/{t}" if base else t) for t in dict.fromkeys(topics)]
    else:
        preset = preset_named(preset_name)
        remappings = preset_remappings(preset, camera or None, transport)
        parameters.append(dict(preset.parameters))
    return [
        Node(
            package="stereo_hand_mesh",
            executable="hand_mesh_node",
            name="hand_mesh_node",
            namespace=LaunchConfiguration("namespace"),
            parameters=parameters,
            remappings=remappings,
            output="screen",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    default_config = PathJoinSubstitution(
        [FindPackageShare("stereo_hand_mesh"), "config", "hand_mesh.yaml"]
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "config", default_value=default_config, description="parameters file"
            ),
            DeclareLaunchArgument(
                "preset",
                default_value="none",
                choices=["none", *PRESETS],
                description="driver preset: remappings and parameters for a camera driver",
            ),
            DeclareLaunchArgument(
                "camera",
                default_value="",
                description="namespace of the camera's topics (default: the preset's)",
            ),
            DeclareLaunchArgument(
                "image_transport",
                default_value="raw",
                choices=list(IMAGE_TRANSPORTS),
                description="raw images, or compressed (JPEG/PNG on <image topic>/compressed)",
            ),
            DeclareLaunchArgument(
                "namespace", default_value="", description="namespace of the node"
            ),
            OpaqueFunction(function=_node),
        ]
    )
