"""The GPU benchmark of the keypoint networks: its CPU path runs and writes its JSON; without
CUDA the GPU path says so and exits 2 (the real figure needs a GPU machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_keypoint_network.py"


def test_cpu_path_writes_both_networks(tmp_path: Path) -> None:
    out = tmp_path / "kn.json"
    args = ["--device", "cpu", "--variant", "lite", "--iters", "3", "--warmup", "1"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["config"] == {
        "variant": "lite", "device": "cpu", "precision": "fp32", "cuda_graphs": False,
        "iters": 3, "warmup": 1,
    }  # fmt: skip
    for key, side in (("landmarks", 224), ("palm", 192)):
        t = result[key]
        assert t["batch"] == 2 and t["input_side"] == side
        assert 0 < t["device_ms"]["median"] <= t["device_ms"]["p95"]
        assert 0 < t["host_roundtrip_ms"]["median"] <= t["host_roundtrip_ms"]["p95"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the GPU path runs")
def test_gpu_path_without_cuda_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--iters", "1"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "no CUDA device" in done.stdout
