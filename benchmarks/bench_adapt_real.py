"""Benchmark: label-free adaptation on real pairs (issue 16's real-data protocol).

On a real stereo folder (default ``../shared/realdata/tabletop_a``), for each seed:
``adapt`` (:func:`stereo_hand_mesh.train.adapt_keypoints.adapt_keypoints`, the command's
implementation) reads the first part of the frames (``--adapt-frames``, default ``0:38``)
**without their labels**, calibrates the user's hand shape, fine-tunes the landmark network
and decides by its held-out label-free score; then the product pipeline
(:func:`stereo_hand_mesh.cli.train.build_product_pipeline`) is scored with the labels on the
other frames (``--eval-frames``, default ``38:``), static and tracking, for four models:

- ``unadapted``: the shipped network;
- ``calibrated``: the shipped network with the user's calibration only;
- ``adapted``: the adapted network with the calibration (written whatever the validation
  said, ``output="adapted"``);
- ``decision``: the model the adaptation chose to deploy (one of the three).

Wall time of the adaptation per 100 input pairs is reported (preparation, training,
validation). The real data is for evaluation only (``../shared/realdata/README.md``); no
weight that ships is trained on it. Without the folder the script prints ``skipped: ...`` and
exits 0::

    .venv/bin/python benchmarks/bench_adapt_real.py --threads 2 \\
        --json benchmarks/results/adapt_real_tabletop_a.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description

from stereo_hand_mesh.cli.train import build_product_pipeline
from stereo_hand_mesh.data.realdata import RealStereoFolder
from stereo_hand_mesh.data.sources import frame_slice_text, parse_frame_slice
from stereo_hand_mesh.pipeline.calibration import HandCalibration, write_model_calibration
from stereo_hand_mesh.runtime.keypoint_nets import keypoint_model_files
from stereo_hand_mesh.train.adapt_keypoints import KeypointAdaptSettings, adapt_keypoints
from stereo_hand_mesh.train.real_eval import evaluate_real

REPO = Path(__file__).resolve().parents[1]
MODES = ("static", "tracking")


def score(folder: RealStereoFolder, model: Path | None, frames: slice, threads: int) -> dict:
    """Found count, mean and median mm of the product with ``model`` on ``frames``."""
    out = {}
    for mode in MODES:
        args = argparse.Namespace(
            backend="onnxruntime",
            model=model,
            handedness="right",
            threads=threads,
            static=mode == "static",
            keypoint_variant="lite",
        )
        pipeline, _ = build_product_pipeline(args)
        r = evaluate_real(folder, pipeline, tracking=mode == "tracking", frames=frames)
        out[mode] = {
            "found": r["found"],
            "scored": r["frames_scored"],
            "mean_mm": r["mean_joint_error_mm"],
            "median_mm": r["median_joint_error_mm"],
            "per_frame_mm": {
                str(f["frame"]): f["error_mm"]
                for f in r["per_frame"]
                if f["found"] and f.get("error_mm") is not None
            },
        }
    return out


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    folder = RealStereoFolder.open(args.data)
    adapt_frames, eval_frames = args.adapt_frames, args.eval_frames
    shipped = keypoint_model_files("lite")["landmarks_onnx"]
    result: dict[str, Any] = {
        "data": str(args.data),
        "adapt_frames": frame_slice_text(adapt_frames),
        "eval_frames": frame_slice_text(eval_frames),
        "settings": KeypointAdaptSettings().__dict__,
        "machine": machine_description(),
        "command": " ".join(["python", *sys.argv]),
        "unadapted": score(folder, None, eval_frames, args.threads),
        "seeds": {},
    }
    calibrated_done: dict[str, Any] = {}
    for seed in args.seeds:
        out = workdir / f"seed{seed}.onnx"
        report = adapt_keypoints(
            args.data,
            out,
            KeypointAdaptSettings(),
            seed=seed,
            frames=adapt_frames,
            threads=args.threads,
            progress=not args.quiet,
            output="adapted",
        )
        d = report.details
        cal = d["calibration"]
        if cal is not None and not calibrated_done:
            path = workdir / "calibrated.onnx"
            write_model_calibration(shipped, path, HandCalibration.from_dict(cal))
            calibrated_done = {
                "path": path,
                "scores": score(folder, path, eval_frames, args.threads),
            }
        adapted = score(folder, out, eval_frames, args.threads)
        chosen = d["chosen"]
        if chosen == "current":
            decision = result["unadapted"]
        elif chosen == "calibrated":
            decision = calibrated_done["scores"]
        elif d["calibration_used"]:  # the written file: adapted network + calibration
            decision = adapted
        else:  # the adapted network without the calibration: the same run, written as chosen
            best = workdir / f"seed{seed}_best.onnx"
            adapt_keypoints(
                args.data, best, KeypointAdaptSettings(), seed=seed, frames=adapt_frames,
                threads=args.threads, progress=False,
            )  # fmt: skip
            decision = score(folder, best, eval_frames, args.threads)
        n_in = d["pairs_adapted"] + d["pairs_validation"] + sum(d["skipped"].values())
        result["seeds"][str(seed)] = {
            "chosen": chosen,
            "decision_line": report.decision,
            "validation": {
                k: v and {"score": v["score"], "fit_residual": v["fit_residual"]}
                for k, v in d["validation"].items()
            },
            "calibration_used": d["calibration_used"],
            "network_adapted": d["network_adapted"],
            "adapted": adapted,
            "decision": decision,
            "pairs_in": n_in,
            "pairs_adapted": d["pairs_adapted"],
            "pairs_validation": d["pairs_validation"],
            "seconds": d["seconds"],
            "seconds_per_100_pairs": 100.0 * d["seconds"]["total"] / max(n_in, 1),
            "training": d["training"],
        }
    result["calibrated"] = calibrated_done.get("scores")
    summary: dict[str, Any] = {}
    for mode in MODES:
        base = result["unadapted"][mode]["mean_mm"]
        per_seed = {
            kind: [s[kind][mode]["mean_mm"] for s in result["seeds"].values()]
            for kind in ("adapted", "decision")
        }
        summary[mode] = {
            "unadapted_mm": base,
            "calibrated_mm": None
            if result["calibrated"] is None
            else result["calibrated"][mode]["mean_mm"],
            "adapted_mm_mean_of_seeds": _mean(per_seed["adapted"]),
            "decision_mm_mean_of_seeds": _mean(per_seed["decision"]),
            "adapted_worst_seed_minus_unadapted_mm": (
                None
                if base is None or not any(v is not None for v in per_seed["adapted"])
                else max(v for v in per_seed["adapted"] if v is not None) - base
            ),
        }
    for mode in MODES:  # on the frames every model found (static: the found sets differ)
        sets = [result["unadapted"][mode]["per_frame_mm"]]
        if result["calibrated"] is not None:
            sets.append(result["calibrated"][mode]["per_frame_mm"])
        sets += [s["decision"][mode]["per_frame_mm"] for s in result["seeds"].values()]
        common = sorted(set.intersection(*(set(x) for x in sets)))

        def on_common(frames: dict[str, float], common: list[str] = common) -> float | None:
            return statistics.fmean(frames[f] for f in common) if common else None

        summary[mode]["frames_all_found"] = len(common)
        summary[mode]["unadapted_mm_on_those"] = on_common(sets[0])
        summary[mode]["decision_mm_on_those_mean_of_seeds"] = _mean(
            [on_common(s["decision"][mode]["per_frame_mm"]) for s in result["seeds"].values()]
        )
    result["summary"] = summary
    result["seconds_per_100_pairs_median"] = statistics.median(
        s["seconds_per_100_pairs"] for s in result["seeds"].values()
    )
    return result


def markdown(r: dict[str, Any]) -> str:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    lines = [
        f"Label-free adaptation on {r['data']}: adapt on frames {r['adapt_frames']} (no labels), "
        f"score frames {r['eval_frames']}; {r['machine']}",
        "",
        "| model | static found | static mean mm | tracking found | tracking mean mm |",
        "|---|---|---|---|---|",
    ]

    def row(name: str, s: dict[str, Any] | None) -> None:
        if s is None:
            return
        lines.append(
            f"| {name} | {s['static']['found']}/{s['static']['scored']} | "
            f"{f(s['static']['mean_mm'])} | {s['tracking']['found']}/{s['tracking']['scored']} "
            f"| {f(s['tracking']['mean_mm'])} |"
        )

    row("unadapted", r["unadapted"])
    row("calibrated only", r["calibrated"])
    for seed, s in r["seeds"].items():
        row(f"adapted, seed {seed}", s["adapted"])
        row(f"decision, seed {seed} ({s['chosen']})", s["decision"])
    lines.append("")
    lines.append(
        f"Adaptation wall time per 100 input pairs (median of seeds): "
        f"{r['seconds_per_100_pairs_median']:.0f} s"
    )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared/realdata/tabletop_a")
    p.add_argument("--adapt-frames", type=parse_frame_slice, default=parse_frame_slice("0:38"))
    p.add_argument("--eval-frames", type=parse_frame_slice, default=parse_frame_slice("38:"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if not args.data.is_dir():
        print(f"skipped: real stereo folder {args.data} not found")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args, Path(tmp))
    print(markdown(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        args.json.with_suffix(".md").write_text(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
