"""The demo graph: the simulated stereo camera, hand_mesh_node and RViz.

    ros2 launch stereo_hand_mesh demo.launch.py
    ros2 launch stereo_hand_mesh demo.launch.py rviz:=false

The same graph runs without launch_ros (a PyPI-only venv) as ``stereo-hand-mesh demo``,
from the same config files: config/stereo_camera_sim.yaml, config/hand_mesh.yaml and the
demo overrides in config/demo.yaml.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("stereo_hand_mesh")

    def config(name: str) -> PathJoinSubstitution:
        return PathJoinSubstitution([share, "config", name])

    return LaunchDescription(
        [
            DeclareLaunchArgument("rviz", default_value="true"),
            Node(
                package="stereo_hand_mesh",
                executable="stereo_camera_sim",
                name="stereo_camera_sim",
                parameters=[config("stereo_camera_sim.yaml"), config("demo.yaml")],
                output="screen",
            ),
            Node(
                package="stereo_hand_mesh",
                executable="hand_mesh_node",
                name="hand_mesh_node",
                parameters=[config("hand_mesh.yaml"), config("demo.yaml")],
                output="screen",
            ),
            Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                arguments=["-d", config("hand_mesh.rviz")],
                condition=IfCondition(LaunchConfiguration("rviz")),
                output="screen",
            ),
        ]
    )
