"""Tests of the stereo geometry layer (cameras, rigs, triangulation, crops, rectification)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from stereo_hand_mesh.errors import CameraInfoError, ConfigError, ShapeError
from stereo_hand_mesh.geometry import (
    DEFAULT_MIN_DISPARITY,
    CameraInfoFields,
    CropBox,
    PinholeCamera,
    StereoRig,
    crop_images,
    crop_intrinsics,
    crop_to_image,
    cut_crop,
    disparity_from_depth,
    image_to_crop,
    intrinsics_vector,
    points_from_disparity,
    project_points,
    rectification_maps,
    rectify,
    unproject_points,
)

# STB's Bumblebee2 (DESIGN.md): rectified, 640 x 480.
FX, CX, CY, BASELINE = 822.79041, 318.47345, 250.31296, 0.120054


def camera_info(tx: float = 0.0, **overrides: object) -> CameraInfoFields:
    """A rectified STB CameraInfo; ``tx`` is P[0, 3] (``-fx * B`` for the right camera)."""
    fields: dict[str, object] = {
        "width": 640,
        "height": 480,
        "K": [[FX, 0.0, CX], [0.0, FX, CY], [0.0, 0.0, 1.0]],
        "D": [0.0] * 5,
        "R": np.eye(3),
        "P": [[FX, 0.0, CX, tx], [0.0, FX, CY, 0.0], [0.0, 0.0, 1.0, 0.0]],
        "frame_id": "left_optical",
    }
    fields.update(overrides)
    return CameraInfoFields(**fields)  # type: ignore[arg-type]


@pytest.fixture
def rig() -> StereoRig:
    return StereoRig.from_camera_info(camera_info(), camera_info(tx=-FX * BASELINE))


def random_points(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.3, 0.9, n)
    x = rng.uniform(-0.3, 0.3, n) * z
    y = rng.uniform(-0.2, 0.2, n) * z
    return np.stack([x, y, z], axis=1)


# ----------------------------------------------------------------------- cameras, rig


def test_baseline_from_real_bumblebee2_camera_info(rig: StereoRig) -> None:
    # The right P of STB's Bumblebee2 as a ROS driver publishes it: Tx = -fx * B.
    right_p = np.array([[FX, 0.0, CX, -98.779280], [0.0, FX, CY, 0.0], [0.0, 0.0, 1.0, 0.0]])
    rig2 = StereoRig.from_camera_info(camera_info(), camera_info(P=right_p))
    assert math.isclose(rig2.baseline, 0.120054, abs_tol=1e-8)
    assert math.isclose(rig.baseline, BASELINE, rel_tol=1e-12)
    assert rig.focal == FX and rig.disparity_offset == 0.0
    assert rig.left.frame_id == "left_optical"
    assert rig.left.intrinsics.tolist() == [FX, FX, CX, CY]


def test_baseline_from_zed_like_camera_info() -> None:
    # ZED 2 at HD720 after rectification: fx = 528.7, B = 0.12 m -> Tx = -63.444.
    p_left = [[528.7, 0.0, 640.6, 0.0], [0.0, 528.7, 360.3, 0.0], [0.0, 0.0, 1.0, 0.0]]
    p_right = [[528.7, 0.0, 640.6, -63.444], [0.0, 528.7, 360.3, 0.0], [0.0, 0.0, 1.0, 0.0]]
    k = [[528.7, 0.0, 640.6], [0.0, 528.7, 360.3], [0.0, 0.0, 1.0]]
    left = CameraInfoFields(1280, 720, k, [0.0] * 5, np.eye(3), p_left)
    right = CameraInfoFields(1280, 720, k, [0.0] * 5, np.eye(3), p_right)
    assert math.isclose(StereoRig.from_camera_info(left, right).baseline, 0.12, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("right", "match"),
    [
        (camera_info(tx=-FX * BASELINE, width=320), r"width x height expected 640x480"),
        (
            camera_info(P=[[FX * 1.01, 0, CX, -FX * BASELINE], [0, FX, CY, 0], [0, 0, 1, 0]]),
            r"fx \(P\[0, 0\]\) expected",
        ),
        (
            camera_info(P=[[FX, 0, CX, -FX * BASELINE], [0, FX, CY + 5, 0], [0, 0, 1, 0]]),
            r"cy \(P\[1, 2\]\) expected",
        ),
        (camera_info(tx=FX * BASELINE), r"P\[0, 3\] expected -fx \* baseline with baseline > 0"),
        (camera_info(tx=0.0), r"got P\[0, 3\]=0.0 \(baseline"),
        (camera_info(tx=float("nan")), r"P expected finite values"),
    ],
)
def test_rig_validation_names_field_and_value(right: CameraInfoFields, match: str) -> None:
    with pytest.raises(CameraInfoError, match=match):
        StereoRig.from_camera_info(camera_info(), right)


def test_rig_rejects_left_translation() -> None:
    with pytest.raises(CameraInfoError, match=r"P\[0, 3\] \(left\)"):
        StereoRig.from_camera_info(camera_info(tx=-10.0), camera_info(tx=-FX * BASELINE))


def test_projection_and_disparity(rig: StereoRig) -> None:
    pts = random_points(50)
    uv_l, uv_r = rig.project_left(pts), rig.project_right(pts)
    np.testing.assert_allclose(uv_l[:, 1], uv_r[:, 1])  # same rows
    np.testing.assert_allclose(uv_l[:, 0] - uv_r[:, 0], FX * BASELINE / pts[:, 2], rtol=1e-12)
    np.testing.assert_allclose(rig.disparity_from_depth(pts[:, 2]), uv_l[:, 0] - uv_r[:, 0])
    # OpenCV golden value for the left view.
    cv_uv, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), rig.left.P[:, :3], None)
    np.testing.assert_allclose(uv_l, cv_uv[:, 0], atol=1e-9)


def test_round_trip_project_triangulate(rig: StereoRig) -> None:
    pts = random_points(500, seed=1)
    out = rig.triangulate(rig.project_left(pts), rig.project_right(pts))
    assert out.valid.all()
    err = np.abs(out.points - pts).max()
    assert err < 1e-6, f"round trip error {err:.2e} m"


def test_round_trip_with_principal_point_offset() -> None:
    right = camera_info(P=[[FX, 0, CX - 7.5, -FX * BASELINE], [0, FX, CY, 0], [0, 0, 1, 0]])
    rig = StereoRig.from_camera_info(camera_info(), right)
    assert rig.disparity_offset == 7.5
    pts = random_points(100, seed=2)
    out = rig.triangulate(rig.project_left(pts), rig.project_right(pts))
    assert np.abs(out.points - pts).max() < 1e-6


def test_invalid_disparities_are_flagged_and_finite(rig: StereoRig) -> None:
    uv = np.array([[300.0, 200.0]] * 6)
    uv[5, 0] = np.nan
    disparity = np.array([0.0, -3.0, 0.5, np.nan, np.inf, 50.0])
    out = rig.points_from_disparity(uv, disparity, fill=0.0)
    assert out.valid.tolist() == [False, False, False, False, False, False]
    assert np.isfinite(out.points).all()
    assert (out.points == 0.0).all()
    out = rig.points_from_disparity(uv[:1], np.array([50.0]), min_disparity=DEFAULT_MIN_DISPARITY)
    assert out.valid.all() and math.isclose(out.points[0, 2], FX * BASELINE / 50.0)
    out = rig.points_from_disparity(uv[:1], np.array([0.7]), min_disparity=0.5, fill=-1.0)
    assert out.valid.all()
    out = rig.points_from_disparity(uv[:1], np.array([0.7]), min_disparity=1.0, fill=-1.0)
    assert not out.valid.any() and (out.points == -1.0).all()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_min_disparity_must_be_positive(rig: StereoRig, bad: float) -> None:
    with pytest.raises(ConfigError, match="min_disparity expected a finite value > 0"):
        rig.points_from_disparity(np.zeros((1, 2)), np.ones(1), min_disparity=bad)
    with pytest.raises(ConfigError, match="min_disparity expected a finite value > 0"):
        points_from_disparity(
            torch.zeros(1, 1, 2), torch.ones(1, 1), torch.ones(1, 4), torch.ones(1), bad
        )


def test_geometry_shape_errors(rig: StereoRig) -> None:
    with pytest.raises(ShapeError, match=r"points expected shape .*3\); got \(4, 2\)"):
        rig.project_left(np.zeros((4, 2)))
    with pytest.raises(ShapeError, match=r"uv expected shape .*2\); got \(4, 3\)"):
        rig.left.backproject(np.zeros((4, 3)), np.ones(4))
    with pytest.raises(ShapeError, match=r"disparity expected shape \(4,\); got \(5,\)"):
        rig.points_from_disparity(np.zeros((4, 2)), np.ones(5))
    with pytest.raises(
        ShapeError, match=r"uv_right expected the shape of uv_left \(4, 2\); got \(3, 2\)"
    ):
        rig.triangulate(np.zeros((4, 2)), np.zeros((3, 2)))
    with pytest.raises(ShapeError, match=r"points expected shape .*2\); got \(3, 3\)"):
        image_to_crop(np.zeros((3, 3)), CropBox(0, 0, 10, 10))
    with pytest.raises(ShapeError, match=r"points expected shape .*2\); got \(3,\)"):
        crop_to_image(np.zeros(3), CropBox(0, 0, 10, 10))
    with pytest.raises(ShapeError, match=r"image expected shape \(H, W\) or \(H, W, C\)"):
        cut_crop(np.zeros((2, 2, 2, 2)), CropBox(0, 0, 10, 10))
    with pytest.raises(ShapeError, match=r"points expected shape \(B, \*, 3\)"):
        project_points(torch.zeros(4, 3), torch.ones(4, 4))
    with pytest.raises(
        ShapeError, match=r"intrinsics expected shape \(B, 4\) or \(B, 3, 3\); got \(4,\)"
    ):
        intrinsics_vector(torch.ones(4))
    with pytest.raises(ShapeError, match=r"depth expected shape \(2, 5\)"):
        unproject_points(torch.zeros(2, 5, 2), torch.zeros(2, 4), torch.ones(2, 4))
    with pytest.raises(ShapeError, match=r"boxes expected shape \(2, 3\)"):
        crop_intrinsics(torch.ones(2, 4), torch.ones(3, 3), 64)
    with pytest.raises(ShapeError, match=r"images expected shape \(B, \*, H, W\)"):
        crop_images(torch.zeros(3, 8, 8), torch.ones(3, 3), 4)
    with pytest.raises(ShapeError, match=r"focal_baseline expected shape \(2,?\); got \(3,\)"):
        disparity_from_depth(torch.ones(2, 4, 4), torch.ones(3))
    with pytest.raises(ShapeError, match=r"disparity expected shape \(1, 3\)"):
        points_from_disparity(
            torch.zeros(1, 3, 2), torch.ones(1, 4), torch.ones(1, 4), torch.ones(1)
        )


# ------------------------------------------------------------------------------ crops


def test_crop_box_validation() -> None:
    box = CropBox(10, 20, 200, 128)
    assert box.scale == 128 / 200 and box.as_array().tolist() == [10.0, 20.0, 200.0]
    with pytest.raises(ConfigError, match=r"CropBox\.side expected > 0"):
        CropBox(0, 0, 0, 128)
    with pytest.raises(ConfigError, match=r"CropBox\.out_size expected an integer >= 1"):
        CropBox(0, 0, 10, 0)
    with pytest.raises(ConfigError, match=r"CropBox\.x0 expected a finite value"):
        CropBox(float("nan"), 0, 10, 10)


def test_crop_transforms_invert_numpy_and_torch() -> None:
    box = CropBox(x0=123.4, y0=56.7, side=211.3, out_size=128)
    pts = np.random.default_rng(0).uniform(0, 640, (100, 2))
    np.testing.assert_allclose(crop_to_image(image_to_crop(pts, box), box), pts, atol=1e-9)
    np.testing.assert_allclose(
        image_to_crop(np.array([box.x0, box.y0]), box), [0.0, 0.0], atol=1e-12
    )
    t = torch.as_tensor(pts, dtype=torch.float64)
    assert torch.allclose(crop_to_image(image_to_crop(t, box), box), t, atol=1e-9)
    assert isinstance(image_to_crop(t, box), torch.Tensor)


def test_cut_crop_samples_the_mapped_points() -> None:
    # An aligned, unscaled box is a plain slice (OpenCV golden).
    image = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    crop = cut_crop(image, CropBox(100, 50, 64, 64))
    np.testing.assert_array_equal(crop, image[50:114, 100:164])
    # A bright dot lands where image_to_crop says, for an upscaling and a shrinking box.
    for box in (CropBox(300.25, 200.5, 40.0, 128), CropBox(250.0, 150.0, 300.0, 128)):
        img = np.zeros((480, 640), np.float32)
        yy, xx = np.mgrid[0:480, 0:640]
        img[:] = np.exp(-((xx - 320.0) ** 2 + (yy - 230.0) ** 2) / (2 * 6.0**2))
        out = cut_crop(img, box)
        peak = np.unravel_index(np.argmax(out), out.shape)
        expected = image_to_crop(np.array([320.0, 230.0]), box)
        assert abs(peak[1] - expected[0]) <= 1.0 and abs(peak[0] - expected[1]) <= 1.0
    # Outside the image: border value.
    outside = cut_crop(image, CropBox(-500, -500, 100, 16), border_value=7)
    assert (outside == 7).all() and outside.shape == (16, 16, 3)


def test_torch_crops_match_opencv(device: torch.device) -> None:
    rng = np.random.default_rng(2)
    image = rng.uniform(0, 1, (120, 160, 3)).astype(np.float32)
    boxes = [CropBox(10.3, 20.7, 50.0, 64), CropBox(-5.0, 80.0, 60.0, 64)]
    ref = np.stack([cut_crop(image, b, antialias=False) for b in boxes])
    t = torch.as_tensor(image).permute(2, 0, 1)[None].repeat(2, 1, 1, 1).to(device)
    box_t = torch.tensor(
        np.stack([b.as_array() for b in boxes]), dtype=torch.float32, device=device
    )
    out = crop_images(t, box_t, 64).permute(0, 2, 3, 1).cpu().numpy()
    inside = np.zeros_like(ref, dtype=bool)
    inside[0] = True
    inside[1, :, 6:] = True  # the second box starts 5 px left of the image
    err = np.abs(out - ref)[inside]
    assert err.max() < 2e-2, f"max difference {err.max():.3e}"


def test_crop_intrinsics_match_crop_transform(device: torch.device) -> None:
    pts = torch.as_tensor(random_points(20), dtype=torch.float64, device=device)[None]
    k = torch.tensor([[FX, FX, CX, CY]], dtype=torch.float64, device=device)
    box = CropBox(200.0, 150.0, 180.0, 128)
    box_t = torch.as_tensor(box.as_array()[None], dtype=torch.float64, device=device)
    direct = project_points(pts, crop_intrinsics(k, box_t, 128))
    via_image = image_to_crop(project_points(pts, k), box)
    assert torch.allclose(direct, via_image, atol=1e-9)
    k33 = torch.tensor([[[FX, 0, CX], [0, FX, CY], [0, 0, 1]]], dtype=torch.float64, device=device)
    assert torch.equal(intrinsics_vector(k33), k)


# ----------------------------------------------------------------- batched torch maps


def test_batched_triangulation_matches_numpy(rig: StereoRig, device: torch.device) -> None:
    pts = random_points(200, seed=3)
    uv_l, uv_r = rig.project_left(pts), rig.project_right(pts)
    uv = torch.as_tensor(uv_l, device=device)[None]
    disp = torch.as_tensor(uv_l[:, 0] - uv_r[:, 0], device=device)[None]
    k = torch.tensor([[FX, FX, CX, CY]], dtype=torch.float64, device=device)
    out, valid = points_from_disparity(
        uv, disp, k, torch.tensor([BASELINE], dtype=torch.float64, device=device)
    )
    assert bool(valid.all())
    assert float((out[0].cpu() - torch.as_tensor(pts)).abs().max()) < 1e-6
    back = project_points(out, k)
    assert torch.allclose(back, uv, atol=1e-9)
    assert torch.allclose(unproject_points(back, out[..., 2], k), out, atol=1e-12)


def test_batched_triangulation_invalid_has_finite_gradient(device: torch.device) -> None:
    uv = torch.tensor(
        [[[300.0, 200.0], [310.0, 190.0], [float("nan"), 1.0]]], device=device, requires_grad=True
    )
    disp = torch.tensor([[0.0, 40.0, 40.0]], device=device, requires_grad=True)
    k = torch.tensor([[FX, FX, CX, CY]], device=device)
    pts, valid = points_from_disparity(
        uv, disp, k, torch.tensor([BASELINE], device=device), fill=0.0
    )
    assert valid.tolist() == [[False, True, False]]
    assert bool(torch.isfinite(pts).all())
    pts.sum().backward()
    assert bool(torch.isfinite(uv.grad).all()) and bool(torch.isfinite(disp.grad).all())
    assert float(disp.grad[0, 0]) == 0.0


def test_disparity_from_depth_background_is_zero(device: torch.device) -> None:
    depth = torch.tensor([[[0.0, 0.5], [1.0, -1.0]]], device=device, requires_grad=True)
    d = disparity_from_depth(depth, torch.tensor([FX * BASELINE], device=device), offset=2.0)
    assert d[0, 0, 0] == 0 and d[0, 1, 1] == 0
    assert math.isclose(float(d[0, 0, 1].detach()), FX * BASELINE / 0.5 + 2.0, rel_tol=1e-6)
    d.sum().backward()
    assert bool(torch.isfinite(depth.grad).all())


# ----------------------------------------------------------------------- rectification


@pytest.mark.parametrize("map_type", [cv2.CV_16SC2, cv2.CV_32FC1])
def test_identity_rectification_leaves_image_unchanged(map_type: int) -> None:
    info = camera_info()
    info = CameraInfoFields(
        640, 480, info.K, np.zeros(5), np.eye(3), np.hstack([info.K, np.zeros((3, 1))])
    )
    image = np.random.default_rng(3).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    out = rectify(image, rectification_maps(info, map_type))
    np.testing.assert_array_equal(out, image)


def test_rectification_matches_opencv_undistort() -> None:
    k = np.array([[FX, 0.0, CX], [0.0, FX, CY], [0.0, 0.0, 1.0]])
    d = np.array([-0.2, 0.05, 0.001, -0.0005, 0.0])
    info = CameraInfoFields(640, 480, k, d, np.eye(3), np.hstack([k, np.zeros((3, 1))]))
    image = np.random.default_rng(4).integers(0, 255, (480, 640), dtype=np.uint8)
    ours = rectify(image, rectification_maps(info))
    golden = cv2.undistort(image, k, d)
    assert np.abs(ours.astype(int) - golden.astype(int)).max() <= 1


def test_rectify_errors() -> None:
    maps = rectification_maps(camera_info())
    with pytest.raises(ShapeError, match=r"image expected shape \(480, 640\[, C\]\)"):
        rectify(np.zeros((240, 320), np.uint8), maps)
    with pytest.raises(CameraInfoError, match="distortion_model expected one of"):
        rectification_maps(camera_info(distortion_model="double_sphere"))


def test_pinhole_camera_backproject_inverts_project(rig: StereoRig) -> None:
    pts = random_points(30, seed=5)
    for cam in (rig.left, rig.right):
        assert isinstance(cam, PinholeCamera)
        np.testing.assert_allclose(cam.backproject(cam.project(pts), pts[:, 2]), pts, atol=1e-12)
