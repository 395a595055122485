"""Test harness.

Before anything imports rclpy, every test run gets its own ROS_DOMAIN_ID and DDS discovery is
restricted to loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST). Child processes inherit
both. ROS is never mocked: fixtures start real rclpy contexts and nodes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Set at import time: conftest.py is imported before any test module (and before rclpy).
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)
os.environ["ROS_DOMAIN_ID"] = str(10 + os.getpid() % 90)

REPO = Path(__file__).resolve().parents[1]
# Shared memory only, with segments that hold whole images (config/fastdds_shm.xml says why).
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_shm.xml"))


@pytest.fixture(params=["cpu", "cuda"])
def device(request: pytest.FixtureRequest):
    """Each device a torch test runs on; CUDA is skipped where no GPU is present."""
    import torch

    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return torch.device(request.param)


@pytest.fixture
def ros_context() -> Iterator[object]:
    """A fresh rclpy context, shut down after the test."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        rclpy.try_shutdown(context=ctx)


@pytest.fixture
def make_node(ros_context: object) -> Iterator[Callable[[str], object]]:
    """Factory of real rclpy nodes in the test's context; destroyed after the test."""
    from rclpy.node import Node

    nodes: list[Node] = []

    def factory(name: str) -> Node:
        node = Node(name, context=ros_context)
        nodes.append(node)
        return node

    yield factory
    for node in nodes:
        node.destroy_node()


@pytest.fixture
def spin_until(ros_context: object) -> Callable[..., bool]:
    """spin_until(nodes, predicate, timeout_s): spin the nodes until predicate() is true."""
    from rclpy.executors import SingleThreadedExecutor

    def spin(nodes: list, predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        executor = SingleThreadedExecutor(context=ros_context)
        for node in nodes:
            executor.add_node(node)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if predicate():
                    return True
                executor.spin_once(timeout_sec=0.05)
            return predicate()
        finally:
            for node in nodes:
                executor.remove_node(node)
            executor.shutdown()

    return spin


def start_python(code: str, *args: str) -> subprocess.Popen:
    """Start ``python -c code`` with this run's ROS environment; caller must stop it."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
