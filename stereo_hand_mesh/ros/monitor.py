"""A monitor node: output rate, latency and joint error of ``hand_mesh_node`` against the
simulated camera's ground truth (the demo and the system tests use it).

Latency is measured across processes: from the left image's header stamp (set by the camera
when it published) to the arrival of ``hand/joints`` here. The joint error pairs each
``hand/joints`` with the ``sim/gt_joints`` of the same stamp (mean Euclidean distance over the
21 joints, millimetres).
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

__all__ = ["MonitorNode", "MonitorSummary"]


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _positions(msg: Any) -> np.ndarray:
    return np.array([[p.position.x, p.position.y, p.position.z] for p in msg.poses])


@dataclass
class MonitorSummary:
    """What the monitor saw in a window.

    Attributes:
        seconds: window length, s.
        meshes: ``hand/joints`` messages received.
        truths: ``sim/gt_joints`` messages received (pairs the camera published).
        rate_hz: meshes per second.
        latency_ms: stamp-to-arrival latencies of the meshes, ms.
        errors_mm: mean joint errors of meshes matched to ground truth, mm.
    """

    seconds: float
    meshes: int
    truths: int
    rate_hz: float
    latency_ms: list[float] = field(default_factory=list)
    errors_mm: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form with medians and p95 (None where there is no sample)."""

        def stat(values: list[float], q: float | None) -> float | None:
            if not values:
                return None
            return float(statistics.median(values) if q is None else percentile(values, q))

        return {
            "seconds": round(self.seconds, 3),
            "meshes": self.meshes,
            "camera_pairs": self.truths,
            "mesh_fraction": round(self.meshes / self.truths, 4) if self.truths else None,
            "rate_hz": round(self.rate_hz, 3),
            "latency_p50_ms": stat(self.latency_ms, None),
            "latency_p95_ms": stat(self.latency_ms, 0.95),
            "latency_max_ms": max(self.latency_ms) if self.latency_ms else None,
            "joint_error_mean_mm": float(np.mean(self.errors_mm)) if self.errors_mm else None,
            "joint_error_median_mm": stat(self.errors_mm, None),
        }


class MonitorNode(Node):
    """Subscribes to ``hand/joints``, ``sim/gt_joints``, ``hand/overlay`` and ``/diagnostics``."""

    def __init__(self, name: str = "hand_mesh_monitor", **kwargs: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray
        from sensor_msgs.msg import Image

        super().__init__(name, **kwargs)
        self._lock = threading.Lock()
        self._truth: dict[int, np.ndarray] = {}
        self._truth_order: deque[int] = deque()
        self._pending: dict[int, tuple[np.ndarray, float]] = {}
        #: (arrival monotonic s, latency ms, error mm or nan) per mesh
        self.meshes: list[tuple[float, float, float]] = []
        #: arrival monotonic s per ground-truth message
        self.truth_arrivals: list[float] = []
        self.last_overlay: Any = None
        self.last_diagnostics: dict[str, str] = {}
        self.last_status = ""
        self.create_subscription(PoseArray, "hand/joints", self._on_joints, 50)
        self.create_subscription(PoseArray, "sim/gt_joints", self._on_truth, 50)
        self.create_subscription(Image, "hand/overlay", self._on_overlay, 2)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)

    def _on_truth(self, msg: Any) -> None:
        key = _stamp_ns(msg.header)
        with self._lock:
            self.truth_arrivals.append(time.monotonic())
            self._truth[key] = _positions(msg)
            self._truth_order.append(key)
            while len(self._truth_order) > 600:
                self._truth.pop(self._truth_order.popleft(), None)
            pending = self._pending.pop(key, None)
            if pending is not None:
                self._match(key, *pending)

    def _on_joints(self, msg: Any) -> None:
        arrival = time.monotonic()
        latency_ms = (self.get_clock().now().nanoseconds - _stamp_ns(msg.header)) / 1e6
        key = _stamp_ns(msg.header)
        joints = _positions(msg)
        with self._lock:
            if key in self._truth:
                self._match(key, joints, arrival, latency_ms)
            else:  # the ground truth may arrive after the mesh
                self._pending[key] = (joints, arrival, latency_ms)
                self.meshes.append((arrival, latency_ms, float("nan")))

    def _match(self, key: int, joints: np.ndarray, arrival: float, latency_ms: float) -> None:
        error = float(np.linalg.norm(joints - self._truth[key], axis=1).mean() * 1e3)
        for i in range(len(self.meshes) - 1, -1, -1):
            if self.meshes[i][0] == arrival:
                self.meshes[i] = (arrival, latency_ms, error)
                return
        self.meshes.append((arrival, latency_ms, error))

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
        with self._lock:
            meshes = [m for m in self.meshes if since <= m[0] < until]
            truths = sum(1 for t in self.truth_arrivals if since <= t < until)
        seconds = max(until - since, 1e-9)
        return MonitorSummary(
            seconds=seconds,
            meshes=len(meshes),
            truths=truths,
            rate_hz=len(meshes) / seconds,
            latency_ms=[m[1] for m in meshes],
            errors_mm=[m[2] for m in meshes if np.isfinite(m[2])],
        )
