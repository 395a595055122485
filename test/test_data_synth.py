"""Synthetic stereo data: ground truth consistency, determinism, domains, split and bag output."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from stereo_hand_mesh.cli import main as cli_main
from stereo_hand_mesh.data import StereoSetReader, read_stereo_bag
from stereo_hand_mesh.data.camera_info_yaml import rig_for_size
from stereo_hand_mesh.data.synth import SynthSettings, iter_synthetic_pairs
from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.geometry.camera import StereoRig


@pytest.fixture(scope="module")
def small_rig():
    return rig_for_size(320, 240, None)


@pytest.fixture(scope="module")
def pairs(small_rig):
    out = {}
    for domain in ("source", "target"):
        settings = SynthSettings(domain=domain, rig=small_rig)
        out[domain] = list(iter_synthetic_pairs(settings, 4, seed=11))
    return out


def test_ground_truth_triangulates_back(pairs, small_rig):
    left, right = small_rig.camera_infos()
    rig = StereoRig.from_camera_info(left, right)
    for pair in pairs["source"] + pairs["target"]:
        a = pair.annotation
        tri = rig.triangulate(a["uv_left"].astype(np.float64), a["uv_right"].astype(np.float64))
        assert tri.valid.all()
        err = np.abs(tri.points - a["joints"]).max()
        assert err < 1e-4, f"triangulated joints off by {err * 1e3:.3f} mm"
        assert np.allclose(a["uv_left"][:, 1], a["uv_right"][:, 1], atol=1e-3)  # same rows


def test_masks_match_projected_hand(pairs):
    import cv2

    from stereo_hand_mesh.hand.model import template_hand

    faces = template_hand().faces
    for pair in pairs["source"]:
        for view, mask in (("left", pair.mask_left), ("right", pair.mask_right)):
            uv = pair.annotation[f"vertices_uv_{view}"]
            ref = np.zeros(mask.shape, np.uint8)
            for tri in np.round(uv[faces] * 16).astype(np.int32):  # 4 fractional bits
                cv2.fillPoly(ref, [tri], 1, shift=4)
            # fillPoly also fills boundary pixels whose centres lie just outside: allow a
            # one-pixel band, nothing more.
            kernel = np.ones((3, 3), np.uint8)
            assert not (mask & ~cv2.dilate(ref, kernel).astype(bool)).any(), view
            # Inside that band the mask must be full; a few isolated pixels on shared edges
            # are tolerated here (0.3% of the area); watertightness is the rasterizer's test.
            missing = (cv2.erode(ref, kernel).astype(bool) & ~mask).sum()
            assert missing <= 0.003 * ref.sum(), f"{view}: {missing} interior pixels missing"
        z = pair.annotation["joints"][:, 2]
        assert (z > 0.2).all() and (z < 1.1).all()


def test_deterministic_per_seed(small_rig):
    settings = SynthSettings(domain="target", rig=small_rig)
    a = next(iter_synthetic_pairs(settings, 1, seed=5, start=2))
    b = list(iter_synthetic_pairs(settings, 3, seed=5))[2]
    c = next(iter_synthetic_pairs(settings, 1, seed=6, start=2))
    assert np.array_equal(a.left, b.left) and np.array_equal(a.right, b.right)
    assert not np.array_equal(a.left, c.left)


def test_domains_differ(pairs):
    def stats(domain):
        imgs = [p.left for p in pairs[domain]]
        masks = [p.mask_left for p in pairs[domain]]
        bg = np.concatenate([i[~m] for i, m in zip(imgs, masks, strict=True)]).astype(float)
        hist = np.histogram(bg.mean(axis=1), bins=64, range=(0, 256))[0] + 1e-9
        hist = hist / hist.sum()
        entropy = float(-(hist * np.log2(hist)).sum())
        return float(np.mean([i.mean() for i in imgs])), entropy

    (_, src_entropy), (_, tgt_entropy) = stats("source"), stats("target")
    assert tgt_entropy > src_entropy + 1.0  # cluttered photos vs plain backgrounds


def test_cli_writes_split_and_bag(tmp_path):
    split = tmp_path / "split"
    small = ["--seed", "3", "--width", "320", "--height", "240", "--quiet"]
    argv = ["synth", "--domain", "source", "--count", "3", *small]
    assert cli_main([*argv, "--out", str(split)]) == 0
    reader = StereoSetReader(split)
    assert len(reader) == 3 and reader.has_ground_truth and reader.has_masks
    bag = tmp_path / "bag"
    assert cli_main([*argv, "--out", str(bag), "--bag"]) == 0
    from_bag = list(read_stereo_bag(bag))
    assert len(from_bag) == 3
    for i, sample in enumerate(from_bag):
        assert np.array_equal(sample.left, reader[i].left)
        assert np.array_equal(sample.right, reader[i].right)
        assert np.allclose(sample.joints, reader[i].joints, atol=1e-6)


def test_cli_writes_a_bag_of_continuous_motion(tmp_path, capsys):
    """--motion: consecutive frames of the simulator's motion, 1/rate s apart, with their
    true joints; the hand moves a little between frames (a camera's view), unlike the
    unrelated scenes of a plain --bag."""
    small = ["--seed", "3", "--width", "320", "--height", "240", "--quiet", "--rate", "30"]
    argv = ["synth", "--domain", "source", "--count", "3", *small]
    bag = tmp_path / "motion"
    assert cli_main([*argv, "--out", str(bag), "--bag", "--motion"]) == 0
    samples = list(read_stereo_bag(bag))
    assert len(samples) == 3
    stamps = [s.stamp_ns for s in samples]
    assert np.allclose(np.diff(stamps), 1e9 / 30, atol=1e3)
    steps = [
        np.linalg.norm(b.joints - a.joints, axis=1).max() for a, b in itertools.pairwise(samples)
    ]
    assert all(0 < step < 0.05 for step in steps), steps  # < 5 cm per 33 ms
    assert cli_main([*argv, "--out", str(tmp_path / "split"), "--motion"]) == 1
    assert "--motion expected --bag" in capsys.readouterr().err


def test_bad_settings():
    with pytest.raises(ConfigError, match="domain"):
        SynthSettings(domain="mars")
    with pytest.raises(ConfigError, match="count"):
        list(iter_synthetic_pairs(SynthSettings(), -1, seed=0))
