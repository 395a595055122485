"""Per-stage latency of the pipeline for each available backend (``stereo-hand-mesh bench``).

Workload: a synthetic 640x480 stereo sequence of the simulator's smooth hand motion (STB's
rig, 30 Hz; rendered once, then played in order) as sensor_msgs/Image messages (bgr8, as
cameras publish), through message conversion, the pipeline's stages (palm detection at a
cold start, the keypoint network on both views, the template fit) and the output messages:
``publish`` builds and CDR-serializes what ``hand_mesh_node`` publishes for every pair with a
mesh (PoseArray, PointCloud2, the 22 TF transforms, the joint and skeleton markers) with the
node's own builder; ``mesh_marker`` is the extra cost of the TRIANGLE_LIST mesh marker, which
the node sends at most ``markers_max_rate_hz`` times a second and only to subscribers. Two
modes: ``tracking`` (consecutive pairs; the sequence restarts cold when it wraps) and
``cold`` (every pair a cold start: palm detection on both views). DDS transport itself is not
in this benchmark (the system benchmark measures it across processes).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from stereo_hand_mesh._machine import machine_description, percentile

__all__ = ["STAGES", "bench_pipeline", "markdown_table", "write_results"]

#: Stages reported, in order.
STAGES = ("convert", "detect", "keypoints", "fit", "publish", "mesh_marker")
_MODES = ("tracking", "cold")


def _sequence(count: int, seed: int) -> list[Any]:
    """``count`` consecutive 30 Hz frames of the simulator's motion (source domain, STB rig)."""
    import torch

    from stereo_hand_mesh.data.motion import HandMotion, HandMotionSettings, render_motion_frame
    from stereo_hand_mesh.data.synth import SynthSettings
    from stereo_hand_mesh.hand import template_hand

    hand = template_hand()
    motion = HandMotion(hand, SynthSettings(domain="source"), HandMotionSettings(), seed)
    faces_t = torch.from_numpy(hand.faces.astype(np.int64))
    return [render_motion_frame(motion, i, i / 30.0, faces_t) for i in range(count)]


