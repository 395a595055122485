"""``stereo-hand-mesh infer --bag``: every stereo pair of a recorded rosbag2 bag through the
pipeline, offline.

For users who recorded on the robot and look later: the bag (MCAP or sqlite3; raw or
image_transport ``compressed`` images) is read pair by pair, each pair goes through the node's
input stage (:class:`~stereo_hand_mesh.pipeline.stereo_input.StereoInput`: checks, optional
rectification of raw views, the rig) and the same pipeline object the node drives
(:func:`~stereo_hand_mesh.pipeline.factory.create_pipeline`), tracking from one pair to the
next as the node does. Outputs:

- ``--jsonl``: one JSON object per pair, written and flushed as each pair ends, so that an
  interrupted run keeps every pair it finished (keys: :data:`JSONL_KEYS`; the top-level
  joints are the most confident hand's, ``hands`` holds every meshed hand with its id and
  side, ``dropped`` the hands given no mesh and why: :func:`hand_records`);
- ``--video``: the overlay of the left view (:func:`~stereo_hand_mesh.pipeline.overlay.
  draw_overlay`), one frame per pair (frame ``n`` is JSON line ``n``; a skipped pair is a dark
  frame with its reason), MP4 through OpenCV's ``mp4v`` writer;
- ``--json``: the run's summary (pairs, found, skipped, latency percentiles, backend).

A pair whose image cannot be decoded (a corrupt JPEG, a wrong encoding) or whose camera_info
is unusable is skipped: its JSON line says ``"skipped": true`` and why, and the run goes on.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from stereo_hand_mesh.errors import ConfigError, DataError, StereoHandMeshError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "JSONL_KEYS",
    "BagInferOptions",
    "add_bag_arguments",
    "hand_records",
    "run_bag_infer",
]

#: Keys of every JSON line (``vertices`` only with ``--with-vertices``).
JSONL_KEYS = (
    "index",
    "stamp_ns",
    "stamp_s",
    "frame_id",
    "found",
    "skipped",
    "reason",
    "confidence",
    "joints",
    "joint_confidence",
    "keypoints_px",
    "presence",
    "latency_ms",
    "timings_ms",
    "hands",
    "dropped",
)

#: Options of the single-pair ``infer`` that mean nothing with ``--bag``.
_SINGLE_PAIR_OPTIONS = ("left", "right", "left_info", "right_info", "overlay", "roi")

#: Frame rate of the video when the bag's own rate cannot be measured (one pair), Hz.
_FALLBACK_FPS = 30.0


@dataclass(frozen=True)
class BagInferOptions:
    """What ``infer --bag`` reads and writes.

    Attributes:
        bag: the rosbag2 bag (directory with metadata.yaml, or one .mcap/.db3 file).
        left_topic: left image topic (its ``/compressed`` twin is found too).
        right_topic: right image topic.
        left_info_topic: left camera_info topic.
        right_info_topic: right camera_info topic.
        jsonl: JSON lines file to write, or None.
        video: MP4 overlay video to write, or None.
        summary_json: the run's summary JSON, or None.
        video_fps: frame rate of the video, Hz; None: the bag's left image rate.
        rectify: the bag holds raw views: rectify them with their camera_info.
        slop_s: largest left-right stamp difference of a pair, seconds.
        with_vertices: add each mesh's vertices (metres) to the JSON lines.
        progress: show a progress bar on stderr.
    """

    bag: Path
    left_topic: str = "left/image_rect"
    right_topic: str = "right/image_rect"
    left_info_topic: str = "left/camera_info"
    right_info_topic: str = "right/camera_info"
    jsonl: Path | None = None
    video: Path | None = None
    summary_json: Path | None = None
    video_fps: float | None = None
    rectify: bool = False
    slop_s: float = 0.005
    with_vertices: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.jsonl is None and self.video is None and self.summary_json is None:
            raise ConfigError(
                "infer --bag expected at least one output (--jsonl, --video or --json); got none"
            )
        if self.video is not None and self.video.suffix.lower() != ".mp4":
            raise ConfigError(f"--video expected a .mp4 file name; got {self.video}")
        fps = self.video_fps
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ConfigError(f"--video-fps expected > 0; got {self.video_fps}")
        if not (math.isfinite(self.slop_s) and self.slop_s >= 0):
            raise ConfigError(f"--slop expected >= 0 seconds; got {self.slop_s}")


def add_bag_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--bag`` options to the ``infer`` parser."""
    g = parser.add_argument_group(
        "offline bag input (--bag)",
        "every pair of a rosbag2 bag (MCAP or sqlite3) through the pipeline, with tracking",
    )
    g.add_argument("--bag", type=Path, default=None, help="rosbag2 bag directory or .mcap/.db3")
    for side in ("left", "right"):
        g.add_argument(
            f"--{side}-topic", default=f"{side}/image_rect",
            help=f"{side} image topic, Image or its '/compressed' CompressedImage twin "
            f"(default: {side}/image_rect, as the node subscribes it; a recorded namespace "
            "such as /zed/... matches when unique)",
        )  # fmt: skip
        g.add_argument(
            f"--{side}-info-topic", default=f"{side}/camera_info",
            help=f"{side} camera_info topic (default: {side}/camera_info)",
        )  # fmt: skip
    g.add_argument("--jsonl", type=Path, default=None, help="write one JSON line per pair here")
    g.add_argument("--video", type=Path, default=None, help="write the overlay video (.mp4)")
    g.add_argument(
        "--video-fps", type=float, default=None,
        help="video frame rate (default: the bag's left image rate)",
    )  # fmt: skip
    g.add_argument("--rectify", action="store_true", help="the bag holds raw views: rectify")
    g.add_argument(
        "--slop", type=float, default=0.005,
        help="largest left-right stamp difference of a pair, seconds",
    )  # fmt: skip
    g.add_argument("--no-smoothing", action="store_true", help="no temporal filter")
    g.add_argument(
        "--with-vertices", action="store_true", help="add the mesh vertices to the JSON lines"
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def bag_options_from_args(args: argparse.Namespace) -> BagInferOptions:
    """The options of ``infer --bag`` from the parsed command line.

    Raises:
        ConfigError: a single-pair option given with ``--bag``, no output, or a bad value.
    """
    given = [f"--{n.replace('_', '-')}" for n in _SINGLE_PAIR_OPTIONS if getattr(args, n)]
    if given:
        raise ConfigError(
            f"infer --bag expected none of the single-pair options; got {given} (the overlay "
            "of a bag is --video)"
        )
    return BagInferOptions(
        bag=args.bag,
        left_topic=args.left_topic,
        right_topic=args.right_topic,
        left_info_topic=args.left_info_topic,
        right_info_topic=args.right_info_topic,
        jsonl=args.jsonl,
        video=args.video,
        summary_json=args.json,
        video_fps=args.video_fps,
        rectify=args.rectify,
        slop_s=args.slop,
        with_vertices=args.with_vertices,
        progress=not args.no_progress,
    )


def _listed(value: Any) -> Any:
    """An array as nested lists with non-finite values as null (JSON has no NaN)."""
    import numpy as np

    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64)
    out = arr.astype(object)
    out[~np.isfinite(arr)] = None
    return out.tolist()


