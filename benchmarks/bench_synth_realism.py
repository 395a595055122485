"""Benchmark: do our renders look like hands to a real-trained network?

The imported real-trained landmark network (MediaPipe's ``hand_landmark_lite``, ONNX Runtime
on the CPU, :mod:`stereo_hand_mesh.runtime.keypoint_nets`) reads rendered stereo pairs of each
synthetic domain on crops placed from the ground truth: in each view the rotated crop that
:func:`~stereo_hand_mesh.pipeline.palm.roi_from_landmarks` makes from the true joints'
projections (hand upright, as when the product tracks). Its keypoints go back to image pixels
and are triangulated with the rig (disparity, eq. 1 of the seed paper). Reported per domain:

* keypoint error, pixels (mean over both views and the 21 joints, then over pairs);
* triangulated joint error, millimetres (mean over joints, then mean and median over pairs);
* the share of pairs whose presence is above 0.5 in both views;
* the whole product pipeline on the same pairs (``HandMeshPipeline``, ONNX Runtime, lite,
  a cold start on every pair: palm detector, crops, landmarks, fit): the share of pairs with
  a mesh and its mean joint error (mm) on those (``--no-pipeline`` skips it);
* pixel statistics of the whole left image (without the black borders of a software
  rectification) and of the network's left crop: mean and std per channel, saturated share
  (a channel at 0 or 255), HSV saturation, edge density (Canny 50/150), sharpness (variance
  of the Laplacian), a noise estimate (MAD of a high-pass), and the JPEG blockiness (mean
  step across 8-pixel column boundaries over that elsewhere; 1: none).

The same figures on a real stereo folder (default ``../shared/realdata/tabletop_a``; frames
with the hand wholly inside both images, joints with labels only) go beside them for
reference; without the folder that part is skipped with a message. The real data is for
evaluation only: nothing here renders from it or tunes on it.

Rendering speed (pairs per second of :func:`~stereo_hand_mesh.data.synth.iter_synthetic_pairs`
at 640x480, torch and OpenCV on 2 threads) and the time to pre-render the simulator's loop
(120 frames: 8 s at 15 Hz, source domain, as ``stereo_camera_sim`` does by default) are
measured in the same run.

Usage::

    .venv/bin/python benchmarks/bench_synth_realism.py --count 100 \\
        --json benchmarks/results/synth_realism.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description

from stereo_hand_mesh.data.camera_info_yaml import rig_for_size
from stereo_hand_mesh.data.synth import SynthSettings, iter_synthetic_pairs
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.geometry.crop import RotatedCrop, cut_crop
from stereo_hand_mesh.pipeline.palm import roi_from_landmarks
from stereo_hand_mesh.runtime.keypoint_nets import KeypointNet, OnnxRuntimeKeypointNet

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = REPO.parent / "shared" / "realdata" / "tabletop_a"
DEFAULT_MODEL = REPO / "models" / "hand_landmark_lite.onnx"
#: Presence above this counts as "the network sees a hand" (the pipeline's default).
PRESENCE_THRESHOLD = 0.5


def landmarks_on_gt_crops(
    net: KeypointNet,
    left: np.ndarray,
    right: np.ndarray,
    uv_left: np.ndarray,
    uv_right: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, tuple[RotatedCrop, RotatedCrop]]:
    """The landmark network on both views' crops placed from the true joints.

    Args:
        net: the landmark network.
        left, right: (H, W, 3) uint8 RGB views.
        uv_left, uv_right: (21, 2) true joint projections, pixels (finite).

    Returns:
        keypoints (2, 21, 2) image pixels (left, right), presence (2,), and the two crops.
    """
    size = net.input_size
    crops = (roi_from_landmarks(uv_left, size), roi_from_landmarks(uv_right, size))
    batch = np.stack([cut_crop(v, c, antialias=False) for v, c in zip((left, right), crops)])
    out = net.run(np.ascontiguousarray(batch.transpose(0, 3, 1, 2), np.float32) / 255.0)
    raw = out["landmarks"].reshape(2, 21, 3).astype(np.float64)
    # Continuous crop coordinates (0 at the edge): pixel centres at +0.5.
    uv = np.stack([crops[i].to_image(raw[i, :, :2] - 0.5) for i in range(2)])
    return uv, out["presence"].reshape(2).astype(np.float64), crops


def pair_errors(
    net: KeypointNet,
    rig: StereoRig,
    left: np.ndarray,
    right: np.ndarray,
    joints_m: np.ndarray,
) -> dict[str, float]:
    """Keypoint error (px), triangulated joint error (mm) and presence of one pair.

    Args:
        joints_m: (21, 3) true joints, left optical frame, metres; NaN rows are unlabelled
            (their projections are filled from the labelled ones' mean to place the crop,
            and they are not scored).
    """
    labelled = np.isfinite(joints_m).all(axis=1)
    uv_l = rig.project_left(np.where(labelled[:, None], joints_m, 0.0))
    uv_r = rig.project_right(np.where(labelled[:, None], joints_m, 0.0))
    for uv in (uv_l, uv_r):
        uv[~labelled] = uv[labelled].mean(axis=0)
    kp, presence, crops = landmarks_on_gt_crops(net, left, right, uv_l, uv_r)
    px = np.concatenate(
        [
            np.linalg.norm(kp[0] - uv_l, axis=1)[labelled],
            np.linalg.norm(kp[1] - uv_r, axis=1)[labelled],
        ]
    )
    tri = rig.triangulate(kp[0], kp[1])
    err_m = np.linalg.norm(tri.points - joints_m, axis=1)
    # A keypoint at a non-positive disparity has no depth: scored as 1 m off.
    err_m = np.where(tri.valid, err_m, 1.0)[labelled]
    return {
        "keypoint_px": float(px.mean()),
        "joint_mm": float(1e3 * err_m.mean()),
        "presence_min": float(presence.min()),
        "crop_side_px": float(0.5 * (crops[0].side + crops[1].side)),
    }


def _blockiness(grey: np.ndarray) -> float:
    """Mean |horizontal step| across 8-pixel column boundaries over that elsewhere (1: none)."""
    d = np.abs(np.diff(grey.astype(np.float32), axis=1))
    on_grid = d[:, 7::8].mean()
    off_grid = np.delete(d, np.s_[7::8], axis=1).mean()
    return float(on_grid / max(off_grid, 1e-6))


def image_stats(image: np.ndarray) -> dict[str, Any]:
    """Pixel statistics of a (H, W, 3) uint8 RGB image (see the module docstring).

    Pixels that are exactly black in every channel (the borders a software rectification
    leaves) and a 3-pixel band around them are left out.
    """
    valid = (image != 0).any(axis=2).astype(np.uint8)
    inner = cv2.erode(valid, np.ones((7, 7), np.uint8)).astype(bool)
    if not inner.any():
        inner = np.ones(image.shape[:2], bool)
    px = image[inner].astype(np.float64)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    high = grey.astype(np.float32) - cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 1.0)
    return {
        "rgb_mean": px.mean(axis=0).tolist(),
        "rgb_std": px.std(axis=0).tolist(),
        "saturated_share": float(((px == 0) | (px == 255)).any(axis=1).mean()),
        "hsv_saturation_mean": float(hsv[:, :, 1][inner].mean()),
        "edge_density": float((cv2.Canny(grey, 50, 150) > 0)[inner].mean()),
        "laplacian_var": float(cv2.Laplacian(grey, cv2.CV_64F)[inner].var()),
        "noise_mad": float(1.4826 * np.median(np.abs(high[inner] - np.median(high[inner])))),
        "blockiness": _blockiness(grey),
    }


def _mean_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in rows[0]:
        values = np.array([r[key] for r in rows], dtype=np.float64)
        out[key] = np.round(values.mean(axis=0), 4).tolist()
    return out


def _summary(rows: list[dict[str, float]]) -> dict[str, Any]:
    px = [r["keypoint_px"] for r in rows]
    mm = [r["joint_mm"] for r in rows]
    present = [r["presence_min"] > PRESENCE_THRESHOLD for r in rows]
    mm_present = [m for m, p in zip(mm, present) if p]
    return {
        "pairs": len(rows),
        "keypoint_px_mean": statistics.fmean(px),
        "keypoint_px_median": statistics.median(px),
        "joint_mm_mean": statistics.fmean(mm),
        "joint_mm_median": statistics.median(mm),
        "joint_mm_mean_when_present": statistics.fmean(mm_present) if mm_present else math.nan,
        "presence_rate": statistics.fmean(present),
        "crop_side_px_mean": statistics.fmean(r["crop_side_px"] for r in rows),
    }


def product_pipeline():
    """The product's pipeline for static pairs: shipped lite networks on ONNX Runtime (CPU,
    2 threads), no tracking and no smoothing (every pair a cold start)."""
    from stereo_hand_mesh.pipeline.estimator import PipelineSettings
    from stereo_hand_mesh.pipeline.factory import create_pipeline

    settings = PipelineSettings(smoothing=False, tracking=False)
    return create_pipeline(
        settings, "onnxruntime", keypoint_variant="lite", intra_op_threads=2
    ).pipeline


def pipeline_error_mm(
    pipeline, rig: StereoRig, left: np.ndarray, right: np.ndarray, joints_m: np.ndarray
) -> float | None:
    """Mean error (mm) of the product's joints over the labelled joints, None: no mesh."""
    est = pipeline.process(left, right, rig)
    if not est.found:
        return None
    labelled = np.isfinite(joints_m).all(axis=1)
    return float(1e3 * np.linalg.norm(est.joints - joints_m, axis=1)[labelled].mean())


