"""Benchmark of the hand model: build time, forward time, regressor error, self-intersections.

Workload: build the procedural template hand from scratch; pose a batch (default 64) of
natural random poses and shapes; compare the regressed joints with the kinematic skeleton
on unseen poses; count posed meshes with self-intersections (non-adjacent triangles) over
natural random poses (:func:`stereo_hand_mesh.hand.sample_pose`) and over poses drawn
uniformly within the joint limits.

Usage::

    python benchmarks/hand_self_intersection.py --poses 200 --json out/hand.json

Prints a markdown table; ``--json`` also writes the machine description and the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine_description

from stereo_hand_mesh.hand import (
    GESTURES,
    sample_pose,
    sample_shape_vectors,
    self_intersection_mask,
)
from stereo_hand_mesh.hand.model import build_hand_model
from stereo_hand_mesh.hand.regressor import regressor_training_set


def _timed(fn, repeats: int) -> tuple[object, list[float]]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return out, times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poses", type=int, default=200, help="random poses per sampler")
    parser.add_argument("--batch", type=int, default=64, help="forward batch size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random poses")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    args = parser.parse_args(argv)

    hand, build_ms = _timed(build_hand_model, 3)
    rng = np.random.default_rng(args.seed)
    pose = sample_pose(rng, args.batch)
    shape = sample_shape_vectors(rng, args.batch)
    _, forward_ms = _timed(lambda: hand.forward(pose, shape=shape), 20)

    vertices, skeleton = regressor_training_set(hand, seed=args.seed + 1000, n_poses=args.poses)
    regressed = hand.joint_regressor @ vertices
    err_mm = 1000.0 * np.linalg.norm(regressed - skeleton, axis=-1)

    rates = {}
    check_ms = 0.0
    for name, uniform in (("natural", False), ("uniform", True)):
        poses = sample_pose(np.random.default_rng(args.seed), args.poses, uniform=uniform)
        posed = hand.forward(poses).vertices
        start = time.perf_counter()
        rates[name] = float(self_intersection_mask(posed, hand.faces).mean())
        check_ms = (time.perf_counter() - start) * 1e3 / args.poses
    gestures = np.stack(list(GESTURES.values()))
    gesture_hits = self_intersection_mask(hand.forward(gestures).vertices, hand.faces)

    result = {
        "benchmark": "hand_self_intersection",
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": machine_description(),
        "model": {
            "name": hand.name,
            "num_vertices": hand.num_vertices,
            "num_faces": hand.num_faces,
            "topology_hash": hand.topology_hash,
        },
        "build_ms_median": statistics.median(build_ms),
        "forward_ms_median": statistics.median(forward_ms),
        "forward_batch": args.batch,
        "regressor_error_mm": {
            "mean": float(err_mm.mean()),
            "p95": float(np.percentile(err_mm, 95)),
            "max": float(err_mm.max()),
            "hands": len(err_mm),
        },
        "self_intersection_rate": rates,
        "self_intersection_check_ms_per_mesh": check_ms,
        "gestures_with_self_intersections": [
            n for n, hit in zip(GESTURES, gesture_hits, strict=True) if hit
        ],
        "poses": args.poses,
        "seed": args.seed,
    }
    print("| V | F | build ms | forward ms (B) | regressor mm mean / max "
          "| self-intersecting natural / uniform |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    print(
        f"| {hand.num_vertices} | {hand.num_faces} | {result['build_ms_median']:.0f} | "
        f"{result['forward_ms_median']:.1f} ({args.batch}) | "
        f"{err_mm.mean():.2f} / {err_mm.max():.2f} | "
        f"{100 * rates['natural']:.1f}% / {100 * rates['uniform']:.1f}% |"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
