"""rosbag2 stereo bags (MCAP and sqlite3) read and written with ``rosbags`` (pure Python).

A stereo bag holds four topics: ``left/image_rect`` and ``right/image_rect``
(sensor_msgs/msg/Image, or sensor_msgs/msg/CompressedImage on their image_transport
``<image topic>/compressed`` twins) and ``left/camera_info`` and ``right/camera_info``
(sensor_msgs/msg/CameraInfo), plus optionally ground-truth joints on ``sim/gt_joints``
(geometry_msgs/msg/PoseArray, 21 poses, positions in metres in the left optical frame, our
joint order, identity orientations, the left image's stamp and frame_id).

This module imports neither rclpy nor, until a function runs, rosbags: importing
:mod:`stereo_hand_mesh.data` stays light and works without ROS.

Reading pairs left and right images by header stamp (exactly, else the nearest within
``slop_s``), gives each image the camera_info on its topic with the same stamp, else the most
recent one recorded before it (camera_info may be published once or with every frame), and
converts rgb8, bgr8, rgba8, bgra8 and mono8 images (and JPEG or PNG compressed images) to RGB.
:func:`read_stereo_bag_pairs` pairs without decoding, so that a reader can skip one pair whose
image is corrupt and go on (``stereo-hand-mesh infer --bag``).

The message helpers (:func:`rosbags_typestore`, :func:`image_msg`, :func:`camera_info_msg`,
:func:`fully_qualified_topic`, :func:`resolve_topic`) are public: the recorder
(:mod:`stereo_hand_mesh.data.recording`) and the adaptation node build, serialize and name
messages with them.
"""

from __future__ import annotations

import bisect
import functools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stereo_hand_mesh.data.camera_info_yaml import DEFAULT_LEFT_FRAME_ID, DEFAULT_RIGHT_FRAME_ID
from stereo_hand_mesh.data.image_io import decode_compressed_rgb, encode_compressed_rgb
from stereo_hand_mesh.data.sample import StereoSample
from stereo_hand_mesh.errors import (
    CameraInfoError,
    ConfigError,
    DataError,
    EncodingError,
    ShapeError,
    StereoHandMeshError,
)
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields
from stereo_hand_mesh.hand.joints import NUM_JOINTS

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.rosbag2 import Reader
    from rosbags.typesys.store import Typestore

__all__ = [
    "BAG_IMAGE_FORMATS",
    "CAMERA_INFO_MSGTYPE",
    "COMPRESSED_IMAGE_MSGTYPE",
    "DEFAULT_GT_TOPIC",
    "DEFAULT_TOPICS",
    "IMAGE_ENCODINGS",
    "IMAGE_MSGTYPE",
    "BagInfo",
    "BagPair",
    "StereoTopics",
    "TopicSummary",
    "bag_info",
    "camera_info_msg",
    "compressed_image_msg",
    "fully_qualified_topic",
    "image_msg",
    "is_rosbag2",
    "read_stereo_bag",
    "read_stereo_bag_pairs",
    "resolve_stereo_topics",
    "resolve_topic",
    "rgb_from_image_buffer",
    "rosbags_typestore",
    "write_stereo_bag",
]

DEFAULT_GT_TOPIC = "sim/gt_joints"
IMAGE_MSGTYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_MSGTYPE = "sensor_msgs/msg/CameraInfo"
COMPRESSED_IMAGE_MSGTYPE = "sensor_msgs/msg/CompressedImage"
#: Suffix of image_transport's compressed topic of an image topic.
_COMPRESSED_SUFFIX = "/compressed"
#: ``image_format`` values of :func:`write_stereo_bag`: rgb8 Image, or CompressedImage.
BAG_IMAGE_FORMATS = ("raw", "jpeg", "png")
POSE_ARRAY_MSGTYPE = "geometry_msgs/msg/PoseArray"

#: Supported image encodings and their channel counts.
IMAGE_ENCODINGS: dict[str, int] = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}

#: Unpaired images older than this (in header time) than the newest image are dropped.
_PAIRING_WINDOW_NS = 1_000_000_000
#: Header stamp of the first pair written by :func:`write_stereo_bag` by default
#: (2023-11-14T22:13:20Z), fixed so that written bags are reproducible.
DEFAULT_START_NS = 1_700_000_000_000_000_000


