"""Time synchronization of several topics: message_filters when importable, else a fallback.

The fallback implements the same two policies as message_filters' Python API:

* exact (``TimeSynchronizer``): a set is emitted when every input has a message with the
  same header stamp;
* approximate (``ApproximateTimeSynchronizer``): when a message arrives, the message
  nearest in time is taken from every other input's queue; if all chosen stamps lie within
  ``slop`` seconds of each other the set is emitted, and it and every older queued message
  are removed. Each input keeps at most ``queue_size`` messages (the oldest is dropped).

Messages that leave a queue without being part of an emitted set are counted in
:attr:`Synchronizer.dropped` (fallback only; message_filters does not report it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "IMAGE_TRANSPORTS",
    "STEREO_INPUT_NAMES",
    "SyncSettings",
    "Synchronizer",
    "input_qos",
    "make_stereo_synchronizer",
    "make_synchronizer",
    "message_filters_available",
    "stereo_topics",
    "sync_settings_from",
]

#: Image transports of the stereo inputs (image_transport's names): ``raw``
#: (sensor_msgs/Image) or ``compressed`` (sensor_msgs/CompressedImage, JPEG or PNG).
IMAGE_TRANSPORTS = ("raw", "compressed")

#: The four stereo inputs, in the order of a synchronized set (and of the callback's arguments).
STEREO_INPUT_NAMES = ("left image", "left camera_info", "right image", "right camera_info")

try:  # pragma: no cover - depends on the installation
    import message_filters as _mf
except ImportError:
    _mf = None


def message_filters_available() -> bool:
    """True when the ROS message_filters package is importable."""
    return _mf is not None


@dataclass(frozen=True)
class SyncSettings:
    """How inputs are paired.

    Attributes:
        queue_size: messages kept per input while waiting for partners (>= 1).
        approximate: approximate-time policy when True, exact stamps when False.
        slop_s: largest spread of stamps in one set, seconds (approximate policy only).
    """

    queue_size: int = 10
    approximate: bool = True
    slop_s: float = 0.01


def _stamp_ns(msg: Any) -> int:
    st = msg.header.stamp
    return int(st.sec) * 1_000_000_000 + int(st.nanosec)


class _FallbackPolicy:
    """The pairing logic, free of ROS: feed messages with :meth:`add`."""

    def __init__(self, n_inputs: int, settings: SyncSettings, callback: Callable[..., None]):
        if settings.queue_size < 1:
            raise ValueError(f"queue_size expected >= 1; got {settings.queue_size}")
        if settings.slop_s < 0:
            raise ValueError(f"slop expected >= 0 s; got {settings.slop_s}")
        self._queues: list[deque[tuple[int, Any]]] = [deque() for _ in range(n_inputs)]
        self._settings = settings
        self._slop_ns = 0 if not settings.approximate else round(settings.slop_s * 1e9)
        self._callback = callback
        self.dropped = 0
        #: stamp spread of the last attempt that failed the slop test, nanoseconds
        self.last_spread_ns = 0

    def add(self, index: int, msg: Any) -> None:
        queue = self._queues[index]
        queue.append((_stamp_ns(msg), msg))
        while len(queue) > self._settings.queue_size:
            queue.popleft()
            self.dropped += 1
        self._try_emit(index, queue[-1][0])

    def _try_emit(self, index: int, stamp: int) -> None:
        chosen: list[tuple[int, Any]] = []
        for j, queue in enumerate(self._queues):
            if not queue:
                return
            if j == index:
                chosen.append(queue[-1])
                continue
            chosen.append(min(queue, key=lambda item: abs(item[0] - stamp)))
        stamps = [s for s, _ in chosen]
        if max(stamps) - min(stamps) > self._slop_ns:
            self.last_spread_ns = max(stamps) - min(stamps)
            return
        for j, queue in enumerate(self._queues):
            while queue and queue[0][0] <= chosen[j][0]:
                item = queue.popleft()
                if item is not chosen[j]:
                    self.dropped += 1
        self._callback(*(msg for _, msg in chosen))


class Synchronizer:
    """Subscribers on several topics whose messages reach ``callback`` in time-matched sets.

    Attributes:
        backend: ``"message_filters"`` or ``"fallback"``.
        subscriptions: the underlying subscription objects (to keep them alive).
        topics: the topic names as given (in ``inputs`` order).
    """

    def __init__(
        self,
        node: Any,
        inputs: Sequence[tuple[type, str]],
        callback: Callable[..., None],
        settings: SyncSettings,
        qos: Any,
        prefer_native: bool = True,
        qos_overridable: bool = False,
    ) -> None:
        self._policy: _FallbackPolicy | None = None
        extra: dict[str, Any] = {}
        if qos_overridable:
            extra = _overridable_subscription_options(node)
        #: messages received per input (in ``inputs`` order)
        self.received = [0] * len(inputs)
        self.topics = tuple(topic for _, topic in inputs)
        if prefer_native and _mf is not None:  # pragma: no cover - depends on installation
            subs = [
                _mf.Subscriber(node, t, topic, qos_profile=qos, **extra) for t, topic in inputs
            ]
            if settings.approximate:
                sync = _mf.ApproximateTimeSynchronizer(subs, settings.queue_size, settings.slop_s)
            else:
                sync = _mf.TimeSynchronizer(subs, settings.queue_size)
            sync.registerCallback(callback)
            for i, sub in enumerate(subs):
                sub.registerCallback(self._make_counter(i))
            self.backend = "message_filters"
            self.subscriptions = [*subs, sync]
            return
        self._policy = _FallbackPolicy(len(inputs), settings, callback)
        self.backend = "fallback"
        self.subscriptions = [
            node.create_subscription(t, topic, self._make_cb(i), qos, **extra)
            for i, (t, topic) in enumerate(inputs)
        ]

    def _make_counter(self, index: int) -> Callable[[Any], None]:  # pragma: no cover
        def count(_: Any) -> None:
            self.received[index] += 1

        return count

    def _make_cb(self, index: int) -> Callable[[Any], None]:
        policy = self._policy
        assert policy is not None

        def cb(msg: Any) -> None:
            self.received[index] += 1
            policy.add(index, msg)

        return cb

    @property
    def last_spread_s(self) -> float:
        """Stamp spread of the last set that failed the slop test, seconds (fallback only)."""
        return 0.0 if self._policy is None else self._policy.last_spread_ns / 1e9

    @property
    def dropped(self) -> int:
        """Messages discarded unmatched (0 with message_filters, which does not count)."""
        return 0 if self._policy is None else self._policy.dropped

    def feed(self, index: int, msg: Any) -> None:
        """Push a message into input ``index`` directly (fallback only; used by bag replay)."""
        if self._policy is None:
            raise RuntimeError("feed() is only available with the fallback synchronizer")
        self._policy.add(index, msg)


def _overridable_subscription_options(node: Any) -> dict[str, Any]:
    """create_subscription keywords that make a subscription's reliability, history and
    depth settable with ROS 2's QoS override parameters
    (``qos_overrides.<topic>.subscription.<policy>``), and that say, in words a user can act
    on, when a publisher's QoS cannot match the subscription's."""
    from rclpy.event_handler import SubscriptionEventCallbacks
    from rclpy.qos_overriding_options import QoSOverridingOptions

    def incompatible(info: Any) -> None:
        policy = getattr(info.last_policy_kind, "name", str(info.last_policy_kind)).lower()
        node.get_logger().warning(
            f"a publisher on one of the stereo inputs offers QoS incompatible with this "
            f"node's subscription (policy: {policy}); nothing is received from it. A "
            "best-effort driver needs qos_overrides.<topic>.subscription.reliability: "
            "best_effort (see README, 'QoS')"
        )

    return {
        "qos_overriding_options": QoSOverridingOptions.with_default_policies(),
        "event_callbacks": SubscriptionEventCallbacks(incompatible_qos=incompatible),
    }


def make_synchronizer(
    node: Any,
    inputs: Sequence[tuple[type, str]],
    callback: Callable[..., None],
    settings: SyncSettings,
    qos: Any,
    prefer_native: bool = True,
    qos_overridable: bool = False,
) -> Synchronizer:
    """Subscribe to ``inputs`` [(msg_type, topic), ...] and call ``callback(*msgs)`` per set.

    ``qos_overridable`` declares ROS 2's QoS override parameters for each subscription
    (:func:`_overridable_subscription_options`)."""
    return Synchronizer(node, inputs, callback, settings, qos, prefer_native, qos_overridable)


def sync_settings_from(values: Mapping[str, Any]) -> SyncSettings:
    """SyncSettings from a node's pairing parameters (``queue_size``, ``approximate_sync``,
    ``approximate_sync_tolerance_seconds``; see ``SYNC_PARAMETERS`` in
    :mod:`stereo_hand_mesh.ros.parameters`)."""
    return SyncSettings(
        queue_size=values["queue_size"],
        approximate=values["approximate_sync"],
        slop_s=values["approximate_sync_tolerance_seconds"],
    )


def stereo_topics(
    image_suffix: str = "image_rect", transport: str = "raw"
) -> tuple[str, str, str, str]:
    """The four relative input topics, in :data:`STEREO_INPUT_NAMES` order:
    ``left/<image_suffix>``, ``left/camera_info``, ``right/<image_suffix>``,
    ``right/camera_info``; with ``transport="compressed"`` the images are
    ``<side>/<image_suffix>/compressed`` (image_transport's naming)."""
    if transport not in IMAGE_TRANSPORTS:
        raise ValueError(f"image transport expected one of {IMAGE_TRANSPORTS}; got {transport!r}")
    image = image_suffix if transport == "raw" else f"{image_suffix}/{transport}"
    return (f"left/{image}", "left/camera_info", f"right/{image}", "right/camera_info")


def input_qos() -> Any:
    """The default QoS of the four stereo inputs: reliable, keep last 5, volatile.

    Reliable because it loses the fewest pairs whatever the transport: with Fast DDS's
    defaults on both sides an image (0.9 MB at 640x480 rgb8) goes through the publisher's
    0.5 MB shared-memory segment, which overwrites fragments the node has not read yet;
    reliable repairs part of them, best effort none. hand_mesh_node's own Fast DDS profile
    (:mod:`stereo_hand_mesh.ros.fastdds_profile`) has the images sent to it over UDP instead,
    where both deliver every pair when the kernel allows its 4 MB receive buffer
    (docs/benchmarks.md, "Input QoS", has the measurements). A reliable subscription matches
    reliable publishers (image_transport's and most drivers' default) but not best-effort
    ones: those need the override ``qos_overrides.<topic>.subscription.reliability:
    best_effort``.
    """
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=5,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def make_stereo_synchronizer(
    node: Any,
    callback: Callable[[Any, Any, Any, Any], None],
    values: Mapping[str, Any],
    image_suffix: str = "image_rect",
    transport: str = "raw",
) -> Synchronizer:
    """Subscribe the four stereo inputs (:func:`stereo_topics`, :func:`input_qos`, each
    subscription's reliability, history and depth settable with QoS override parameters)
    and call ``callback(left, left_info, right, right_info)`` per synchronized set, paired
    as the node's parameters ``values`` say (:func:`sync_settings_from`). With
    ``transport="compressed"`` the images arrive as sensor_msgs/CompressedImage."""
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    image_type = Image if transport == "raw" else CompressedImage
    types = (image_type, CameraInfo, image_type, CameraInfo)
    inputs = list(zip(types, stereo_topics(image_suffix, transport), strict=True))
    return make_synchronizer(
        node, inputs, callback, sync_settings_from(values), input_qos(), qos_overridable=True
    )
