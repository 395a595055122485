"""Publishing stereo samples as the four input topics (tests, benchmarks, bag replay).

:class:`PairPublisher` turns a :class:`~stereo_hand_mesh.data.sample.StereoSample` into the
left/right Image and CameraInfo messages ``hand_mesh_node`` subscribes to, all four with one
header stamp, and publishes them reliably (as image_transport and most camera drivers do;
best effort on request). :func:`compressed_pair_messages` gives the same pair as
image_transport's ``compressed`` transport publishes it (sensor_msgs/CompressedImage, JPEG or
PNG).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stereo_hand_mesh.data.camera_info_yaml import DEFAULT_LEFT_FRAME_ID, DEFAULT_RIGHT_FRAME_ID
from stereo_hand_mesh.data.sample import StereoSample
from stereo_hand_mesh.ros.camera_info_conversion import camera_info_fields_to_msg
from stereo_hand_mesh.ros.image_conversion import array_to_image_msg, rgb8_to_encoding

__all__ = ["PairMessages", "PairPublisher", "compressed_pair_messages", "pair_messages"]


@dataclass(frozen=True)
class PairMessages:
    """The four input messages of one stereo pair (rclpy message objects)."""

    left: Any
    left_info: Any
    right: Any
    right_info: Any


def _header(stamp_ns: int, frame_id: str) -> Any:
    from std_msgs.msg import Header

    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return header


def pair_messages(
    sample: StereoSample,
    stamp_ns: int,
    encoding: str = "rgb8",
    left_frame_id: str | None = None,
    right_frame_id: str | None = None,
) -> PairMessages:
    """Messages of one pair, stamped ``stamp_ns`` (nanoseconds).

    Frame ids default to the sample's camera_info frame_id, else
    ``stereo_left_optical_frame`` / ``stereo_right_optical_frame``.
    """
    lf = left_frame_id or sample.left_info.frame_id or DEFAULT_LEFT_FRAME_ID
    rf = right_frame_id or sample.right_info.frame_id or DEFAULT_RIGHT_FRAME_ID
    lh, rh = _header(stamp_ns, lf), _header(stamp_ns, rf)
    return PairMessages(
        left=array_to_image_msg(rgb8_to_encoding(sample.left, encoding), encoding, lh),
        left_info=camera_info_fields_to_msg(sample.left_info, lh),
        right=array_to_image_msg(rgb8_to_encoding(sample.right, encoding), encoding, rh),
        right_info=camera_info_fields_to_msg(sample.right_info, rh),
    )


def compressed_pair_messages(
    sample: StereoSample,
    stamp_ns: int,
    codec: str = "jpeg",
    quality: int = 90,
) -> PairMessages:
    """Messages of one pair with the images as sensor_msgs/CompressedImage (``codec`` jpeg or
    png, format ``"bgr8; <codec> compressed bgr8"`` as image_transport writes it; JPEG
    ``quality`` 0-100), stamped ``stamp_ns``."""
    from sensor_msgs.msg import CompressedImage

    from stereo_hand_mesh.data.image_io import encode_compressed_rgb

    raw = pair_messages(sample, stamp_ns)
    if codec not in ("jpeg", "png"):
        raise ValueError(f"codec expected 'jpeg' or 'png'; got {codec!r}")

    def compressed(rgb: Any, header: Any) -> Any:
        data, fmt = encode_compressed_rgb(rgb, codec, quality)
        return CompressedImage(header=header, format=fmt, data=data)

    return PairMessages(
        left=compressed(sample.left, raw.left.header),
        left_info=raw.left_info,
        right=compressed(sample.right, raw.right.header),
        right_info=raw.right_info,
    )


class PairPublisher:
    """Publishers of the four input topics on ``node`` (relative names).

    Args:
        node: the rclpy node to publish from.
        image_suffix: ``"image_rect"`` (default) or ``"image_raw"``.
        reliable: reliable, keep last 10 (default, as image_transport publishes); False:
            best effort (SensorDataQoS), which a reliable subscription does not match.
        transport: ``"raw"`` (sensor_msgs/Image) or ``"compressed"`` (CompressedImage on
            ``<side>/<image_suffix>/compressed``; publish :func:`compressed_pair_messages`).
    """

    def __init__(
        self,
        node: Any,
        image_suffix: str = "image_rect",
        reliable: bool = True,
        transport: str = "raw",
    ):
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        qos = qos_profile_sensor_data
        if reliable:
            qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        image_type = Image if transport == "raw" else CompressedImage
        image = image_suffix if transport == "raw" else f"{image_suffix}/{transport}"
        self.left = node.create_publisher(image_type, f"left/{image}", qos)
        self.left_info = node.create_publisher(CameraInfo, "left/camera_info", qos)
        self.right = node.create_publisher(image_type, f"right/{image}", qos)
        self.right_info = node.create_publisher(CameraInfo, "right/camera_info", qos)

    def publish(self, msgs: PairMessages) -> None:
        """Publish the four messages (camera_info first, then the images)."""
        self.left_info.publish(msgs.left_info)
        self.right_info.publish(msgs.right_info)
        self.left.publish(msgs.left)
        self.right.publish(msgs.right)

    def subscribers(self) -> int:
        """Smallest subscriber count over the four topics (0 until the node is connected)."""
        return min(
            p.get_subscription_count()
            for p in (self.left, self.left_info, self.right, self.right_info)
        )