@dataclass(frozen=True)
class StereoTopics:
    """Names of the four stereo input topics (relative names, as the node subscribes them).

    A bag topic matches a name when equal up to a leading ``/``, or, when that finds
    nothing, when exactly one bag topic ends with ``/<name>`` (a recorded namespace such as
    ``/zed/left/image_rect``). An image topic that matches nothing also matches its
    image_transport compressed twin ``<name>/compressed`` (sensor_msgs/msg/CompressedImage).
    """

    left_image: str = "left/image_rect"
    left_info: str = "left/camera_info"
    right_image: str = "right/image_rect"
    right_info: str = "right/camera_info"

    def as_dict(self) -> dict[str, str]:
        """Field name -> topic name."""
        return {
            "left_image": self.left_image,
            "left_info": self.left_info,
            "right_image": self.right_image,
            "right_info": self.right_info,
        }


#: The topic names the node subscribes by default.
DEFAULT_TOPICS = StereoTopics()


@dataclass(frozen=True)
class TopicSummary:
    """One topic of a bag: message type and message count."""

    msgtype: str
    count: int


@dataclass(frozen=True)
class BagInfo:
    """Summary of a rosbag2 bag (what ``ros2 bag info`` prints).

    Attributes:
        path: the bag directory or file.
        storage: ``"mcap"`` or ``"sqlite3"``.
        message_count: messages over all topics.
        start_ns: log time of the first message (ns), 0 when empty.
        end_ns: log time of the last message (ns), 0 when empty.
        duration_s: ``(end_ns - start_ns) / 1e9``.
        topics: topic name -> summary, sorted by name.
    """

    path: str
    storage: str
    message_count: int
    start_ns: int
    end_ns: int
    duration_s: float
    topics: dict[str, TopicSummary] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serializable form."""
        return {
            "path": self.path,
            "storage": self.storage,
            "message_count": self.message_count,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_s": self.duration_s,
            "topics": {
                name: {"msgtype": t.msgtype, "count": t.count} for name, t in self.topics.items()
            },
        }


@functools.cache
def rosbags_typestore() -> Typestore:
    """The rosbags type store of the newest ROS 2 distribution it knows (Kilted if present).

    Cached: one store per process. Its ``types`` build messages (:func:`image_msg`,
    :func:`camera_info_msg`) and its ``serialize_cdr`` / ``deserialize_cdr`` give the CDR bytes
    that ``rclpy.serialization`` gives for the same messages.

    Returns:
        A ``rosbags.typesys.store.Typestore``.
    """
    from rosbags.typesys import Stores, get_typestore

    for name in ("ROS2_KILTED", "ROS2_JAZZY", "ROS2_IRON", "ROS2_HUMBLE"):
        if hasattr(Stores, name):
            return get_typestore(getattr(Stores, name))
    return get_typestore(Stores.LATEST)  # pragma: no cover - very old or very new rosbags


def _bag_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".mcap", ".db3"))


def is_rosbag2(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a rosbag2 directory (with metadata.yaml) or a .mcap/.db3 file."""
    path = Path(path)
    if path.is_dir():
        return (path / "metadata.yaml").is_file()
    return path.is_file() and path.suffix in (".mcap", ".db3")


def _open_reader(path: Path) -> Reader:
    """Open a rosbag2 reader or raise DataError naming the path."""
    from rosbags.rosbag2 import Reader, ReaderError

    if not path.exists():
        raise DataError(f"expected a rosbag2 bag at {path}; got no such file or directory")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        storage_files = _bag_files(path)
        hint = (
            f" (it holds {[p.name for p in storage_files]}: pass one of those files, or run "
            f"'ros2 bag reindex' on the directory)"
            if storage_files
            else ""
        )
        raise DataError(
            f"expected a rosbag2 bag directory with metadata.yaml; got {path}, which has none"
            + hint
        )
    if path.is_file() and path.suffix not in (".mcap", ".db3"):
        raise DataError(
            f"expected a rosbag2 bag (a directory, or a .mcap or .db3 file); got {path}"
        )
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, OSError, KeyError, ValueError) as err:
        raise DataError(f"could not open rosbag2 bag {path}: {err}") from None
    except Exception as err:  # storage back ends raise their own types
        raise DataError(
            f"could not open rosbag2 bag {path} (truncated or corrupt): "
            f"{type(err).__name__}: {err}"
        ) from None
    return reader


def _storage_name(path: Path) -> str:
    files = _bag_files(path) if path.is_dir() else [path]
    return "mcap" if any(p.suffix == ".mcap" for p in files) else "sqlite3"


def bag_info(path: str | os.PathLike[str]) -> BagInfo:
    """Topics, message counts and duration of a rosbag2 bag.

    Raises:
        DataError: ``path`` is not a readable rosbag2 bag.
    """
    path = Path(path)
    reader = _open_reader(path)
    try:
        topics = {
            name: TopicSummary(info.msgtype or "", info.msgcount)
            for name, info in sorted(reader.topics.items())
        }
        count = reader.message_count
        start = reader.start_time if count else 0
        # rosbags reports end_time one nanosecond after the last message.
        end = reader.end_time - 1 if count else 0
    finally:
        reader.close()
    return BagInfo(
        path=str(path),
        storage=_storage_name(path),
        message_count=count,
        start_ns=start,
        end_ns=end,
        duration_s=(end - start) / 1e9,
        topics=topics,
    )


