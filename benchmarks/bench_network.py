"""Benchmark: the network alone, torch, one stereo pair (a batch of two 128x128 crops).

The issue's GPU target: <= 2 ms per stereo pair with torch on CUDA in fp16 on a datacenter
GPU (CUDA graphs or torch.compile allowed). Two figures per run, median and p95 over
``--iters`` iterations after ``--warmup``:

- ``device``: the forward pass on crops already on the device (CUDA events around it);
- ``host_roundtrip``: crops copied from host memory, the forward pass, ``uv`` copied back
  (what the pipeline's inference stage pays), wall clock.

Usage (a GPU machine; the shipped default checkpoint unless ``--model``)::

    python benchmarks/bench_network.py --cuda-graphs --json benchmarks/results/network_gpu.json

Without CUDA it exits 2 with a message, unless ``--device cpu`` asks for the CPU path
(float32, no graphs), which the tests run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_description, percentile

#: Crop side S of the network input, pixels (the shipped model's).
CROP_PX = 128


def _load(model: Path | None, device: Any, fp16: bool) -> Any:
    """The checkpoint's network pass, in eval mode, on ``device`` (half when ``fp16``)."""
    from stereo_hand_mesh.model.loading import NetworkPass, load_model
    from stereo_hand_mesh.runtime.base import ModelInfo

    net, ckpt = load_model(model, device, None)
    info = ModelInfo.from_checkpoint_metadata(ckpt.metadata)
    if info.input_size != CROP_PX:
        raise SystemExit(f"bench_network: expected a {CROP_PX}-px model; got {info.input_size}")
    variant = "monocular" if info.has_depth_head else "binocular"
    net = NetworkPass(net.eval(), variant).eval()
    return net.half() if fp16 else net


def _forward(net: Any, x: Any, cuda_graphs: bool) -> Callable[[], Any]:
    """A callable running ``net`` on the static input ``x`` and returning ``uv`` (captured
    as a CUDA graph when asked: one launch instead of one per kernel)."""
    import torch

    if not cuda_graphs:
        return lambda: net(x)[0]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # capture needs warmed-up kernels and allocator pools
            net(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        uv = net(x)[0]

    def replay() -> Any:
        graph.replay()
        return uv

    return replay


def _summary(times_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(times_ms),
        "p95_ms": percentile(times_ms, 0.95),
        "mean_ms": statistics.fmean(times_ms),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time the network (see the module docstring); returns the JSON payload."""
    import numpy as np
    import torch

    cuda = args.device == "cuda"
    fp16 = cuda and not args.fp32
    device = torch.device(args.device)
    if not cuda and args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = torch.float16 if fp16 else torch.float32
    net = _load(args.model, device, fp16)
    host = torch.from_numpy(
        np.random.default_rng(0).normal(size=(2, 3, CROP_PX, CROP_PX)).astype(np.float32)
    )
    if cuda:
        host = host.pin_memory()
    x = host.to(device, dtype)
    times: dict[str, list[float]] = {"device": [], "host_roundtrip": []}
    with torch.inference_mode():
        if args.compile:
            net = torch.compile(net, mode="max-autotune-no-cudagraphs")
        forward = _forward(net, x, args.cuda_graphs and cuda)
        for i in range(args.warmup + args.iters):
            if cuda:
                start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
                start.record()
                forward()
                end.record()
                end.synchronize()
                device_ms = start.elapsed_time(end)
            t0 = time.perf_counter()
            x.copy_(host, non_blocking=cuda)
            uv = forward().float().cpu()
            trip_ms = (time.perf_counter() - t0) * 1e3
            if not cuda:
                device_ms = trip_ms  # one memory: the round trip is the forward pass
            if i >= args.warmup:
                times["device"].append(device_ms)
                times["host_roundtrip"].append(trip_ms)
    if tuple(uv.shape[:1]) != (2,):
        raise SystemExit(f"bench_network: expected uv for 2 views; got shape {tuple(uv.shape)}")
    return {
        "machine": machine_description(),
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "command": "benchmarks/bench_network.py " + " ".join(sys.argv[1:]),
        "config": {
            "device": args.device,
            "precision": "fp16" if fp16 else "fp32",
            "cuda_graphs": bool(args.cuda_graphs and cuda),
            "torch_compile": bool(args.compile),
            "batch": "2 crops (one stereo pair), 3x128x128",
            "iters": args.iters,
            "warmup": args.warmup,
            "model": str(args.model) if args.model else "shipped default",
        },
        "results": {name: _summary(values) for name, values in times.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="checkpoint (default shipped)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--fp32", action="store_true", help="float32 on CUDA (default fp16)")
    parser.add_argument("--cuda-graphs", action="store_true", help="replay a captured graph")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        parser.error(f"--iters expected >= 1 and --warmup >= 0; got {args.iters}, {args.warmup}")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            f"bench_network: --device cuda expected a CUDA GPU; torch {torch.__version__} sees "
            "none (use --device cpu for the CPU path)",
            file=sys.stderr,
        )
        return 2
    result = run(args)
    r = result["results"]
    print(
        f"{result['gpu'] or 'cpu'} {result['config']['precision']}: device "
        f"p50 {r['device']['p50_ms']:.3f} ms p95 {r['device']['p95_ms']:.3f} ms; host round "
        f"trip p50 {r['host_roundtrip']['p50_ms']:.3f} ms p95 {r['host_roundtrip']['p95_ms']:.3f}"
        " ms"
    )
    if args.iters < 300:
        print(f"bench_network: note: {args.iters} iterations (reported figures use >= 300)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
