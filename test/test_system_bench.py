"""The system benchmark's machinery on a tiny bag (the figures come from benchmarks/, not here)."""

from __future__ import annotations

import json
import subprocess

from node_process import BIN

from stereo_hand_mesh.ros.system_bench import bag_sha256


def test_bench_system_plays_a_bag_through_the_node_and_writes_its_tables(tmp_path):
    bag = tmp_path / "bag"
    synth = subprocess.run(
        [str(BIN / "stereo-hand-mesh"), "synth", "--domain", "source", "--count", "4",
         "--seed", "3", "--bag", "--width", "320", "--height", "240", "--out", str(bag),
         "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert synth.returncode == 0, synth.stderr
    out = tmp_path / "system.json"
    run = subprocess.run(
        [str(BIN / "stereo-hand-mesh"), "bench", "--system", "--bag", str(bag), "--rates",
         "10", "--seconds", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    payload = json.loads(out.read_text())
    (result,) = payload["results"]
    assert result["bag_sha256"] == bag_sha256(bag)
    assert result["image"] == "320x240 bgr8"
    assert result["backend"].startswith("onnxruntime")
    (window,) = result["rates"]
    assert window["published"] == 20 and 0 < window["processed"] <= 21
    assert window["node_rss_mb"] > 50
    assert {"machine", "config"} <= set(payload)
    assert "peak pairs/s" in out.with_suffix(".md").read_text()