# --------------------------------------------------------------------------------------------
# Writing


def _header(stamp_ns: int, frame_id: str) -> Any:
    types = rosbags_typestore().types
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](
            sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
        ),
        frame_id=frame_id,
    )


def image_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str, name: str) -> Any:
    """A rosbags sensor_msgs/msg/Image (rgb8) of an RGB image, ready for ``serialize_cdr``.

    Args:
        rgb: (H, W, 3) uint8 RGB image.
        stamp_ns: header stamp, nanoseconds.
        frame_id: header frame_id.
        name: what the image is called in error messages (``"left"``, ``"right"``).

    Returns:
        A message of :func:`rosbags_typestore`'s ``sensor_msgs/msg/Image`` type, step W * 3.

    Raises:
        ShapeError: ``rgb`` is not an (H, W, 3) uint8 array.
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3:
        raise ShapeError(
            f"{name} expected a (H, W, 3) uint8 array; got {getattr(rgb, 'shape', rgb)}"
        )
    if rgb.shape[2] != 3:
        raise ShapeError(f"{name} expected shape (H, W, 3); got {rgb.shape}")
    height, width = rgb.shape[:2]
    return rosbags_typestore().types[IMAGE_MSGTYPE](
        header=_header(stamp_ns, frame_id),
        height=height,
        width=width,
        encoding="rgb8",
        is_bigendian=0,
        step=width * 3,
        data=np.ascontiguousarray(rgb).reshape(-1),
    )


def compressed_image_msg(
    rgb: np.ndarray, stamp_ns: int, frame_id: str, codec: str = "jpeg", quality: int = 90
) -> Any:
    """A rosbags sensor_msgs/msg/CompressedImage of an RGB image, as image_transport's
    ``compressed`` plugin publishes it (format ``"bgr8; <codec> compressed bgr8"``).

    Args:
        rgb: (H, W, 3) uint8 RGB image.
        stamp_ns: header stamp, nanoseconds.
        frame_id: header frame_id.
        codec: ``"jpeg"`` or ``"png"``.
        quality: JPEG quality, 1-100.

    Raises:
        ShapeError: ``rgb`` is not an (H, W, 3) uint8 array.
        ConfigError: an unknown codec or quality.
    """
    data, fmt = encode_compressed_rgb(rgb, codec, quality)
    return rosbags_typestore().types[COMPRESSED_IMAGE_MSGTYPE](
        header=_header(stamp_ns, frame_id),
        format=fmt,
        data=np.frombuffer(data, dtype=np.uint8).copy(),
    )


def camera_info_msg(info: CameraInfoFields, stamp_ns: int, frame_id: str) -> Any:
    """A rosbags sensor_msgs/msg/CameraInfo from camera_info fields (binning 0, empty ROI).

    Args:
        info: the camera_info fields (size, distortion model, D, K, R, P).
        stamp_ns: header stamp, nanoseconds.
        frame_id: header frame_id.

    Returns:
        A message of :func:`rosbags_typestore`'s ``sensor_msgs/msg/CameraInfo`` type.
    """
    types = rosbags_typestore().types
    return types[CAMERA_INFO_MSGTYPE](
        header=_header(stamp_ns, frame_id),
        height=info.height,
        width=info.width,
        distortion_model=info.distortion_model,
        d=np.asarray(info.D, dtype=np.float64).copy(),
        k=np.asarray(info.K, dtype=np.float64).reshape(-1).copy(),
        r=np.asarray(info.R, dtype=np.float64).reshape(-1).copy(),
        p=np.asarray(info.P, dtype=np.float64).reshape(-1).copy(),
        binning_x=0,
        binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )


def _pose_array_msg(joints: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    types = rosbags_typestore().types
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape != (NUM_JOINTS, 3):
        raise ShapeError(f"joints expected shape ({NUM_JOINTS}, 3); got {joints.shape}")
    pose, point, quat = (
        types["geometry_msgs/msg/Pose"],
        types["geometry_msgs/msg/Point"],
        types["geometry_msgs/msg/Quaternion"],
    )
    poses = [
        pose(
            position=point(x=float(x), y=float(y), z=float(z)),
            orientation=quat(x=0.0, y=0.0, z=0.0, w=1.0),
        )
        for x, y, z in joints
    ]
    return types[POSE_ARRAY_MSGTYPE](header=_header(stamp_ns, frame_id), poses=poses)


def fully_qualified_topic(topic: str) -> str:
    """The fully qualified topic name, as ``ros2 bag record`` stores it.

    Examples:
        >>> fully_qualified_topic("left/image_rect")
        '/left/image_rect'
    """
    return topic if topic.startswith("/") else "/" + topic


def write_stereo_bag(
    path: str | os.PathLike[str],
    samples: Iterable[StereoSample],
    rate_hz: float,
    topics: StereoTopics = DEFAULT_TOPICS,
    storage: str = "mcap",
    gt_topic: str | None = DEFAULT_GT_TOPIC,
    *,
    start_ns: int = DEFAULT_START_NS,
    camera_info_once: bool = False,
    left_frame_id: str | None = None,
    right_frame_id: str | None = None,
    image_format: str = "raw",
    jpeg_quality: int = 90,
) -> int:
    """Write stereo samples into a new rosbag2 bag (version 9, with metadata.yaml).

    Pair ``i`` gets header stamp and log time ``start_ns + round(i * 1e9 / rate_hz)`` on all
    its messages. Images are rgb8 Images, or with ``image_format`` ``"jpeg"``/``"png"``
    CompressedImages on ``<image topic>/compressed`` (as a driver's image_transport
    publishes them; a topic already ending in ``/compressed`` is kept). Samples with
    ``joints`` also get a PoseArray on ``gt_topic`` (21 poses, metres, identity
    orientations, the left frame_id).

    Args:
        path: bag directory to create (must not exist).
        samples: stereo samples; their camera_info is written with them.
        rate_hz: frame rate, > 0.
        topics: the four stereo topic names.
        storage: ``"mcap"`` or ``"sqlite3"``.
        gt_topic: ground-truth topic, or None to write no ground truth.
        start_ns: header stamp of the first pair, nanoseconds.
        camera_info_once: publish each camera_info only with the first pair.
        left_frame_id: frame_id of left messages; None = the sample's left_info.frame_id, or
            ``stereo_left_optical_frame`` when that is empty.
        right_frame_id: same for the right messages.
        image_format: ``"raw"`` (rgb8 Image), ``"jpeg"`` or ``"png"`` (CompressedImage).
        jpeg_quality: JPEG quality, 1-100 (``image_format="jpeg"``).

    Returns:
        Number of pairs written.

    Raises:
        ConfigError: ``rate_hz`` is not positive, or ``storage``, ``image_format`` or
            ``jpeg_quality`` is unknown.
        DataError: ``path`` exists already.
        ShapeError: an image is not (H, W, 3) uint8 or joints are not (21, 3).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

    if not rate_hz > 0:
        raise ConfigError(f"rate_hz expected > 0; got {rate_hz}")
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ConfigError(f"storage expected one of {sorted(plugins)}; got {storage!r}")
    if image_format not in BAG_IMAGE_FORMATS:
        raise ConfigError(
            f"image_format expected one of {list(BAG_IMAGE_FORMATS)}; got {image_format!r}"
        )
    if not 1 <= jpeg_quality <= 100:
        raise ConfigError(f"jpeg_quality expected 1-100; got {jpeg_quality}")
    path = Path(path)
    if path.exists():
        raise DataError(f"expected a new bag path; {path} exists already (not overwriting)")
    store = rosbags_typestore()
    image_type, image_topics = IMAGE_MSGTYPE, (topics.left_image, topics.right_image)
    if image_format != "raw":
        image_type = COMPRESSED_IMAGE_MSGTYPE
        image_topics = tuple(
            t if t.endswith(_COMPRESSED_SUFFIX) else t + _COMPRESSED_SUFFIX for t in image_topics
        )

    def image(rgb: np.ndarray, stamp: int, frame_id: str, name: str) -> Any:
        if image_format == "raw":
            return image_msg(rgb, stamp, frame_id, name)
        return compressed_image_msg(rgb, stamp, frame_id, image_format, jpeg_quality)

    count = 0
    try:
        with Writer(path, version=9, storage_plugin=plugins[storage]) as writer:
            conns = {
                key: writer.add_connection(fully_qualified_topic(topic), msgtype, typestore=store)
                for key, topic, msgtype in (
                    ("left_image", image_topics[0], image_type),
                    ("left_info", topics.left_info, CAMERA_INFO_MSGTYPE),
                    ("right_image", image_topics[1], image_type),
                    ("right_info", topics.right_info, CAMERA_INFO_MSGTYPE),
                )
            }
            gt_conn: Connection | None = None
            for sample in samples:
                stamp = start_ns + round(count * 1e9 / rate_hz)
                left_frame = left_frame_id or sample.left_info.frame_id or DEFAULT_LEFT_FRAME_ID
                right_frame = (
                    right_frame_id or sample.right_info.frame_id or DEFAULT_RIGHT_FRAME_ID
                )
                messages: list[tuple[Connection, Any]] = []
                if count == 0 or not camera_info_once:
                    messages.append(
                        (conns["left_info"], camera_info_msg(sample.left_info, stamp, left_frame))
                    )
                messages.append(
                    (conns["left_image"], image(sample.left, stamp, left_frame, "left"))
                )
                if count == 0 or not camera_info_once:
                    messages.append(
                        (
                            conns["right_info"],
                            camera_info_msg(sample.right_info, stamp, right_frame),
                        )
                    )
                messages.append(
                    (conns["right_image"], image(sample.right, stamp, right_frame, "right"))
                )
                if gt_topic and sample.joints is not None:
                    if gt_conn is None:
                        gt_conn = writer.add_connection(
                            fully_qualified_topic(gt_topic), POSE_ARRAY_MSGTYPE, typestore=store
                        )
                    messages.append((gt_conn, _pose_array_msg(sample.joints, stamp, left_frame)))
                for conn, msg in messages:
                    writer.write(conn, stamp, store.serialize_cdr(msg, conn.msgtype))
                count += 1
    except WriterError as err:
        raise DataError(f"could not write rosbag2 bag {path}: {err}") from None
    return count


