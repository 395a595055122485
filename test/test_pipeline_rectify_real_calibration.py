"""``rectify: true`` on real calibrations: raw views seen through a real rig's distortion and
rectifying rotations, rectified back by the node's input stage, give the joints the pipeline
gives on the rectified views rendered directly.

Calibrations (published raw calibrations of real stereo rigs, turned into camera_info the
way ROS's camera_calibration does, by
:func:`~stereo_hand_mesh.geometry.rectify.stereo_camera_infos_from_calibration`):

* plumb_bob: the EuRoC MAV dataset's cam0/cam1 (MT9V034 pair, 752x480, radial-tangential
  k1 k2 p1 p2, about 11 cm baseline; its ``sensor.yaml`` files, body-to-sensor T_BS).
* equidistant: the TUM VI dataset's cam0/cam1 (512x512 fisheye, Kannala-Brandt k1..k4,
  about 10 cm baseline; its Kalibr camchain, IMU-to-camera T_SC).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from stereo_hand_mesh.data.camera_info_yaml import StereoRigSpec
from stereo_hand_mesh.data.synth import SynthSettings, iter_synthetic_pairs
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields
from stereo_hand_mesh.geometry.rectify import stereo_camera_infos_from_calibration
from stereo_hand_mesh.pipeline.factory import create_pipeline
from stereo_hand_mesh.pipeline.stereo_input import StereoInput
from stereo_hand_mesh.ros.hand_mesh_parameters import HAND_MESH_PARAMETERS, pipeline_settings_from


def _k(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _left_to_right(t_body_left: list[float], t_body_right: list[float]) -> np.ndarray:
    """4x4 transform taking left-camera points to right-camera points from the two
    camera-to-body transforms (row-major 4x4 lists, as the datasets publish them)."""
    bl, br = np.array(t_body_left).reshape(4, 4), np.array(t_body_right).reshape(4, 4)
    return np.linalg.inv(br) @ bl


_EUROC_T_BS = (
    [0.0148655429818, -0.999880929698, 0.00414029679422, -0.0216401454975,
     0.999557249008, 0.0149672133247, 0.025715529948, -0.064676986768,
     -0.0257744366974, 0.00375618835797, 0.999660727178, 0.00981073058949,
     0.0, 0.0, 0.0, 1.0],
    [0.0125552670891, -0.999755099723, 0.0182237714554, -0.0198435579556,
     0.999598781151, 0.0130119051815, 0.0251588363115, 0.0453689425024,
     -0.0253898008918, 0.0179005838253, 0.999517347078, 0.00786212447038,
     0.0, 0.0, 0.0, 1.0],
)  # fmt: skip
_TUMVI_T_SC = (
    [-0.99953071, 0.00744168, -0.02971511, 0.04536566,
     0.0294408, -0.03459565, -0.99896766, -0.071996,
     -0.00846201, -0.99937369, 0.03436032, -0.04478181,
     0.0, 0.0, 0.0, 1.0],
    [-0.99951678, 0.00803569, -0.03002713, -0.05566603,
     0.03012473, 0.01231336, -0.9994703, -0.07010225,
     -0.0076617, -0.9998919, -0.01254948, -0.0475471,
     0.0, 0.0, 0.0, 1.0],
)  # fmt: skip


def _euroc() -> tuple[CameraInfoFields, CameraInfoFields]:
    t = _left_to_right(*_EUROC_T_BS)
    return stereo_camera_infos_from_calibration(
        752, 480,
        _k(458.654, 457.296, 367.215, 248.375),
        [-0.28340811, 0.07395907, 0.00019359, 1.76187114e-05, 0.0],
        _k(457.587, 456.134, 379.999, 255.238),
        [-0.28368365, 0.07451284, -0.00010473, -3.55590700e-05, 0.0],
        t[:3, :3], t[:3, 3], "plumb_bob",
    )  # fmt: skip


def _tumvi() -> tuple[CameraInfoFields, CameraInfoFields]:
    t = _left_to_right(*_TUMVI_T_SC)
    return stereo_camera_infos_from_calibration(
        512, 512,
        _k(190.97847715128717, 190.9733070521226, 254.93170605935475, 256.8974428996504),
        [0.0034823894022493434, 0.0007150348452162257, -0.0020532361418706202,
         0.00020293673591811182],
        _k(190.44236969414825, 190.4344384721956, 252.59949716835982, 254.91723064636983),
        [0.0034003170790442797, 0.001766278153469831, -0.00266312569781606,
         0.0003299517423931039],
        t[:3, :3], t[:3, 3], "equidistant", fov_scale=0.35,
    )  # fmt: skip


def _raw_view(rectified: np.ndarray, info: CameraInfoFields) -> np.ndarray:
    """What the raw camera of ``info`` sees, made from the rectified view: each raw pixel
    samples the rectified pixel its K, D, R, P send it to."""
    h, w = info.height, info.width
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    raw_px = np.stack([u, v], axis=-1).reshape(-1, 1, 2)
    if info.distortion_model == "equidistant":
        rect_px = cv2.fisheye.undistortPoints(
            raw_px, info.K, info.D.reshape(4, 1), R=info.R, P=info.P[:, :3]
        )
    else:
        rect_px = cv2.undistortPoints(raw_px, info.K, info.D, R=info.R, P=info.P[:, :3])
    rect_px = rect_px.reshape(h, w, 2).astype(np.float32)
    return cv2.remap(rectified, rect_px[..., 0], rect_px[..., 1], cv2.INTER_LINEAR)


@pytest.fixture(scope="module")
def pipeline():
    params = {s.name: s.default for s in HAND_MESH_PARAMETERS}
    params |= {"smoothing": False, "tracking": False}
    return create_pipeline(pipeline_settings_from(params), "onnxruntime").pipeline


@pytest.mark.parametrize("rig_name", ["euroc_plumb_bob", "tumvi_equidistant"])
def test_rectify_true_on_a_real_calibration_gives_the_rendered_rectified_joints(
    pipeline, rig_name
):
    left_info, right_info = _euroc() if rig_name == "euroc_plumb_bob" else _tumvi()
    assert left_info.distortion_model == ("plumb_bob" if "euroc" in rig_name else "equidistant")
    rig = StereoRig.from_camera_info(left_info.validate(), right_info.validate())
    assert 0.09 < rig.baseline < 0.12  # the published rigs: about 11 cm and 10 cm
    p = left_info.P
    spec = StereoRigSpec(
        left_info.width, left_info.height, p[0, 0], p[1, 1], p[0, 2], p[1, 2], rig.baseline
    )
    # The hand kept off the border: toward a fisheye's edge the raw view has fewer pixels per
    # degree than the rectified one, so there rectification blurs whatever its accuracy.
    margin = 40 if "euroc" in rig_name else 110
    settings = SynthSettings(
        domain="source", rig=spec, depth_range_m=(0.3, 0.45), margin_px=margin
    )
    stage = StereoInput(rectify=True)
    compared = 0
    for pair in iter_synthetic_pairs(settings, 4, seed=11):
        reference = pipeline.process(pair.left, pair.right, rig, 0.0, None)
        if not reference.found:
            continue  # the palm detector misses some renders; this test is about rectification
        raw_left, raw_right = _raw_view(pair.left, left_info), _raw_view(pair.right, right_info)
        assert np.abs(raw_left.astype(int) - pair.left).mean() > 3  # the raw views differ
        prepared = stage.prepare(raw_left, raw_right, left_info, right_info)
        est = pipeline.process(prepared.left, prepared.right, prepared.rig, 0.0, None)
        if not est.found:
            # Seen once on the fisheye: the twice-resampled right view's presence fell below
            # min_presence. Counted, not compared; most pairs must still compare below.
            print(f"{rig_name}: no hand after rectification: {est.reason}")
            continue
        gap_mm = np.linalg.norm(est.joints - reference.joints, axis=1) * 1e3
        # In units of one pixel of disparity at the hand's depth (z^2 / (f B): 3.5 mm on the
        # EuRoC rig, 9 mm on the TUM VI one at 0.4 m): the two resamplings (raw view made,
        # then rectified) blur the image, which moves a keypoint by a pixel or so (one
        # fingertip up to 8 px-equivalents, seen); a rectification error moves them all.
        z = float(np.mean(reference.joints[:, 2]))
        mm_per_px = z * z / (left_info.P[0, 0] * rig.baseline) * 1e3
        print(f"{rig_name}: mean {gap_mm.mean():.1f} median {np.median(gap_mm):.1f} max "
              f"{gap_mm.max():.1f} mm; 1 px of disparity = {mm_per_px:.1f} mm")  # fmt: skip
        assert gap_mm.mean() < 2.0 * mm_per_px and np.median(gap_mm) < 1.5 * mm_per_px, (
            f"{rig_name}: rectified raw vs rendered rectified: mean {gap_mm.mean():.1f} mm, "
            f"median {np.median(gap_mm):.1f} mm (1 px of disparity: {mm_per_px:.1f} mm), max "
            f"{gap_mm.max():.1f} mm at joint {int(gap_mm.argmax())}"
        )
        truth_mm = np.linalg.norm(est.joints - pair.annotation["joints"], axis=1).mean() * 1e3
        assert truth_mm < 40.0, f"{rig_name}: {truth_mm:.1f} mm from the true joints"
        # Control: the same raw views without rectification (R = I, no distortion) move the
        # joints far: the agreement above is the rectification's doing.
        naive = StereoInput(rectify=False).prepare(raw_left, raw_right, left_info, right_info)
        wrong = pipeline.process(naive.left, naive.right, naive.rig, 0.0, None)
        if wrong.found:
            wrong_mm = np.linalg.norm(wrong.joints - reference.joints, axis=1).mean() * 1e3
            assert wrong_mm > 2 * gap_mm.mean(), (wrong_mm, gap_mm.mean())
        compared += 1
    assert compared >= 2, f"{rig_name}: only {compared} of 4 renders had a hand to compare"


def test_equidistant_needs_four_coefficients():
    from stereo_hand_mesh.errors import CameraInfoError
    from stereo_hand_mesh.geometry.rectify import rectification_maps

    left, _ = _tumvi()
    with pytest.raises(CameraInfoError, match=r"expected 4 coefficients .* got 5"):
        rectification_maps(replace(left, D=np.zeros(5)))
