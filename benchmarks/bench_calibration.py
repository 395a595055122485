"""Benchmark: what the per-user hand calibration alone does (issue 16, item 2).

Protocol (label-free calibration, held-out evaluation): ``stereo-hand-mesh calibrate`` runs the
product pipeline over the pairs ``--calibrate-frames`` (default ``0:38``, the first half of
tabletop_a) without reading their labels, estimates the hand's 9 shape factors and writes them
into a copy of the landmark network; then the product pipeline plays the pairs
``--eval-frames`` (default ``38:``) twice, with the shipped landmark network and with the
calibrated copy (same weights; the fit holds the calibrated shape), in tracking and in static
mode, and the labelled frames with the hand inside both images are scored
(:func:`~stereo_hand_mesh.train.real_eval.evaluate_real`): found count, mean and median mm of
the published (blended), fitted and triangulated joints. Nothing is tuned: the calibration has
no free setting here but the default ``--min-pairs``.

::

    .venv/bin/python benchmarks/bench_calibration.py --data ../shared/realdata/tabletop_a \\
        --keypoint-variant lite --json benchmarks/results/calibration_tabletop_a.json

Because a calibration can change which frames are found, the errors are also given on the
frames both runs found (``paired``), per joint set. Beside the weighted median (the product's
estimator, :func:`~stereo_hand_mesh.pipeline.calibration.calibrate_hand`) the weighted mean of
the same per-pair shapes is evaluated as well, to show what the robust estimate buys.

No synthetic split is run: the splits ``stereo-hand-mesh synth`` writes draw a new hand shape
for every pair, so they have no single user to calibrate to (the recovery of a known shape from
synthetic keypoints is a unit test, ``test/test_pipeline_calibration.py``).

The real data is for evaluation only (``../shared/realdata/README.md``); without the folder the
script prints ``skipped: ... not found`` and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description

from stereo_hand_mesh.cli.calibrate import calibrate_from_source
from stereo_hand_mesh.data.realdata import RealStereoFolder
from stereo_hand_mesh.data.sources import frame_slice_text, parse_frame_slice
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.pipeline import PipelineSettings
from stereo_hand_mesh.pipeline.calibration import HandCalibration, write_model_calibration
from stereo_hand_mesh.pipeline.factory import create_pipeline
from stereo_hand_mesh.train.real_eval import evaluate_real

REPO = Path(__file__).resolve().parents[1]


JOINT_SETS = {
    "blended": "joints",
    "fitted": "fitted_joints",
    "triangulated": "triangulated_joints",
}


class RecordingPipeline:
    """The product pipeline, keeping each frame's three joint sets (frame = stamp x fps)."""

    def __init__(self, pipeline: Any, fps: float = 30.0) -> None:
        self.pipeline, self.fps = pipeline, fps
        self.joints: dict[int, dict[str, np.ndarray]] = {}

    def reset(self) -> None:
        self.pipeline.reset()

    def process(
        self, left: np.ndarray, right: np.ndarray, rig: StereoRig, stamp_s: float | None = None
    ) -> Any:
        est = self.pipeline.process(left, right, rig, stamp_s)
        if est.found and stamp_s is not None:
            frame = round(stamp_s * self.fps)
            self.joints[frame] = {k: getattr(est, a) for k, a in JOINT_SETS.items()}
        return est


def _paired(
    folder: RealStereoFolder, runs: dict[str, RecordingPipeline], scored: list[int]
) -> dict[str, Any]:
    """Mean / median mm of each joint set over the scored frames every run found."""
    common = [f for f in scored if all(f in r.joints for r in runs.values())]
    out: dict[str, Any] = {"frames": len(common)}
    for label, run in runs.items():
        out[label] = {}
        for name in JOINT_SETS:
            errors = []
            for frame in common:
                gt = folder.joints_m(frame)
                known = np.isfinite(gt).all(axis=1)
                diff = run.joints[frame][name][known] - gt[known]
                errors.append(1e3 * float(np.linalg.norm(diff, axis=1).mean()))
            out[label][name] = {
                "mean_mm": float(np.mean(errors)) if errors else None,
                "median_mm": float(np.median(errors)) if errors else None,
            }
    return out


def _figures(result: dict[str, Any]) -> dict[str, Any]:
    """Found count and mean / median mm of the blended, fitted and triangulated joints."""
    out: dict[str, Any] = {
        "frames_scored": result["frames_scored"],
        "found": result["found"],
        "blended": {
            "mean_mm": result["mean_joint_error_mm"],
            "median_mm": result["median_joint_error_mm"],
            "root_relative_mm": result["root_relative_error_mm"],
        },
    }
    for name, key in (("fitted", "fitted_joints"), ("triangulated", "triangulated_joints")):
        alt = result.get("alternative_joints", {}).get(key)
        out[name] = (
            None
            if alt is None
            else {
                "mean_mm": alt["mean_joint_error_mm"],
                "median_mm": alt["median_joint_error_mm"],
                "root_relative_mm": alt["root_relative_error_mm"],
            }
        )
    return out


