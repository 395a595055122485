"""Benchmark: the system benchmark, hand_mesh_node in its own process over DDS.

The same code as ``stereo-hand-mesh bench --system`` (stereo_hand_mesh/ros/system_bench.py)::

    stereo-hand-mesh synth --domain source --count 30 --seed 3 --bag --out runs/bench/bag_640x480
    stereo-hand-mesh synth --domain source --count 30 --seed 3 --bag --width 1280 --height 720 \\
        --out runs/bench/bag_1280x720
    python benchmarks/bench_system.py --bag runs/bench/bag_640x480 \\
        --bag runs/bench/bag_1280x720 --json benchmarks/results/system.json

Writes the JSON and a markdown table beside it (``.md``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stereo_hand_mesh.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", "--system", *sys.argv[1:]]))
