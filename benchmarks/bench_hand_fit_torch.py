"""Benchmark: the differentiable template fit (``model/hand_fit_torch.py``), CPU time.

A batch of B = 8 stereo pairs (template hands 0.4-0.9 m in front of the STB-like rig of
``bench_fit.py``, right and left alternating, 1 px keypoint noise) is refined from the numpy
fit's parameters with 3 unrolled iterations; the loss ``vertices.mean() + joints.mean()`` is
then back-propagated to the keypoints. Reported per dtype: median and p95 of the forward
(fit and skinning) and of forward plus backward, over ``--repeats`` runs after two warm-up
runs, torch limited to ``--threads`` threads.

Run (a few seconds)::

    .venv/bin/python benchmarks/bench_hand_fit_torch.py \
        --json benchmarks/results/hand_fit_torch.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine import machine_description, percentile
from scipy.spatial.transform import Rotation

from stereo_hand_mesh.hand.model import mirror_joints_to_left, template_hand
from stereo_hand_mesh.hand.poses import sample_pose
from stereo_hand_mesh.hand.shape import sample_shape_vectors
from stereo_hand_mesh.model.hand_fit_torch import fit_hand_torch, hand_params_from_fits
from stereo_hand_mesh.pipeline.fit import HandFit, fit_hand

K = np.array([822.8, 822.8, 318.5, 250.3])
BASELINE_M = 0.12


def make_batch(batch: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[HandFit]]:
    """Keypoints (B, 21, 2) of both views and the numpy fits of the B pairs."""
    rng = np.random.default_rng(seed)
    model = template_hand()
    uv_left, uv_right, fits = [], [], []
    for i in range(batch):
        hand = "left" if i % 2 else "right"
        pose, shape = sample_pose(rng, 1), sample_shape_vectors(rng, 1)
        rot = Rotation.random(random_state=int(rng.integers(1 << 31))).as_rotvec()[None]
        _, skeleton = model.skin(pose, shape, rot, np.zeros((1, 3)))
        centre = np.array([rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03), 0.0])
        centre[2] = rng.uniform(0.4, 0.9)
        joints = skeleton[0] - skeleton[0].mean(axis=0) + centre
        if hand == "left":
            joints = mirror_joints_to_left(joints)
        uv_l = joints[:, :2] / joints[:, 2:] * K[:2] + K[2:]
        uv_r = (joints[:, :2] - [BASELINE_M, 0.0]) / joints[:, 2:] * K[:2] + K[2:]
        uv_l = uv_l + rng.standard_normal(uv_l.shape)
        uv_r = uv_r + rng.standard_normal(uv_r.shape)
        fits.append(fit_hand(uv_l, uv_r, K, K, BASELINE_M, np.ones((2, 21)), handedness=hand))
        uv_left.append(uv_l)
        uv_right.append(uv_r)
    return np.stack(uv_left), np.stack(uv_right), fits


def bench(dtype: torch.dtype, batch: int, iterations: int, repeats: int) -> dict[str, float]:
    uv_l, uv_r, fits = make_batch(batch, seed=0)

    def t(a: object) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype)

    init = hand_params_from_fits(fits, dtype)
    rest = {
        "k_left": t([K] * batch),
        "k_right": t([K] * batch),
        "baseline_m": t([BASELINE_M] * batch),
        "weights": t(np.ones((batch, 2, 21))),
    }
    hands = [f.handedness for f in fits]
    forward, total = [], []
    for run in range(repeats + 2):
        uv_left, uv_right = t(uv_l).requires_grad_(), t(uv_r).requires_grad_()
        t0 = time.perf_counter()
        vertices, joints, _ = fit_hand_torch(
            uv_left, uv_right, **rest, init=init, iterations=iterations, handedness=hands
        )
        t1 = time.perf_counter()
        (vertices.mean() + joints.mean()).backward()
        t2 = time.perf_counter()
        if run >= 2:
            forward.append((t1 - t0) * 1e3)
            total.append((t2 - t0) * 1e3)
    return {
        "forward_median_ms": statistics.median(forward),
        "forward_p95_ms": percentile(forward, 0.95),
        "forward_backward_median_ms": statistics.median(total),
        "forward_backward_p95_ms": percentile(total, 0.95),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "benchmark": "hand_fit_torch",
        "batch": args.batch,
        "iterations": args.iterations,
        "repeats": args.repeats,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": machine_description(),
        "dtypes": {
            str(dtype).removeprefix("torch."): bench(
                dtype, args.batch, args.iterations, args.repeats
            )
            for dtype in (torch.float32, torch.float64)
        },
    }
    print("| dtype | forward median / p95 ms | forward + backward median / p95 ms |")
    print("|---|---|---|")
    for name, r in result["dtypes"].items():
        print(
            f"| {name} | {r['forward_median_ms']:.1f} / {r['forward_p95_ms']:.1f} | "
            f"{r['forward_backward_median_ms']:.1f} / {r['forward_backward_p95_ms']:.1f} |"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
