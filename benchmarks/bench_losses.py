"""Benchmark: rasterization + the six stereo losses, forward and backward.

Workload: a batch of stereo crops (default 8 pairs of 128 x 128, so 16 rendered views) of a
hand mesh (the package's template hand, ~1100 vertices; a hand-sized UV-sphere blob if the
hand model is not importable) posed in front of an STB-like rig, through
:func:`stereo_hand_mesh.losses.stereo_self_supervised_loss` and ``backward()``.

Usage::

    python benchmarks/bench_losses.py --threads 2 --iters 30 --json out/bench_losses.json

Prints a markdown table; ``--json`` also writes the machine description and the timings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description, percentile

from stereo_hand_mesh.geometry import CropBox, StereoRig
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields
from stereo_hand_mesh.losses import (
    StereoCropBatch,
    StereoLossSettings,
    stereo_self_supervised_loss,
)
from stereo_hand_mesh.render import RasterSettings, blob_mesh, rasterize

# STB's Bumblebee2 (DESIGN.md): 640 x 480, fx = fy = 822.79041, baseline 120.054 mm.
STB_FX, STB_CX, STB_CY, STB_BASELINE = 822.79041, 318.47345, 250.31296, 0.120054


def stb_rig() -> StereoRig:
    """The STB rig as two rectified CameraInfo."""
    k = [[STB_FX, 0.0, STB_CX], [0.0, STB_FX, STB_CY], [0.0, 0.0, 1.0]]
    p_left = [[STB_FX, 0.0, STB_CX, 0.0], [0.0, STB_FX, STB_CY, 0.0], [0.0, 0.0, 1.0, 0.0]]
    p_right = [row[:] for row in p_left]
    p_right[0][3] = -STB_FX * STB_BASELINE
    eye = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    left = CameraInfoFields(640, 480, k, [0.0] * 5, eye, p_left)
    right = CameraInfoFields(640, 480, k, [0.0] * 5, eye, p_right)
    return StereoRig.from_camera_info(left, right)


def hand_mesh(kind: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Rest-pose mesh centred at the origin, metres: (V, 3), (F, 3), description."""
    if kind == "hand":
        try:
            from stereo_hand_mesh.hand import gesture_pose, template_hand

            model = template_hand()
            verts = model.forward(gesture_pose("relaxed")[None]).vertices[0]
            verts = torch.as_tensor(verts, dtype=torch.float32)
            faces = torch.as_tensor(np.array(model.faces), dtype=torch.int64)
            return verts - verts.mean(0), faces, "template_hand (relaxed)"
        except Exception as err:  # the hand layer is optional for this benchmark
            print(f"template hand unavailable ({err!r}); using a blob", file=sys.stderr)
    verts, faces = blob_mesh(center=(0.0, 0.0, 0.0))
    return verts, faces, "blob_mesh (UV sphere 30 x 34, hand-sized)"


