"""sensor_msgs/CameraInfo <-> :class:`~stereo_hand_mesh.geometry.camera_info.CameraInfoFields`.

The geometry layer only sees :class:`CameraInfoFields`. Reading is
:meth:`CameraInfoFields.from_message` (shared with the rosbag2 reader, whose messages have the
same fields); writing an rclpy message is here.
"""

from __future__ import annotations

from typing import Any

from stereo_hand_mesh.geometry.camera_info import CameraInfoFields

__all__ = ["camera_info_fields_to_msg", "camera_info_msg_to_fields"]


def camera_info_msg_to_fields(msg: Any) -> CameraInfoFields:
    """Read a sensor_msgs/msg/CameraInfo (not validated: call ``.validate()``).

    Raises:
        CameraInfoError: the fields cannot be read, or k, r or p do not hold 9, 9 and 12
            values.
    """
    return CameraInfoFields.from_message(msg)


def camera_info_fields_to_msg(info: CameraInfoFields, header: Any = None) -> Any:
    """Build a sensor_msgs/msg/CameraInfo; ``header`` (stamp, frame_id) is copied when given,
    else the frame_id is ``info.frame_id``."""
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    if header is not None:
        msg.header = header
    else:
        msg.header.frame_id = info.frame_id
    msg.width, msg.height = int(info.width), int(info.height)
    msg.distortion_model = info.distortion_model
    msg.d = [float(x) for x in info.D]
    msg.k = [float(x) for x in info.K.reshape(-1)]
    msg.r = [float(x) for x in info.R.reshape(-1)]
    msg.p = [float(x) for x in info.P.reshape(-1)]
    return msg
