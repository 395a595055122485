"""STB reader on a small fixture written in STB's layout (scipy .mat + PNG)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from stereo_hand_mesh.data import (
    STB_BUMBLEBEE2,
    STB_SEQUENCES,
    STB_TEST_SEQUENCES,
    STB_TRAIN_SEQUENCES,
    STBReader,
    read_stb_labels,
)
from stereo_hand_mesh.errors import DataError
from stereo_hand_mesh.hand.joints import JOINT_NAMES, STB_JOINT_NAMES, palm_center
from stereo_hand_mesh.train.metrics import palm_center_convention

FRAMES = 3


def _hand_para(rng: np.random.Generator, frames: int) -> np.ndarray:
    """(3, 21, F) millimetres, as STB stores it."""
    joints_mm = rng.normal(size=(frames, 21, 3)) * 40.0 + [0.0, 0.0, 450.0]
    return joints_mm.transpose(2, 1, 0)


def _write_stb(root: Path, sequences=("B1Counting", "B2Random"), frames: int = FRAMES) -> dict:
    rng = np.random.default_rng(0)
    (root / "labels").mkdir(parents=True)
    paras = {}
    for seq in sequences:
        para = _hand_para(rng, frames)
        scipy.io.savemat(str(root / "labels" / f"{seq}_BB.mat"), {"handPara": para})
        # The RealSense labels sit beside them and must be ignored.
        scipy.io.savemat(str(root / "labels" / f"{seq}_SK.mat"), {"handPara": para})
        (root / "images" / seq).mkdir(parents=True)
        for i in range(frames):
            for side, value in (("left", 10 + i), ("right", 100 + i)):
                rgb = np.zeros((480, 640, 3), np.uint8)
                rgb[:, :, 0] = value
                rgb[:, :, 2] = 200
                cv2.imwrite(str(root / "images" / seq / f"BB_{side}_{i}.png"), rgb[:, :, ::-1])
        paras[seq] = para
    return paras


def test_reads_pairs_and_converts_joints(tmp_path: Path) -> None:
    paras = _write_stb(tmp_path)
    reader = STBReader(tmp_path)
    assert reader.sequences == ("B1Counting", "B2Random")
    assert len(reader) == 2 * FRAMES
    s = reader[FRAMES + 1]
    assert reader.locate(FRAMES + 1) == ("B2Random", 1)
    assert s.index == FRAMES + 1
    assert s.left.shape == (480, 640, 3) and s.left[0, 0].tolist() == [11, 0, 200]
    assert s.right[0, 0].tolist() == [101, 0, 200]
    stb_m = paras["B2Random"][:, :, 1].T / 1000.0
    np.testing.assert_allclose(s.joints_stb_order, stb_m)
    # Our order: STB's joint named X sits at our index of X.
    for stb_i, name in enumerate(STB_JOINT_NAMES[1:17], start=1):
        np.testing.assert_allclose(s.joints[JOINT_NAMES.index(name)], stb_m[stb_i])
    for k, ours in enumerate(("thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip")):
        np.testing.assert_allclose(s.joints[JOINT_NAMES.index(ours)], stb_m[17 + k])
    # The palm center is kept: it is the midpoint of the extrapolated wrist and middle_mcp.
    np.testing.assert_allclose(palm_center(s.joints), stb_m[0])
    np.testing.assert_allclose(palm_center_convention(s.joints)[0], stb_m[0])


def test_rig_and_projection(tmp_path: Path) -> None:
    _write_stb(tmp_path, sequences=("B1Random",))
    s = STBReader(tmp_path)[0]
    assert s.left_info.P[0, 0] == 822.79041 and s.left_info.K[1, 2] == 250.31296
    assert -s.right_info.P[0, 3] / s.right_info.P[0, 0] == pytest.approx(0.120054)
    assert s.left_info.frame_id == "stereo_left_optical_frame"
    # Disparity of each joint = f * B / z, with the right camera to the +x side.
    disparity = s.uv_left[:, 0] - s.uv_right[:, 0]
    np.testing.assert_allclose(disparity, 822.79041 * 0.120054 / s.joints[:, 2])
    np.testing.assert_allclose(s.uv_left[:, 1], s.uv_right[:, 1])
    u = 822.79041 * s.joints[:, 0] / s.joints[:, 2] + 318.47345
    np.testing.assert_allclose(s.uv_left[:, 0], u)
    assert STB_BUMBLEBEE2.baseline_m == 0.120054


def test_sequence_selection_and_constants(tmp_path: Path) -> None:
    _write_stb(tmp_path)
    reader = STBReader(tmp_path, sequences=["B2Random"])
    assert len(reader) == FRAMES and reader.locate(-1) == ("B2Random", FRAMES - 1)
    assert len(STB_SEQUENCES) == 12
    assert set(STB_TEST_SEQUENCES) | set(STB_TRAIN_SEQUENCES) == set(STB_SEQUENCES)
    with pytest.raises(DataError, match=r"B3Counting_BB\.mat; got no such file"):
        STBReader(tmp_path, sequences=["B3Counting"])
    with pytest.raises(IndexError):
        reader[FRAMES]


def test_mat_without_handpara_names_file_and_variable(tmp_path: Path) -> None:
    _write_stb(tmp_path, sequences=("B1Counting",))
    path = tmp_path / "labels" / "B1Counting_BB.mat"
    scipy.io.savemat(str(path), {"handParameters": np.zeros((3, 21, 2))})
    with pytest.raises(DataError) as err:
        STBReader(tmp_path)
    assert str(err.value) == (
        f"STB label file {path} expected variable 'handPara'; got variables ['handParameters']"
    )


def test_bad_label_files(tmp_path: Path) -> None:
    path = tmp_path / "x_BB.mat"
    scipy.io.savemat(str(path), {"handPara": np.zeros((3, 20, 4))})
    with pytest.raises(DataError, match=r"'handPara' of shape \(3, 21, F\); got \(3, 20, 4\)"):
        read_stb_labels(path)
    path.write_bytes(b"MATLAB 5.0 MAT-file garbage" + b"\x00" * 10)
    with pytest.raises(DataError, match=r"could not read STB label file .*x_BB\.mat"):
        read_stb_labels(path)
    good = tmp_path / "g_BB.mat"
    scipy.io.savemat(str(good), {"handPara": _hand_para(np.random.default_rng(1), 5)})
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"g_BB\.mat"):
        read_stb_labels(good)
    with pytest.raises(DataError, match=r"expected STB label directory"):
        STBReader(tmp_path / "empty")


def test_missing_and_truncated_images(tmp_path: Path) -> None:
    _write_stb(tmp_path, sequences=("B1Counting",))
    reader = STBReader(tmp_path)
    right = tmp_path / "images" / "B1Counting" / "BB_right_1.png"
    right.unlink()
    with pytest.raises(DataError, match=r"BB_right_1\.png"):
        reader[1]
    left = tmp_path / "images" / "B1Counting" / "BB_left_2.png"
    left.write_bytes(left.read_bytes()[:100])
    with pytest.raises(DataError, match=r"could not decode PNG .*BB_left_2\.png"):
        reader[2]
    cv2.imwrite(str(left), np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(DataError, match=r"BB_left_2\.png expected 640x480; got 320x240"):
        reader[2]
