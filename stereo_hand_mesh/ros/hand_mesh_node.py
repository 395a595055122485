"""``hand_mesh_node``: synchronized stereo pairs in, metric 3D hand mesh, joints and TF out.

Threads. A single-threaded executor runs the subscriptions, the ``~/reload_model`` service
(an async callback: the model loads in its own thread, so a load never stalls the inputs) and
the diagnostics timer.
Synchronized sets go into a one-slot mailbox; a worker thread takes the newest set, runs the
pipeline and publishes. A set replaced in the mailbox before the worker took it counts as a
dropped pair (the node always works on the newest pair, so latency stays bounded under load).
The ROS-free parts live in the pipeline layer: the worker, statistics and log throttle in
:mod:`stereo_hand_mesh.pipeline.stream`, the input checks, rectification and rig (cached on
the camera_info contents) in :mod:`stereo_hand_mesh.pipeline.stereo_input`; this module
subscribes, converts messages, publishes and reports diagnostics.

Inputs (relative names; reliable, keep last 5, each settable with the QoS override
parameters ``qos_overrides.<topic>.subscription.{reliability,history,depth}``):
``left/image_rect``, ``left/camera_info``, ``right/image_rect``, ``right/camera_info``
(``left/image_raw`` and ``right/image_raw`` with ``rectify: true``; the images as
sensor_msgs/CompressedImage on ``<image topic>/compressed`` with
``image_transport: compressed``), and the optional region of interest ``hand/roi``
(sensor_msgs/RegionOfInterest in left-image pixels; the last one is used while it is younger
than ``roi_timeout_s``).

Outputs: see :mod:`stereo_hand_mesh.ros.messages`; all carry the left image's stamp and
frame_id. The pipeline meshes up to ``max_hands`` hands per pair
(:meth:`~stereo_hand_mesh.pipeline.estimator.HandMeshPipeline.process_hands`); for each side
(``right``, ``left``) the node publishes the most confident meshed hand of that side on
``hand/<side>/joints``, ``hand/<side>/vertices`` and ``hand/<side>/markers``, and both hands'
TF frames (``<frame_prefix><side>_<joint>``) in one TFMessage. A side with no mesh in a pair
(no hand of that side, or its confidence below ``min_confidence``) publishes no joints,
vertices or TF; if that side's markers were shown they are deleted (a DELETEALL on its own
topic: the other side's stay). ``/diagnostics`` carries the pair's summary (each meshed hand's
side, id and confidence, why the others were dropped), and a throttled log line says why a
located hand was dropped.

Bad input (unsupported encoding, a corrupt or truncated JPEG/PNG, sizes that differ, invalid
camera_info, an empty image, unsynchronized stamps, a missing camera_info) is logged with what
was expected and what came, at most once per ``_LOG_EVERY_S`` per kind, counted in
``/diagnostics``, and the node goes on.
A pair that fails (bad input, or any error while processing it) also deletes the markers of
both sides, so RViz never keeps showing a stale hand.
"""

from __future__ import annotations

import re
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.task import Future
from sensor_msgs.msg import Image, RegionOfInterest
from std_srvs.srv import Trigger

from stereo_hand_mesh.errors import ConfigError, StereoHandMeshError
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.pipeline.estimator import SIDES, HandMeshPipeline, HandsEstimate
from stereo_hand_mesh.pipeline.factory import create_pipeline
from stereo_hand_mesh.pipeline.mesh_uv import MeshUVPipeline
from stereo_hand_mesh.pipeline.overlay import draw_overlay
from stereo_hand_mesh.pipeline.stereo_input import PreparedPair, StereoInput
from stereo_hand_mesh.pipeline.stream import LogThrottle, NewestOnlyWorker, PairStatistics
from stereo_hand_mesh.ros.camera_info_conversion import camera_info_msg_to_fields
from stereo_hand_mesh.ros.hand_mesh_parameters import (
    HAND_MESH_PARAMETERS,
    pipeline_settings_from,
)
from stereo_hand_mesh.ros.image_conversion import (
    array_to_image_msg,
    compressed_msg_to_rgb8,
    image_msg_to_rgb8,
)
from stereo_hand_mesh.ros.messages import build_outputs, delete_markers_msg
from stereo_hand_mesh.ros.node_main import run_node
from stereo_hand_mesh.ros.parameters import ParamSpec, declare_parameters, validate_value
from stereo_hand_mesh.ros.sync import STEREO_INPUT_NAMES, make_stereo_synchronizer
from stereo_hand_mesh.ros.tf_broadcast import make_tf_broadcaster
from stereo_hand_mesh.runtime.engine_path import confined_engine_path