def bench_pipeline(
    backends: list[str],
    pairs: int = 300,
    warmup: int = 20,
    distinct: int = 60,
    threads: int = 0,
    model: str | os.PathLike[str] | None = None,
    seed: int = 0,
    variant: str = "lite",
) -> dict[str, Any]:
    """Time every stage for each backend, tracking and cold.

    Args:
        backends: backend names (``onnxruntime``, ``torch``, ``tensorrt``); unavailable ones
            are reported with the reason instead of figures.
        pairs: timed stereo pairs per backend and mode (after ``warmup``).
        warmup: untimed pairs first.
        distinct: consecutive frames rendered and played in a loop.
        threads: ONNX Runtime intra-op threads / torch threads (0: defaults).
        model: the landmark network file (default: the shipped ones in the backend's form).
        seed: the motion's seed.
        variant: the shipped networks' variant (``lite``, ``full``).

    Returns:
        ``{"machine": {...}, "config": {...}, "results": [{"backend", "mode",
        "pipeline_p50_ms", "pipeline_p95_ms", "pairs_with_hand", "stages": {stage:
        {"p50_ms", "p95_ms"}}}, ...]}``.
    """
    from rclpy.serialization import serialize_message

    from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2
    from stereo_hand_mesh.errors import StereoHandMeshError
    from stereo_hand_mesh.geometry.camera import StereoRig
    from stereo_hand_mesh.pipeline import PipelineSettings
    from stereo_hand_mesh.pipeline.factory import create_pipeline
    from stereo_hand_mesh.ros.image_conversion import array_to_image_msg, image_msg_to_rgb8
    from stereo_hand_mesh.ros.messages import build_outputs

    frames = _sequence(distinct, seed)
    msgs = [
        (
            array_to_image_msg(np.ascontiguousarray(f.left[:, :, ::-1]), "bgr8"),
            array_to_image_msg(np.ascontiguousarray(f.right[:, :, ::-1]), "bgr8"),
        )
        for f in frames
    ]
    rig = StereoRig.from_camera_info(*STB_BUMBLEBEE2.camera_infos())
    results = []
    for name in backends:
        try:
            if name == "torch" and threads > 0:
                import torch

                torch.set_num_threads(threads)
            chosen = create_pipeline(
                PipelineSettings(min_confidence=0.0),
                name,
                model,
                keypoint_variant=variant,
                intra_op_threads=threads,
            )
        except StereoHandMeshError as err:
            results.append({"backend": name, "available": False, "reason": str(err)})
            continue
        pipe = chosen.pipeline
        for mode in _MODES:
            pipe.reset()
            stages: dict[str, list[float]] = {k: [] for k in STAGES}
            totals: list[float] = []
            found = 0
            for n in range(warmup + pairs):
                k = n % len(msgs)
                if mode == "cold" or k == 0:
                    pipe.reset()
                lm, rm = msgs[k]
                t0 = time.perf_counter()
                left, right = image_msg_to_rgb8(lm), image_msg_to_rgb8(rm)
                t1 = time.perf_counter()
                est = pipe.process(left, right, rig, stamp_s=n / 30.0)
                publish_ms = mesh_ms = None
                if est.found:
                    t_pub = time.perf_counter()
                    _serialize_all(
                        build_outputs(
                            est.joints, est.vertices, est.vertex_confidence, pipe.faces,
                            lm.header, "hand_", "right", False, est.joint_rotations,
                        ),
                        serialize_message,
                    )  # fmt: skip
                    publish_ms = (time.perf_counter() - t_pub) * 1e3
                t2 = time.perf_counter()  # the pipeline's total ends here (mesh: rate-limited)
                if est.found:
                    markers = build_outputs(
                        est.joints, est.vertices, est.vertex_confidence, pipe.faces,
                        lm.header, "hand_", "right", True, est.joint_rotations,
                    ).markers  # fmt: skip
                    serialize_message(markers)
                    mesh_ms = (time.perf_counter() - t2) * 1e3
                if n < warmup:
                    continue
                if publish_ms is not None:
                    stages["publish"].append(publish_ms)
                    stages["mesh_marker"].append(mesh_ms)
                found += int(est.found)
                stages["convert"].append((t1 - t0) * 1e3)
                for stage, ms in est.timings_ms.items():
                    if stage in stages:
                        stages[stage].append(ms)
                totals.append((t2 - t0) * 1e3)
            results.append(
                {
                    "backend": pipe.backend.name,
                    "mode": mode,
                    "available": True,
                    "reason": chosen.reason,
                    "pipeline_p50_ms": statistics.median(totals),
                    "pipeline_p95_ms": percentile(totals, 0.95),
                    "pairs_with_hand": found,
                    "stages": {
                        k: {"p50_ms": statistics.median(v), "p95_ms": percentile(v, 0.95)}
                        for k, v in stages.items()
                        if v
                    },
                }
            )
    return {
        "machine": machine_description(),
        "config": {
            "image": "640x480 bgr8 sensor_msgs/Image pairs, synthetic source-domain motion",
            "pairs": pairs,
            "warmup": warmup,
            "distinct_pairs": distinct,
            "threads": threads,
            "variant": variant,
            "model": str(model) if model else "shipped networks",
        },
        "results": results,
    }


def _serialize_all(out: Any, serialize: Any) -> None:
    """CDR-serialize every message of :class:`~stereo_hand_mesh.ros.messages.OutputMessages`
    (what rclpy does on publish); the TF list goes as one TFMessage."""
    from tf2_msgs.msg import TFMessage

    for msg in (out.joints, out.vertices, out.markers, TFMessage(transforms=out.transforms)):
        serialize(msg)


def markdown_table(payload: dict[str, Any]) -> str:
    """The results as a markdown table (per-stage medians, ms)."""
    names = STAGES
    lines = [
        "| backend | mode | pipeline p50 ms | p95 ms | " + " | ".join(names) + " |",
        "|---|---|---|---|" + "---|" * len(names),
    ]
    for r in payload["results"]:
        if not r["available"]:
            lines.append(
                f"| {r['backend']} | - | not available: {r['reason']} | |" + " |" * len(names)
            )
            continue
        cells = [f"{r['stages'][k]['p50_ms']:.2f}" if r["stages"].get(k) else "-" for k in names]
        lines.append(
            f"| {r['backend']} | {r['mode']} | {r['pipeline_p50_ms']:.2f} | "
            f"{r['pipeline_p95_ms']:.2f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def write_results(payload: dict[str, Any], json_path: Path) -> None:
    """Write the JSON and, beside it, the markdown table (``.md``)."""
    import json

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    json_path.with_suffix(".md").write_text(markdown_table(payload))
