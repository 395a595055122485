"""``stereo-hand-mesh demo`` run for a few seconds as a real process tree (sim with two hands,
node with handedness auto, monitor): both hands meshed, each scored against its own side's
ground truth."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from pathlib import Path

import numpy as np
from node_process import BIN

from stereo_hand_mesh.data.image_io import read_image_rgb

# One monitor line: time, rate (Hz), latency p50 (ms), then per side (right, left) the hands
# meshed in that second and their mean joint error (mm, "-" without one), status.
_NUM = r"\s+(\d+\.\d|-)"
_LINE = re.compile(r"^\s*(\d+\.\d)\s+(\d+\.\d)" + _NUM + r"\s+(\d+)" + _NUM + r"\s+(\d+)" + _NUM)


def test_demo_connects_the_sim_to_the_node_and_writes_its_results(tmp_path):
    out = tmp_path / "demo"
    run = subprocess.run(
        [str(BIN / "stereo-hand-mesh"), "demo", "--seconds", "4", "--out", str(out),
         "--overlays", "2", "--startup-timeout", "90"],
        env=dict(os.environ), capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    logs = "".join(
        f"\n--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(out.glob("*.log"))
    )
    assert run.returncode == 0, run.stdout + run.stderr + logs
    # The demo's own environment: this test's domain, loopback discovery.
    assert f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}, discovery LOCALHOST" in run.stdout

    # The sim and the node meet on the default names: no remapping anywhere.
    node_log = (out / "hand_mesh_node.log").read_text()
    assert "waiting for /left/image_rect, /left/camera_info, /right/image_rect" in node_log
    sim_log = (out / "stereo_camera_sim.log").read_text()
    assert "on left/image_rect, right/image_rect, left/camera_info, right/camera_info" in sim_log

    # Two hands, each side's hand on its own topics and scored against its own truth.
    assert "two hands visible" in sim_log and "sim/gt_joints_left" in sim_log

    # The monitor printed a rate / latency / per-side line about every second.
    assert "rate(Hz)  latency p50(ms)  right: meshed  error(mm)  left: meshed  error(mm)" in (
        run.stdout
    )
    lines = [m.groups() for m in map(_LINE.match, run.stdout.splitlines()) if m]
    assert len(lines) >= 3, run.stdout
    assert max(float(g[1]) for g in lines) > 1.0, run.stdout
    for meshed, error in ((3, 4), (5, 6)):
        assert sum(int(g[meshed]) for g in lines) > 0, run.stdout
        errors = [float(g[error]) for g in lines if g[error] != "-"]
        assert errors and all(0.0 < e < 60.0 for e in errors), run.stdout

    summary = json.loads((out / "summary.json").read_text())
    assert summary["meshes"] > 0 and summary["camera_pairs"] >= summary["meshes"] // 2
    assert math.isfinite(summary["joint_error_mean_mm"]), summary
    assert 0.0 < summary["joint_error_mean_mm"] < 60.0, summary
    assert 0.0 < summary["latency_p50_ms"] < 1000.0, summary
    for side in ("right", "left"):
        s = summary["sides"][side]
        assert s["hands_in_view"] > 0 and s["meshes"] > 0, summary["sides"]
        assert 0.0 < s["joint_error_mean_mm"] < 60.0, summary["sides"]
        assert f"demo: {side} hand: meshed in {s['meshes']} of {s['hands_in_view']}" in run.stdout
    assert summary["node_diagnostics"]["model"] == "(shipped default)"
    assert int(summary["node_diagnostics"]["meshes_published"]) > 0

    overlays = [Path(p) for p in summary["overlays"]]
    assert len(overlays) == 2 and sorted(out.glob("overlay_*.png")) == sorted(overlays)
    for path in overlays:
        image = read_image_rgb(path)
        assert image.shape == (480, 640, 3), path
        assert float(np.std(image)) > 5.0, f"{path} looks blank"
    assert f"wrote {out / 'summary.json'} and 2 overlay PNGs" in run.stdout