def _rotation(gen: torch.Generator) -> torch.Tensor:
    q = torch.randn(4, generator=gen)
    q = q / q.norm()
    w, x, y, z = q.tolist()
    return torch.tensor(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def make_batch(
    verts: torch.Tensor, faces: torch.Tensor, batch: int, size: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, StereoCropBatch]:
    """Posed meshes (truth, estimates for both branches, pseudo-labels) and their crops."""
    gen = torch.Generator().manual_seed(seed)
    rig = stb_rig()
    poses = []
    for _ in range(batch):
        rot = _rotation(gen)
        depth = 0.35 + 0.25 * float(torch.rand(1, generator=gen))
        offset = torch.tensor([0.0, 0.0, depth]) + (torch.rand(3, generator=gen) - 0.5) * 0.1
        poses.append(verts @ rot.T + offset)
    truth = torch.stack(poses)
    boxes_l, boxes_r = [], []
    for b in range(batch):
        uv_l = torch.as_tensor(rig.project_left(truth[b].double().numpy()))
        uv_r = torch.as_tensor(rig.project_right(truth[b].double().numpy()))
        lo_l, hi_l = uv_l.min(0).values, uv_l.max(0).values
        lo_r, hi_r = uv_r.min(0).values, uv_r.max(0).values
        side = 1.25 * float(torch.maximum(hi_l - lo_l, hi_r - lo_r).max())
        y0 = float(min(lo_l[1], lo_r[1]) + max(hi_l[1], hi_r[1])) / 2 - side / 2
        boxes_l.append(CropBox(float(lo_l[0] + hi_l[0]) / 2 - side / 2, y0, side, size))
        boxes_r.append(CropBox(float(lo_r[0] + hi_r[0]) / 2 - side / 2, y0, side, size))
    box_l = torch.tensor(np.stack([b.as_array() for b in boxes_l]), dtype=torch.float32)
    box_r = torch.tensor(np.stack([b.as_array() for b in boxes_r]), dtype=torch.float32)
    k = torch.tensor([[rig.focal, rig.left.fy, rig.left.cx, rig.left.cy]]).repeat(batch, 1)
    k_r = torch.tensor([[rig.focal, rig.right.fy, rig.right.cx, rig.right.cy]]).repeat(batch, 1)
    baseline = torch.full((batch,), rig.baseline)
    # Skin masks: the true hand's coverage in each crop.
    from stereo_hand_mesh.geometry import crop_intrinsics

    shift = torch.tensor([rig.baseline, 0.0, 0.0])
    mask_l = rasterize(truth, faces, crop_intrinsics(k, box_l, size), (size, size)).mask
    mask_r = rasterize(truth - shift, faces, crop_intrinsics(k_r, box_r, size), (size, size)).mask
    crops = StereoCropBatch(
        image_left=torch.rand(batch, 3, size, size, generator=gen),
        image_right=torch.rand(batch, 3, size, size, generator=gen),
        mask_left=mask_l.float(),
        mask_right=mask_r.float(),
        box_left=box_l,
        box_right=box_r,
        intrinsics_left=k,
        intrinsics_right=k_r,
        baseline=baseline,
    )
    noise = 0.003
    est_l = truth + noise * torch.randn(truth.shape, generator=gen)
    est_r = truth + noise * torch.randn(truth.shape, generator=gen)
    pseudo = truth + 0.01 * torch.randn(1, 1, 3, generator=gen)
    return est_l, est_r, pseudo, pseudo.clone(), crops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="stereo pairs per batch")
    parser.add_argument("--size", type=int, default=128, help="crop side, pixels")
    parser.add_argument("--iters", type=int, default=30, help="timed iterations (>= 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--mesh", choices=("hand", "blob"), default="hand")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--no-cull", action="store_true", help="rasterize back faces too")
    parser.add_argument("--ssim-luma", action="store_true", help="SSIM on luma, not per channel")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    verts, faces, mesh_desc = hand_mesh(args.mesh)
    est_l, est_r, pseudo_l, pseudo_r, crops = make_batch(verts, faces, args.batch, args.size)
    move = lambda t: t.to(device)  # noqa: E731
    crops = StereoCropBatch(**{k: move(v) for k, v in crops.__dict__.items()})
    faces = move(faces)
    est_l = move(est_l).requires_grad_(True)
    est_r = move(est_r).requires_grad_(True)
    pseudo_l, pseudo_r = move(pseudo_l), move(pseudo_r)
    settings = StereoLossSettings(
        raster=RasterSettings(cull_backfaces=not args.no_cull), ssim_on_luma=args.ssim_luma
    )

    def step() -> dict[str, float]:
        est_l.grad = None
        est_r.grad = None
        terms = stereo_self_supervised_loss(
            est_l, est_r, pseudo_l, pseudo_r, faces, crops, settings
        )
        terms.total.backward()
        return {k: float(v.detach()) for k, v in terms.as_dict().items()}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    sync()
    times_ms = []
    for _ in range(args.iters):
        start = time.perf_counter()
        values = step()
        sync()
        times_ms.append((time.perf_counter() - start) * 1e3)
    assert all(math.isfinite(v) for v in values.values()), values
    assert est_l.grad is not None and bool(torch.isfinite(est_l.grad).all())

    result = {
        "benchmark": "bench_losses",
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": machine_description()
        | {
            "device": str(device),
            # Other work on the machine inflates the timings; recorded for context.
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "config": {
            "batch_pairs": args.batch,
            "views": 2 * args.batch,
            "crop_size": args.size,
            "mesh": mesh_desc,
            "num_verts": int(verts.shape[0]),
            "num_faces": int(faces.shape[0]),
            "cull_backfaces": not args.no_cull,
            "ssim_on_luma": args.ssim_luma,
            "warmup": args.warmup,
            "iters": args.iters,
        },
        "results_ms": {
            "median": statistics.median(times_ms),
            "p95": percentile(times_ms, 0.95),
            "mean": statistics.fmean(times_ms),
            "min": min(times_ms),
        },
        "loss_terms": values,
    }
    r = result["results_ms"]
    print("| workload | device | threads | median ms | p95 ms | min ms |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.batch} pairs x {args.size}^2, {mesh_desc}, V={verts.shape[0]}, "
        f"F={faces.shape[0]} | {device} ({result['machine']['cpu']}) | "
        f"{torch.get_num_threads()} | {r['median']:.1f} | {r['p95']:.1f} | {r['min']:.1f} |"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
