"""sensor_msgs/CameraInfo <-> :class:`~stereo_hand_mesh.geometry.camera_info.CameraInfoFields`.

The geometry layer only sees :class:`CameraInfoFields`; this is the one place that reads and
writes the ROS message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stereo_hand_mesh.errors import CameraInfoError
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields

__all__ = ["camera_info_fields_to_msg", "camera_info_msg_to_fields"]


def camera_info_msg_to_fields(msg: Any) -> CameraInfoFields:
    """Read a sensor_msgs/msg/CameraInfo (not validated: call ``.validate()``).

    Raises:
        CameraInfoError: k, r or p do not hold 9, 9 and 12 values.
    """
    try:
        return CameraInfoFields(
            width=int(msg.width),
            height=int(msg.height),
            K=np.asarray(msg.k, dtype=np.float64),
            D=np.asarray(msg.d, dtype=np.float64),
            R=np.asarray(msg.r, dtype=np.float64),
            P=np.asarray(msg.p, dtype=np.float64),
            distortion_model=str(msg.distortion_model),
            frame_id=str(msg.header.frame_id),
        )
    except (TypeError, ValueError) as err:
        raise CameraInfoError(f"camera_info could not be read: {err}") from None


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
