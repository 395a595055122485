"""Synthetic data: rendering speed and how the two domains differ.

Renders N pairs of each domain at 640x480 (STB rig), single process, torch limited to 2
threads, and reports pairs per second (median over fixed-size batches) and image statistics
of each domain: mean brightness, per-channel means, background entropy (bits, 64-bin
histogram of grey levels outside the hand mask) and hand-region contrast.

Usage:
    .venv/bin/python benchmarks/bench_synth.py --count 40 --json benchmarks/results/synth.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description

from stereo_hand_mesh.data.synth import SynthSettings, iter_synthetic_pairs


def _entropy_bits(values: np.ndarray) -> float:
    hist = np.histogram(values, bins=64, range=(0, 256))[0].astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


def run(count: int, seed: int) -> dict:
    torch.set_num_threads(2)
    out: dict = {"machine": machine_description(), "count_per_domain": count, "domains": {}}
    for domain in ("source", "target"):
        times, stats = [], []
        it = iter_synthetic_pairs(SynthSettings(domain=domain), count, seed)
        start = time.perf_counter()
        for pair in it:
            now = time.perf_counter()
            times.append(now - start)
            start = now
            grey = pair.left.mean(axis=2)
            hand = pair.mask_left
            stats.append(
                {
                    "brightness": float(grey.mean()),
                    "rgb_mean": pair.left.reshape(-1, 3).mean(axis=0).tolist(),
                    "background_entropy_bits": _entropy_bits(grey[~hand]),
                    "hand_brightness": float(grey[hand].mean()),
                    "hand_contrast": float(grey[hand].std()),
                }
            )
        sec = np.array(times[1:] if len(times) > 1 else times)  # first pair includes warm-up
        out["domains"][domain] = {
            "pairs_per_second_median": float(1.0 / np.median(sec)),
            "seconds_per_pair_p95": float(np.percentile(sec, 95)),
            **{
                k: float(np.mean([s[k] for s in stats]))
                for k in (
                    "brightness",
                    "background_entropy_bits",
                    "hand_brightness",
                    "hand_contrast",
                )
            },
            "rgb_mean": np.mean([s["rgb_mean"] for s in stats], axis=0).round(2).tolist(),
        }
    return out


def markdown(result: dict) -> str:
    rows = [
        "| domain | pairs/s (median) | brightness | RGB mean | background entropy (bits) "
        "| hand brightness | hand contrast |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, d in result["domains"].items():
        rows.append(
            f"| {name} | {d['pairs_per_second_median']:.2f} | {d['brightness']:.1f} | "
            f"{d['rgb_mean']} | {d['background_entropy_bits']:.2f} | "
            f"{d['hand_brightness']:.1f} | {d['hand_contrast']:.1f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = run(args.count, args.seed)
    result["command"] = "benchmarks/bench_synth.py " + " ".join(sys.argv[1:])
    table = markdown(result)
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result | {"markdown": table}, indent=2))


if __name__ == "__main__":
    main()