def create_infer_pipeline(args: argparse.Namespace, smoothing: bool) -> Any:
    """The pipeline ``infer`` runs (one pair or a bag) from its options, as
    :func:`~stereo_hand_mesh.pipeline.factory.create_pipeline` gives it.

    Raises:
        ConfigError: a bad option (``--max-hands``, ``--min-confidence``, backend...).
        ModelFileError: missing or corrupt model files.
    """
    from stereo_hand_mesh.pipeline import PipelineSettings
    from stereo_hand_mesh.pipeline.factory import create_pipeline

    settings = PipelineSettings(
        handedness=args.handedness,
        max_hands=args.max_hands,
        min_confidence=args.min_confidence,
        smoothing=smoothing,
        published_joints=args.joints,
    )
    return create_pipeline(
        settings,
        args.backend,
        args.model,
        args.palm_model,
        args.keypoint_variant,
        engine_file_path=args.engine,
        engine_dir=args.engine.parent if args.engine else None,
    )


def hand_records(result: Any, with_vertices: bool) -> dict[str, list[dict[str, Any]]]:
    """Every hand of a pair as JSON: ``hands`` (each meshed hand: ``hand_id``,
    ``handedness``, ``confidence``, ``joints`` (21, 3) m, ``joint_confidence``,
    ``keypoints_px`` (2, 21, 2), ``presence`` (2,), and ``vertices`` (V, 3) m when asked) and
    ``dropped`` (each hand located but given no mesh: ``hand_id``, ``handedness``, ``reason``).

    Args:
        result: a :class:`~stereo_hand_mesh.pipeline.estimator.HandsEstimate`.
        with_vertices: also write each hand's vertices.
    """
    hands = []
    for h in result.hands:
        item = {
            "hand_id": int(h.hand_id),
            "handedness": h.handedness,
            "confidence": float(h.confidence),
            "joints": _listed(h.joints),
            "joint_confidence": _listed(h.joint_confidence),
            "keypoints_px": _listed(h.keypoints),
            "presence": _listed(h.presence),
        }
        if with_vertices:
            item["vertices"] = _listed(h.vertices)
        hands.append(item)
    dropped = [
        {"hand_id": int(h.hand_id), "handedness": h.handedness, "reason": h.reason}
        for h in result.dropped
    ]
    return {"hands": hands, "dropped": dropped}


