"""A monitor node: output rate, latency and joint error of ``hand_mesh_node`` against the
simulated camera's ground truth, per hand side (the demo uses it).

``hand_mesh_node`` publishes each side's hand on its own topic (``hand/right/joints``,
``hand/left/joints``); ``stereo_camera_sim`` publishes the right hand's ground truth on
``sim/gt_joints`` and, with two hands, the left hand's on ``sim/gt_joints_left``. Per side,
each joints message is paired with the ground truth of the same stamp and side (mean Euclidean
distance over the 21 joints, millimetres). Latency is measured across processes: from the
left image's header stamp (set by the camera when it published) to the arrival here of the
pair's first joints message (either side). A pair is meshed when either side's joints came.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.node import Node

from stereo_hand_mesh._machine import percentile

__all__ = ["JOINT_TOPICS", "SIDES", "TRUTH_TOPICS", "MonitorNode", "MonitorSummary"]

#: Sides the monitor follows, and their topics (relative names).
SIDES = ("right", "left")
JOINT_TOPICS = {"right": "hand/right/joints", "left": "hand/left/joints"}
TRUTH_TOPICS = {"right": "sim/gt_joints", "left": "sim/gt_joints_left"}
#: Stamps of ground truth kept for matching, per side.
_KEEP_TRUTHS = 600
#: Camera pairs whose publication time is kept for counting (an hour at 30 Hz).
_KEEP_TRUTH_TIMES = 108_000


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _positions(msg: Any) -> np.ndarray:
    return np.array([[p.position.x, p.position.y, p.position.z] for p in msg.poses])


def _stat(values: list[float], q: float | None) -> float | None:
    if not values:
        return None
    return float(statistics.median(values) if q is None else percentile(values, q))


@dataclass
class MonitorSummary:
    """What the monitor saw in a window.

    Attributes:
        seconds: window length, s.
        meshes: pairs with a mesh of either side (distinct stamps).
        truths: pairs the camera published (``sim/gt_joints`` messages received).
        rate_hz: meshed pairs per second.
        latency_ms: stamp-to-arrival latencies of the meshed pairs, ms.
        errors_mm: mean joint errors of the hands matched to their side's ground truth, mm
            (both sides).
        side_meshes: {side: hands of that side received}.
        side_truths: {side: that side's ground-truth messages with a hand in them}.
        side_errors_mm: {side: mean joint errors of that side's matched hands, mm}.
    """

    seconds: float
    meshes: int
    truths: int
    rate_hz: float
    latency_ms: list[float] = field(default_factory=list)
    errors_mm: list[float] = field(default_factory=list)
    side_meshes: dict[str, int] = field(default_factory=dict)
    side_truths: dict[str, int] = field(default_factory=dict)
    side_errors_mm: dict[str, list[float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON form with medians and p95 (None where there is no sample); ``sides`` holds
        each side's hands, the share of that side's true hands meshed and the joint error."""
        sides = {}
        for side in SIDES:
            errors = self.side_errors_mm.get(side, [])
            meshes, truths = self.side_meshes.get(side, 0), self.side_truths.get(side, 0)
            sides[side] = {
                "meshes": meshes,
                "hands_in_view": truths,
                "mesh_fraction": round(min(meshes / truths, 1.0), 4) if truths else None,
                "joint_error_mean_mm": float(np.mean(errors)) if errors else None,
                "joint_error_median_mm": _stat(errors, None),
            }
        return {
            "seconds": round(self.seconds, 3),
            "meshes": self.meshes,
            "camera_pairs": self.truths,
            "mesh_fraction": round(self.meshes / self.truths, 4) if self.truths else None,
            "rate_hz": round(self.rate_hz, 3),
            "latency_p50_ms": _stat(self.latency_ms, None),
            "latency_p95_ms": _stat(self.latency_ms, 0.95),
            "latency_max_ms": max(self.latency_ms) if self.latency_ms else None,
            "joint_error_mean_mm": float(np.mean(self.errors_mm)) if self.errors_mm else None,
            "joint_error_median_mm": _stat(self.errors_mm, None),
            "sides": sides,
        }


class _SideMatcher:
    """One side's joints paired with that side's ground truth by stamp."""

    def __init__(self) -> None:
        self.truth: dict[int, np.ndarray] = {}
        self.truth_order: deque[int] = deque()
        self.pending: dict[int, tuple[np.ndarray, float]] = {}
        #: (arrival monotonic s, error mm or nan, stamp) per hand of this side
        self.meshes: list[tuple[float, float, int]] = []
        #: arrival monotonic s of each ground truth with a hand in it
        self.truth_arrivals: list[float] = []

    def on_truth(self, key: int, joints: np.ndarray, arrival: float) -> None:
        if len(joints) == 0:  # no hand of this side in view
            return
        self.truth_arrivals.append(arrival)
        self.truth[key] = joints
        self.truth_order.append(key)
        while len(self.truth_order) > _KEEP_TRUTHS:
            self.truth.pop(self.truth_order.popleft(), None)
        pending = self.pending.pop(key, None)
        if pending is not None:
            self._match(key, *pending)

    def on_joints(self, key: int, joints: np.ndarray, arrival: float) -> None:
        if key in self.truth:
            self._match(key, joints, arrival)
        else:  # the ground truth may arrive after the mesh
            self.pending[key] = (joints, arrival)
            self.meshes.append((arrival, float("nan"), key))
            while len(self.pending) > _KEEP_TRUTHS:
                self.pending.pop(next(iter(self.pending)))

    def _match(self, key: int, joints: np.ndarray, arrival: float) -> None:
        error = float(np.linalg.norm(joints - self.truth[key], axis=1).mean() * 1e3)
        for i in range(len(self.meshes) - 1, -1, -1):
            if self.meshes[i][0] == arrival:
                self.meshes[i] = (arrival, error, key)
                return
        self.meshes.append((arrival, error, key))


class MonitorNode(Node):
    """Subscribes to ``hand/right/joints``, ``hand/left/joints``, ``sim/gt_joints``,
    ``sim/gt_joints_left``, ``hand/overlay`` and ``/diagnostics``."""

    def __init__(self, name: str = "hand_mesh_monitor", **kwargs: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray
        from sensor_msgs.msg import Image

        super().__init__(name, **kwargs)
        self._lock = threading.Lock()
        self._sides = {side: _SideMatcher() for side in SIDES}
        #: (arrival monotonic s, latency ms, stamp) per meshed pair (its first joints message)
        self.pairs: list[tuple[float, float, int]] = []
        #: stamp -> arrival monotonic s of the pair's first ground truth: a mesh counts in the
        #: window its camera pair was published in (not one later, at a window's edge)
        self._truth_at: dict[int, float] = {}
        self._seen_stamps: dict[int, None] = {}
        #: arrival monotonic s per camera pair (``sim/gt_joints`` message)
        self.truth_arrivals: list[float] = []
        self.last_overlay: Any = None
        self.last_diagnostics: dict[str, str] = {}
        self.last_status = ""
        for side in SIDES:
            self.create_subscription(
                PoseArray, JOINT_TOPICS[side], lambda msg, s=side: self._on_joints(s, msg), 50
            )
            self.create_subscription(
                PoseArray, TRUTH_TOPICS[side], lambda msg, s=side: self._on_truth(s, msg), 50
            )
        self.create_subscription(Image, "hand/overlay", self._on_overlay, 2)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)

    @property
    def meshes(self) -> list[tuple[float, float]]:
        """(arrival monotonic s, latency ms) of every meshed pair so far."""
        with self._lock:
            return [p[:2] for p in self.pairs]

    def _on_truth(self, side: str, msg: Any) -> None:
        arrival = time.monotonic()
        key = _stamp_ns(msg.header)
        with self._lock:
            if side == SIDES[0]:
                self.truth_arrivals.append(arrival)
            self._truth_at.setdefault(key, arrival)
            while len(self._truth_at) > _KEEP_TRUTH_TIMES:
                self._truth_at.pop(next(iter(self._truth_at)))
            self._sides[side].on_truth(key, _positions(msg), arrival)

    def _on_joints(self, side: str, msg: Any) -> None:
        arrival = time.monotonic()
        latency_ms = (self.get_clock().now().nanoseconds - _stamp_ns(msg.header)) / 1e6
        key = _stamp_ns(msg.header)
        with self._lock:
            if key not in self._seen_stamps:
                self._seen_stamps[key] = None
                self.pairs.append((arrival, latency_ms, key))
                while len(self._seen_stamps) > _KEEP_TRUTHS:
                    self._seen_stamps.pop(next(iter(self._seen_stamps)))
            self._sides[side].on_joints(key, _positions(msg), arrival)

    def _on_overlay(self, msg: Any) -> None:
        self.last_overlay = msg

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if "hand mesh" in status.name:
                self.last_diagnostics = {kv.key: kv.value for kv in status.values}
                self.last_status = status.message

    def summary(self, since: float, until: float | None = None) -> MonitorSummary:
        """What arrived between monotonic times ``since`` and ``until`` (default: now)."""
        until = time.monotonic() if until is None else until

        def inside(t: float) -> bool:
            return since <= t < until

        def counted(arrival: float, key: int) -> bool:  # by its camera pair's time
            return inside(self._truth_at.get(key, arrival))

        with self._lock:
            pairs = [p for p in self.pairs if counted(p[0], p[2])]
            truths = sum(1 for t in self.truth_arrivals if inside(t))
            side_meshes, side_truths, side_errors = {}, {}, {}
            for side, m in self._sides.items():
                hands = [h for h in m.meshes if counted(h[0], h[2])]
                side_meshes[side] = len(hands)
                side_truths[side] = sum(1 for t in m.truth_arrivals if inside(t))
                side_errors[side] = [h[1] for h in hands if np.isfinite(h[1])]
        seconds = max(until - since, 1e-9)
        return MonitorSummary(
            seconds=seconds,
            meshes=len(pairs),
            truths=truths,
            rate_hz=len(pairs) / seconds,
            latency_ms=[p[1] for p in pairs],
            errors_mm=[e for side in SIDES for e in side_errors[side]],
            side_meshes=side_meshes,
            side_truths=side_truths,
            side_errors_mm=side_errors,
        )
