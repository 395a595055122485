"""hand_mesh_node on a stereo camera.

    ros2 launch stereo_hand_mesh hand_mesh.launch.py camera:=/zed
    ros2 launch stereo_hand_mesh hand_mesh.launch.py config:=/path/my_hand_mesh.yaml

Arguments:
    config: parameters file (default: the package's config/hand_mesh.yaml).
    camera: namespace of the stereo camera's topics; the node subscribes
        <camera>/left/image_rect, <camera>/left/camera_info, <camera>/right/image_rect and
        <camera>/right/camera_info (default: no namespace).
    namespace: namespace of the node and its outputs (default: none).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    default_config = PathJoinSubstitution(
        [FindPackageShare("stereo_hand_mesh"), "config", "hand_mesh.yaml"]
    )
    camera = LaunchConfiguration("camera")
    remappings = [
        (f"{side}/{topic}", [camera, f"/{side}/{topic}"])
        for side in ("left", "right")
        for topic in ("image_rect", "image_raw", "camera_info")
    ]
    return LaunchDescription(
        [
            DeclareLaunchArgument("config", default_value=default_config),
            DeclareLaunchArgument("camera", default_value=""),
            DeclareLaunchArgument("namespace", default_value=""),
            Node(
                package="stereo_hand_mesh",
                executable="hand_mesh_node",
                name="hand_mesh_node",
                namespace=LaunchConfiguration("namespace"),
                parameters=[LaunchConfiguration("config")],
                remappings=remappings,
                output="screen",
            ),
        ]
    )
