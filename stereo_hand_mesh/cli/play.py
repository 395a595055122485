"""``stereo-hand-mesh play``: a small player that publishes a stereo source as a camera.

Any source :func:`~stereo_hand_mesh.data.sources.iter_stereo_samples` reads (a real stereo
folder such as ``../shared/realdata/tabletop_a``, a synthetic split, a rosbag2 bag or a
recording) goes out as the four input topics of ``hand_mesh_node`` (``left/image_rect``,
``left/camera_info``, ``right/image_rect``, ``right/camera_info``, reliable, as a driver
publishes; or ``.../compressed``), each pair with its own camera_info and one stamp (the
wall clock at publication), at ``--rate`` pairs per second. Ground truth is never read.

Examples::

    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST stereo-hand-mesh play \\
        --data ../shared/realdata/tabletop_a --rate 10 --loop
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from stereo_hand_mesh.cli.options import add_frames_argument
from stereo_hand_mesh.errors import ConfigError

__all__ = ["add_play_parser", "run_play"]


def add_play_parser(sub: argparse._SubParsersAction) -> dict:
    """Register ``play``; returns ``{"play": run_play}``."""
    p = sub.add_parser(
        "play", help="publish a stereo source (real folder, split, bag) as a stereo camera"
    )
    p.add_argument("--data", required=True, type=Path, help="real stereo folder, split or bag")
    add_frames_argument(p)
    p.add_argument("--rate", type=float, default=10.0, help="pairs per second (default 10)")
    p.add_argument("--loop", action="store_true", help="start again at the end (until Ctrl-C)")
    p.add_argument("--transport", choices=("raw", "compressed"), default="raw")
    p.add_argument(
        "--wait-subscribers",
        type=float,
        default=10.0,
        help="seconds to wait for a subscriber on every topic before playing (0: do not wait)",
    )
    p.add_argument("--node-name", default="stereo_source_player")
    return {"play": run_play}


def run_play(args: argparse.Namespace) -> int:
    """Play ``args.data`` (module docstring); returns 0."""
    if not (args.rate > 0 and args.rate <= 1000):
        raise ConfigError(f"--rate expected in (0, 1000] pairs per second; got {args.rate}")
    import rclpy
    from rclpy.node import Node

    from stereo_hand_mesh.data.sources import iter_stereo_samples
    from stereo_hand_mesh.ros.player import (
        PairPublisher,
        compressed_pair_messages,
        pair_messages,
    )

    iter_stereo_samples(args.data, load_ground_truth=False, frames=args.frames)  # checks it
    rclpy.init()
    node = Node(args.node_name)
    publisher = PairPublisher(node, transport=args.transport)
    published = 0
    try:
        end = time.monotonic() + args.wait_subscribers
        while args.wait_subscribers > 0 and publisher.subscribers() == 0:
            if time.monotonic() > end:
                print(f"play: no subscriber after {args.wait_subscribers:g} s; playing anyway")
                break
            rclpy.spin_once(node, timeout_sec=0.05)
        period = 1.0 / args.rate
        next_t = time.monotonic()
        while True:
            for sample in iter_stereo_samples(
                args.data, load_ground_truth=False, frames=args.frames
            ):
                stamp = time.time_ns()
                msgs = (
                    pair_messages(sample, stamp)
                    if args.transport == "raw"
                    else compressed_pair_messages(sample, stamp)
                )
                publisher.publish(msgs)
                published += 1
                next_t += period
                rclpy.spin_once(node, timeout_sec=max(next_t - time.monotonic(), 0.0))
                while time.monotonic() < next_t:
                    time.sleep(min(next_t - time.monotonic(), 0.01))
            if not args.loop:
                break
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    print(f"play: published {published} pairs from {args.data}")
    return 0


if __name__ == "__main__":
    from stereo_hand_mesh.cli import main

    sys.exit(main(["play", *sys.argv[1:]]))
