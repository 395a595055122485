"""Deviation of half-precision inference from float32, on fixed inputs.

Runs the shipped checkpoint (or ``--model``) with torch in float32 and in float16 / bfloat16
on the same random normalized inputs, and
the shipped half-weight ONNX with ONNX Runtime, and reports the largest deviations of uv
(crop fractions and pixels of a 128-px crop) and of the root-relative depth (metres)::

    python benchmarks/fp16_deviation.py --json benchmarks/results/fp16_deviation.json

On this CPU-only machine the half-precision arithmetic is torch's CPU kernels; CUDA's fp16
kernels round differently (rerun with ``--device cuda`` where a GPU is available).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description

from stereo_hand_mesh.model.loading import NetworkPass, load_model
from stereo_hand_mesh.runtime import default_model_files
from stereo_hand_mesh.runtime.onnxruntime_backend import OnnxRuntimeBackend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--onnx", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--inputs", type=int, default=16, help="random input pairs")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    pt, onnx_path = default_model_files()
    pt, onnx_path = args.model or pt, args.onnx or onnx_path
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(args.inputs, 2, 3, 128, 128)).astype(np.float32)

    def run(dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray]:
        model, _ = load_model(pt, device)
        net = NetworkPass(model.eval().to(dtype), "monocular").eval()
        uvs, rels = [], []
        with torch.inference_mode():
            for x in inputs:
                uv, rel = net(torch.from_numpy(x).to(device, dtype))
                uvs.append(uv.float().cpu().numpy())
                rels.append(rel.float().cpu().numpy())
        return np.stack(uvs), np.stack(rels)

    ref_uv, ref_rel = run(torch.float32)
    results = {}
    for name, dtype in (("torch_float16", torch.float16), ("torch_bfloat16", torch.bfloat16)):
        uv, rel = run(dtype)
        results[name] = {
            "max_uv_crop_fraction": float(np.abs(uv - ref_uv).max()),
            "max_uv_px_at_128": float(np.abs(uv - ref_uv).max() * 128),
            "median_uv_px_at_128": float(np.median(np.abs(uv - ref_uv)) * 128),
            "max_rel_depth_m": float(np.abs(rel - ref_rel).max()),
        }
    ort = OnnxRuntimeBackend(onnx_path, "cpu")
    outs = [ort.infer(x) for x in inputs]
    uv = np.stack([o[0] for o in outs])
    rel = np.stack([o[1] for o in outs])
    results["onnxruntime_half_weight_onnx"] = {
        "max_uv_crop_fraction": float(np.abs(uv - ref_uv).max()),
        "max_uv_px_at_128": float(np.abs(uv - ref_uv).max() * 128),
        "median_uv_px_at_128": float(np.median(np.abs(uv - ref_uv)) * 128),
        "max_rel_depth_m": float(np.abs(rel - ref_rel).max()),
    }
    payload = {
        "benchmark": "fp16_deviation",
        "machine": machine_description() | {"device": str(device)},
        "model": str(pt),
        "onnx": str(onnx_path),
        "inputs": args.inputs,
        "reference": "torch float32 on the same inputs",
        "results": results,
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