def _pipeline_summary(errors: list[float | None]) -> dict[str, Any]:
    found = [e for e in errors if e is not None]
    return {
        "pipeline_found_rate": len(found) / max(len(errors), 1),
        "pipeline_joint_mm_mean": statistics.fmean(found) if found else math.nan,
        "pipeline_joint_mm_median": statistics.median(found) if found else math.nan,
    }


def evaluate_domain(
    net: KeypointNet, domain: str, count: int, seed: int, pipeline=None
) -> dict[str, Any]:
    """The network's figures and the pixel statistics on ``count`` pairs of a domain (and
    the product pipeline's, when given)."""
    settings = SynthSettings(domain=domain, rig=rig_for_size(640, 480, None))
    rig = StereoRig.from_camera_info(*settings.rig.camera_infos())
    rows, whole, crop_stats, seconds, product = [], [], [], [], []
    start = time.perf_counter()
    for pair in iter_synthetic_pairs(settings, count, seed):
        seconds.append(time.perf_counter() - start)
        joints = pair.annotation["joints"].astype(np.float64)
        rows.append(pair_errors(net, rig, pair.left, pair.right, joints))
        if pipeline is not None:
            product.append(pipeline_error_mm(pipeline, rig, pair.left, pair.right, joints))
        whole.append(image_stats(pair.left))
        crop = roi_from_landmarks(rig.project_left(joints), net.input_size)
        crop_stats.append(image_stats(cut_crop(pair.left, crop, antialias=False)))
        start = time.perf_counter()
    per_pair = seconds[1:] if len(seconds) > 1 else seconds  # the first includes warm-up
    return {
        **_summary(rows),
        **(_pipeline_summary(product) if pipeline is not None else {}),
        "render_pairs_per_second_median": 1.0 / statistics.median(per_pair),
        "image_stats": _mean_stats(whole),
        "crop_stats": _mean_stats(crop_stats),
    }


