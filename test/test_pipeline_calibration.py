"""Tests of the per-user hand calibration (stereo_hand_mesh.pipeline.calibration), the fit with
a fixed shape, the model files that carry a calibration, create_pipeline applying it, and the
``calibrate`` command's refusal of a source without hands.

Keypoints are exact projections of template hands of a known, non-default shape (the numpy
kinematics of ``hand/``), with a little pixel noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from realdata_files import write_real_folder

from stereo_hand_mesh.cli import main
from stereo_hand_mesh.data.camera_info_yaml import rectified_stereo_camera_infos
from stereo_hand_mesh.errors import ConfigError, DataError, ModelFileError
from stereo_hand_mesh.geometry import StereoRig
from stereo_hand_mesh.hand.model import template_hand
from stereo_hand_mesh.hand.poses import GESTURES
from stereo_hand_mesh.hand.shape import NUM_SHAPE_PARAMS, SHAPE_PARAM_NAMES
from stereo_hand_mesh.pipeline.calibration import (
    CALIBRATION_INFO_KEY,
    CALIBRATION_METADATA_KEY,
    HandCalibration,
    calibrate_hand,
    calibration_fit,
    read_model_calibration,
    write_model_calibration,
)
from stereo_hand_mesh.pipeline.estimator import PipelineSettings
from stereo_hand_mesh.pipeline.factory import create_pipeline
from stereo_hand_mesh.pipeline.fit import FitSettings, fit_hand

MODELS = Path(__file__).resolve().parents[1] / "models"
LANDMARK_ONNX = MODELS / "hand_landmark_lite.onnx"
LANDMARK_NPZ = MODELS / "hand_landmark_lite.npz"
PALM_ONNX = MODELS / "palm_detection_lite.onnx"

#: A small hand with long index and short little fingers: far from the default (all 1).
USER_SHAPE = np.array([0.9, 1.05, 0.97, 1.0, 0.96, 1.06, 1.0, 0.98, 0.94])
#: An STB-like rig (Bumblebee2: f 822.8 px, baseline 0.12 m).
RIG = StereoRig.from_camera_info(
    *rectified_stereo_camera_infos(640, 480, 822.79, 822.79, 318.47, 250.31, 0.12)
)
K = np.array([RIG.left.fx, RIG.left.fy, RIG.left.cx, RIG.left.cy])


def _keypoints(shape: np.ndarray, pose_name: str, seed: int, noise_px: float) -> np.ndarray:
    """(2, 21, 2) keypoints of a template hand of ``shape`` in a gesture, turned and placed
    at random 0.45-0.6 m in front of the rig, projected into both views (+ noise)."""
    rng = np.random.default_rng(seed)
    pose = np.asarray(GESTURES[pose_name])[None]
    rot = rng.normal(0.0, 0.4, (1, 3))
    trans = np.array(
        [[rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), rng.uniform(0.45, 0.6)]]
    )
    _, joints = template_hand().skin(pose, shape[None], rot, trans)
    joints = joints[0]
    out = np.empty((2, 21, 2))
    for view, offset in enumerate((0.0, RIG.baseline)):
        out[view] = (joints[:, :2] - [offset, 0.0]) / joints[:, 2:] * K[:2] + K[2:]
    return out + rng.normal(0.0, noise_px, out.shape)


GESTURE_NAMES = ("relaxed", "flat", "spread", "point", "pinch", "count_2")


def test_calibration_recovers_a_known_shape_from_noisy_pairs() -> None:
    fits = [
        calibration_fit(_keypoints(USER_SHAPE, name, seed, 0.5), RIG)
        for seed in range(2)
        for name in GESTURE_NAMES
    ]
    calibration = calibrate_hand(fits, np.ones(len(fits)))
    got = np.array(calibration.shape)
    error = np.abs(got - USER_SHAPE)
    worst = int(np.argmax(error))
    # The overall scale (what the stereo pair measures) to 1%, the proportions to 2.5% (their
    # prior pulls them towards the mean hand a little).
    assert error[0] < 0.01, f"scale {got[0]:.4f}, want {USER_SHAPE[0]}"
    assert error.max() < 0.025, (
        f"worst factor {SHAPE_PARAM_NAMES[worst]}: {got[worst]:.4f}, want {USER_SHAPE[worst]}"
    )
    assert calibration.pairs == len(fits)
    # Single pairs are noisier than their median: the spread is reported and non-trivial.
    assert max(calibration.spread) > 0.0


def test_calibrate_hand_is_a_weighted_median_and_refuses_too_few_pairs() -> None:
    base = calibration_fit(_keypoints(USER_SHAPE, "relaxed", 0, 0.0), RIG)
    shapes = [0.9, 0.91, 0.92, 1.2, 1.19]
    fits = []
    for s in shapes:
        shape = base.shape.copy()
        shape[0] = s
        fits.append(type(base)(**{**base.__dict__, "shape": shape}))
    # Unit weights: the median (0.92), not the mean (1.02), whatever the two outliers say.
    assert calibrate_hand(fits, None, min_pairs=5).shape[0] == pytest.approx(0.92)
    # Weights move it: the two large ones outweigh the rest; weight 0 leaves a fit out.
    heavy = calibrate_hand(fits, [1, 1, 1, 5, 0], min_pairs=4)
    assert heavy.shape[0] == pytest.approx(1.2)
    assert heavy.pairs == 4
    with pytest.raises(DataError, match=r"at least 10 pairs; got 5"):
        calibrate_hand(fits)
    with pytest.raises(ConfigError, match=r"weights expected 5 finite values >= 0"):
        calibrate_hand(fits, [1, 1, -1, 1, 1], min_pairs=1)
    with pytest.raises(ConfigError, match=r"fits\[0\] expected a HandFit"):
        calibrate_hand(["fit"], min_pairs=1)


def test_fit_with_a_fixed_shape_holds_it_and_fits_the_rest() -> None:
    kp = _keypoints(USER_SHAPE, "spread", 3, 0.0)
    held = tuple(float(v) for v in USER_SHAPE)
    settings = FitSettings(fixed_shape=held)
    w = np.ones((2, 21))
    cold = fit_hand(kp[0], kp[1], K, K, RIG.baseline, w, settings=settings)
    np.testing.assert_array_equal(cold.shape, USER_SHAPE)
    assert np.abs(cold.residuals_px).max() < 0.5  # the right shape explains the keypoints
    warm = fit_hand(kp[0], kp[1], K, K, RIG.baseline, w, init=cold, settings=settings)
    np.testing.assert_array_equal(warm.shape, USER_SHAPE)
    # A wrong fixed shape is held too (and explains the keypoints worse than the free fit).
    wrong = FitSettings(fixed_shape=(1.1,) + (1.0,) * (NUM_SHAPE_PARAMS - 1))
    forced = fit_hand(kp[0], kp[1], K, K, RIG.baseline, w, settings=wrong)
    free = fit_hand(kp[0], kp[1], K, K, RIG.baseline, w)
    assert forced.shape[0] == 1.1
    assert np.median(forced.residuals_px) > np.median(free.residuals_px)


@pytest.mark.parametrize(
    "value, message",
    [
        ((1.0,) * 8, r"tuple of 9 shape factors"),
        ([1.0] * 9, r"tuple of 9 shape factors"),
        ((1.3,) + (1.0,) * 8, r"fixed_shape\[0\] \(scale\) expected a value in \[0.8, 1.2\]"),
        ((1.0,) * 8 + (float("nan"),), r"fixed_shape\[8\] \(little_length\)"),
    ],
)
def test_fixed_shape_validation(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FitSettings(fixed_shape=value)  # type: ignore[arg-type]


def _calibration() -> HandCalibration:
    return HandCalibration(
        shape=tuple(float(v) for v in USER_SHAPE),
        pairs=25,
        spread=(0.01,) * NUM_SHAPE_PARAMS,
        source="test recording 0:38",
    )


def test_json_round_trip_and_bad_json() -> None:
    cal = _calibration()
    assert HandCalibration.from_json(cal.to_json()) == cal
    data = json.loads(cal.to_json())
    assert data["shape"]["scale"] == 0.9 and data["version"] == 1
    with pytest.raises(ConfigError, match=r"expected JSON"):
        HandCalibration.from_json("{not json")
    with pytest.raises(ConfigError, match=r"expected version 1; got 2"):
        HandCalibration.from_json(json.dumps({**data, "version": 2}))
    del data["shape"]["thumb_length"]
    with pytest.raises(ConfigError, match=r"'shape' expected the factors"):
        HandCalibration.from_json(json.dumps(data))
    with pytest.raises(ConfigError, match=r"pairs expected an integer >= 1; got 0"):
        HandCalibration(shape=(1.0,) * NUM_SHAPE_PARAMS, pairs=0)


def test_onnx_model_round_trip_and_create_pipeline_applies_it(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    cal = _calibration()
    out = write_model_calibration(LANDMARK_ONNX, tmp_path / "user.onnx", cal)
    assert read_model_calibration(out) == cal
    assert read_model_calibration(LANDMARK_ONNX) is None
    # Writing again replaces the entry (one key, the new value) and keeps the keypoint entry.
    again = HandCalibration(shape=(1.0,) * NUM_SHAPE_PARAMS, pairs=3)
    write_model_calibration(out, out, again)
    import onnx

    keys = [e.key for e in onnx.load(str(out)).metadata_props]
    assert keys.count(CALIBRATION_METADATA_KEY) == 1 and "stereo_hand_mesh_keypoints" in keys
    assert read_model_calibration(out) == again
    write_model_calibration(LANDMARK_ONNX, out, cal)

    settings = PipelineSettings(smoothing=False)
    choice = create_pipeline(settings, "onnxruntime", out, PALM_ONNX)
    assert choice.calibration == cal
    assert choice.pipeline.settings.fit.fixed_shape == cal.shape
    ignored = create_pipeline(settings, "onnxruntime", out, PALM_ONNX, apply_calibration=False)
    assert ignored.calibration is None and ignored.pipeline.settings.fit.fixed_shape is None
    plain = create_pipeline(settings, "onnxruntime", LANDMARK_ONNX, PALM_ONNX)
    assert plain.calibration is None and plain.pipeline.settings.fit.fixed_shape is None


def test_npz_model_round_trip(tmp_path: Path) -> None:
    cal = _calibration()
    out = write_model_calibration(LANDMARK_NPZ, tmp_path / "user.npz", cal)
    assert read_model_calibration(out) == cal
    with np.load(out) as written, np.load(LANDMARK_NPZ) as original:
        assert sorted(written.files) == sorted(original.files)
        for name in original.files:
            if name != "graph_json":
                np.testing.assert_array_equal(written[name], original[name], err_msg=name)
        doc = json.loads(str(written["graph_json"][()]))
    assert doc["info"][CALIBRATION_INFO_KEY] == cal.to_dict()
    assert doc["info"]["kind"] == "hand_landmark"


def test_model_file_errors(tmp_path: Path) -> None:
    cal = _calibration()
    with pytest.raises(ModelFileError, match=r"kind 'hand_landmark'"):
        write_model_calibration(PALM_ONNX, tmp_path / "palm.onnx", cal)
    with pytest.raises(ConfigError, match=r"suffix of src \('.onnx'\)"):
        write_model_calibration(LANDMARK_ONNX, tmp_path / "x.npz", cal)
    with pytest.raises(ModelFileError, match=r"does not exist"):
        read_model_calibration(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.npz"
    np.savez(broken, graph_json=np.array(json.dumps({"info": {CALIBRATION_INFO_KEY: {}}})))
    with pytest.raises(ModelFileError, match=r"invalid hand calibration"):
        read_model_calibration(broken)


def test_calibrate_cli_refuses_a_source_without_hands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_real_folder(tmp_path / "nohands", frames=range(4), labels=False)
    out = tmp_path / "user.onnx"
    argv = ["calibrate", "--data", str(data), "--out", str(out), "--backend", "onnxruntime"]
    assert main([*argv, "--keypoint-variant", "lite"]) == 1
    err = capsys.readouterr().err
    assert "calibration expected a hand found in at least 10 pairs" in err
    assert "got 0 of 4" in err and "most common reasons" in err
    assert not out.exists()
    # The selection is applied (and named): two pairs played.
    assert main([*argv, "--frames", "2:", "--min-pairs", "1"]) == 1
    assert "got 0 of 2" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["38", "a:b", "-1:5", "5:2", "1:2:3", "3:3"])
def test_calibrate_cli_rejects_bad_frames(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["calibrate", "--data", "x", "--out", "y.onnx", f"--frames={bad}"])
    assert exit_info.value.code == 2
    assert "frames expected" in capsys.readouterr().err
