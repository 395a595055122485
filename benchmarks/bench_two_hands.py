#!/usr/bin/env python3
"""Benchmark: two hands in view (issue 18), and the one-hand figures beside them.

The simulator's motion (:mod:`stereo_hand_mesh.data.motion`, ``--domain`` look, STB rig,
``--rate`` pairs per second as the simulator plays it, one stream per ``--seeds``) is rendered
with two hands (``HandMotionSettings(hands=2)``: the right hand and the same
person's left hand, each with its own motion and ground truth) and with one, and each sequence
is written once as a real stereo folder (:func:`~stereo_hand_mesh.data.realdata.
write_real_stereo_folder`, labels with ``hand_sides``) under ``--cache``. The product's
pipeline (:func:`stereo_hand_mesh.cli.train.build_product_pipeline`: handedness ``auto``,
``max_hands`` 2) then plays them through :func:`~stereo_hand_mesh.train.real_eval.
evaluate_real`, the evaluation real recordings get, which compares each labelled hand with the
pipeline's hand of the same side:

- two hands, tracking and static: pairs where both hands are meshed (out of the pairs where
  both are wholly inside both images), each side's found rate and mean joint error, and side
  swaps between consecutive pairs (a hand id whose side changes; or a meshed hand nearer the
  other hand's ground truth than its own);
- one hand, tracking: the default (``auto``, 2 hands) against the single-hand path
  (``handedness: right``, ``max_hands: 1``): found rate, mean error;
- latency: the median wall time of ``process_hands`` per tracked pair, with two hands and
  with one.

Synthetic figures: for the tests and the targets of the issue, not a claim about real hands
(those come from ``bench_real.py``)::

    .venv/bin/python benchmarks/bench_two_hands.py --threads 2 \\
        --json benchmarks/results/two_hands.json
    .venv/bin/python benchmarks/bench_two_hands.py --threads 2 --domain target \\
        --json benchmarks/results/two_hands_target.json

Writes the JSON and a markdown table beside it (``.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from machine import machine_description

from stereo_hand_mesh.cli.train import build_product_pipeline
from stereo_hand_mesh.data.realdata import (
    RealStereoFolder,
    write_real_stereo_folder,
)
from stereo_hand_mesh.train.real_eval import evaluate_real

REPO = Path(__file__).resolve().parents[1]


def sequence_folder(
    cache: Path, hands: int, count: int, seed: int, domain: str, rate_hz: float
) -> Path:
    """The folder of ``count`` frames of the motion with ``hands`` hands (rendered once)."""
    import torch

    from stereo_hand_mesh.data.motion import HandMotion, HandMotionSettings, render_motion_frame
    from stereo_hand_mesh.data.synth import SynthSettings
    from stereo_hand_mesh.hand import template_hand

    path = cache / f"{domain}_hands{hands}_seed{seed}_n{count}_{rate_hz:g}hz"
    if path.is_dir():
        return path
    hand = template_hand()
    synth = SynthSettings(domain=domain)
    motion = HandMotion(hand, synth, HandMotionSettings(hands=hands), seed)
    faces_t = torch.from_numpy(hand.faces.astype(np.int64))
    sides = motion.sides
    labels = np.full((count, len(sides), 21, 3), np.nan)
    frames = []
    t0 = time.perf_counter()
    for i in range(count):
        frame = render_motion_frame(motion, i, i / rate_hz, faces_t)
        for k, side in enumerate(sides):
            if side in frame.joints_by_side:
                labels[i, k] = frame.joints_by_side[side]
        frames.append((frame.left, frame.right))
    print(f"bench_two_hands: rendered {count} frames with {hands} hand(s) in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
    left_info, right_info = synth.rig.camera_infos()
    return write_real_stereo_folder(
        path, left_info, right_info, frames, labels, sides,
        doc=f"simulated: HandMotion(hands={hands}, seed={seed}), {rate_hz:g} Hz, {domain} look",
    )  # fmt: skip


def side_swaps(result: dict[str, Any], folder: RealStereoFolder) -> dict[str, int]:
    """Swaps in an evaluation's per-frame records: ``id_side_changes`` (a hand id seen with
    one side, then with the other in the next pair) and ``nearer_other`` (a meshed hand whose
    joints lie nearer the other hand's ground truth than its own)."""
    by_frame: dict[int, dict[int, str]] = {}
    for r in result["per_frame"]:
        if r.get("hand_id") is not None:
            by_frame.setdefault(r["frame"], {})[r["hand_id"]] = r["handedness"]
    changes = 0
    for frame, ids in by_frame.items():
        after = by_frame.get(frame + 1, {})
        changes += sum(1 for i, side in ids.items() if i in after and after[i] != side)
    return {"id_side_changes": changes, "nearer_other": result.get("nearer_other", 0)}


def _nearer_other(pipeline: Any, folder: RealStereoFolder, tracking: bool, rate_hz: float) -> int:
    """Meshed hands nearer the other side's ground truth than their own (a swapped side)."""
    sides = folder.hand_sides
    pipeline.reset()
    swapped = 0
    for frame in folder.frames:
        if not tracking:
            pipeline.reset()
        left, right = folder.read_pair(frame)
        result = pipeline.process_hands(left, right, folder.rig, frame / rate_hz)
        truth = folder.hands_m(frame)
        for h in result.hands:
            if h.handedness not in sides:
                continue
            own, other = sides.index(h.handedness), 1 - sides.index(h.handedness)
            d = [np.nanmean(np.linalg.norm(h.joints - truth[k], axis=1)) for k in (own, other)]
            if np.isfinite(d[1]) and d[1] < d[0]:
                swapped += 1
    return swapped


def both_found(result: dict[str, Any]) -> dict[str, Any]:
    """Pairs where every labelled hand is meshed, out of the pairs scoring two hands."""
    per: dict[int, list[bool]] = {}
    for r in result["per_frame"]:
        per.setdefault(r["frame"], []).append(r["found"])
    two = [v for v in per.values() if len(v) == 2]
    both = sum(all(v) for v in two)
    return {"pairs": len(two), "both_meshed": both, "rate": both / len(two) if two else None}


def pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluations of several streams as one: counts summed, errors weighted by the
    hands found, latency over every pair; ``per_frame`` kept per stream."""
    from collections import Counter

    from stereo_hand_mesh._machine import percentile

    sides: dict[str, dict[str, Any]] = {}
    for r in results:
        for side, f in r["per_side"].items():
            t = sides.setdefault(side, {"scored": 0, "found": 0, "err_sum": 0.0})
            t["scored"] += f["scored"]
            t["found"] += f["found"]
            t["err_sum"] += (f["mean_joint_error_mm"] or 0.0) * f["found"]
    latencies = [
        rec["latency_ms"]
        for r in results
        for rec in {x["frame"]: x for x in r["per_frame"]}.values()
    ]
    reasons: Counter[str] = Counter()
    for r in results:
        reasons.update(r["not_found_reasons"])
    found = sum(r["found"] for r in results)
    errs = [(r["mean_joint_error_mm"] or 0.0) * (r["frames_with_error"] or 0) for r in results]
    with_error = sum(r["frames_with_error"] or 0 for r in results)
    return {
        "hands_scored": sum(r["hands_scored"] for r in results),
        "found": found,
        "mean_joint_error_mm": sum(errs) / with_error if with_error else None,
        "per_side": {
            side: {
                "scored": t["scored"],
                "found": t["found"],
                "found_rate": t["found"] / t["scored"] if t["scored"] else None,
                "mean_joint_error_mm": t["err_sum"] / t["found"] if t["found"] else None,
            }
            for side, t in sorted(sides.items())
        },
        "latency_ms": {
            "median": percentile(latencies, 0.5) if latencies else None,
            "p95": percentile(latencies, 0.95) if latencies else None,
        },
        "not_found_reasons": dict(reasons.most_common()),
        "per_frame": [rec for r in results for rec in r["per_frame"]],
    }


def _row(name: str, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "run": name,
        "hands_scored": result["hands_scored"],
        "found": result["found"],
        "mean_joint_error_mm": result["mean_joint_error_mm"],
        "per_side": result["per_side"],
        "latency_ms_median": result["latency_ms"]["median"],
        "latency_ms_p95": result["latency_ms"]["p95"],
        "not_found_reasons": result["not_found_reasons"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="frames per stream")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="motion seeds")
    parser.add_argument("--rate", type=float, default=15.0, help="pairs per second (sim: 15)")
    parser.add_argument("--domain", choices=("source", "target"), default="source")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: its)")
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "bench_two_hands")
    parser.add_argument("--json", type=Path, default=None, help="write results here (and .md)")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    def folders(hands: int) -> list[RealStereoFolder]:
        return [
            RealStereoFolder.open(
                sequence_folder(args.cache, hands, args.frames, seed, args.domain, args.rate)
            )
            for seed in args.seeds
        ]

    two, one = folders(2), folders(1)

    def pipeline(handedness: str = "auto", max_hands: int = 2, static: bool = False) -> Any:
        ns = SimpleNamespace(
            backend="onnxruntime", model=None, handedness=handedness, max_hands=max_hands,
            threads=args.threads, static=static, keypoint_variant="lite",
        )  # fmt: skip
        return build_product_pipeline(ns)

    runs: dict[str, Any] = {}
    product, described = pipeline()
    for mode in ("tracking", "static"):
        tracking = mode == "tracking"
        per_stream = []
        for folder in two:
            r = evaluate_real(
                folder, pipeline(static=not tracking)[0], tracking=tracking,
                frame_rate_hz=args.rate,
            )  # fmt: skip
            r["both"] = both_found(r)
            r["swaps"] = side_swaps(r, folder)
            r["swaps"]["nearer_other"] = _nearer_other(product, folder, tracking, args.rate)
            per_stream.append(r)
        result = pooled(per_stream)
        pairs = sum(r["both"]["pairs"] for r in per_stream)
        both = sum(r["both"]["both_meshed"] for r in per_stream)
        runs[f"two hands, {mode}"] = {
            **_row(f"two hands, {mode}", result),
            "both": {"pairs": pairs, "both_meshed": both, "rate": both / pairs if pairs else None},
            "swaps": {
                k: sum(r["swaps"][k] for r in per_stream)
                for k in ("id_side_changes", "nearer_other")
            },
        }
    for name, (handedness, max_hands) in {
        "one hand, default (auto, max_hands 2)": ("auto", 2),
        "one hand, single-hand path (right, max_hands 1)": ("right", 1),
    }.items():
        result = pooled(
            [
                evaluate_real(f, pipeline(handedness, max_hands)[0], frame_rate_hz=args.rate)
                for f in one
            ]
        )
        runs[name] = _row(name, result)
    payload = {
        "machine": machine_description(),
        "command": "benchmarks/bench_two_hands.py " + " ".join(sys.argv[1:]),
        "frames_per_stream": args.frames,
        "seeds": args.seeds,
        "rate_hz": args.rate,
        "domain": args.domain,
        "product": described,
        "runs": runs,
    }
    md = [
        "| run | both meshed | right found | left found | right mm | left mm | side swaps "
        "| p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        both = r.get("both")
        swaps = r.get("swaps")
        side = r["per_side"]

        def cell(s: str, key: str, fmt: str, side: dict = side) -> str:
            v = side.get(s, {}).get(key)
            return "-" if v is None else format(v, fmt)

        md.append(
            f"| {name} | "
            + (f"{both['both_meshed']}/{both['pairs']} ({100 * both['rate']:.1f}%)" if both
               else "-")
            + f" | {cell('right', 'found', 'd')}/{cell('right', 'scored', 'd')}"
            f" | {cell('left', 'found', 'd')}/{cell('left', 'scored', 'd')}"
            f" | {cell('right', 'mean_joint_error_mm', '.1f')}"
            f" | {cell('left', 'mean_joint_error_mm', '.1f')}"
            f" | {'-' if swaps is None else swaps['id_side_changes'] + swaps['nearer_other']}"
            f" | {r['latency_ms_median']:.1f} | {r['latency_ms_p95']:.1f} |"
        )  # fmt: skip
    table = "\n".join(md) + (
        f"\n\nMachine: {payload['machine']['cpu']} ({payload['machine']['logical_cores']} "
        f"cores); synthetic, {args.domain} look, seeds {args.seeds} x {args.frames} pairs at "
        f"{args.rate:g} Hz.\n"
    )
    print(table, end="")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        args.json.with_suffix(".md").write_text(table)
        print(f"bench_two_hands: wrote {args.json} and {args.json.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