def _video_writer(path: Path, fps: float, size: tuple[int, int]) -> Any:
    """An opened OpenCV MP4 writer, or DataError saying why not."""
    import cv2

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"--video {path}: could not create its folder: {err}") from None
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        writer.release()
        raise DataError(
            f"--video expected a writable MP4 file; OpenCV could not open {path} for writing "
            f"(mp4v, {size[0]}x{size[1]} at {fps:g} Hz): check the folder is writable and "
            "the name is not a directory"
        )
    return writer


def _skipped_frame(size: tuple[int, int], reason: str) -> np.ndarray:
    """A dark RGB frame with the reason a pair was skipped."""
    import cv2
    import numpy as np

    width, height = size
    frame = np.full((height, width, 3), 32, np.uint8)
    text = "skipped: " + reason
    scale = max(0.35, min(0.6, width / 1100))
    per_line = max(20, int(width / (11 * scale / 0.5)))
    for row, start in enumerate(range(0, min(len(text), per_line * 6), per_line)):
        y = int(24 + row * 26 * scale / 0.6)
        cv2.putText(
            frame, text[start : start + per_line], (10, y), cv2.FONT_HERSHEY_SIMPLEX, scale,
            (255, 64, 64), 1, cv2.LINE_AA,
        )  # fmt: skip
    return frame


def _percentile(values: list[float], q: float) -> float | None:
    import numpy as np

    return float(np.percentile(values, q)) if values else None


def run_bag_infer(args: argparse.Namespace) -> int:
    """Run ``infer --bag`` (module docstring); print a summary line; return 0.

    Raises:
        ConfigError: bad options.
        DataError: the bag is not readable, lacks a topic (the message lists the bag's
            topics), holds no pair, or the video cannot be written.
        ModelFileError: the model files cannot be loaded.
    """
    from stereo_hand_mesh.data.bags import (
        StereoTopics,
        bag_info,
        read_stereo_bag_pairs,
        resolve_stereo_topics,
    )

    opts = bag_options_from_args(args)
    topics = StereoTopics(
        left_image=opts.left_topic,
        left_info=opts.left_info_topic,
        right_image=opts.right_topic,
        right_info=opts.right_info_topic,
    )
    resolved, summary = resolve_stereo_topics(opts.bag, topics)
    counts = (summary[resolved.left_image].count, summary[resolved.right_image].count)
    pairs = read_stereo_bag_pairs(opts.bag, topics, opts.slop_s, load_ground_truth=False)
    first = next(pairs, None)
    if first is None:
        raise DataError(
            f"rosbag2 bag {opts.bag} expected stereo pairs; got none: {resolved.left_image} has "
            f"{counts[0]} images, {resolved.right_image} {counts[1]}, none within "
            f"{opts.slop_s} s of each other (--slop)"
        )
    fps = opts.video_fps
    if fps is None:
        info = bag_info(opts.bag)
        fps = (counts[0] - 1) / info.duration_s if counts[0] > 1 and info.duration_s > 0 else 0
        fps = round(fps, 3) if fps > 0 else _FALLBACK_FPS
    size = first.size
    writer = None
    if opts.video is not None:
        if size is None:
            raise DataError(f"rosbag2 bag {opts.bag} expected a left camera_info; got none")
        writer = _video_writer(opts.video, fps, size)
    try:
        return _run(args, opts, resolved, itertools.chain([first], pairs), min(counts), writer)
    finally:
        if writer is not None:
            writer.release()