# --------------------------------------------------------------------------------------------
# Reading


def rgb_from_image_buffer(
    data: np.ndarray | bytes,
    height: int,
    width: int,
    step: int,
    encoding: str,
    where: str = "image",
) -> np.ndarray:
    """Convert a sensor_msgs/Image buffer to RGB.

    Args:
        data: the message's ``data`` (uint8 buffer of at least ``step * height`` bytes).
        height: image height in pixels.
        width: image width in pixels.
        step: bytes per row (may include padding).
        encoding: one of :data:`IMAGE_ENCODINGS` (rgb8, bgr8, rgba8, bgra8, mono8).
        where: description used in error messages (topic and stamp).

    Returns:
        (H, W, 3) uint8 RGB array (a copy; mono8 is repeated to three channels).

    Raises:
        EncodingError: the encoding is unsupported or the buffer does not match the size.
    """
    channels = IMAGE_ENCODINGS.get(encoding)
    if channels is None:
        raise EncodingError(
            f"{where} expected encoding in {sorted(IMAGE_ENCODINGS)}; got {encoding!r}"
        )
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else np.asarray(data)
    buf = buf.astype(np.uint8, copy=False).reshape(-1)
    if height <= 0 or width <= 0 or step < width * channels or buf.size < step * height:
        raise EncodingError(
            f"{where} expected {height} rows of step >= {width * channels} bytes ({encoding}, "
            f"{width}x{height}); got step {step} and {buf.size} bytes"
        )
    pixels = buf[: step * height].reshape(height, step)[:, : width * channels]
    pixels = pixels.reshape(height, width, channels)
    if encoding == "rgb8":
        return pixels.copy()
    if encoding == "bgr8":
        return pixels[:, :, ::-1].copy()
    if encoding == "rgba8":
        return pixels[:, :, :3].copy()
    if encoding == "bgra8":
        return pixels[:, :, 2::-1].copy()
    return np.repeat(pixels, 3, axis=2)


