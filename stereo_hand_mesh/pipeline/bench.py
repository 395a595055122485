"""Per-stage latency of the pipeline for each available backend (``stereo-hand-mesh bench``).

Workload: synthetic 640x480 stereo pairs (rendered once, then cycled) as sensor_msgs/Image
messages (bgr8, as cameras publish), through message conversion, the locator, the crops,
the backend, triangulation and confidence, and the output messages: ``publish`` builds and
CDR-serializes what ``hand_mesh_node`` publishes for every pair with a mesh (PoseArray,
PointCloud2, the 22 TF transforms, the joint and skeleton markers) with the node's own
builder; ``mesh_marker`` is the extra cost of the TRIANGLE_LIST mesh marker, which the node
sends at most ``markers_max_rate_hz`` times a second and only to subscribers. DDS transport
itself is not in this benchmark (the system benchmark measures it across processes).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from stereo_hand_mesh._machine import machine_description, percentile

__all__ = ["bench_pipeline", "markdown_table", "write_results"]


def _pairs(count: int, seed: int) -> list[Any]:
    """Rendered 640x480 source-domain pairs (STB's rig)."""
    from stereo_hand_mesh.data.synth import SynthSettings, iter_synthetic_pairs

    return list(iter_synthetic_pairs(SynthSettings(domain="source"), count, seed))


def bench_pipeline(
    backends: list[str],
    pairs: int = 300,
    warmup: int = 20,
    distinct: int = 20,
    threads: int = 0,
    model: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time every stage for each backend.

    Args:
        backends: backend names (``onnxruntime``, ``torch``, ``tensorrt``); unavailable ones
            are reported with the reason instead of figures.
        pairs: timed stereo pairs per backend (after ``warmup``).
        warmup: untimed pairs first.
        distinct: distinct rendered pairs cycled through.
        threads: ONNX Runtime intra-op threads / torch threads (0: defaults).
        model: ONNX or checkpoint path (default: the shipped model in the backend's form).
        seed: synthetic pairs' seed.

    Returns:
        ``{"machine": {...}, "config": {...}, "results": [{"backend", "pipeline_p50_ms",
        "pipeline_p95_ms", "stages": {stage: {"p50_ms", "p95_ms"}}}, ...]}``.
    """
    from rclpy.serialization import serialize_message

    from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2
    from stereo_hand_mesh.errors import StereoHandMeshError
    from stereo_hand_mesh.geometry.camera import StereoRig
    from stereo_hand_mesh.hand import template_hand
    from stereo_hand_mesh.pipeline import HandMeshPipeline, PipelineSettings
    from stereo_hand_mesh.ros.image_conversion import array_to_image_msg, image_msg_to_rgb8
    from stereo_hand_mesh.ros.messages import build_outputs
    from stereo_hand_mesh.runtime.select import create_backend

    rendered = _pairs(distinct, seed)
    msgs = [
        (
            array_to_image_msg(np.ascontiguousarray(p.left[:, :, ::-1]), "bgr8"),
            array_to_image_msg(np.ascontiguousarray(p.right[:, :, ::-1]), "bgr8"),
        )
        for p in rendered
    ]
    rig = StereoRig.from_camera_info(*STB_BUMBLEBEE2.camera_infos())
    regressor = np.asarray(template_hand().joint_regressor)
    faces = template_hand().faces
    results = []
    for name in backends:
        try:
            if name == "torch" and threads > 0:
                import torch

                torch.set_num_threads(threads)
            if name == "torch" and model is None:
                from stereo_hand_mesh.runtime.select import default_model_files

                chosen = create_backend("torch", default_model_files()[0])
            else:
                chosen = create_backend(name, model, intra_op_threads=threads)
        except StereoHandMeshError as err:
            results.append({"backend": name, "available": False, "reason": str(err)})
            continue
        pipe = HandMeshPipeline(chosen.backend, regressor, PipelineSettings(min_confidence=0.0))
        stages: dict[str, list[float]] = {
            k: []
            for k in (
                "convert",
                "locate",
                "crop",
                "inference",
                "triangulate",
                "publish",
                "mesh_marker",
            )
        }
        totals: list[float] = []
        found = 0
        for n in range(warmup + pairs):
            lm, rm = msgs[n % len(msgs)]
            t0 = time.perf_counter()
            left, right = image_msg_to_rgb8(lm), image_msg_to_rgb8(rm)
            t1 = time.perf_counter()
            est = pipe.process(left, right, rig, stamp_s=n / 30.0)
            publish_ms = mesh_ms = None
            if est.found:
                t_pub = time.perf_counter()
                _serialize_all(
                    build_outputs(
                        est.joints, est.vertices, est.vertex_confidence, faces, lm.header,
                        "hand_", "right", with_mesh=False,
                    ),
                    serialize_message,
                )  # fmt: skip
                publish_ms = (time.perf_counter() - t_pub) * 1e3
            t2 = time.perf_counter()  # the pipeline's total ends here (the mesh is rate-limited)
            if est.found:
                markers = build_outputs(
                    est.joints, est.vertices, est.vertex_confidence, faces, lm.header,
                    "hand_", "right", with_mesh=True,
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
            for k in ("locate", "crop", "inference", "triangulate"):
                if k in est.timings_ms:
                    stages[k].append(est.timings_ms[k])
            totals.append((t2 - t0) * 1e3)
        results.append(
            {
                "backend": chosen.backend.name,
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
            "image": "640x480 bgr8 sensor_msgs/Image pairs, synthetic source domain",
            "pairs": pairs,
            "warmup": warmup,
            "distinct_pairs": distinct,
            "threads": threads,
            "model": str(model) if model else "shipped default",
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
    names = ("convert", "locate", "crop", "inference", "triangulate", "publish", "mesh_marker")
    lines = [
        "| backend | pipeline p50 ms | p95 ms | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for r in payload["results"]:
        if not r["available"]:
            lines.append(
                f"| {r['backend']} | not available: {r['reason']} | |" + " |" * len(names)
            )
            continue
        cells = [f"{r['stages'][k]['p50_ms']:.2f}" if r["stages"].get(k) else "-" for k in names]
        lines.append(
            f"| {r['backend']} | {r['pipeline_p50_ms']:.2f} | {r['pipeline_p95_ms']:.2f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def write_results(payload: dict[str, Any], json_path: Path) -> None:
    """Write the JSON and, beside it, the markdown table (``.md``)."""
    import json

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    json_path.with_suffix(".md").write_text(markdown_table(payload))
