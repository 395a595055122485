"""Benchmark: the system benchmark, hand_mesh_node in its own process over DDS.

The same code as ``stereo-hand-mesh bench --system`` (stereo_hand_mesh/ros/system_bench.py).
One command::

    python benchmarks/bench_system.py --json benchmarks/results/system.json

Without ``--bag`` it plays the two default bags (3 s of the simulator's continuous hand
motion at 30 Hz, as a camera records it: the node tracks, with one cold start where the
bag wraps), writing them first when they are missing (the same as)::

    stereo-hand-mesh synth --domain source --count 90 --seed 3 --bag --motion \\
        --out runs/bench/motion_640x480
    stereo-hand-mesh synth --domain source --count 90 --seed 3 --bag --motion --width 1280 \\
        --height 720 --out runs/bench/motion_1280x720
    stereo-hand-mesh bench --system --bag runs/bench/motion_640x480 \\
        --bag runs/bench/motion_1280x720 --json benchmarks/results/system.json

Every other option is passed on (``--rates``, ``--seconds``, ``--soak-seconds``). Writes the
JSON and a markdown table beside it (``.md``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stereo_hand_mesh.cli import main

#: The default bags: (directory, width, height).
DEFAULT_BAGS = (
    (Path("runs/bench/motion_640x480"), 640, 480),
    (Path("runs/bench/motion_1280x720"), 1280, 720),
)


def default_bag_args() -> list[str]:
    """``--bag`` arguments of the default bags, synthesizing the missing ones."""
    args = []
    for path, width, height in DEFAULT_BAGS:
        if not path.exists():
            code = main(
                ["synth", "--domain", "source", "--count", "90", "--seed", "3", "--bag",
                 "--motion", "--width", str(width), "--height", str(height), "--out", str(path),
                 "--quiet"]
            )  # fmt: skip
            if code != 0:
                raise SystemExit(f"bench_system: could not write the bag {path} (exit {code})")
        args += ["--bag", str(path)]
    return args


if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--bag" not in argv:
        argv = default_bag_args() + argv
    raise SystemExit(main(["bench", "--system", *argv]))