def _stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def _camera_info_fields(msg: Any, where: str) -> CameraInfoFields:
    try:
        return CameraInfoFields.from_message(msg)
    except CameraInfoError as err:
        raise DataError(f"{where}: {err}") from None


def resolve_topic(name: str, available: Iterable[str]) -> str | None:
    """The bag topic that ``name`` refers to (see :class:`StereoTopics`), or None.

    Args:
        name: a topic name, relative or absolute (``"left/image_rect"``).
        available: the topics of a bag.

    Returns:
        The available topic equal to ``name`` without its leading slash, else the one topic
        ending in ``/<name>`` (a namespaced camera); None when there is none or several.
    """
    available = list(available)
    bare = name.lstrip("/")
    exact = [t for t in available if t.lstrip("/") == bare]
    if exact:
        return exact[0]
    suffix = [t for t in available if t.endswith("/" + bare)]
    return suffix[0] if len(suffix) == 1 else None


@dataclass
class _InfoTrack:
    """camera_info messages of one topic in log order: (log time, header stamp, fields)."""

    log_ns: list[int] = field(default_factory=list)
    by_stamp: dict[int, CameraInfoFields] = field(default_factory=dict)
    fields: list[CameraInfoFields] = field(default_factory=list)

    def add(self, log_ns: int, stamp_ns: int, info: CameraInfoFields) -> None:
        self.log_ns.append(log_ns)
        self.fields.append(info)
        self.by_stamp[stamp_ns] = info

    def for_image(self, log_ns: int, stamp_ns: int) -> CameraInfoFields:
        """Same-stamp info if any, else the last one logged at or before the image, else the
        first one (a camera_info recorded just after the first images)."""
        if stamp_ns in self.by_stamp:
            return self.by_stamp[stamp_ns]
        pos = int(np.searchsorted(self.log_ns, log_ns, side="right")) - 1
        return self.fields[max(pos, 0)]


