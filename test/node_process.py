"""Test helpers: the package's nodes as real processes, and a real rclpy peer that talks to them.

Every process inherits this run's ROS environment from conftest.py (unique ROS_DOMAIN_ID,
loopback-only discovery, shared-memory Fast DDS profile).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"


class NodeProcess:
    """A node started as ``.venv/bin/<executable> --ros-args ...``; output goes to a log file.

    Args:
        executable: console script name (``hand_mesh_node``, ``stereo_camera_sim``, ...).
        log_path: where stdout and stderr go.
        params: ``-p name:=value`` pairs.
        extra: more arguments after ``--ros-args``.
    """

    def __init__(
        self,
        executable: str,
        log_path: Path,
        params: dict[str, Any] | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        args = [str(BIN / executable), "--ros-args"]
        for key, value in (params or {}).items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ["-p", f"{key}:={text}"]
        args += list(extra)
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            args, env=dict(os.environ), stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        """Everything the process wrote so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_exit(self, timeout_s: float) -> int:
        """Wait for the process to exit by itself; return its exit code."""
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._log.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 10.0) -> int:
        """Send ``sig`` (SIGINT: clean shutdown) and wait; SIGKILL after ``timeout_s``."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


_SETTLE_S = 1.0


class Peer:
    """An rclpy node in the test process that records what it receives.

    ``peer.messages[topic]`` lists the messages of each subscribed topic in arrival order,
    with ``peer.arrivals[topic]`` the arrival times (``time.monotonic``).
    """

    def __init__(self, context: Any, name: str = "test_peer") -> None:
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.node = Node(name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.messages: dict[str, list[Any]] = {}
        self.arrivals: dict[str, list[float]] = {}
        self._clients: dict[tuple[type, str], Any] = {}

    def subscribe(self, msg_type: type, topic: str, qos: Any = 50) -> None:
        self.messages[topic] = []
        self.arrivals[topic] = []

        def cb(msg: Any) -> None:
            self.messages[topic].append(msg)
            self.arrivals[topic].append(time.monotonic())

        self.node.create_subscription(msg_type, topic, cb, qos)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.02, max(end - time.monotonic(), 0)))

    def spin_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return predicate()

    def call(self, srv_type: type, name: str, request: Any, timeout_s: float = 30.0) -> Any:
        """Call a service and wait for the response (None on timeout).

        One client per service, kept for the peer's life. A new client waits ``_SETTLE_S``
        after the service is first seen: the request channel can match before the response
        channel does (a known race of DDS-based services), and a response sent in that
        window is lost.
        """
        future = self.call_async(srv_type, name, request, timeout_s)
        if future is None:
            return None
        self.spin_until(future.done, timeout_s)
        return future.result() if future.done() else None

    def call_async(self, srv_type: type, name: str, request: Any, timeout_s: float = 30.0) -> Any:
        """Send a request once the service is ready (see :meth:`call`); return its future
        (None when the service never appeared). Spin the peer to receive the answer."""
        key = (srv_type, name)
        client = self._clients.get(key)
        if client is None:
            client = self.node.create_client(srv_type, name)
            if not self.spin_until(lambda: client.service_is_ready(), timeout_s):
                self.node.destroy_client(client)
                return None
            self.spin_for(_SETTLE_S)
            self._clients[key] = client
        elif not self.spin_until(lambda: client.service_is_ready(), timeout_s):
            return None
        return client.call_async(request)

    def set_parameters(self, node_name: str, values: dict[str, Any]) -> list[Any] | None:
        """Set parameters of another node through its set_parameters service."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        )
        response = self.call(SetParameters, f"{node_name}/set_parameters", request)
        return None if response is None else list(response.results)

    def close(self) -> None:
        self.executor.remove_node(self.node)
        self.executor.shutdown()
        self.node.destroy_node()


def node_diagnostics(peer: Peer, node: str = "hand_mesh_node") -> dict[str, str]:
    """Key -> value of the newest ``/diagnostics`` status of ``node`` the peer received
    ({} before any; the peer must subscribe DiagnosticArray on ``/diagnostics``)."""
    for msg in reversed(peer.messages["/diagnostics"]):
        for status in msg.status:
            if status.name.startswith(node):
                return {kv.key: kv.value for kv in status.values}
    return {}


def adaptation_status(peer: Peer) -> dict:
    """The newest ``/adaptation_node/status`` JSON the peer received ({} before any)."""
    msgs = peer.messages["/adaptation_node/status"]
    return json.loads(msgs[-1].data) if msgs else {}


def stamp_key(header: Any) -> int:
    """Header stamp in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def joints_of(msg: Any) -> np.ndarray:
    """(21, 3) positions of a PoseArray."""
    return np.array([[p.position.x, p.position.y, p.position.z] for p in msg.poses])