def evaluate_real(net: KeypointNet, folder_path: Path, pipeline=None) -> dict[str, Any]:
    """The same figures on a real stereo folder (frames with ``inside`` true), or why not."""
    if not folder_path.is_dir():
        return {"skipped": f"{folder_path} not found (the real data is not part of the repo)"}
    from stereo_hand_mesh.data.realdata import RealStereoFolder

    folder = RealStereoFolder.open(folder_path)
    rows, whole, crop_stats, product = [], [], [], []
    for frame in folder.frames:
        joints = folder.joints_m(frame)
        if joints is None or not folder.inside(frame):
            continue
        if np.isfinite(joints).all(axis=1).sum() < 4:
            continue
        left, right = folder.read_pair(frame)
        rows.append(pair_errors(net, folder.rig, left, right, joints))
        if pipeline is not None:
            product.append(pipeline_error_mm(pipeline, folder.rig, left, right, joints))
        whole.append(image_stats(left))
        labelled = np.isfinite(joints).all(axis=1)
        uv = folder.rig.project_left(np.where(labelled[:, None], joints, 0.0))
        uv[~labelled] = uv[labelled].mean(axis=0)
        crop = roi_from_landmarks(uv, net.input_size)
        crop_stats.append(image_stats(cut_crop(left, crop, antialias=False)))
    return {
        "folder": str(folder_path),
        **_summary(rows),
        **(_pipeline_summary(product) if pipeline is not None else {}),
        "image_stats": _mean_stats(whole),
        "crop_stats": _mean_stats(crop_stats),
    }


