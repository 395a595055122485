#!/usr/bin/env python3
"""Decode cost of compressed stereo input: one 640x480 JPEG pair (quality 90) and one PNG pair
through the node's decoder (:func:`stereo_hand_mesh.ros.image_conversion.compressed_msg_to_rgb8`)
per iteration, on rendered hand pairs. Writes JSON.

    .venv/bin/python benchmarks/bench_decode.py --json benchmarks/results/decode.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300, help="timed decodes per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/decode.json")
    args = parser.parse_args()
    from machine import machine_description

    from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2
    from stereo_hand_mesh.data.synth import SynthSettings, as_stereo_sample, iter_synthetic_pairs
    from stereo_hand_mesh.ros.image_conversion import compressed_msg_to_rgb8
    from stereo_hand_mesh.ros.player import compressed_pair_messages

    li, ri = STB_BUMBLEBEE2.camera_infos()
    pairs = list(iter_synthetic_pairs(SynthSettings(domain="target"), 4, seed=3))
    samples = [as_stereo_sample(p, i, li, ri) for i, p in enumerate(pairs)]
    out = {}
    for codec in ("jpeg", "png"):
        msgs = [compressed_pair_messages(s, 1, codec=codec) for s in samples]
        medians = []
        for _ in range(args.repeats):
            times = []
            for i in range(args.pairs):
                m = msgs[i % len(msgs)]
                t0 = time.perf_counter()
                compressed_msg_to_rgb8(m.left)
                compressed_msg_to_rgb8(m.right)
                times.append((time.perf_counter() - t0) * 1e3)
            medians.append(statistics.median(times))
        out[codec] = {
            "pair_ms_median_of_repeat_medians": statistics.median(medians),
            "repeat_medians_ms": medians,
            "bytes_per_image_mean": statistics.mean(len(m.left.data) for m in msgs),
        }
    payload = {
        "what": "decode of one 640x480 stereo pair (two images) to RGB, ms",
        "machine": machine_description(),
        "cpu_shared": "yes: other jobs ran on the same 2 cores",
        "command": ".venv/bin/python benchmarks/bench_decode.py",
        "results": out,
    }
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