def run(args: argparse.Namespace, data: Path, workdir: Path) -> dict[str, Any]:
    """Calibrate on ``--calibrate-frames`` of ``data``, evaluate before / after on
    ``--eval-frames``."""
    calibrate_frames = parse_frame_slice(args.calibrate_frames)
    eval_frames = parse_frame_slice(args.eval_frames)
    calibration, landmarks, report = calibrate_from_source(
        data,
        calibrate_frames,
        keypoint_variant=args.keypoint_variant,
        backend=args.backend,
        threads=args.threads,
    )
    shapes = np.array(report["used_shapes"])
    weights = np.array(report["used_weights"])
    mean_shape = (weights[:, None] * shapes).sum(0) / weights.sum()
    mean_calibration = HandCalibration(
        shape=tuple(float(v) for v in mean_shape), pairs=len(shapes), source="weighted mean"
    )
    models = {
        "before": landmarks,
        "after": write_model_calibration(
            landmarks, workdir / f"calibrated{landmarks.suffix}", calibration
        ),
        "after_mean": write_model_calibration(
            landmarks, workdir / f"calibrated_mean{landmarks.suffix}", mean_calibration
        ),
    }
    folder = RealStereoFolder.open(data)
    results: dict[str, Any] = {}
    paired: dict[str, Any] = {}
    for mode in ("tracking", "static"):
        runs = {}
        scored: list[int] = []
        for label, model in models.items():
            choice = create_pipeline(
                PipelineSettings(smoothing=mode == "tracking"),
                args.backend,
                model,
                keypoint_variant=args.keypoint_variant,
                intra_op_threads=args.threads,
            )
            assert (choice.calibration is not None) == (label != "before")
            runs[label] = RecordingPipeline(choice.pipeline)
            result = evaluate_real(
                folder, runs[label], tracking=mode == "tracking", frames=eval_frames
            )
            scored = [r["frame"] for r in result["per_frame"]]
            results.setdefault(mode, {})[label] = _figures(result)
        paired[mode] = _paired(folder, runs, scored)
    return {
        "data": str(data),
        "calibrate_frames": frame_slice_text(calibrate_frames),
        "eval_frames": frame_slice_text(eval_frames),
        "keypoint_variant": args.keypoint_variant,
        "landmark_model": str(
            landmarks.relative_to(REPO) if landmarks.is_relative_to(REPO) else landmarks
        ),
        "calibration": calibration.to_dict(),
        "calibration_weighted_mean": mean_calibration.to_dict()["shape"],
        "calibration_pairs": {
            "played": report["pairs_played"],
            "used": report["pairs_used"],
            "not_found": report["not_found"],
        },
        "results": results,
        "paired": paired,
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(entry: dict[str, Any]) -> str:
    """One table per data set: before / after, per mode and joint set."""
    rows = [
        f"Calibrated on {entry['data']} frames {entry['calibrate_frames']} "
        f"({entry['calibration_pairs']['used']} of {entry['calibration_pairs']['played']} pairs "
        f"with a hand; scale {entry['calibration']['shape']['scale']:.3f}), evaluated on frames "
        f"{entry['eval_frames']}, {entry['keypoint_variant']} landmark network.",
        "",
        "| mode | model | found | blended mean / median mm | fitted mean / median mm "
        "| triangulated mean / median mm |",
        "|---|---|---|---|---|---|",
    ]
    for mode, by_label in entry["results"].items():
        for label, r in by_label.items():
            cells = []
            for name in ("blended", "fitted", "triangulated"):
                f = r[name]
                cells.append(
                    "-" if f is None else f"{_fmt(f['mean_mm'])} / {_fmt(f['median_mm'])}"
                )
            rows.append(
                f"| {mode} | {label} | {r['found']}/{r['frames_scored']} | "
                + " | ".join(cells)
                + " |"
            )
    rows += [
        "",
        "On the frames every run found (paired):",
        "",
        "| mode | frames | model | blended mean / median mm | fitted mean / median mm "
        "| triangulated mean / median mm |",
        "|---|---|---|---|---|---|",
    ]
    for mode, p in entry["paired"].items():
        for label in (k for k in p if k != "frames"):
            cells = [
                f"{_fmt(p[label][n]['mean_mm'])} / {_fmt(p[label][n]['median_mm'])}"
                for n in JOINT_SETS
            ]
            rows.append(f"| {mode} | {p['frames']} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=REPO.parent / "shared" / "realdata" / "tabletop_a"
    )
    parser.add_argument("--calibrate-frames", default="0:38", metavar="START:STOP")
    parser.add_argument("--eval-frames", default="38:", metavar="START:STOP")
    parser.add_argument("--keypoint-variant", choices=("auto", "lite", "full"), default="lite")
    parser.add_argument(
        "--backend", choices=("auto", "tensorrt", "onnxruntime", "torch"), default="auto"
    )
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: its)")
    parser.add_argument("--json", type=Path, default=None, help="write results here (and .md)")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"bench_calibration: skipped: real data folder {args.data} not found")
        return 0
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        entries.append(run(args, args.data, Path(tmp)))
    table = "\n".join(markdown(e) for e in entries)
    print(table, end="")
    if args.json:
        result = {
            "machine": machine_description(),
            "command": "benchmarks/bench_calibration.py " + " ".join(sys.argv[1:]),
            "entries": entries,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        args.json.with_suffix(".md").write_text(table)
        print(f"bench_calibration: wrote {args.json} and {args.json.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
