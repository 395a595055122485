"""The stereo input stage (pipeline/stereo_input.py): checks, rectification, cached rig, maps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from stereo_hand_mesh.errors import CameraInfoError, ShapeError
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields
from stereo_hand_mesh.geometry.rectify import rectification_maps, rectify
from stereo_hand_mesh.pipeline.stereo_input import StereoInput, camera_info_key

W, H = 64, 48
FX, CX, CY = 80.0, 31.5, 23.5
BASELINE_M = 0.1


def _info(tx: float = 0.0, frame_id: str = "left") -> CameraInfoFields:
    K = np.array([[FX, 0.0, CX], [0.0, FX, CY], [0.0, 0.0, 1.0]])
    P = np.hstack([K, [[tx], [0.0], [0.0]]])
    return CameraInfoFields(W, H, K, np.zeros(5), np.eye(3), P, frame_id=frame_id)


def _rotation_y(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray, CameraInfoFields, CameraInfoFields]:
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    right = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return left, right, _info(), _info(-FX * BASELINE_M, "right")


def test_without_rectification_the_images_pass_and_the_rig_is_built_once(pair):
    left, right, left_info, right_info = pair
    stage = StereoInput(rectify=False)
    first = stage.prepare(left, right, left_info, right_info)
    assert first.left is left and first.right is right
    assert first.rig.baseline == pytest.approx(BASELINE_M)
    # Equal contents in new objects (the next messages of the stream): the cached rig.
    again = stage.prepare(left.copy(), right.copy(), _info(), _info(-FX * BASELINE_M, "right"))
    assert again.rig is first.rig
    assert (stage.rig_builds, stage.map_builds) == (1, 0)


def _changes(info: CameraInfoFields) -> dict[str, CameraInfoFields]:
    K = info.K.copy()
    K[0, 0] += 1.0
    P = info.P.copy()
    P[0, 2] += 1.0  # cx of the rectified image
    return {
        "K": replace(info, K=K),
        "D": replace(info, D=np.array([0.01, 0.0, 0.0, 0.0, 0.0])),
        "R": replace(info, R=_rotation_y(0.5)),
        "P": replace(info, P=P),
        "distortion_model": replace(info, distortion_model="rational_polynomial"),
        "D length": replace(info, D=np.zeros(8)),
    }


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("name", ["K", "D", "R", "P", "distortion_model", "D length"])
def test_a_change_of_any_calibration_field_builds_a_new_rig(pair, side, name):
    left, right, left_info, right_info = pair
    stage = StereoInput(rectify=False)
    first = stage.prepare(left, right, left_info, right_info)
    infos = {"left": left_info, "right": right_info}
    infos[side] = _changes(infos[side])[name]
    changed = stage.prepare(left, right, infos["left"], infos["right"])
    assert changed.rig is not first.rig
    assert stage.rig_builds == 2
    # Back to the first calibration: still cached.
    assert stage.prepare(left, right, left_info, right_info).rig is first.rig
    assert stage.rig_builds == 2


def test_a_change_of_size_builds_a_new_rig_and_names_are_not_part_of_the_key(pair):
    left, right, left_info, right_info = pair
    stage = StereoInput()
    first = stage.prepare(left, right, left_info, right_info)
    renamed = replace(left_info, frame_id="other", camera_name="cam")
    assert camera_info_key(renamed) == camera_info_key(left_info)
    assert stage.prepare(left, right, renamed, right_info).rig is first.rig
    bigger = [replace(i, width=W * 2, height=H * 2) for i in (left_info, right_info)]
    assert stage.prepare(left, right, *bigger).rig is not first.rig
    assert stage.rig_builds == 2


def test_rectification_uses_each_views_maps_and_caches_them(pair):
    left, right, left_info, right_info = pair
    raw_left = replace(left_info, D=np.array([-0.2, 0.05, 0.001, 0.0, 0.0]), R=_rotation_y(1.0))
    raw_right = replace(right_info, D=np.array([-0.1, 0.02, 0.0, 0.001, 0.0]))
    stage = StereoInput(rectify=True)
    out = stage.prepare(left, right, raw_left, raw_right)
    np.testing.assert_array_equal(out.left, rectify(left, rectification_maps(raw_left)))
    np.testing.assert_array_equal(out.right, rectify(right, rectification_maps(raw_right)))
    assert np.abs(out.left.astype(int) - left).mean() > 5  # the distortion is not trivial
    assert out.rig.baseline == pytest.approx(BASELINE_M)
    assert (stage.map_builds, stage.rig_builds) == (2, 1)
    stage.prepare(left, right, raw_left, raw_right)
    assert (stage.map_builds, stage.rig_builds) == (2, 1)
    # Only R changes on the left (a recalibration): new left maps, not served stale ones.
    rotated = replace(raw_left, R=_rotation_y(-1.0))
    out2 = stage.prepare(left, right, rotated, raw_right)
    np.testing.assert_array_equal(out2.left, rectify(left, rectification_maps(rotated)))
    assert not np.array_equal(out2.left, out.left)
    assert (stage.map_builds, stage.rig_builds) == (3, 2)


def test_bad_inputs_raise_and_are_not_cached(pair):
    left, right, left_info, right_info = pair
    stage = StereoInput(rectify=False)
    with pytest.raises(ShapeError, match="right image expected 64x48"):
        stage.prepare(left, right[:, :-1], left_info, right_info)
    P = right_info.P.copy()
    P[0, 0] = 0.0
    with pytest.raises(CameraInfoError, match="positive focal lengths"):
        stage.prepare(left, right, left_info, replace(right_info, P=P))
    with pytest.raises(CameraInfoError):
        stage.prepare(left, right, replace(left_info, width=0), right_info)
    assert stage.rig_builds == 0
    assert stage.prepare(left, right, left_info, right_info).rig.baseline == pytest.approx(0.1)
    # Raw images of another size than their camera_info cannot be rectified.
    rectifying = StereoInput(rectify=True)
    small = left[:-2], right[:-2]
    with pytest.raises(ShapeError, match="the camera_info size"):
        rectifying.prepare(*small, left_info, right_info)
