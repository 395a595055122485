"""adaptation_node beside a running hand_mesh_node.

    ros2 launch stereo_hand_mesh adaptation.launch.py bag_dir:=/data/bags
    ros2 service call /adaptation_node/start_recording std_srvs/srv/Trigger
    ros2 service call /adaptation_node/stop_recording std_srvs/srv/Trigger
    ros2 service call /adaptation_node/adapt std_srvs/srv/Trigger

Arguments:
    config: parameters file (default: the package's config/adaptation.yaml).
    bag_dir: where recordings go (overrides the file's bag_dir).
    camera: namespace of the stereo camera's topics (default: none).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    default_config = PathJoinSubstitution(
        [FindPackageShare("stereo_hand_mesh"), "config", "adaptation.yaml"]
    )
    camera = LaunchConfiguration("camera")
    remappings = [
        (f"{side}/{topic}", [camera, f"/{side}/{topic}"])
        for side in ("left", "right")
        for topic in ("image_rect", "camera_info")
    ]
    return LaunchDescription(
        [
            DeclareLaunchArgument("config", default_value=default_config),
            DeclareLaunchArgument("bag_dir", default_value="~/.ros/stereo_hand_mesh/bags"),
            DeclareLaunchArgument("camera", default_value=""),
            Node(
                package="stereo_hand_mesh",
                executable="adaptation_node",
                name="adaptation_node",
                parameters=[
                    LaunchConfiguration("config"),
                    {"bag_dir": LaunchConfiguration("bag_dir")},
                ],
                remappings=remappings,
                output="screen",
            ),
        ]
    )
