"""Benchmark: the real-trained networks alone, torch, one stereo pair per call.

The product's GPU target: the keypoint network at <= 1 ms per stereo pair (both views as one
batch of two 224x224 crops) with torch on CUDA in fp16. The palm detector (two 192x192
letterboxed views, run at cold starts only) is timed too. Per network, median and p95 over
``--iters`` iterations after ``--warmup``:

- ``device_ms``: the forward pass on inputs already on the device (CUDA events around it;
  on the CPU, wall clock);
- ``host_roundtrip_ms``: inputs copied from host memory, the forward pass, every output
  copied back (what the pipeline's stage pays), wall clock.

Usage (a GPU machine; the shipped ``.npz`` networks of ``--variant``)::

    python benchmarks/bench_keypoint_network.py --variant full --cuda-graphs \
        --json benchmarks/results/keypoint_network_gpu.json

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

#: (network key, input side) timed, in this order.
NETWORKS = (("landmarks", 224), ("palm", 192))


def _summary(times_ms: list[float]) -> dict[str, float]:
    return {"median": statistics.median(times_ms), "p95": percentile(times_ms, 0.95)}


def _forward(net: Any, x: Any, cuda_graphs: bool) -> Callable[[], dict[str, Any]]:
    """A callable running ``net`` on the static input ``x`` (replaying a captured CUDA graph
    when asked: one launch instead of one per kernel)."""
    import torch

    if not cuda_graphs:
        return lambda: net(x)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm-up on a side stream, as CUDA graph capture requires
            net(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = net(x)

    def replay() -> dict[str, Any]:
        graph.replay()
        return out

    return replay


def time_network(
    path: Path, side: int, device: str, fp16: bool, cuda_graphs: bool, iters: int, warmup: int
) -> dict[str, Any]:
    """Device and host-roundtrip times of one network on a batch of two ``side`` crops."""
    import numpy as np
    import torch

    from stereo_hand_mesh.model.tflite_graph import load_tflite_graph_net

    dtype = torch.float16 if fp16 else torch.float32
    net = load_tflite_graph_net(path).eval().to(device, dtype)
    host = np.random.default_rng(0).random((2, 3, side, side), dtype=np.float32)
    x = torch.from_numpy(host).to(device, dtype)
    on_gpu = device == "cuda"
    with torch.inference_mode():
        run = _forward(net, x, cuda_graphs and on_gpu)
        for _ in range(warmup):
            run()
        device_ms = []
        for _ in range(iters):
            if on_gpu:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(True)
                start.record()
                run()
                end.record()
                end.synchronize()
                device_ms.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                run()
                device_ms.append((time.perf_counter() - t0) * 1e3)
        roundtrip_ms = []
        for _ in range(iters):
            t0 = time.perf_counter()
            x.copy_(torch.from_numpy(host).to(dtype))
            outputs = run()
            [v.float().cpu().numpy() for v in outputs.values()]
            roundtrip_ms.append((time.perf_counter() - t0) * 1e3)
    return {
        "file": str(path),
        "batch": 2,
        "input_side": side,
        "device_ms": _summary(device_ms),
        "host_roundtrip_ms": _summary(roundtrip_ms),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("lite", "full"), default="full")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--fp32", action="store_true", help="float32 on CUDA (default fp16)")
    parser.add_argument("--cuda-graphs", action="store_true", help="replay a captured graph")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch

    from stereo_hand_mesh.runtime.keypoint_nets import keypoint_model_files

    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_keypoint_network: no CUDA device here (use --device cpu for the CPU path)")
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    fp16 = args.device == "cuda" and not args.fp32
    files = keypoint_model_files(args.variant)
    result: dict[str, Any] = {
        "machine": machine_description(),
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "config": {
            "variant": args.variant,
            "device": args.device,
            "precision": "fp16" if fp16 else "fp32",
            "cuda_graphs": bool(args.cuda_graphs and args.device == "cuda"),
            "iters": args.iters,
            "warmup": args.warmup,
        },
    }
    for key, side in NETWORKS:
        result[key] = time_network(
            files[f"{key}_npz"], side, args.device, fp16, args.cuda_graphs, args.iters, args.warmup
        )
        t = result[key]
        print(
            f"{key} ({args.variant}, {args.device}, {result['config']['precision']}): device "
            f"p50 {t['device_ms']['median']:.3f} ms, host round trip p50 "
            f"{t['host_roundtrip_ms']['median']:.3f} ms per stereo pair"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
