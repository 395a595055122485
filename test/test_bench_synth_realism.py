"""The realism benchmark's machinery (the figures come from benchmarks/, not here): the
landmark network on crops placed from the ground truth, its errors, the pixel statistics,
and a run of the script without the real data."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_synth_realism.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_synth_realism", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def net(bench):
    return bench.OnnxRuntimeKeypointNet(bench.DEFAULT_MODEL, device="cpu", intra_op_threads=1)


def test_errors_are_small_on_a_render_and_large_on_the_wrong_image(bench, net) -> None:
    from stereo_hand_mesh.data.synth import SynthSettings, iter_synthetic_pairs
    from stereo_hand_mesh.geometry.camera import StereoRig

    settings = SynthSettings(domain="source")
    rig = StereoRig.from_camera_info(*settings.rig.camera_infos())
    a, b = iter_synthetic_pairs(settings, 2, seed=3)
    joints = a.annotation["joints"].astype(np.float64)
    good = bench.pair_errors(net, rig, a.left, a.right, joints)
    wrong = bench.pair_errors(net, rig, b.left, b.right, joints)  # another scene's images
    assert good["presence_min"] > 0.5, good
    assert good["keypoint_px"] < 25.0, good
    assert wrong["keypoint_px"] > 2 * good["keypoint_px"], (good, wrong)
    # Unlabelled joints (NaN) are not scored, and the crop is still placed.
    partial = joints.copy()
    partial[[4, 8]] = np.nan
    some = bench.pair_errors(net, rig, a.left, a.right, partial)
    assert np.isfinite(list(some.values())).all()


def test_image_stats_leave_out_rectification_borders(bench) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(90, 110, (60, 80, 3)).astype(np.uint8)
    framed = image.copy()
    framed[:, :20] = 0  # a black border as software rectification leaves
    plain, with_border = bench.image_stats(image), bench.image_stats(framed)
    np.testing.assert_allclose(with_border["rgb_mean"], plain["rgb_mean"], atol=1.0)
    assert with_border["saturated_share"] == 0.0
    assert plain["noise_mad"] > 1.0


def test_script_writes_both_domains_and_skips_a_missing_real_folder(tmp_path: Path) -> None:
    out = tmp_path / "realism.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", "3", "--no-loop",
         "--real", str(tmp_path / "absent"), "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "real set skipped" in done.stdout
    result = json.loads(out.read_text())
    for domain in ("source", "target"):
        s = result["sets"][domain]
        assert s["pairs"] == 3 and 0.0 <= s["presence_rate"] <= 1.0
        assert np.isfinite([s["keypoint_px_mean"], s["joint_mm_mean"]]).all()
        assert len(s["image_stats"]["rgb_mean"]) == 3
        assert 0.0 <= s["pipeline_found_rate"] <= 1.0
    assert "skipped" in result["sets"]["real:absent"]
    assert out.with_suffix(".md").read_text().startswith("| set |")
