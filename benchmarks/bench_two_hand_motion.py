"""Benchmark: the product pipeline on the simulator's two-hand motion (issue 18's target).

Consecutive frames of :class:`~stereo_hand_mesh.data.motion.HandMotion` with
``hands=2`` (the same person's right and left hand, each in its half of the view, rendered
into one depth buffer; STB's rig at 640x480) go through the product pipeline as
``hand_mesh_node`` runs it: ``create_pipeline(PipelineSettings(), backend="onnxruntime")``
(handedness auto, max_hands 2, tracking), one stream per seed, the pairs ``1 / rate`` s apart.

Reported per seed and over all pairs:

* ``both_found``: the share of pairs with a meshed right hand and a meshed left hand
  (``HandsEstimate.side``); the target is >= 95%;
* ``side_swaps``: consecutive pairs where a ``hand_id`` changed its handedness, and pairs
  where a meshed hand lies nearer to the other side's ground truth than to its own side's
  (a side read wrong); the target is none;
* the mean joint error (mm) per side against that side's ground truth, on the pairs where
  that side was meshed;
* why hands were missing: the reasons of ``HandsEstimate.dropped`` (and ``reason`` when
  nothing was located) on the pairs without both hands, counted.

Usage::

    .venv/bin/python benchmarks/bench_two_hand_motion.py --frames 150 --seeds 0 1 \\
        --json benchmarks/results/two_hand_motion.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np


def _error_mm(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=1).mean() * 1e3)


def run_seed(seed: int, frames: int, rate_hz: float, domain: str) -> dict:
    """One stream of ``frames`` consecutive pairs of seed ``seed``."""
    import torch

    from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2
    from stereo_hand_mesh.data.motion import HandMotion, HandMotionSettings, render_motion_frame
    from stereo_hand_mesh.data.synth import SynthSettings
    from stereo_hand_mesh.geometry.camera import StereoRig
    from stereo_hand_mesh.hand.model import template_hand
    from stereo_hand_mesh.pipeline.estimator import PipelineSettings
    from stereo_hand_mesh.pipeline.factory import create_pipeline

    hand = template_hand()
    faces_t = torch.from_numpy(hand.faces.astype(np.int64))
    synth = SynthSettings(domain=domain, rig=STB_BUMBLEBEE2)
    motion = HandMotion(hand, synth, HandMotionSettings(hands=2), seed)
    rig = StereoRig.from_camera_info(*STB_BUMBLEBEE2.camera_infos())
    pipe = create_pipeline(PipelineSettings(), backend="onnxruntime").pipeline
    both = 0
    found = Counter()
    errors: dict[str, list[float]] = {"right": [], "left": []}
    id_side: dict[int, str] = {}
    id_swaps, position_swaps = 0, 0
    missing: Counter[str] = Counter()
    misses: list[dict] = []
    render_s = pipe_s = 0.0
    for k in range(frames):
        t0 = time.perf_counter()
        frame = render_motion_frame(motion, k, k / rate_hz, faces_t)
        t1 = time.perf_counter()
        est = pipe.process_hands(frame.left, frame.right, rig, stamp_s=k / rate_hz)
        pipe_s += time.perf_counter() - t1
        render_s += t1 - t0
        truth = frame.joints_by_side
        for h in est.hands:
            if h.hand_id in id_side and id_side[h.hand_id] != h.handedness:
                id_swaps += 1
            id_side[h.hand_id] = h.handedness
            own = _error_mm(h.joints, truth[h.handedness])
            other = "left" if h.handedness == "right" else "right"
            if _error_mm(h.joints, truth[other]) < own:
                position_swaps += 1
        sides = {s: est.side(s) for s in ("right", "left")}
        for s, h in sides.items():
            if h is not None:
                found[s] += 1
                errors[s].append(_error_mm(h.joints, truth[s]))
        if all(h is not None for h in sides.values()):
            both += 1
        else:
            reasons = [d.reason for d in est.dropped] or [est.reason]
            missing.update(reasons)
            misses.append(
                {
                    "frame": k,
                    "meshed": [f"{h.handedness} #{h.hand_id}" for h in est.hands],
                    "dropped": [
                        {
                            "reason": d.reason,
                            "handedness": d.handedness,
                            "handedness_right": None
                            if d.handedness_right is None
                            else [round(float(p), 3) for p in d.handedness_right],
                            "presence": None
                            if d.presence is None
                            else [round(float(p), 3) for p in d.presence],
                        }
                        for d in est.dropped
                    ],
                    "reason": est.reason,
                }
            )
    return {
        "seed": seed,
        "frames": frames,
        "both_found": both / frames,
        "found": {s: found[s] / frames for s in ("right", "left")},
        "hand_id_side_changes": id_swaps,
        "hands_nearer_the_other_sides_truth": position_swaps,
        "joint_error_mean_mm": {s: float(np.mean(v)) if v else None for s, v in errors.items()},
        "joint_error_median_mm": {
            s: float(np.median(v)) if v else None for s, v in errors.items()
        },
        "missing_reasons": dict(missing.most_common()),
        "misses": misses,
        "render_ms_per_pair": 1e3 * render_s / frames,
        "pipeline_ms_per_pair": 1e3 * pipe_s / frames,
        "hand_ids": sorted(id_side),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=150, help="pairs per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rate", type=float, default=15.0, help="pairs per second, Hz")
    parser.add_argument("--domain", choices=("source", "target"), default="source")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    runs = [run_seed(s, args.frames, args.rate, args.domain) for s in args.seeds]
    total = sum(r["frames"] for r in runs)

    def pooled(key: str, side: str) -> float | None:
        num = sum(
            r[key][side] * r["found"][side] * r["frames"] for r in runs if r[key][side] is not None
        )
        den = sum(r["found"][side] * r["frames"] for r in runs if r[key][side] is not None)
        return num / den if den else None

    summary = {
        "frames": total,
        "rate_hz": args.rate,
        "domain": args.domain,
        "both_found": sum(r["both_found"] * r["frames"] for r in runs) / total,
        "found": {
            s: sum(r["found"][s] * r["frames"] for r in runs) / total for s in ("right", "left")
        },
        "hand_id_side_changes": sum(r["hand_id_side_changes"] for r in runs),
        "hands_nearer_the_other_sides_truth": sum(
            r["hands_nearer_the_other_sides_truth"] for r in runs
        ),
        "joint_error_mean_mm": {s: pooled("joint_error_mean_mm", s) for s in ("right", "left")},
        "missing_reasons": dict(
            sum((Counter(r["missing_reasons"]) for r in runs), Counter()).most_common()
        ),
        "runs": runs,
    }
    brief = {k: v for k, v in summary.items() if k != "runs"}
    print(json.dumps(brief, indent=2))
    for r in runs:
        print(
            f"seed {r['seed']}: both {100 * r['both_found']:.1f}%, right "
            f"{100 * r['found']['right']:.1f}%, left {100 * r['found']['left']:.1f}%, errors "
            f"{r['joint_error_mean_mm']}, id side changes {r['hand_id_side_changes']}, "
            f"nearer other side {r['hands_nearer_the_other_sides_truth']}, ids {r['hand_ids']}, "
            f"render {r['render_ms_per_pair']:.0f} ms, pipeline {r['pipeline_ms_per_pair']:.0f} ms"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
