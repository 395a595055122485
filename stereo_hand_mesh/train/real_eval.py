"""Evaluation of a stereo pipeline on a real stereo folder (numpy only: no torch, no rclpy).

:func:`evaluate_real` plays the pairs of a :class:`~stereo_hand_mesh.data.realdata.
RealStereoFolder` in frame order through a pipeline object (the product's
:class:`~stereo_hand_mesh.pipeline.estimator.HandMeshPipeline` or anything with the same
``reset`` / ``process`` API, see :class:`PairPipeline`) and scores what it returns.

Which frames are scored: with labels, the labelled frames with a hand wholly inside both
images (``inside``; every labelled frame with ``only_inside=False``); without labels, every
frame (found rate and latency only). Each labelled hand of a scored frame is scored on its own
(a folder may label several hands per frame): against the pipeline's estimate of the hand's
side when the labels name the sides (``hand_sides``; a pipeline with ``process_hands``), else
against the most confident estimate (the pipeline's ``process``). Which frames are played: in
static mode only the scored ones, each after ``pipeline.reset()`` (like MediaPipe's
``static_image_mode``); in tracking mode every frame in order, with a reset at the start and
wherever the frame numbers jump (a gap), so the tracker sees the hand arrive as it would live.

Errors follow the peer tool (``../shared/tools/peer_mediapipe.py``): per scored frame that
was found, the mean over the joints that have a label of the Euclidean distance in the left
optical frame; the figures are the mean and the median of these per-frame means, in mm.
Hands that were not found are counted in ``found`` and left out of the error figures.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from collections import Counter
from typing import Any, Protocol

import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh._machine import percentile
from stereo_hand_mesh.data.realdata import RealStereoFolder
from stereo_hand_mesh.data.sources import check_frame_slice, frame_slice_text, select_frames
from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.hand.joints import JOINT_NAMES, NUM_JOINTS, WRIST
from stereo_hand_mesh.pipeline.estimator import HandEstimate
from stereo_hand_mesh.train.metrics import (
    PCK_THRESHOLDS_MM,
    auc_from_pck,
    joint_errors_mm,
    pck_curve,
)

__all__ = ["PairEstimate", "PairPipeline", "evaluate_real", "reason_pattern"]


class PairEstimate(Protocol):
    """What :meth:`PairPipeline.process` returns (the fields the evaluation reads).

    Attributes:
        found: True when a hand was output.
        joints: (21, 3) joints in metres, left optical frame, our order (when found).
        reason: why nothing was found (anything when found).
        timings_ms: stage name -> wall time of the stage, milliseconds.
    """

    found: bool
    joints: np.ndarray | None
    reason: str
    timings_ms: dict[str, float]


class PairPipeline(Protocol):
    """A per-pair stereo pipeline: the API of
    :class:`~stereo_hand_mesh.pipeline.estimator.HandMeshPipeline`."""

    def reset(self) -> None:
        """Forget the tracking state (the next pair is a cold start)."""

    def process(
        self, left: np.ndarray, right: np.ndarray, rig: StereoRig, stamp_s: float | None = None
    ) -> PairEstimate:
        """Estimate the hand of one rectified pair ((H, W, 3) uint8 RGB each)."""
        ...


_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def reason_pattern(reason: str) -> str:
    """A not-found reason with its numbers replaced by ``#``, so that reasons of one kind
    count together (``"confidence 0.12 < min_confidence 0.30"`` ->
    ``"confidence # < min_confidence #"``)."""
    return _NUMBER.sub("#", reason)


def _hands_to_score(folder: RealStereoFolder, frame: int, only_inside: bool) -> list[int]:
    """The hand slots of ``frame`` to score: labelled (some joint), and wholly inside both
    images unless ``only_inside`` is False; ``[-1]`` (the frame, no label) without labels."""
    if not folder.has_labels:
        return [-1]
    hands, inside = folder.hands_m(frame), folder.hands_inside(frame)
    if hands is None or inside is None:
        return []
    labelled = np.isfinite(hands).any(axis=(1, 2))
    return [int(h) for h in np.flatnonzero(labelled & (inside | (not only_inside)))]


def _frames_to_play(
    folder: RealStereoFolder,
    tracking: bool,
    only_inside: bool,
    limit: int | None,
    frames: slice | None = None,
) -> tuple[list[int], dict[int, list[int]]]:
    """(frames played in order, frame scored -> its hand slots to score), both within the
    selection ``frames`` (positions in ``folder.frames``)."""
    selected = select_frames(folder.frames, frames)
    slots = {f: _hands_to_score(folder, f, only_inside) for f in selected}
    scored = [f for f in selected if slots[f]]
    if limit is not None:
        scored = scored[:limit]
    if not tracking:
        return scored, {f: slots[f] for f in scored}
    last = scored[-1] if scored else None
    played = [f for f in selected if last is not None and f <= last]
    return played, {f: slots[f] for f in scored}


def _estimate_for(result: Any, side: str) -> Any:
    """The estimate to score for a hand of ``side`` (``""``: unknown): from a
    ``process_hands`` result its side's hand (or, side unknown, its primary hand); a
    ``process`` result as it is."""
    if not hasattr(result, "hands"):
        return result
    if side:
        est = result.side(side)
        if est is not None:
            return est
        own = [h for h in result.dropped if h.handedness == side]
        reason = own[0].reason if own else (
            f"no {side} hand meshed ({result.summary()})" if result.found else result.reason
        )  # fmt: skip
        return HandEstimate(False, reason, 0.0, timings_ms=result.timings_ms)
    return result.primary


#: Further joint sets an estimate may carry, scored beside the published joints on the same
#: frames (the keypoint pipeline's raw triangulation and template fit).
ALTERNATIVE_JOINTS = ("triangulated_joints", "fitted_joints")


def _checked_joints(est: PairEstimate, frame: int) -> np.ndarray:
    joints = est.joints
    if joints is None:
        raise ShapeError(f"frame {frame}: a found estimate expected joints (21, 3); got None")
    check_shape(joints, (NUM_JOINTS, 3), f"frame {frame} estimate joints")
    joints = np.asarray(joints, dtype=np.float64)
    if not np.isfinite(joints).all():
        raise ShapeError(f"frame {frame}: a found estimate expected finite joints; got NaN/inf")
    return joints


def _mean_or_none(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _error_metrics(
    preds: list[np.ndarray], gts: list[np.ndarray], thresholds_mm: np.ndarray
) -> dict[str, Any]:
    """Error figures over the found scored frames (module docstring).

    Args:
        preds: (21, 3) predicted joints per frame, metres.
        gts: (21, 3) labelled joints per frame, metres, NaN where unlabelled.
        thresholds_mm: (T,) PCK thresholds, mm.
    """
    empty = {
        "frames_with_error": 0,
        "joints_scored": 0,
        "mean_joint_error_mm": None,
        "median_joint_error_mm": None,
        "root_relative_error_mm": None,
        "root_relative_frames": 0,
        "per_joint_mm": {name: None for name in JOINT_NAMES},
        "pck": [],
        "auc_20_50": None,
    }
    if not preds:
        return empty
    pred, gt = np.stack(preds), np.stack(gts)
    known = np.isfinite(gt).all(axis=2)  # (N, J)
    errors = np.where(known, joint_errors_mm(pred, np.where(known[..., None], gt, 0.0)), np.nan)
    has = known.any(axis=1)
    if not has.any():
        return empty
    per_frame = [float(errors[i, known[i]].mean()) for i in np.flatnonzero(has)]
    wrist = known[:, WRIST]
    rel_pred = pred - pred[:, WRIST : WRIST + 1]
    rel_gt = gt - gt[:, WRIST : WRIST + 1]
    rel_errors = joint_errors_mm(rel_pred, np.where(known[..., None], rel_gt, 0.0))
    rel_per_frame = [float(rel_errors[i, known[i]].mean()) for i in np.flatnonzero(wrist)]
    per_joint = {}
    for j, name in enumerate(JOINT_NAMES):
        column = errors[known[:, j], j]
        per_joint[name] = float(column.mean()) if column.size else None
    pck = pck_curve(errors[known], thresholds_mm)
    return {
        "frames_with_error": len(per_frame),
        "joints_scored": int(known.sum()),
        "mean_joint_error_mm": statistics.fmean(per_frame),
        "median_joint_error_mm": statistics.median(per_frame),
        "root_relative_error_mm": _mean_or_none(rel_per_frame),
        "root_relative_frames": len(rel_per_frame),
        "per_joint_mm": per_joint,
        "pck": [[float(t), float(f)] for t, f in zip(thresholds_mm, pck)],
        "auc_20_50": auc_from_pck(thresholds_mm, pck) if thresholds_mm.size >= 2 else None,
    }


def evaluate_real(
    folder: RealStereoFolder | str | os.PathLike[str],
    pipeline: PairPipeline,
    only_inside: bool = True,
    progress: bool = False,
    *,
    tracking: bool = True,
    frame_rate_hz: float = 30.0,
    limit: int | None = None,
    thresholds_mm: np.ndarray = PCK_THRESHOLDS_MM,
    frames: slice | None = None,
) -> dict[str, Any]:
    """Play a real stereo folder through a pipeline and score it (see the module docstring).

    Args:
        folder: an opened folder, or its path.
        pipeline: an object with ``reset()`` and ``process(left, right, rig, stamp_s)``
            (:class:`PairPipeline`).
        only_inside: score only the labelled frames whose hand is wholly inside both images
            (no effect without labels).
        progress: a progress bar on stderr.
        tracking: True plays consecutive frames in order (reset at gaps); False resets the
            pipeline before every pair (static mode).
        frame_rate_hz: the recording's frame rate; a pair's ``stamp_s`` is its frame number
            divided by it (the temporal filter's clock).
        limit: score at most this many frames (the first ones); None scores all.
        thresholds_mm: (T,) 3D PCK thresholds, mm; the AUC is over their range.
        frames: play and score only these frames: a slice of positions in the folder's
            frame order (:func:`~stereo_hand_mesh.data.sources.parse_frame_slice`), or None
            for all. Tracking starts afresh at the selection's first frame.

    Returns:
        A JSON-serializable dict (the same keys with and without labels; error figures are
        None without labels or when nothing was found):

        - ``data``, ``mode`` (``"tracking"`` or ``"static"``), ``only_inside``,
          ``has_labels``, ``frame_rate_hz``, ``frames`` (``"START:STOP"`` or None);
        - ``frames_total`` (pairs in the folder), ``frames_played``, ``frames_scored``;
        - ``found`` and ``found_rate`` (over the scored frames);
        - ``not_found_reasons``: :func:`reason_pattern` of each scored frame's reason -> count;
        - ``mean_joint_error_mm``, ``median_joint_error_mm``: over the found scored frames of
          the per-frame mean error of the labelled joints; ``frames_with_error``,
          ``joints_scored``;
        - ``root_relative_error_mm``: the same after subtracting each skeleton's wrist (frames
          whose wrist is labelled: ``root_relative_frames``);
        - ``per_joint_mm``: joint name -> mean absolute error over the found frames where the
          joint is labelled;
        - ``pck`` (``[threshold_mm, fraction]`` over every labelled joint of the found frames)
          and ``auc_20_50``;
        - ``latency_ms``: ``median``, ``p95``, ``mean`` of the wall time of ``process`` per
          scored pair (None when nothing was scored); ``stage_ms_median``: stage -> median;
        - ``alternative_joints``: for each of :data:`ALTERNATIVE_JOINTS` the estimates carry,
          the error figures of those joints on the same found frames;
        - ``per_frame``: for each scored frame ``frame``, ``found``, ``reason``,
          ``error_mm`` (None when not found or unlabelled) and ``latency_ms``.

    Raises:
        ConfigError: ``frame_rate_hz`` is not positive, ``limit`` is negative or ``frames``
            is not a valid selection.
        DataError, CameraInfoError: the folder is invalid (see
            :meth:`RealStereoFolder.open`).
        ShapeError: a found estimate has no finite (21, 3) joints.
    """
    if not (np.isfinite(frame_rate_hz) and frame_rate_hz > 0):
        raise ConfigError(f"frame_rate_hz expected > 0; got {frame_rate_hz}")
    if limit is not None and limit < 0:
        raise ConfigError(f"limit expected >= 0 or None; got {limit}")
    frames = check_frame_slice(frames)
    if not isinstance(folder, RealStereoFolder):
        folder = RealStereoFolder.open(folder)
    thresholds = np.asarray(thresholds_mm, dtype=np.float64).reshape(-1)
    played, scored = _frames_to_play(folder, tracking, only_inside, limit, frames)
    sides = folder.hand_sides
    by_side = any(sides) and hasattr(pipeline, "process_hands")
    per_side: dict[str, dict[str, Any]] = {}

    frames_iter: Any = played
    if progress:
        from tqdm import tqdm

        frames_iter = tqdm(played, desc="eval", unit="pair", file=sys.stderr)
    previous: int | None = None
    found = 0
    reasons: Counter[str] = Counter()
    latencies: list[float] = []
    stages: dict[str, list[float]] = {}
    preds: list[np.ndarray] = []
    gts: list[np.ndarray] = []
    alt_preds: dict[str, list[np.ndarray]] = {name: [] for name in ALTERNATIVE_JOINTS}
    alt_gts: dict[str, list[np.ndarray]] = {name: [] for name in ALTERNATIVE_JOINTS}
    records: list[dict[str, Any]] = []
    for frame in frames_iter:
        if not tracking or previous is None or frame != previous + 1:
            pipeline.reset()
        previous = frame
        left, right = folder.read_pair(frame)
        t0 = time.perf_counter()
        if by_side:
            result = pipeline.process_hands(left, right, folder.rig, frame / frame_rate_hz)
        else:
            result = pipeline.process(left, right, folder.rig, frame / frame_rate_hz)
        latency_ms = (time.perf_counter() - t0) * 1e3
        if frame not in scored:
            continue
        latencies.append(latency_ms)
        for stage, ms in result.timings_ms.items():
            stages.setdefault(stage, []).append(float(ms))
        all_gt = folder.hands_m(frame)
        for slot in scored[frame]:
            side = sides[slot] if (by_side and slot >= 0) else ""
            est = _estimate_for(result, side)
            gt = None if (all_gt is None or slot < 0) else all_gt[slot]
            error_mm = None
            if est.found:
                found += 1
                joints = _checked_joints(est, frame)
                if gt is not None:
                    preds.append(joints)
                    gts.append(gt)
                    for name in ALTERNATIVE_JOINTS:
                        alt = getattr(est, name, None)
                        if alt is not None and np.isfinite(alt).all():
                            alt_preds[name].append(np.asarray(alt, dtype=np.float64))
                            alt_gts[name].append(gt)
                    known = np.isfinite(gt).all(axis=1)
                    if known.any():
                        diff = joints[known] - gt[known]
                        error_mm = 1000.0 * float(np.linalg.norm(diff, axis=1).mean())
            else:
                reasons[reason_pattern(est.reason)] += 1
            if side:
                tally = per_side.setdefault(side, {"scored": 0, "found": 0, "errors_mm": []})
                tally["scored"] += 1
                tally["found"] += int(bool(est.found))
                if error_mm is not None:
                    tally["errors_mm"].append(error_mm)
            record = {
                "frame": frame,
                "found": bool(est.found),
                "reason": est.reason,
                "error_mm": error_mm,
                "latency_ms": latency_ms,
            }
            if slot >= 0 and len(sides) > 1:
                record |= {"hand": slot, "side": sides[slot]}
            if est.found and getattr(est, "hand_id", -1) >= 0:
                record |= {"hand_id": int(est.hand_id), "handedness": est.handedness}
            records.append(record)

    n = len(records)
    result: dict[str, Any] = {
        "data": str(folder.path),
        "mode": "tracking" if tracking else "static",
        "only_inside": only_inside,
        "has_labels": folder.has_labels,
        "frame_rate_hz": frame_rate_hz,
        "frames": frame_slice_text(frames),
        "frames_total": len(folder),
        "frames_played": len(played),
        "frames_scored": len(scored),
        "hands_scored": n,
        "found": found,
        "found_rate": found / n if n else None,
        "not_found_reasons": dict(reasons.most_common()),
    }
    result |= _error_metrics(preds, gts, thresholds)
    result["alternative_joints"] = {
        name: {
            k: v
            for k, v in _error_metrics(alt_preds[name], alt_gts[name], thresholds).items()
            if k in ("frames_with_error", "mean_joint_error_mm", "median_joint_error_mm",
                     "root_relative_error_mm", "per_joint_mm")
        }
        for name in ALTERNATIVE_JOINTS
        if alt_preds[name]
    }  # fmt: skip
    result["latency_ms"] = {
        "median": statistics.median(latencies) if latencies else None,
        "p95": percentile(latencies, 0.95) if latencies else None,
        "mean": _mean_or_none(latencies),
    }
    result["stage_ms_median"] = {stage: statistics.median(v) for stage, v in stages.items()}
    result["per_side"] = {
        side: {
            "scored": t["scored"],
            "found": t["found"],
            "found_rate": t["found"] / t["scored"] if t["scored"] else None,
            "mean_joint_error_mm": _mean_or_none(t["errors_mm"]),
        }
        for side, t in sorted(per_side.items())
    }
    result["per_frame"] = records
    return result
