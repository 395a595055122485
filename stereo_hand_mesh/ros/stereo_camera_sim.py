"""The ``stereo_camera_sim`` node: a synthetic rectified stereo camera with ground truth.

A procedural hand (``hands: 1``, default) or a person's two hands (``hands: 2``: the right
hand on the image's left, the left hand on its right, each with its own motion; they hide
each other where they pass) moves in front of STB's Bumblebee2 rig (intrinsics scaled to
``width`` x ``height``; baseline 120.054 mm) along the periodic motion of
:mod:`stereo_hand_mesh.data.motion`, rendered in the ``source`` or ``target`` look of the
synthetic data. Published on relative names, so ``hand_mesh_node`` in the same namespace
needs no remapping:

* ``left/image_rect``, ``right/image_rect`` (sensor_msgs/Image, ``encoding``) and
  ``left/camera_info``, ``right/camera_info`` (sensor_msgs/CameraInfo; the right P carries
  ``Tx = -fx * B``), all reliable with depth 5 (as image_transport publishes);
* ``sim/gt_joints`` (geometry_msgs/PoseArray, reliable, depth 10): the right hand's 21
  joints in the left optical frame, metres, in
  :data:`~stereo_hand_mesh.hand.joints.JOINT_NAMES` order, with identity orientations; empty
  (no poses) when ``hand_visible`` is false;
* ``sim/gt_joints_left`` (same type and QoS; ``hands: 2`` only): the left hand's 21 joints
  (the mirrored template's, same names and order); empty when ``hand_visible`` is false.

The messages of a frame carry the same stamp (the node clock when the frame is published);
the left ones and the ground truth carry ``left_frame_id``, the right ones
``right_frame_id``.

Rendering takes tens of milliseconds per pair, so the ``round(rate_hz * loop_seconds)``
frames of one loop (at most ``max_frames``) are rendered once at start-up, before the
publishing timer starts; they are then played over and over, which keeps the rate steady
(measured on a 2-core machine at 15 Hz and 8 s: 120 frames in about 9-10 s at 640x480, the
first frame about 12 s after the process starts; 3-4 s and 6 s at 320x240; two hands take
about 1.1 times as long: 122 against 109 ms per frame at 640x480, the hands being smaller).

Usage::

    stereo_camera_sim --ros-args -p rate_hz:=15.0 -p domain:=target -p max_frames:=300
    stereo_camera_sim --ros-args -p hands:=2
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import rclpy
from geometry_msgs.msg import PoseArray
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from stereo_hand_mesh.data.bags import DEFAULT_GT_TOPIC
from stereo_hand_mesh.data.camera_info_yaml import DEFAULT_LEFT_FRAME_ID, DEFAULT_RIGHT_FRAME_ID
from stereo_hand_mesh.errors import ConfigError, StereoHandMeshError
from stereo_hand_mesh.ros.camera_info_conversion import camera_info_fields_to_msg
from stereo_hand_mesh.ros.image_conversion import (
    SUPPORTED_ENCODINGS,
    array_to_image_msg,
    rgb8_to_encoding,
)
from stereo_hand_mesh.ros.messages import pose_array_msg
from stereo_hand_mesh.ros.parameters import ParamSpec, declare_parameters, validate_value

if TYPE_CHECKING:  # torch-heavy: imported when rendering starts, not to check parameters
    from stereo_hand_mesh.data.motion import HandMotion, MotionFrame

__all__ = [
    "GT_LEFT_TOPIC",
    "NODE_NAME",
    "STEREO_CAMERA_SIM_PARAMETERS",
    "SimFrameMessages",
    "StereoCameraSim",
    "StereoCameraSimConfig",
    "main",
    "sim_motion",
]

NODE_NAME = "stereo_camera_sim"
#: Output topics (relative names).
LEFT_IMAGE_TOPIC, RIGHT_IMAGE_TOPIC = "left/image_rect", "right/image_rect"
LEFT_INFO_TOPIC, RIGHT_INFO_TOPIC = "left/camera_info", "right/camera_info"
#: The left hand's ground truth (``hands: 2``); ``DEFAULT_GT_TOPIC`` carries the right hand's.
GT_LEFT_TOPIC = "sim/gt_joints_left"
#: The pre-rendered loop may hold at most this many bytes of images.
_MAX_LOOP_BYTES = 2 << 30
#: Time given to the middleware to deliver the last frame before exiting, seconds.
_LINGER_S = 0.5

#: Parameters of ``stereo_camera_sim`` (all read at start-up).
STEREO_CAMERA_SIM_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("rate_hz", 15.0, "frames published per second, Hz", 0.1, 240.0),
    ParamSpec(
        "width", 640, "image width, pixels (STB's intrinsics scaled to the width)", 64, 4096
    ),
    ParamSpec("height", 480, "image height, pixels", 48, 4096),
    ParamSpec(
        "domain",
        "source",
        "look of the images: source (FreiHAND-like) or target (STB-like indoor scene)",
        choices=("source", "target"),
    ),
    ParamSpec("seed", 0, "fixes the hand's shape and look and the motion's phases", 0, 2**31 - 1),
    ParamSpec("loop_seconds", 8.0, "duration of one loop of the motion, seconds", 0.5, 600.0),
    ParamSpec(
        "encoding", "rgb8", "encoding of the published images", choices=tuple(SUPPORTED_ENCODINGS)
    ),
    ParamSpec(
        "left_frame_id",
        DEFAULT_LEFT_FRAME_ID,
        "frame_id of the left image, left camera_info and the ground truth",
    ),
    ParamSpec(
        "right_frame_id", DEFAULT_RIGHT_FRAME_ID, "frame_id of the right image and camera_info"
    ),
    ParamSpec(
        "max_frames",
        0,
        "publish this many frames, then exit (0 = until shut down)",
        0,
        2**31 - 1,
    ),
    ParamSpec("hand_visible", True, "false: frames without a hand (empty ground truth)"),
    ParamSpec(
        "hands",
        1,
        "1: a right hand; 2: a person's right and left hand, each with its own motion "
        "(the left hand's ground truth on sim/gt_joints_left)",
        1,
        2,
    ),
    ParamSpec(
        "wait_for_subscribers",
        False,
        "hold the first frame until every output topic has a subscriber",
    ),
    ParamSpec("render_threads", 1, "torch and OpenCV threads used for rendering", 1, 64),
)


def _check_frame_id(name: str, value: str) -> None:
    if not value or value.startswith("/") or any(c.isspace() for c in value):
        raise ConfigError(
            f"parameter {name} expected a non-empty frame id without a leading slash or "
            f"spaces; got {value!r}"
        )


@dataclass(frozen=True)
class StereoCameraSimConfig:
    """What the node renders and publishes (see :data:`STEREO_CAMERA_SIM_PARAMETERS`).

    Attributes:
        rate_hz: publishing rate, Hz.
        width, height: image size, pixels.
        domain: ``"source"`` or ``"target"``.
        seed: fixes shape, appearance and motion phases.
        loop_seconds: duration of one loop of the motion, seconds.
        encoding: image encoding (one of ``SUPPORTED_ENCODINGS``).
        left_frame_id, right_frame_id: frame ids of the two cameras.
        max_frames: frames to publish before exiting; 0 = until shut down.
        hand_visible: False renders the background alone.
        hands: 1 (a right hand) or 2 (a right and a left hand).
        wait_for_subscribers: publish nothing until every output topic has a matched
            subscriber (so that a listener started with the node gets frame 0 on).
        render_threads: torch and OpenCV threads for rendering.
    """

    rate_hz: float = 15.0
    width: int = 640
    height: int = 480
    domain: str = "source"
    seed: int = 0
    loop_seconds: float = 8.0
    encoding: str = "rgb8"
    left_frame_id: str = DEFAULT_LEFT_FRAME_ID
    right_frame_id: str = DEFAULT_RIGHT_FRAME_ID
    max_frames: int = 0
    hand_visible: bool = True
    hands: int = 1
    wait_for_subscribers: bool = False
    render_threads: int = 1

    def __post_init__(self) -> None:
        for spec in STEREO_CAMERA_SIM_PARAMETERS:
            validate_value(spec, getattr(self, spec.name))
        _check_frame_id("left_frame_id", self.left_frame_id)
        _check_frame_id("right_frame_id", self.right_frame_id)
        dtype, channels = SUPPORTED_ENCODINGS[self.encoding]
        loop_bytes = self.loop_frames * 2 * self.width * self.height * channels * dtype.itemsize
        if loop_bytes > _MAX_LOOP_BYTES:
            raise ConfigError(
                f"parameters rate_hz * loop_seconds (or max_frames), width and height expected "
                f"a pre-rendered loop of at most {_MAX_LOOP_BYTES / 2**30:.0f} GiB; got "
                f"{self.loop_frames} frames of 2 x {self.width}x{self.height} {self.encoding} "
                f"= {loop_bytes / 2**30:.1f} GiB; lower rate_hz, loop_seconds or the size"
            )

    @property
    def frames_per_loop(self) -> int:
        """Frames of one loop of the motion: ``max(1, round(rate_hz * loop_seconds))``."""
        return max(1, round(self.rate_hz * self.loop_seconds))

    @property
    def loop_frames(self) -> int:
        """Frames rendered at start-up: one loop, or ``max_frames`` when that is fewer."""
        n = self.frames_per_loop
        return n if self.max_frames == 0 else min(n, self.max_frames)

    @classmethod
    def from_parameters(cls, values: dict[str, Any]) -> StereoCameraSimConfig:
        """The config of validated parameter values (``declare_parameters``'s result)."""
        return cls(**{spec.name: values[spec.name] for spec in STEREO_CAMERA_SIM_PARAMETERS})


def sim_motion(config: StereoCameraSimConfig) -> HandMotion:
    """The :class:`~stereo_hand_mesh.data.motion.HandMotion` the node renders.

    The rig is STB's Bumblebee2 scaled to the configured size; the margin (12 px at 640
    px wide) scales with the width.

    Raises:
        ConfigError: the hand does not fit inside both images (see ``HandMotion``).
    """
    from stereo_hand_mesh.data.camera_info_yaml import rig_for_size
    from stereo_hand_mesh.data.motion import HandMotion, HandMotionSettings
    from stereo_hand_mesh.data.synth import SynthSettings
    from stereo_hand_mesh.hand.model import template_hand

    rig = rig_for_size(config.width, config.height, None)
    synth = SynthSettings(domain=config.domain, rig=rig)
    settings = HandMotionSettings(
        loop_seconds=config.loop_seconds,
        margin_px=max(4.0, 12.0 * config.width / 640),
        hands=config.hands,
        midline_overlap_px=16.0 * config.width / 640,
    )
    return HandMotion(template_hand(), synth, settings, config.seed)


@dataclass(frozen=True)
class SimFrameMessages:
    """The pre-built messages of one frame; headers are filled in when it is published.

    Attributes:
        left, right: sensor_msgs/Image.
        gt: geometry_msgs/PoseArray: the right hand's joints (21 poses, or none without a
            hand).
        gt_left: the left hand's (two hands), or None (one hand).
    """

    left: Any
    right: Any
    gt: Any
    gt_left: Any = None


def _frame_messages(frame: MotionFrame, config: StereoCameraSimConfig) -> SimFrameMessages:
    """Messages of a :class:`~stereo_hand_mesh.data.motion.MotionFrame`."""
    enc = config.encoding
    left = array_to_image_msg(rgb8_to_encoding(frame.left, enc), enc)
    right = array_to_image_msg(rgb8_to_encoding(frame.right, enc), enc)
    gt = PoseArray() if frame.joints is None else pose_array_msg(frame.joints, None)
    gt_left = None
    if config.hands == 2:
        joints = frame.joints_by_side.get("left")
        gt_left = PoseArray() if joints is None else pose_array_msg(joints, None)
    return SimFrameMessages(left, right, gt, gt_left)


class StereoCameraSim(Node):
    """The synthetic stereo camera node (see the module docstring).

    ``__init__`` declares and validates the parameters and creates the publishers;
    :meth:`prerender` renders the loop and :meth:`start` starts the timer. ``finished`` turns
    true after ``max_frames`` frames.

    Raises:
        ConfigError: a parameter is of the wrong type, out of range or not one of its choices
            (the message names it, what was expected and what came).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        values = declare_parameters(self, STEREO_CAMERA_SIM_PARAMETERS)
        self.config = StereoCameraSimConfig.from_parameters(values)
        gt_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        # Reliable, keep last 5, as image_transport and most camera drivers publish: it
        # matches hand_mesh_node's reliable inputs and best-effort subscribers alike.
        sensor = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self._pub_left = self.create_publisher(Image, LEFT_IMAGE_TOPIC, sensor)
        self._pub_right = self.create_publisher(Image, RIGHT_IMAGE_TOPIC, sensor)
        self._pub_left_info = self.create_publisher(CameraInfo, LEFT_INFO_TOPIC, sensor)
        self._pub_right_info = self.create_publisher(CameraInfo, RIGHT_INFO_TOPIC, sensor)
        self._pub_gt = self.create_publisher(PoseArray, DEFAULT_GT_TOPIC, gt_qos)
        self._pub_gt_left = (
            self.create_publisher(PoseArray, GT_LEFT_TOPIC, gt_qos)
            if self.config.hands == 2
            else None
        )
        self._outputs = (
            self._pub_left,
            self._pub_right,
            self._pub_left_info,
            self._pub_right_info,
            self._pub_gt,
        ) + ((self._pub_gt_left,) if self._pub_gt_left is not None else ())
        self._frames: list[SimFrameMessages] = []
        self._infos: tuple[Any, Any] | None = None
        self._timer: Any = None
        self.published = 0
        self.finished = False

    def prerender(self) -> float:
        """Render the loop's frames and build their messages.

        Stops early (leaving no frames) when the context is shut down meanwhile (Ctrl-C).

        Returns:
            The seconds it took (building the motion and rendering).

        Raises:
            ConfigError: the hand does not fit inside both images.
        """
        import cv2
        import numpy as np
        import torch

        from stereo_hand_mesh.data.motion import loop_frame_times, render_motion_frame

        c = self.config
        torch.set_num_threads(c.render_threads)
        cv2.setNumThreads(c.render_threads)
        start = time.perf_counter()
        motion = sim_motion(c)
        left_info, right_info = motion.synth.rig.camera_infos(c.left_frame_id, c.right_frame_id)
        self._infos = (camera_info_fields_to_msg(left_info), camera_info_fields_to_msg(right_info))
        times = loop_frame_times(c.loop_seconds, c.rate_hz)[: c.loop_frames]
        self.get_logger().info(
            f"motion ready in {time.perf_counter() - start:.1f} s; rendering {len(times)} "
            f"frames ({c.width}x{c.height}, {c.domain} domain, seed {c.seed}, "
            f"{'one hand' if c.hands == 1 else 'two hands'} "
            f"{'visible' if c.hand_visible else 'hidden'}) ..."
        )
        render_start = time.perf_counter()
        faces_t = torch.from_numpy(motion.hand.faces.astype(np.int64))
        frames = []
        for k, t in enumerate(times):
            if not self.context.ok():
                return time.perf_counter() - start
            frame = render_motion_frame(motion, k, float(t), faces_t, c.hand_visible)
            frames.append(_frame_messages(frame, c))
        self._frames = frames
        now = time.perf_counter()
        took = now - start
        self.get_logger().info(
            f"rendered {len(times)} frames in {now - render_start:.1f} s "
            f"({1e3 * (now - render_start) / len(times):.0f} ms per frame; start-up "
            f"{took:.1f} s); publishing {c.encoding} at {c.rate_hz:g} Hz on "
            f"{LEFT_IMAGE_TOPIC}, {RIGHT_IMAGE_TOPIC}, {LEFT_INFO_TOPIC}, {RIGHT_INFO_TOPIC} "
            f"and {DEFAULT_GT_TOPIC}" + (f" and {GT_LEFT_TOPIC}" if c.hands == 2 else "")
        )
        return took

    def start(self) -> None:
        """Start the publishing timer (after :meth:`prerender`)."""
        if not self._frames:
            raise ConfigError("stereo_camera_sim expected prerender() before start(); got none")
        if self.config.wait_for_subscribers:
            self.get_logger().info("waiting for a subscriber on every output topic ...")
        self._timer = self.create_timer(1.0 / self.config.rate_hz, self._publish_next)

    def _all_subscribed(self) -> bool:
        """True when every output topic has at least one matched subscriber."""
        return all(pub.get_subscription_count() > 0 for pub in self._outputs)

    def _publish_next(self) -> None:
        """Publish the next frame of the loop: five (six with two hands) messages with one
        stamp."""
        assert self._infos is not None
        c = self.config
        if c.wait_for_subscribers and self.published == 0 and not self._all_subscribed():
            return
        frame = self._frames[self.published % len(self._frames)]
        stamp = self.get_clock().now().to_msg()
        left_header = Header(stamp=stamp, frame_id=c.left_frame_id)
        right_header = Header(stamp=stamp, frame_id=c.right_frame_id)
        frame.left.header = left_header
        frame.right.header = right_header
        frame.gt.header = left_header
        self._infos[0].header = left_header
        self._infos[1].header = right_header
        self._pub_left.publish(frame.left)
        self._pub_right.publish(frame.right)
        self._pub_left_info.publish(self._infos[0])
        self._pub_right_info.publish(self._infos[1])
        self._pub_gt.publish(frame.gt)
        if self._pub_gt_left is not None:
            frame.gt_left.header = left_header
            self._pub_gt_left.publish(frame.gt_left)
        self.published += 1
        if c.max_frames and self.published >= c.max_frames:
            self._timer.cancel()
            self.finished = True
            self.get_logger().info(f"published {self.published} frames (max_frames); exiting")


def main(argv: list[str] | None = None) -> int:
    """Console script ``stereo_camera_sim``: run the node until shut down or ``max_frames``.

    Returns:
        0 on a clean exit (Ctrl-C, shutdown or ``max_frames`` reached); 1 when a parameter
        is invalid or the hand does not fit in the images (logged as an error).
    """
    rclpy.init(args=argv)
    node = None
    executor = SingleThreadedExecutor()
    try:
        node = StereoCameraSim()
        node.prerender()
        if not rclpy.ok():  # shut down while rendering
            return 0
        node.start()
        executor.add_node(node)
        while rclpy.ok() and not node.finished:
            executor.spin_once(timeout_sec=0.1)
        end = time.monotonic() + _LINGER_S
        while rclpy.ok() and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        return 0
    except StereoHandMeshError as err:
        rclpy.logging.get_logger(NODE_NAME).error(str(err))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
