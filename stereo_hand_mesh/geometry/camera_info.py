"""The fields of a sensor_msgs/CameraInfo, free of ROS, and their validation.

Both the ROS message conversion (``ros/``) and the camera_calibration_parsers YAML reader
(``data/``) produce a :class:`CameraInfoFields`; the geometry layer builds cameras from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stereo_hand_mesh.errors import CameraInfoError

__all__ = ["CameraInfoFields"]


@dataclass(frozen=True)
class CameraInfoFields:
    """sensor_msgs/CameraInfo content.

    Attributes:
        width: image width in pixels.
        height: image height in pixels.
        K: (3, 3) intrinsic matrix of the raw image, pixels.
        D: (N,) distortion coefficients (N = 0, 4, 5, 8, ...).
        R: (3, 3) rectification rotation.
        P: (3, 4) projection matrix of the rectified image; for the right camera of a
            rectified pair ``P[0, 3] = Tx = -fx * B`` with B the baseline in metres.
        distortion_model: e.g. ``"plumb_bob"``.
        camera_name: free text.
        frame_id: optical frame of the camera (no leading slash).
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    R: np.ndarray
    P: np.ndarray
    distortion_model: str = "plumb_bob"
    camera_name: str = ""
    frame_id: str = ""
    _validated: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, shape in (("K", (3, 3)), ("R", (3, 3)), ("P", (3, 4))):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.size != shape[0] * shape[1]:
                raise CameraInfoError(
                    f"camera_info {name} expected {shape[0] * shape[1]} values; got {arr.size}"
                )
            object.__setattr__(self, name, arr.reshape(shape))
        object.__setattr__(self, "D", np.asarray(self.D, dtype=np.float64).reshape(-1))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def from_message(cls, msg: Any) -> CameraInfoFields:
        """The fields of a sensor_msgs/CameraInfo message object (rclpy's or rosbags'; any
        object with ``width``, ``height``, ``k``, ``d``, ``r``, ``p``,
        ``distortion_model`` and ``header.frame_id``). Not validated: call
        :meth:`validate`.

        Raises:
            CameraInfoError: the fields cannot be read or k, r, p have the wrong sizes.
        """
        try:
            return cls(
                width=int(msg.width),
                height=int(msg.height),
                K=np.asarray(msg.k, dtype=np.float64),
                D=np.asarray(msg.d, dtype=np.float64),
                R=np.asarray(msg.r, dtype=np.float64),
                P=np.asarray(msg.p, dtype=np.float64),
                distortion_model=str(msg.distortion_model),
                frame_id=str(msg.header.frame_id),
            )
        except (TypeError, ValueError, AttributeError) as err:
            raise CameraInfoError(f"camera_info could not be read: {err}") from None

    def validate(self) -> CameraInfoFields:
        """Check the fields a rectified stereo pipeline needs; return self.

        Raises:
            CameraInfoError: when width/height are not positive, or P holds NaN/inf or a
                zero focal length.
        """
        if self.width <= 0 or self.height <= 0:
            raise CameraInfoError(
                f"camera_info expected positive width and height; got {self.width}x{self.height}"
            )
        if not np.isfinite(self.P).all():
            raise CameraInfoError("camera_info P expected finite values; got NaN or inf")
        if not np.isfinite(self.K).all() or not np.isfinite(self.D).all():
            raise CameraInfoError("camera_info K and D expected finite values; got NaN or inf")
        if self.P[0, 0] <= 0 or self.P[1, 1] <= 0:
            raise CameraInfoError(
                f"camera_info P expected positive focal lengths; got fx={self.P[0, 0]}, "
                f"fy={self.P[1, 1]}"
            )
        return self
