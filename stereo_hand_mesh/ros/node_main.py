"""The ``main`` of a node console script: start, spin, shut down, exit status."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["run_node"]


def run_node(factory: Callable[[], Any], name: str, args: Sequence[str] | None = None) -> int:
    """Create the node with ``factory`` and spin it until shutdown.

    A :class:`~stereo_hand_mesh.errors.StereoHandMeshError` while starting (invalid
    parameter, missing or corrupt model) is printed as ``[name] cannot start: ...`` and gives
    exit status 1; Ctrl-C (or SIGINT from launch), at start-up or later, gives 0. The node's
    ``shutdown()`` runs before it is destroyed.

    Returns:
        The exit status.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from stereo_hand_mesh.errors import StereoHandMeshError

    rclpy.init(args=args)
    try:
        node = factory()
    except StereoHandMeshError as err:
        print(f"[{name}] cannot start: {err}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 1
    except KeyboardInterrupt:
        rclpy.try_shutdown()
        return 0
    executor = SingleThreadedExecutor()  # rclpy's multi-threaded one costs a core by itself
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.shutdown()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