def simulator_loop_seconds(frames: int = 120, domain: str = "source", seed: int = 0) -> float:
    """Seconds to build the simulator's motion and render ``frames`` frames of its loop
    (8 s at 15 Hz, 640x480), as ``stereo_camera_sim`` pre-renders it."""
    from stereo_hand_mesh.data.motion import (
        HandMotion,
        HandMotionSettings,
        loop_frame_times,
        render_motion_frame,
    )
    from stereo_hand_mesh.hand.model import template_hand

    start = time.perf_counter()
    hand = template_hand()
    synth = SynthSettings(domain=domain, rig=rig_for_size(640, 480, None))
    motion = HandMotion(hand, synth, HandMotionSettings(loop_seconds=8.0, margin_px=12.0), seed)
    faces_t = torch.from_numpy(hand.faces.astype(np.int64))
    for k, t in enumerate(loop_frame_times(8.0, 15.0)[:frames]):
        render_motion_frame(motion, k, float(t), faces_t)
    return time.perf_counter() - start


def _fmt(values: Any, digits: int = 1) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(f"{v:.{digits}f}" for v in values) + "]"
    return f"{values:.{digits}f}" if isinstance(values, float) else str(values)


def markdown(result: dict[str, Any]) -> str:
    """Two tables: the network's figures, and the pixel statistics side by side."""
    sets = {k: v for k, v in result["sets"].items() if "skipped" not in v}
    lines = [
        "| set | pairs | keypoint px (mean / median) | joint mm (mean / median) "
        "| presence > 0.5 | crop side px |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in sets.items():
        lines.append(
            f"| {name} | {s['pairs']} | {s['keypoint_px_mean']:.1f} / "
            f"{s['keypoint_px_median']:.1f} | {s['joint_mm_mean']:.1f} / "
            f"{s['joint_mm_median']:.1f} | {100 * s['presence_rate']:.0f}% | "
            f"{s['crop_side_px_mean']:.0f} |"
        )
    for name, s in result["sets"].items():
        if "skipped" in s:
            lines.append(f"| {name} | skipped: {s['skipped']} | | | | |")
    if all("pipeline_found_rate" in s for s in sets.values()):
        lines += [
            "",
            "| set | product pipeline (cold start per pair): meshes | joint mm mean / median |",
            "|---|---|---|",
        ]
        for name, s in sets.items():
            lines.append(
                f"| {name} | {100 * s['pipeline_found_rate']:.0f}% | "
                f"{s['pipeline_joint_mm_mean']:.1f} / {s['pipeline_joint_mm_median']:.1f} |"
            )
    for part in ("image_stats", "crop_stats"):
        names = list(sets)
        lines += ["", f"| {part} | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for key in sets[names[0]][part]:
            digits = 4 if key in ("saturated_share", "edge_density") else 2
            lines.append(
                f"| {key} | " + " | ".join(_fmt(sets[n][part][key], digits) for n in names) + " |"
            )
    if "render_pairs_per_second" in result:
        lines += [
            "",
            "render pairs/s (median, 640x480): "
            + ", ".join(f"{k} {v:.2f}" for k, v in result["render_pairs_per_second"].items()),
        ]
    if "simulator_loop_s" in result:
        lines.append(f"simulator loop pre-render (120 frames): {result['simulator_loop_s']:.1f} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60, help="pairs per synthetic domain")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL, help="real stereo folder")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--no-loop", action="store_true", help="skip the simulator loop timing")
    parser.add_argument(
        "--no-pipeline", action="store_true", help="skip the whole product pipeline's pass"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    net = OnnxRuntimeKeypointNet(args.model, device="cpu", intra_op_threads=2)
    result: dict[str, Any] = {
        "machine": machine_description(),
        "command": "benchmarks/bench_synth_realism.py " + " ".join(sys.argv[1:]),
        "model": args.model.name,
        "seed": args.seed,
        "sets": {},
    }
    pipeline = None if args.no_pipeline else product_pipeline()
    for domain in ("source", "target"):
        result["sets"][domain] = evaluate_domain(net, domain, args.count, args.seed, pipeline)
    real = evaluate_real(net, args.real, pipeline)
    if "skipped" in real:
        print(f"real set skipped: {real['skipped']}")
    result["sets"][f"real:{args.real.name}"] = real
    result["render_pairs_per_second"] = {
        d: result["sets"][d].pop("render_pairs_per_second_median") for d in ("source", "target")
    }
    if not args.no_loop:
        result["simulator_loop_s"] = simulator_loop_seconds()
    table = markdown(result)
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result | {"markdown": table}, indent=2))
        args.json.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    main()
