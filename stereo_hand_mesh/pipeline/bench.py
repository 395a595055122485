"""Per-stage latency of the pipeline for each available backend (``stereo-hand-mesh bench``).

Workload: synthetic 640x480 stereo pairs (rendered once, then cycled) as sensor_msgs/Image
messages (bgr8, as cameras publish), through message conversion, the locator, the crops,
the backend, triangulation and confidence. The output-message stage is not measured yet:
the node that builds them is not part of this release (``publish`` is null in the JSON).
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
    from stereo_hand_mesh.data.camera_info_yaml import STB_BUMBLEBEE2
    from stereo_hand_mesh.errors import StereoHandMeshError
    from stereo_hand_mesh.geometry.camera import StereoRig
    from stereo_hand_mesh.hand import template_hand
    from stereo_hand_mesh.pipeline import HandMeshPipeline, PipelineSettings
    from stereo_hand_mesh.ros.image_conversion import array_to_image_msg, image_msg_to_rgb8
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
            k: [] for k in ("convert", "locate", "crop", "inference", "triangulate")
        }
        totals: list[float] = []
        found = 0
        for n in range(warmup + pairs):
            lm, rm = msgs[n % len(msgs)]
            t0 = time.perf_counter()
            left, right = image_msg_to_rgb8(lm), image_msg_to_rgb8(rm)
            t1 = time.perf_counter()
            est = pipe.process(left, right, rig, stamp_s=n / 30.0)
            t2 = time.perf_counter()
            if n < warmup:
                continue
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
                }
                | {"publish": None},
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


def markdown_table(payload: dict[str, Any]) -> str:
    """The results as a markdown table (per-stage medians, ms)."""
    names = ("convert", "locate", "crop", "inference", "triangulate")
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
