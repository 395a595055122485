"""ROS 2 layer: thin rclpy nodes over the pipeline, message conversions, and fallbacks for
message_filters, cv_bridge and tf2_ros where those are not importable (PyPI-only venv).

Importing this package does not import rclpy; the submodules do, when used.
"""

__all__: list[str] = []
