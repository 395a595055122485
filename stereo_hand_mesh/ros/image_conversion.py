"""sensor_msgs/Image <-> numpy, with cv_bridge when importable and a small fallback otherwise.

Supported encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16. Anything else raises
:class:`~stereo_hand_mesh.errors.EncodingError` naming the encoding. cv_bridge (when present)
only decodes the buffer (``passthrough``); the colour conversion to RGB is ours in both cases,
so results are identical with and without cv_bridge. mono16 becomes 8-bit by keeping the high
byte (``value >> 8``).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from stereo_hand_mesh.errors import EncodingError

__all__ = [
    "SUPPORTED_ENCODINGS",
    "array_to_image_msg",
    "compressed_msg_to_rgb8",
    "cv_bridge_available",
    "image_msg_to_array",
    "image_msg_to_rgb8",
    "rgb8_to_encoding",
]

#: encoding -> (numpy dtype, channels)
SUPPORTED_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
}

try:  # pragma: no cover - depends on the installation
    from cv_bridge import CvBridge as _CvBridge

    _BRIDGE: Any = _CvBridge()
except ImportError:
    _BRIDGE = None


def cv_bridge_available() -> bool:
    """True when cv_bridge is importable and used for decoding."""
    return _BRIDGE is not None


def _layout(encoding: str) -> tuple[np.dtype, int]:
    try:
        return SUPPORTED_ENCODINGS[encoding]
    except KeyError:
        raise EncodingError(
            f"image encoding expected one of {sorted(SUPPORTED_ENCODINGS)}; got '{encoding}'"
        ) from None


def _decode_fallback(msg: Any, dtype: np.dtype, channels: int) -> np.ndarray:
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise EncodingError(
            f"image step expected >= {row_bytes} bytes for {msg.width} px of {msg.encoding}; "
            f"got {msg.step}"
        )
    try:
        buf = np.frombuffer(msg.data, np.uint8)  # bytes or array.array('B'): no copy
    except TypeError:
        buf = np.asarray(msg.data, dtype=np.uint8)
    if buf.size < msg.step * msg.height:
        raise EncodingError(
            f"image data expected {msg.step * msg.height} bytes ({msg.height} rows of step "
            f"{msg.step}); got {buf.size}"
        )
    rows = buf[: msg.step * msg.height].reshape(msg.height, msg.step)[:, :row_bytes]
    big = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    arr = np.ascontiguousarray(rows).view(big).astype(dtype, copy=False)
    return (
        arr.reshape(msg.height, msg.width, channels)
        if channels > 1
        else arr.reshape(msg.height, msg.width)
    )


def image_msg_to_array(msg: Any) -> np.ndarray:
    """Decode an Image message into its native layout.

    Args:
        msg: sensor_msgs/msg/Image.

    Returns:
        (H, W, C) for colour encodings or (H, W) for mono, dtype uint8 or uint16, a copy
        independent of the message buffer.

    Raises:
        EncodingError: unsupported encoding, empty image, or a buffer that does not match
            height, width and step.
    """
    dtype, channels = _layout(msg.encoding)
    if msg.height == 0 or msg.width == 0:
        raise EncodingError(f"image expected a positive size; got {msg.width}x{msg.height}")
    if _BRIDGE is not None:  # pragma: no cover - depends on the installation
        try:
            arr = _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough")
        except Exception as err:  # cv_bridge raises several unrelated types
            raise EncodingError(f"cv_bridge could not decode {msg.encoding} image: {err}") from err
        return np.array(arr, copy=True)
    return np.array(_decode_fallback(msg, dtype, channels), copy=True)


def image_msg_to_rgb8(msg: Any) -> np.ndarray:
    """Decode an Image message of any supported encoding into (H, W, 3) uint8 RGB."""
    arr = image_msg_to_array(msg)
    enc = msg.encoding
    if enc == "mono16":
        arr = (arr >> 8).astype(np.uint8)
    if enc in ("mono8", "mono16"):
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_GRAY2RGB)
    # OpenCV's channel swaps are several times faster than a strided numpy copy (about
    # 0.2 vs 1 ms for 640x480), and this runs twice per pair on the node's hot path.
    swap = {"bgr8": cv2.COLOR_BGR2RGB, "bgra8": cv2.COLOR_BGRA2RGB, "rgba8": cv2.COLOR_RGBA2RGB}
    if enc in swap:
        return cv2.cvtColor(np.ascontiguousarray(arr), swap[enc])
    return np.ascontiguousarray(arr[:, :, :3])


def compressed_msg_to_rgb8(msg: Any) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (JPEG or PNG, image_transport's ``compressed``)
    into (H, W, 3) uint8 RGB.

    Raises:
        EncodingError: the format names no supported codec, or the data is empty,
            truncated or corrupt (the message names the stamp).
    """
    from stereo_hand_mesh.data.image_io import decode_compressed_rgb
    from stereo_hand_mesh.errors import DataError

    stamp = msg.header.stamp
    frame = msg.header.frame_id or "no frame_id"
    where = f"compressed image ({frame}, stamp {stamp.sec}.{stamp.nanosec:09d})"
    try:
        return decode_compressed_rgb(msg.data, msg.format, where)
    except DataError as err:
        raise EncodingError(str(err)) from None


def rgb8_to_encoding(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """Convert (H, W, 3) uint8 RGB into the array layout of ``encoding`` (for publishers)."""
    _layout(encoding)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise EncodingError(f"rgb expected (H, W, 3) uint8; got {rgb.shape} {rgb.dtype}")
    if encoding == "rgb8":
        return rgb
    if encoding == "bgr8":
        return np.ascontiguousarray(rgb[:, :, ::-1])
    alpha = np.full((*rgb.shape[:2], 1), 255, np.uint8)
    if encoding == "rgba8":
        return np.concatenate([rgb, alpha], axis=2)
    if encoding == "bgra8":
        return np.concatenate([rgb[:, :, ::-1], alpha], axis=2)
    gray = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).round()
    if encoding == "mono8":
        return gray.astype(np.uint8)
    return (gray.astype(np.uint16) << 8) | gray.astype(np.uint16)


def array_to_image_msg(arr: np.ndarray, encoding: str, header: Any = None) -> Any:
    """Build a sensor_msgs/msg/Image from an array already in ``encoding``'s layout.

    Args:
        arr: (H, W, C) or (H, W) array whose dtype and channels match ``encoding``.
        encoding: one of :data:`SUPPORTED_ENCODINGS`.
        header: std_msgs/Header to copy (stamp and frame_id), or None.

    Raises:
        EncodingError: when the array does not match the encoding.
    """
    from sensor_msgs.msg import Image

    dtype, channels = _layout(encoding)
    got_c = 1 if arr.ndim == 2 else arr.shape[2] if arr.ndim == 3 else -1
    if arr.dtype != dtype or got_c != channels or arr.size == 0:
        raise EncodingError(
            f"array for {encoding} expected dtype {dtype} with {channels} channel(s); "
            f"got {arr.dtype} with shape {arr.shape}"
        )
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(arr.shape[1] * channels * dtype.itemsize)
    msg.data = np.ascontiguousarray(arr).astype(dtype.newbyteorder("<"), copy=False).tobytes()
    return msg
