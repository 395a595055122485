"""``stereo-hand-mesh calibrate``: estimate the user's hand shape from unlabelled stereo pairs
and write it into a copy of the landmark network (:mod:`stereo_hand_mesh.pipeline.calibration`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from stereo_hand_mesh.cli.options import add_frames_argument
from stereo_hand_mesh.errors import ConfigError, DataError

__all__ = ["add_calibrate_parser", "calibrate_from_source", "run_calibrate"]

#: Fewest pairs with a hand a calibration accepts (default of ``--min-pairs``).
DEFAULT_MIN_PAIRS = 10


def add_calibrate_parser(sub: argparse._SubParsersAction) -> dict:
    """Register ``calibrate``; returns ``{"calibrate": run_calibrate}``."""
    c = sub.add_parser(
        "calibrate",
        help="per-user hand calibration: the hand's shape from unlabelled stereo pairs, "
        "written into a copy of the landmark network",
    )
    c.add_argument(
        "--data",
        required=True,
        type=Path,
        help="unlabelled stereo source: a rosbag2 bag or recording, a real stereo folder or a "
        "synthetic split (ground truth is never read)",
    )
    add_frames_argument(c)
    c.add_argument(
        "--out",
        required=True,
        type=Path,
        help="the calibrated landmark network to write (.onnx, or .npz for torch; the suffix "
        "of --model)",
    )
    c.add_argument(
        "--model",
        type=Path,
        default=None,
        help="landmark network to calibrate and copy (default: the shipped one the backend "
        "and variant pick)",
    )
    c.add_argument("--palm-model", type=Path, default=None, help="palm detector (.onnx/.npz)")
    c.add_argument("--keypoint-variant", choices=("auto", "lite", "full"), default="auto")
    c.add_argument(
        "--backend", choices=("auto", "tensorrt", "onnxruntime", "torch"), default="auto"
    )
    c.add_argument("--handedness", choices=("right", "left"), default="right")
    c.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: its)")
    c.add_argument("--fps", type=float, default=30.0, help="frame rate of unstamped sources")
    c.add_argument(
        "--min-pairs",
        type=int,
        default=DEFAULT_MIN_PAIRS,
        help=f"fewest pairs with a hand to accept (default {DEFAULT_MIN_PAIRS})",
    )
    c.add_argument("--json", type=Path, default=None, help="write the calibration report here")
    return {"calibrate": run_calibrate}


def calibrate_from_source(
    data: Path,
    frames: slice | None = None,
    *,
    model: Path | None = None,
    palm_model: Path | None = None,
    keypoint_variant: str = "auto",
    backend: str = "auto",
    handedness: str = "right",
    threads: int = 0,
    fps: float = 30.0,
    min_pairs: int = DEFAULT_MIN_PAIRS,
) -> tuple[Any, Path, dict[str, Any]]:
    """Run the product pipeline over a source's pairs (no ground truth) and calibrate.

    Returns:
        (:class:`~stereo_hand_mesh.pipeline.calibration.HandCalibration`, the landmark file
        that was run, a JSON-ready report: pairs played, pairs used, reasons of the others).

    Raises:
        DataError: fewer than ``min_pairs`` pairs with a hand (the message gives the
            pipeline's most common reasons), or an invalid source.
        ConfigError, ModelFileError: as :func:`~stereo_hand_mesh.pipeline.factory.create_pipeline`.
    """
    from stereo_hand_mesh.data.sources import frame_slice_text, iter_stereo_samples
    from stereo_hand_mesh.pipeline import PipelineSettings
    from stereo_hand_mesh.pipeline.calibration import calibrate_hand, collect_calibration_fits
    from stereo_hand_mesh.pipeline.factory import create_pipeline

    samples = iter_stereo_samples(data, load_ground_truth=False, frames=frames)
    choice = create_pipeline(
        PipelineSettings(handedness=handedness),
        backend,
        model,
        palm_model,
        keypoint_variant,
        intra_op_threads=threads,
        apply_calibration=False,  # calibrate from the plain fit, whatever --model carries
    )
    if choice.kind != "keypoints":
        raise ConfigError(
            f"calibrate expected a keypoint landmark network (--model .onnx/.npz); got "
            f"{choice.kind} model {model}"
        )
    landmarks = Path(choice.pipeline.nets.landmarks.path)
    found = collect_calibration_fits(choice.pipeline, samples, handedness, fps)
    selection = "" if frames is None else f" frames {frame_slice_text(frames)}"
    if len(found.fits) < min_pairs:
        reasons = sorted(found.not_found.items(), key=lambda kv: -kv[1])[:3]
        why = "; ".join(f"{n}x {r}" for r, n in reasons) or "no pairs"
        raise DataError(
            f"calibration expected a hand found in at least {min_pairs} pairs of {data}"
            f"{selection}; got {len(found.fits)} of {found.pairs} (most common reasons: {why})"
        )
    calibration = calibrate_hand(found.fits, found.weights, min_pairs, source=f"{data}{selection}")
    report = {
        "data": str(data),
        "frames": frame_slice_text(frames),
        "pairs_played": found.pairs,
        "pairs_used": len(found.fits),
        "used_indices": found.indices.tolist(),
        "used_weights": found.weights.tolist(),
        "used_shapes": [[float(v) for v in f.shape] for f in found.fits],
        "not_found": found.not_found,
        "landmark_model": str(landmarks),
        "backend": choice.pipeline.backend.name,
        "calibration": calibration.to_dict(),
    }
    return calibration, landmarks, report


def run_calibrate(args: argparse.Namespace) -> int:
    from stereo_hand_mesh.pipeline.calibration import write_model_calibration

    calibration, landmarks, report = calibrate_from_source(
        args.data,
        args.frames,
        model=args.model,
        palm_model=args.palm_model,
        keypoint_variant=args.keypoint_variant,
        backend=args.backend,
        handedness=args.handedness,
        threads=args.threads,
        fps=args.fps,
        min_pairs=args.min_pairs,
    )
    if args.out.suffix != landmarks.suffix:
        raise ConfigError(
            f"--out expected the suffix of the landmark network {landmarks} "
            f"({landmarks.suffix}); got {args.out}"
        )
    write_model_calibration(landmarks, args.out, calibration)
    report = {"command": "stereo-hand-mesh " + " ".join(sys.argv[1:]), **report}
    report["out"] = str(args.out)
    shape = ", ".join(f"{k} {v:.3f}" for k, v in report["calibration"]["shape"].items())
    print(
        f"calibrate: {report['pairs_used']} of {report['pairs_played']} pairs with a hand; "
        f"shape {shape}; wrote {args.out}"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0
