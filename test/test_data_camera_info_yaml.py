"""camera_info YAML (camera_calibration_parsers format) and stereo rig helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stereo_hand_mesh.data import (
    STB_BUMBLEBEE2,
    StereoRigSpec,
    camera_info_to_yaml_text,
    read_camera_info_yaml,
    rectified_stereo_camera_infos,
    write_camera_info_yaml,
)
from stereo_hand_mesh.errors import CameraInfoError
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields

# Written by hand in the layout camera_calibration's cameracalibrator.py saves (left camera
# of a stereo pair, plumb_bob distortion).
ROS_LEFT_YAML = """\
image_width: 640
image_height: 480
camera_name: narrow_stereo/left
camera_matrix:
  rows: 3
  cols: 3
  data: [430.15433, 0.0, 311.71084, 0.0, 430.48538, 221.06243, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.363528, 0.161671, 0.000891, -0.001319, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [0.99978, 0.002803, -0.020758, -0.002788, 0.999996, 0.000745, 0.02076, -0.000687, 0.999784]
projection_matrix:
  rows: 3
  cols: 4
  data: [295.53402, 0.0, 285.55463, 0.0, 0.0, 295.53402, 223.29715, 0.0, 0.0, 0.0, 1.0, 0.0]
"""


def test_reads_ros_calibration_file(tmp_path: Path) -> None:
    path = tmp_path / "left.yaml"
    path.write_text(ROS_LEFT_YAML)
    info = read_camera_info_yaml(path, frame_id="cam_left")
    assert (info.width, info.height) == (640, 480)
    assert info.camera_name == "narrow_stereo/left"
    assert info.distortion_model == "plumb_bob"
    assert info.frame_id == "cam_left"
    assert info.K[0, 0] == 430.15433 and info.K[1, 2] == 221.06243
    np.testing.assert_array_equal(info.D, [-0.363528, 0.161671, 0.000891, -0.001319, 0.0])
    assert info.R[2, 0] == 0.02076
    assert info.P.shape == (3, 4) and info.P[0, 2] == 285.55463 and info.P[0, 3] == 0.0


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    info = CameraInfoFields(
        width=1280,
        height=720,
        K=rng.normal(size=(3, 3)),
        D=rng.normal(size=8),
        R=rng.normal(size=(3, 3)),
        P=rng.normal(size=(3, 4)),
        distortion_model="rational_polynomial",
        camera_name="zed 2i / left",  # needs quoting
    )
    path = tmp_path / "cam.yaml"
    write_camera_info_yaml(path, info)
    back = read_camera_info_yaml(path)
    for name in ("K", "D", "R", "P"):
        np.testing.assert_array_equal(getattr(back, name), getattr(info, name))
    assert (back.width, back.height, back.distortion_model, back.camera_name) == (
        1280,
        720,
        "rational_polynomial",
        "zed 2i / left",
    )


def test_written_text_has_ros_layout() -> None:
    left, _ = STB_BUMBLEBEE2.camera_infos()
    text = camera_info_to_yaml_text(left)
    lines = text.splitlines()
    assert lines[:3] == [
        "image_width: 640",
        "image_height: 480",
        "camera_name: stb_bumblebee2/left",
    ]
    assert "camera_matrix:\n  rows: 3\n  cols: 3\n  data: [822.79041, 0.0, 318.47345," in text
    assert "distortion_coefficients:\n  rows: 1\n  cols: 5\n" in text
    assert "projection_matrix:\n  rows: 3\n  cols: 4\n" in text


def test_empty_distortion_round_trips(tmp_path: Path) -> None:
    left, _ = rectified_stereo_camera_infos(64, 48, 50.0, 50.0, 32.0, 24.0, 0.1)
    info = CameraInfoFields(64, 48, left.K, np.zeros(0), left.R, left.P)
    write_camera_info_yaml(tmp_path / "c.yaml", info)
    assert read_camera_info_yaml(tmp_path / "c.yaml").D.shape == (0,)


@pytest.mark.parametrize(
    "key", ["image_width", "image_height", "camera_matrix", "projection_matrix"]
)
def test_missing_key_names_file_and_key(tmp_path: Path, key: str) -> None:
    lines = ROS_LEFT_YAML.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(key + ":"))
    end = start + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    path = tmp_path / "broken.yaml"
    path.write_text("".join(lines[:start] + lines[end:]))
    with pytest.raises(CameraInfoError) as err:
        read_camera_info_yaml(path)
    assert str(path) in str(err.value) and f"'{key}'" in str(err.value)


def test_wrong_value_count_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "short.yaml"
    path.write_text(ROS_LEFT_YAML.replace("223.29715, 0.0, 0.0, 0.0, 1.0, 0.0]", "223.29715]"))
    with pytest.raises(CameraInfoError, match=r"short\.yaml.*'projection_matrix'.*got rows=3"):
        read_camera_info_yaml(path)


def test_rows_cols_must_match_matrix(tmp_path: Path) -> None:
    path = tmp_path / "rows.yaml"
    path.write_text(
        ROS_LEFT_YAML.replace("camera_matrix:\n  rows: 3", "camera_matrix:\n  rows: 1")
    )
    with pytest.raises(CameraInfoError, match="'camera_matrix'"):
        read_camera_info_yaml(path)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(CameraInfoError, match=r"no file at .*nope\.yaml"):
        read_camera_info_yaml(tmp_path / "nope.yaml")
    path = tmp_path / "bad.yaml"
    path.write_text("image_width: [640\n")
    with pytest.raises(CameraInfoError, match=r"bad\.yaml could not be parsed"):
        read_camera_info_yaml(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(CameraInfoError, match="expected a mapping"):
        read_camera_info_yaml(path)


def test_non_numeric_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nan.yaml"
    path.write_text(ROS_LEFT_YAML.replace("data: [430.15433", "data: [fx"))
    with pytest.raises(CameraInfoError, match=r"'camera_matrix\.data' to be a list of numbers"):
        read_camera_info_yaml(path)


def test_stereo_pair_projection_matrices() -> None:
    left, right = rectified_stereo_camera_infos(
        640, 480, 800.0, 810.0, 320.0, 240.0, 0.06, left_frame_id="l", right_frame_id="r"
    )
    assert left.frame_id == "l" and right.frame_id == "r"
    assert left.P[0, 3] == 0.0
    assert right.P[0, 3] == pytest.approx(-800.0 * 0.06)
    # Baseline recovered as the geometry layer does it.
    assert -right.P[0, 3] / right.P[0, 0] == pytest.approx(0.06)
    # A point at depth z has disparity fx * B / z.
    point = np.array([0.03, -0.02, 0.5, 1.0])
    ul = (left.P @ point)[0] / (left.P @ point)[2]
    ur = (right.P @ point)[0] / (right.P @ point)[2]
    assert ul - ur == pytest.approx(800.0 * 0.06 / 0.5)
    left.validate()
    right.validate()


def test_stereo_pair_rejects_bad_baseline() -> None:
    with pytest.raises(CameraInfoError, match=r"baseline_m > 0; got 0\.0"):
        rectified_stereo_camera_infos(640, 480, 800.0, 800.0, 320.0, 240.0, 0.0)


def test_stb_rig_constants() -> None:
    expected = StereoRigSpec(
        640, 480, 822.79041, 822.79041, 318.47345, 250.31296, 0.120054, name="stb_bumblebee2"
    )
    assert expected == STB_BUMBLEBEE2
    _, right = STB_BUMBLEBEE2.camera_infos()
    assert right.P[0, 3] == pytest.approx(-822.79041 * 0.120054)