def _nearest(stamps: Iterable[int], stamp: int, slop_ns: int) -> int | None:
    best: int | None = None
    for s in stamps:
        if abs(s - stamp) <= slop_ns and (best is None or abs(s - stamp) < abs(best - stamp)):
            best = s
    return best


def _nearest_sorted(stamps: list[int], stamp: int, slop_ns: int) -> int | None:
    """Nearest of the sorted ``stamps`` within ``slop_ns`` of ``stamp``, or None."""
    pos = bisect.bisect_left(stamps, stamp)
    near = [s for s in stamps[max(pos - 1, 0) : pos + 1] if abs(s - stamp) <= slop_ns]
    return min(near, key=lambda s: abs(s - stamp)) if near else None


def read_stereo_bag(
    path: str | os.PathLike[str],
    topics: StereoTopics = DEFAULT_TOPICS,
    slop_s: float = 0.005,
    gt_topic: str | None = DEFAULT_GT_TOPIC,
    *,
    load_ground_truth: bool = True,
) -> Iterator[StereoSample]:
    """Iterate over the stereo pairs of a rosbag2 bag (MCAP or sqlite3).

    The bag is opened and its topics checked when this function is called; pairs are then
    read lazily. Two passes are made: camera_info and ground truth first (small messages),
    then the images, pairing left and right by header stamp. Image topics may hold
    sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage (JPEG or PNG).

    Args:
        path: bag directory (with metadata.yaml) or a single .mcap / .db3 file.
        topics: the four stereo topic names.
        slop_s: largest left-right stamp difference accepted for a pair, seconds.
        gt_topic: topic of ground-truth joints (PoseArray, 21 poses); used when present.
        load_ground_truth: False never reads the ground-truth topic.

    Returns:
        An iterator of samples in pairing order, numbered from 0, ``stamp_ns`` = left stamp,
        ``joints`` = ground truth with the left stamp (within ``slop_s``) or None.

    Raises:
        DataError: ``path`` is not a bag, or lacks one of the four topics (the message lists
            the bag's topics and the expected ones), or a topic has the wrong type; while
            iterating, a camera_info is missing or its size differs from its image's, a
            compressed image is corrupt, or the bag's storage is.
        EncodingError: (while iterating) an image has an unsupported encoding.
    """
    pairs = read_stereo_bag_pairs(
        path, topics, slop_s, gt_topic, load_ground_truth=load_ground_truth
    )
    return (pair.decode() for pair in pairs)


def read_stereo_bag_pairs(
    path: str | os.PathLike[str],
    topics: StereoTopics = DEFAULT_TOPICS,
    slop_s: float = 0.005,
    gt_topic: str | None = DEFAULT_GT_TOPIC,
    *,
    load_ground_truth: bool = True,
) -> Iterator[BagPair]:
    """Iterate over the stereo pairs of a rosbag2 bag without decoding their images.

    As :func:`read_stereo_bag` (same arguments, checks and pairing), but each pair is a
    :class:`BagPair` whose :meth:`BagPair.decode` converts the images and may fail for that
    pair alone (a corrupt JPEG, a wrong encoding): the iteration goes on with the next pair.

    Raises:
        DataError: as :func:`read_stereo_bag` at the call; while iterating, only when the
            bag's storage itself cannot be read (truncated or corrupt).
    """
    path = Path(path)
    if not slop_s >= 0:
        raise ConfigError(f"slop_s expected >= 0; got {slop_s}")
    gt_topic = gt_topic if load_ground_truth else None
    # Check now, so that a wrong path or topic fails at the call; the generator opens its own
    # reader on first use, so an iterator that is never consumed holds no open file.
    reader = _open_reader(path)
    try:
        _stereo_connections(reader, path, topics, gt_topic)
    finally:
        reader.close()
    return _iterate_pairs(path, topics, gt_topic, round(slop_s * 1e9))


def resolve_stereo_topics(
    path: str | os.PathLike[str], topics: StereoTopics = DEFAULT_TOPICS
) -> tuple[StereoTopics, dict[str, TopicSummary]]:
    """The bag's names of the four stereo topics (see :class:`StereoTopics` for the matching).

    Args:
        path: bag directory or a single .mcap / .db3 file.
        topics: the names asked for.

    Returns:
        The matched topics as the bag names them (``/zed/left/image_rect/compressed``), and
        every topic of the bag with its type and message count.

    Raises:
        DataError: as :func:`read_stereo_bag`.
    """
    path = Path(path)
    reader = _open_reader(path)
    try:
        conns = _stereo_connections(reader, path, topics, None)
        summary = {
            name: TopicSummary(info.msgtype or "", info.msgcount)
            for name, info in sorted(reader.topics.items())
        }
    finally:
        reader.close()
    resolved = StereoTopics(**{key: conns[key][0].topic for key in topics.as_dict()})
    return resolved, summary


