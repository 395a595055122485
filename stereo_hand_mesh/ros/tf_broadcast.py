"""A /tf broadcaster: tf2_ros.TransformBroadcaster when importable, else a fallback.

The fallback publishes tf2_msgs/msg/TFMessage on ``/tf`` with the QoS tf2_ros uses for
dynamic transforms (reliable, volatile, keep last 100), so tf2 listeners and RViz receive
it unchanged. tf2_msgs itself is built into the PyPI-only venv by tools/build_tf2_msgs.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["TfBroadcaster", "make_tf_broadcaster", "tf2_ros_available"]

try:  # pragma: no cover - depends on the installation
    from tf2_ros import TransformBroadcaster as _NativeBroadcaster
except ImportError:
    _NativeBroadcaster = None


def tf2_ros_available() -> bool:
    """True when tf2_ros (Python) is importable."""
    return _NativeBroadcaster is not None


class TfBroadcaster:
    """Publishes TransformStamped lists on /tf as one TFMessage per call."""

    def __init__(self, node: Any, topic: str = "/tf") -> None:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from tf2_msgs.msg import TFMessage

        qos = QoSProfile(
            depth=100,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )
        self._msg_type = TFMessage
        self._pub = node.create_publisher(TFMessage, topic, qos)
        self.backend = "fallback"

    def sendTransform(self, transform: Any | Sequence[Any]) -> None:  # noqa: N802 (tf2_ros API)
        """Publish one TransformStamped or a list of them in a single TFMessage."""
        transforms = list(transform) if isinstance(transform, list | tuple) else [transform]
        self._pub.publish(self._msg_type(transforms=transforms))


def make_tf_broadcaster(node: Any, prefer_native: bool = True) -> Any:
    """tf2_ros.TransformBroadcaster if available (and preferred), else :class:`TfBroadcaster`.

    Both expose ``sendTransform(transform_or_list)``.
    """
    if prefer_native and _NativeBroadcaster is not None:  # pragma: no cover
        return _NativeBroadcaster(node)
    return TfBroadcaster(node)