__all__ = ["NODE_NAME", "HandMeshNode", "check_frame_prefix", "main", "pipeline_settings_from"]

NODE_NAME = "hand_mesh_node"
_LOG_EVERY_S = 5.0


def check_frame_prefix(prefix: str) -> str:
    """``frame_prefix`` as given, or ConfigError: TF frame ids carry no leading slash (tf2
    refuses them) and no whitespace. Empty is allowed (frames named by the joints alone)."""
    if prefix.startswith("/") or any(c.isspace() for c in prefix):
        raise ConfigError(
            "parameter frame_prefix expected a TF frame prefix without a leading slash or "
            f"spaces (e.g. 'hand_'); got {prefix!r}"
        )
    return prefix


@dataclass(frozen=True)
class _PairMessages:
    left: Any
    left_info: Any
    right: Any
    right_info: Any
    received_s: float


@dataclass(frozen=True)
class _Model:
    pipeline: HandMeshPipeline | MeshUVPipeline
    reason: str
    path: str  # model_file_path, or "(shipped default)"
    files: str  # the files served, " + "-separated


class HandMeshNode(Node):
    """The hand mesh node (see the module docstring).

    Raises:
        ConfigError: a parameter is invalid.
        ModelFileError: the model file is missing or corrupt, or its backend is missing.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._specs: dict[str, ParamSpec] = {s.name: s for s in HAND_MESH_PARAMETERS}
        self._p = declare_parameters(self, HAND_MESH_PARAMETERS)
        check_frame_prefix(self._p["frame_prefix"])
        self._settings = pipeline_settings_from(self._p)  # replaced when a parameter changes
        self._model = self._load_model(self._p)
        self._log = self.get_logger()
        self._log.info(f"backend {self._model.reason}; model {self._model.path}")
        self._throttle = LogThrottle(_LOG_EVERY_S)
        self._stats = PairStatistics()
        # The last processed pair: (hands meshed, its summary), under the statistics' lock.
        self._last_pair: tuple[int, str] = (0, "no pair processed yet")
        self._input = StereoInput(rectify=self._p["rectify"])
        # Per side: header of the hand RViz shows, or None (the next pair without a mesh of
        # that side deletes it), and when its mesh marker was last sent.
        self._shown_header: dict[str, Any] = dict.fromkeys(SIDES)
        self._last_mesh_marker_s = dict.fromkeys(SIDES, -1e9)
        self._roi: tuple[tuple[float, float, float], float] | None = None

        qos = 10
        self._pubs = {side: _SidePublishers(self, side, qos) for side in SIDES}
        self._pub_overlay = self.create_publisher(Image, "hand/overlay", qos)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", qos)
        self._tf = make_tf_broadcaster(self)

        suffix = "image_raw" if self._p["rectify"] else "image_rect"
        transport = self._p["image_transport"]
        self._to_rgb8 = compressed_msg_to_rgb8 if transport == "compressed" else image_msg_to_rgb8
        self._sync = make_stereo_synchronizer(self, self._on_set, self._p, suffix, transport)
        self._topics = self._sync.topics
        self.create_subscription(RegionOfInterest, "hand/roi", self._on_roi, 10)
        self.create_service(Trigger, "~/reload_model", self._on_reload)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diag_prev = (list(self._sync.received), 0)
        self._diag_timer = self.create_timer(self._p["diagnostics_period_s"], self._diagnose)

        self._worker: NewestOnlyWorker[_PairMessages] = NewestOnlyWorker(
            self._process, self._on_pair_error, "hand_mesh_worker"
        )
        self._log.info(
            f"waiting for {', '.join(self.resolve_topic_name(t) for t in self._topics)} "
            f"(sync: {self._sync.backend}, tf: {type(self._tf).__name__})"
        )

    # ------------------------------------------------------------------ model

    def _load_model(self, p: dict[str, Any]) -> _Model:
        # The engine cache is the one file the node writes: confined to engine_cache_dir
        # (a start-up parameter), whatever engine_file_path or model_file_path say.
        engine = confined_engine_path(
            p["engine_file_path"], p["engine_cache_dir"], p["model_file_path"]
        )
        choice = create_pipeline(
            self._settings,
            p["backend"],
            p["model_file_path"] or None,
            p["palm_model_file_path"] or None,
            p["keypoint_variant"],
            engine,
            engine.parent,
            enable_fp16=p["enable_fp16"],
            force_engine_update=p["force_engine_update"],
            intra_op_threads=p["intra_op_threads"],
        )
        return _Model(
            choice.pipeline,
            choice.reason,
            p["model_file_path"] or "(shipped default)",
            str(p["model_file_path"]) if choice.kind == "mesh_uv" else choice.model,
        )

    async def _on_reload(self, _request: Any, response: Any) -> Any:
        # The model loads in a thread: the executor keeps delivering pairs meanwhile and the
        # worker keeps serving them with the current model; the swap is one assignment.
        done: Future = Future(executor=self.executor)
        p = dict(self._p)

        def load() -> None:
            try:
                done.set_result((self._load_model(p), None))
            except StereoHandMeshError as err:
                done.set_result((None, err))

        # The done callback wakes the executor (its guard condition), which then resumes us.
        done.add_done_callback(lambda _: None)
        threading.Thread(target=load, name="reload_model", daemon=True).start()
        model, error = await done
        if error is not None:
            response.success = False
            response.message = f"reload refused, the current model keeps running: {error}"
            self._log.error(response.message)
            return response
        self._model = model  # the worker picks it up at its next pair
        response.success = True
        response.message = f"reloaded: {model.reason}; model {model.path}"
        self._log.info(response.message)
        return response

    def _on_set_parameters(self, params: Sequence[Any]) -> Any:
        updates = {}
        for param in params:
            spec = self._specs.get(param.name)
            if spec is None:
                continue
            try:
                updates[param.name] = validate_value(spec, param.value)
            except ConfigError as err:
                return SetParametersResult(successful=False, reason=str(err))
        candidate = {**self._p, **updates}
        try:
            check_frame_prefix(candidate["frame_prefix"])
            settings = pipeline_settings_from(candidate)
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        self._p = candidate
        self._settings = settings  # reaches the pipeline at the next pair
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ inputs

    def _on_set(self, left: Any, left_info: Any, right: Any, right_info: Any) -> None:
        item = _PairMessages(left, left_info, right, right_info, time.monotonic())
        replaced = self._worker.put(item)
        with self._stats.lock:
            self._stats.mailbox_dropped += int(replaced)
            self._stats.sets += 1

    def _on_roi(self, msg: Any) -> None:
        side = float(max(msg.width, msg.height))
        if side <= 0:
            self._input_error("roi", "hand/roi expected a positive width and height; got 0")
            return
        x0 = msg.x_offset + msg.width / 2.0 - side / 2.0
        y0 = msg.y_offset + msg.height / 2.0 - side / 2.0
        self._roi = ((x0, y0, side), time.monotonic())

    def _current_roi(self) -> tuple[float, float, float] | None:
        roi = self._roi
        if roi is None or time.monotonic() - roi[1] > self._p["roi_timeout_s"]:
            return None
        return roi[0]

    def _input_error(self, kind: str, message: str) -> None:
        with self._stats.lock:
            self._stats.input_errors += 1
            self._stats.last_error = message
            self._stats.last_result = f"input error: {message}"
        # One report per kind of problem (the message without its numbers) every _LOG_EVERY_S.
        held = self._throttle(kind + re.sub(r"[-+.\d]+|nan|inf", "#", message)[:60])
        if held is not None:
            more = f" ({held} more since the last report)" if held else ""
            self._log.error(f"{message}; pair skipped{more}")

    # ------------------------------------------------------------------ worker

    def _on_pair_error(self, item: _PairMessages, err: Exception) -> None:
        self._input_error(type(err).__name__, f"unexpected error on a pair: {err!r}")
        self._clear_markers(item.left.header, SIDES)

    def _convert(self, item: _PairMessages) -> PreparedPair:
        return self._input.prepare(
            self._to_rgb8(item.left),
            self._to_rgb8(item.right),
            camera_info_msg_to_fields(item.left_info),
            camera_info_msg_to_fields(item.right_info),
        )

    def _process(self, item: _PairMessages) -> None:
        t0 = time.perf_counter()
        header = item.left.header
        try:
            pair = self._convert(item)
        except StereoHandMeshError as err:
            self._input_error(type(err).__name__, str(err))
            self._clear_markers(header, SIDES)
            return
        model = self._model
        if model.pipeline.settings is not self._settings:
            model.pipeline.update_settings(self._settings)
        stamp_s = header.stamp.sec + header.stamp.nanosec * 1e-9
        try:
            est = model.pipeline.process_hands(
                pair.left, pair.right, pair.rig, stamp_s, self._current_roi()
            )
        except StereoHandMeshError as err:
            self._input_error(type(err).__name__, str(err))
            self._clear_markers(header, SIDES)
            return
        self._publish(est, model.pipeline, header, pair.left, pair.rig)
        self._log_dropped(est)
        now_ns = self.get_clock().now().nanoseconds
        age_ms = (now_ns - (header.stamp.sec * 10**9 + header.stamp.nanosec)) / 1e6
        self._stats.record((time.perf_counter() - t0) * 1e3, age_ms, est.found)
        with self._stats.lock:
            self._stats.last_result = f"published {est.summary()}" if est.found else est.reason
            self._last_pair = (len(est.hands), est.summary())

    def _log_dropped(self, est: HandsEstimate) -> None:
        """One info line per kind of reason (its numbers aside) every ``_LOG_EVERY_S``: why a
        located hand got no mesh."""
        for hand in est.dropped:
            held = self._throttle("dropped" + re.sub(r"[-+.\d]+|nan|inf", "#", hand.reason)[:60])
            if held is not None:
                more = f" ({held} more since the last report)" if held else ""
                who = f"{hand.handedness} hand #{hand.hand_id}" if hand.hand_id >= 0 else "a hand"
                self._log.info(f"{who} dropped: {hand.reason}; pair: {est.summary()}{more}")

    def _clear_markers(self, header: Any, sides: Sequence[str]) -> None:
        """Delete the hand RViz still shows on each of ``sides`` (after a pair that gave that
        side no mesh, or failed).

        Each DELETEALL goes on its side's own topic and carries the pair's stamp and frame_id,
        or those of that side's last mesh where the pair's header has none (a zero stamp, an
        empty frame_id).
        """
        from std_msgs.msg import Header

        for side in sides:
            last = self._shown_header[side]
            if last is None:
                continue
            stamp = getattr(header, "stamp", None)
            if stamp is None or (stamp.sec == 0 and stamp.nanosec == 0):
                stamp = last.stamp
            frame_id = getattr(header, "frame_id", "") or last.frame_id
            msg = delete_markers_msg(Header(stamp=stamp, frame_id=frame_id))
            self._pubs[side].markers.publish(msg)
            self._shown_header[side] = None

    def _publish(
        self,
        est: HandsEstimate,
        pipeline: HandMeshPipeline | MeshUVPipeline,
        header: Any,
        left: np.ndarray,
        rig: StereoRig,
    ) -> None:
        if self._p["publish_overlay"] and self._pub_overlay.get_subscription_count() > 0:
            self._pub_overlay.publish(
                array_to_image_msg(draw_overlay(left, rig, est), "rgb8", header)
            )
        transforms: list[Any] = []
        gone = []
        for side in SIDES:
            hand = est.side(side)
            if hand is None:
                gone.append(side)
                continue
            assert hand.joints is not None and hand.vertices is not None
            assert hand.vertex_confidence is not None
            pubs = self._pubs[side]
            with_markers = pubs.markers.get_subscription_count() > 0
            rate = self._p["markers_max_rate_hz"]
            now = time.monotonic()
            with_mesh = with_markers and (
                rate <= 0 or now - self._last_mesh_marker_s[side] >= 1.0 / rate
            )
            if with_mesh:
                self._last_mesh_marker_s[side] = now
            out = build_outputs(
                hand.joints,
                hand.vertices,
                hand.vertex_confidence,
                _faces(pipeline, side),
                header,
                self._p["frame_prefix"],
                side,
                with_mesh,
                hand.joint_rotations,
            )
            pubs.joints.publish(out.joints)
            pubs.vertices.publish(out.vertices)
            transforms += out.transforms
            if with_markers:
                pubs.markers.publish(out.markers)
            self._shown_header[side] = header
        if transforms:  # both hands' frames in one message: a listener sees them together
            self._tf.sendTransform(transforms)
        self._clear_markers(header, gone)

    # ------------------------------------------------------------------ diagnostics

    def _diagnose(self) -> None:
        period = self._p["diagnostics_period_s"]
        recent = self._stats.recent(max(period, 1.0))
        received = list(self._sync.received)
        prev_received, prev_sets = self._diag_prev
        with self._stats.lock:
            sets = self._stats.sets
        new_msgs = [a - b for a, b in zip(received, prev_received, strict=True)]
        self._diag_prev = (received, sets)
        warnings = []
        # Judged only over a period in which the inputs clearly flow (>= 3 messages on some
        # input), so that a pair split by the timer tick raises nothing.
        if sets == prev_sets and max(new_msgs) >= 3:
            silent = [
                f"{STEREO_INPUT_NAMES[i]} ({self.resolve_topic_name(self._topics[i])})"
                for i, n in enumerate(new_msgs)
                if n == 0
            ]
            if silent:
                warnings.append(
                    f"messages arrive but none on {', '.join(silent)}: no stereo pair can be "
                    "formed"
                )
            elif min(new_msgs) >= 3:
                warnings.append(
                    "all four inputs arrive but are not synchronized: their stamps differ by "
                    f"up to {self._sync.last_spread_s:.3f} s, more than "
                    f"approximate_sync_tolerance_seconds = "
                    f"{self._p['approximate_sync_tolerance_seconds']}"
                )
        for w in warnings:
            held = self._throttle(w[:40])
            if held is not None:
                self._log.warning(w)
        self._pub_diag.publish(self._diagnostics_msg(recent, warnings))

    def _diagnostics_msg(self, recent: list, warnings: list[str]) -> Any:
        window = max(self._p["diagnostics_period_s"], 1.0)
        processing = [r[1] for r in recent]
        ages = [r[2] for r in recent]
        meshes = sum(1 for r in recent if r[3])
        s = self._stats
        with s.lock:
            values = {
                "backend": self._model.reason,
                "model": self._model.path,
                "model_files": self._model.files,
                "rate_hz": f"{len(recent) / window:.2f}",
                "mesh_rate_hz": f"{meshes / window:.2f}",
                "latency_p50_ms": f"{statistics.median(ages):.2f}" if ages else "nan",
                "latency_max_ms": f"{max(ages):.2f}" if ages else "nan",
                "processing_p50_ms": f"{statistics.median(processing):.2f}"
                if processing
                else "nan",
                "pairs_synchronized": str(s.sets),
                "pairs_processed": str(s.processed),
                "meshes_published": str(s.meshes),
                "pairs_without_mesh": str(s.without_mesh),
                "dropped_pairs": str(s.mailbox_dropped),
                "unmatched_messages": str(self._sync.dropped),
                "input_errors": str(s.input_errors),
                "last_result": s.last_result,
                "hands_meshed": str(self._last_pair[0]),
                "last_pair": self._last_pair[1],
                "last_error": s.last_error,
                "sync": self._sync.backend,
            }
            last = s.last_result
        if warnings:
            level, message = DiagnosticStatus.WARN, warnings[0]
        elif not recent:
            level, message = DiagnosticStatus.WARN, f"no stereo pair processed: {last}"
        elif meshes == 0:
            level, message = DiagnosticStatus.WARN, f"no mesh: {last}"
        else:
            level, message = DiagnosticStatus.OK, f"{meshes / window:.1f} meshes/s"
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_name()}: hand mesh",
            message=message,
            hardware_id=self._model.pipeline.backend.name,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        return msg

    def shutdown(self) -> None:
        """Stop the worker thread."""
        self._worker.stop(timeout_s=5.0)


class _SidePublishers:
    """The publishers of one side: ``hand/<side>/joints``, ``hand/<side>/vertices``,
    ``hand/<side>/markers`` (relative names)."""

    def __init__(self, node: Node, side: str, qos: int) -> None:
        from geometry_msgs.msg import PoseArray
        from sensor_msgs.msg import PointCloud2
        from visualization_msgs.msg import MarkerArray

        self.joints = node.create_publisher(PoseArray, f"hand/{side}/joints", qos)
        self.vertices = node.create_publisher(PointCloud2, f"hand/{side}/vertices", qos)
        self.markers = node.create_publisher(MarkerArray, f"hand/{side}/markers", qos)


def _faces(pipeline: HandMeshPipeline | MeshUVPipeline, side: str) -> np.ndarray:
    """(F, 3) triangles of a hand of ``side`` (outward; the legacy path has one winding)."""
    if isinstance(pipeline, HandMeshPipeline):
        return pipeline.faces_for(side)
    return pipeline.faces


def main(args: Sequence[str] | None = None) -> int:
    """Console script ``hand_mesh_node`` (``ros2 run stereo_hand_mesh hand_mesh_node``).

    Unless the user chose a Fast DDS profile, the process loads the package's own
    (:mod:`~stereo_hand_mesh.ros.fastdds_profile`: images received over UDP, not through a
    camera driver's too small shared-memory segment), before ``rclpy.init``.
    """
    from stereo_hand_mesh.ros.fastdds_profile import receive_buffer_note, use_node_profile

    if use_node_profile() is not None and (note := receive_buffer_note()):
        print(f"[{NODE_NAME}] {note}", file=sys.stderr, flush=True)
    return run_node(HandMeshNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