def _resolve_image_topic(name: str, available: Iterable[str]) -> str | None:
    """An image topic, else its image_transport compressed twin."""
    found = resolve_topic(name, available)
    if found is None and not name.endswith(_COMPRESSED_SUFFIX):
        found = resolve_topic(name + _COMPRESSED_SUFFIX, available)
    return found


def _stereo_connections(
    reader: Reader, path: Path, topics: StereoTopics, gt_topic: str | None
) -> dict[str, list[Connection]]:
    available = {c.topic: c.msgtype for c in reader.connections}
    image_types = (IMAGE_MSGTYPE, COMPRESSED_IMAGE_MSGTYPE)
    wanted = {
        "left_image": (topics.left_image, image_types),
        "right_image": (topics.right_image, image_types),
        "left_info": (topics.left_info, (CAMERA_INFO_MSGTYPE,)),
        "right_info": (topics.right_info, (CAMERA_INFO_MSGTYPE,)),
    }
    resolved = {
        key: (_resolve_image_topic if key.endswith("image") else resolve_topic)(name, available)
        for key, (name, _) in wanted.items()
    }
    missing = [wanted[k][0] for k, v in resolved.items() if v is None]
    if missing:
        there = [f"{t} ({available[t]})" for t in sorted(available)] or ["none"]
        raise DataError(
            f"rosbag2 bag {path} expected topics {[w[0] for w in wanted.values()]} (an image "
            f"topic or its '{_COMPRESSED_SUFFIX}' twin); missing {missing}; the bag has {there}"
        )
    for key, topic in resolved.items():
        if available[topic] not in wanted[key][1]:
            raise DataError(
                f"rosbag2 bag {path} topic {topic} expected type "
                f"{' or '.join(wanted[key][1])}; got {available[topic]}"
            )
    conns: dict[str, list[Connection]] = {
        key: [c for c in reader.connections if c.topic == topic] for key, topic in resolved.items()
    }
    gt_resolved = resolve_topic(gt_topic, available) if gt_topic else None
    conns["gt"] = [
        c
        for c in reader.connections
        if gt_resolved is not None and c.topic == gt_resolved and c.msgtype == POSE_ARRAY_MSGTYPE
    ]
    return conns


def _messages(reader: Reader, path: Path, conns: list[Connection], what: str) -> Iterator:
    """``reader.messages(conns)``, with a storage failure raised as DataError."""
    try:
        yield from reader.messages(conns)
    except StereoHandMeshError:
        raise
    except Exception as err:  # the storage back ends raise their own types
        raise DataError(
            f"rosbag2 bag {path} could not be read further while reading {what} (truncated "
            f"or corrupt): {type(err).__name__}: {err}"
        ) from None


def _iterate_pairs(
    path: Path, topics: StereoTopics, gt_topic: str | None, slop_ns: int
) -> Iterator[BagPair]:
    store = rosbags_typestore()
    reader = _open_reader(path)
    try:
        conns = _stereo_connections(reader, path, topics, gt_topic)
        infos = {"left": _InfoTrack(), "right": _InfoTrack()}
        info_side = {c.id: side for side in infos for c in conns[f"{side}_info"]}
        gt_ids = {c.id for c in conns["gt"]}
        gt: dict[int, np.ndarray] = {}
        small = [*conns["left_info"], *conns["right_info"], *conns["gt"]]
        for conn, log_ns, raw in _messages(reader, path, small, "camera_info"):
            msg = store.deserialize_cdr(raw, conn.msgtype)
            stamp = _stamp_ns(msg)
            if conn.id in gt_ids:
                gt[stamp] = _joints_from_pose_array(msg, f"{path} topic {conn.topic}")
            else:
                where = f"{path} topic {conn.topic} at stamp {stamp} ns"
                infos[info_side[conn.id]].add(log_ns, stamp, _camera_info_fields(msg, where))

        gt_stamps = sorted(gt)
        image_side = {c.id: side for side in infos for c in conns[f"{side}_image"]}
        pending: dict[str, dict[int, _ImageItem]] = {"left": {}, "right": {}}
        index = 0
        images = [*conns["left_image"], *conns["right_image"]]
        for conn, log_ns, raw in _messages(reader, path, images, "images"):
            side = image_side[conn.id]
            other = "right" if side == "left" else "left"
            msg = store.deserialize_cdr(raw, conn.msgtype)
            stamp = _stamp_ns(msg)
            match = _nearest(pending[other], stamp, slop_ns)
            mine = _ImageItem(log_ns, msg, conn.topic, conn.msgtype)
            if match is None:
                pending[side][stamp] = mine
                oldest = stamp - _PAIRING_WINDOW_NS
                for buf in pending.values():
                    for old in [s for s in buf if s < oldest]:
                        del buf[old]
                continue
            theirs = pending[other].pop(match)
            left, right = (mine, theirs) if side == "left" else (theirs, mine)
            left_stamp = _stamp_ns(left.msg)
            joints: np.ndarray | None = None
            if gt:
                key = left_stamp if left_stamp in gt else None
                key = key if key is not None else _nearest_sorted(gt_stamps, left_stamp, slop_ns)
                joints = None if key is None else gt[key].copy()
            yield BagPair(path, index, left_stamp, left, right, infos, joints)
            index += 1
    finally:
        reader.close()