def _run(
    args: argparse.Namespace,
    opts: BagInferOptions,
    topics: Any,
    pairs: Any,
    expected: int,
    writer: Any,
) -> int:
    import cv2
    from tqdm import tqdm

    from stereo_hand_mesh.hand.joints import JOINT_NAMES
    from stereo_hand_mesh.pipeline.overlay import draw_overlay
    from stereo_hand_mesh.pipeline.stereo_input import StereoInput

    choice = create_infer_pipeline(args, smoothing=not args.no_smoothing)
    pipeline = choice.pipeline
    stage = StereoInput(rectify=opts.rectify)  # the node's input stage
    out: TextIO | None = None
    if opts.jsonl is not None:
        opts.jsonl.parent.mkdir(parents=True, exist_ok=True)
        out = opts.jsonl.open("w", encoding="utf-8")
    latencies: list[float] = []
    found = skipped = done = 0
    by_side: dict[str, int] = {}
    video_size: tuple[int, int] | None = None
    t_start = time.perf_counter()
    bar = tqdm(
        total=expected, unit="pair", desc="infer --bag", file=sys.stderr,
        disable=not opts.progress, mininterval=0.5,
    )  # fmt: skip
    interrupted = False
    try:
        for pair in pairs:
            t0 = time.perf_counter()
            record: dict[str, Any] = {
                "index": pair.index,
                "stamp_ns": pair.stamp_ns,
                "stamp_s": pair.stamp_ns / 1e9,
                "frame_id": pair.frame_id,
            }
            est = prepared = hands = None
            try:
                sample = pair.decode()
                t_decode = time.perf_counter()
                prepared = stage.prepare(
                    sample.left, sample.right, sample.left_info, sample.right_info
                )
                t_prepare = time.perf_counter()
                hands = pipeline.process_hands(
                    prepared.left, prepared.right, prepared.rig, pair.stamp_ns / 1e9
                )
                est = hands.primary
            except StereoHandMeshError as err:
                reason = f"{type(err).__name__}: {err}"
            latency = (time.perf_counter() - t0) * 1e3
            if est is None:
                skipped += 1
                record |= {
                    "found": False, "skipped": True, "reason": reason, "confidence": 0.0,
                    "joints": None, "joint_confidence": None, "keypoints_px": None,
                    "presence": None, "latency_ms": latency, "timings_ms": {},
                    "hands": [], "dropped": [],
                }  # fmt: skip
            else:
                latencies.append(latency)
                found += int(est.found)
                for h in hands.hands:
                    by_side[h.handedness] = by_side.get(h.handedness, 0) + 1
                timings = {
                    "decode": (t_decode - t0) * 1e3,
                    "prepare": (t_prepare - t_decode) * 1e3,
                    **est.timings_ms,
                }
                record |= {
                    "found": est.found,
                    "skipped": False,
                    "reason": est.reason,
                    "confidence": float(est.confidence),
                    "joints": _listed(est.joints),
                    "joint_confidence": _listed(est.joint_confidence),
                    "keypoints_px": _listed(est.keypoints),
                    "presence": _listed(est.presence),
                    "latency_ms": latency,
                    "timings_ms": timings,
                    **hand_records(hands, opts.with_vertices),
                }
                if opts.with_vertices:
                    record["vertices"] = _listed(est.vertices)
            if out is not None:
                out.write(json.dumps(record) + "\n")
                out.flush()
            if writer is not None:
                if video_size is None:
                    video_size = pair.size
                if hands is not None and prepared is not None:
                    frame = draw_overlay(prepared.left, prepared.rig, hands)
                else:
                    frame = _skipped_frame(video_size, record["reason"])
                if (frame.shape[1], frame.shape[0]) != video_size:
                    frame = cv2.resize(frame, video_size, interpolation=cv2.INTER_AREA)
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            done += 1
            bar.update(1)
            bar.set_postfix(found=found, skipped=skipped, refresh=False)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        if out is not None:
            out.close()
    wall = time.perf_counter() - t_start
    median = _percentile(latencies, 50)
    result = {
        "bag": str(opts.bag),
        "topics": topics.as_dict(),
        "pairs": done,
        "found": found,
        "hands_meshed_by_side": by_side,
        "skipped": skipped,
        "interrupted": interrupted,
        "latency_ms": {
            "median": median,
            "p90": _percentile(latencies, 90),
            "max": max(latencies) if latencies else None,
        },
        "wall_s": wall,
        "rectify": opts.rectify,
        "backend": pipeline.backend.name,
        "backend_reason": choice.reason,
        "model": str(args.model) if args.model else choice.model,
        "handedness": args.handedness,
        "max_hands": args.max_hands,
        "published_joints": args.joints,
        "frame": "left optical frame, metres",
        "joint_names": list(JOINT_NAMES),
        "jsonl": str(opts.jsonl) if opts.jsonl else None,
        "video": str(opts.video) if opts.video else None,
    }
    if opts.summary_json is not None:
        opts.summary_json.parent.mkdir(parents=True, exist_ok=True)
        opts.summary_json.write_text(json.dumps(result, indent=1) + "\n")
    wrote = [str(p) for p in (opts.jsonl, opts.video, opts.summary_json) if p is not None]
    med = "n/a" if median is None else f"{median:.1f} ms"
    print(
        f"infer --bag: {done} pairs, {found} found, {skipped} skipped; median latency {med} "
        f"({choice.reason}){'; interrupted' if interrupted else ''}; wrote {', '.join(wrote)}"
    )
    return 130 if interrupted else 0
