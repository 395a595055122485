"""Benchmark: per-stage latency of the per-pair pipeline for each backend.

The same code as ``stereo-hand-mesh bench`` (stereo_hand_mesh/cli/bench.py)::

    python benchmarks/bench_pipeline.py --threads 2 --json benchmarks/results/pipeline.json

Writes the JSON and a markdown table beside it (``.md``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stereo_hand_mesh.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