def _joints_from_pose_array(msg: Any, where: str) -> np.ndarray:
    if len(msg.poses) != NUM_JOINTS:
        raise DataError(f"{where} expected {NUM_JOINTS} poses; got {len(msg.poses)}")
    return np.array([[p.position.x, p.position.y, p.position.z] for p in msg.poses])


@dataclass(frozen=True)
class _ImageItem:
    """One image message waiting for its pair: log time, message, topic, message type."""

    log_ns: int
    msg: Any
    topic: str
    msgtype: str


class BagPair:
    """One left-right pair of a bag, its images not decoded yet (:func:`read_stereo_bag_pairs`).

    Attributes:
        index: position of the pair in pairing order, from 0.
        stamp_ns: header stamp of the left image, nanoseconds.
        left_topic: the bag topic of the left image.
        right_topic: the bag topic of the right image.
        joints: (21, 3) ground-truth joints (metres, left optical frame) or None.
    """

    def __init__(
        self,
        path: Path,
        index: int,
        stamp_ns: int,
        left: _ImageItem,
        right: _ImageItem,
        infos: dict[str, _InfoTrack],
        joints: np.ndarray | None,
    ) -> None:
        self.index = index
        self.stamp_ns = stamp_ns
        self.left_topic = left.topic
        self.right_topic = right.topic
        self.joints = joints
        self._path = path
        self._left = left
        self._right = right
        self._infos = infos

    @property
    def frame_id(self) -> str:
        """The left image's header frame_id."""
        return str(self._left.msg.header.frame_id)

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) of the left camera_info of the pair (the size its decoded images
        must have), or None when the bag has no left camera_info."""
        track = self._infos["left"]
        if not track.fields:
            return None
        info = track.for_image(self._left.log_ns, self.stamp_ns)
        return info.width, info.height

    def decode(self) -> StereoSample:
        """The pair's images as RGB with their camera_info.

        Raises:
            DataError: a camera_info is missing, or its size differs from its image's, or a
                compressed image is truncated or corrupt (the message names the topic and
                stamp).
            EncodingError: an image has an unsupported encoding or a short buffer.
        """
        left_rgb, left_info = _side_image(self._path, self._left, self._infos["left"])
        right_rgb, right_info = _side_image(self._path, self._right, self._infos["right"])
        return StereoSample(
            left=left_rgb,
            right=right_rgb,
            left_info=left_info,
            right_info=right_info,
            index=self.index,
            stamp_ns=self.stamp_ns,
            joints=None if self.joints is None else self.joints.copy(),
        )


def _side_image(
    path: Path, item: _ImageItem, track: _InfoTrack
) -> tuple[np.ndarray, CameraInfoFields]:
    msg = item.msg
    stamp = _stamp_ns(msg)
    where = f"{path} topic {item.topic} at stamp {stamp} ns"
    if not track.fields:
        raise DataError(f"{where} expected a camera_info for the image; got none in the bag")
    info = track.for_image(item.log_ns, stamp)
    if item.msgtype == COMPRESSED_IMAGE_MSGTYPE:
        rgb = decode_compressed_rgb(msg.data, str(msg.format), where)
        height, width = rgb.shape[:2]
    else:
        width, height = int(msg.width), int(msg.height)
    if (width, height) != (info.width, info.height):
        raise DataError(
            f"{where} expected the camera_info size {info.width}x{info.height}; got an image "
            f"of {width}x{height}"
        )
    if item.msgtype != COMPRESSED_IMAGE_MSGTYPE:
        rgb = rgb_from_image_buffer(
            msg.data, int(msg.height), int(msg.width), int(msg.step), str(msg.encoding), where
        )
    return rgb, info
