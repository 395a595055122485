"""Tests of RotatedCrop (stereo_hand_mesh.geometry.crop): its maps against a per-point
formula, their round trip, where cut_crop samples a rotated crop, the axis-aligned case
against CropBox, and validation.

The maps (module docstring of geometry/crop.py)::

    crop  = R(a)^T (image - c) * s + (S - 1) / 2
    image = R(a) (crop - (S - 1) / 2) / s + c

with ``R(a)``'s columns the crop's axes in the image, ``x_c = (cos a, sin a)`` and
``y_c = (-sin a, cos a)``. cut_crop samples through OpenCV's warpAffine, whose bilinear
weights sit on a 1/32 pixel grid: sampled positions are exact to 0.017 pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import skimage.data

from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.geometry.crop import CropBox, RotatedCrop, cut_crop

#: warpAffine's sub-pixel grid is 1/32 pixel: positions land within half a step of it
#: (0.016 px), plus float32 rounding of the coordinates held in the image.
SAMPLE_ATOL_PX = 0.025

CROPS = [
    RotatedCrop(320.0, 240.0, 224.0, 0.0, 224),
    RotatedCrop(301.7, 255.2, 180.0, 0.3, 224),  # side < out_size: grows
    RotatedCrop(350.2, 210.9, 300.0, -1.1, 224),  # shrinks: the antialiasing blur
    RotatedCrop(290.0, 260.0, 150.0, math.pi / 2, 96),
    RotatedCrop(333.3, 222.2, 260.0, 2.7, 256),
    RotatedCrop(310.0, 230.0, 200.0, math.pi, 128),
]
IDS = ["upright", "30deg-grow", "neg63deg-shrink", "90deg", "155deg", "180deg"]


def _worst(diff: np.ndarray) -> str:
    diff = np.abs(np.asarray(diff, dtype=np.float64))
    where = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return f"max |diff| {diff.max():.3g} at {tuple(int(i) for i in where)}"


def _naive_to_crop(crop: RotatedCrop, u: float, v: float) -> tuple[float, float]:
    """One image point into the crop, written out: the offset from the centre along the
    crop's x and y axes, scaled, plus the crop's centre pixel."""
    c, s = math.cos(crop.angle), math.sin(crop.angle)
    du, dv = u - crop.cx, v - crop.cy
    along_x = c * du + s * dv  # dot with x_c = (cos a, sin a)
    along_y = -s * du + c * dv  # dot with y_c = (-sin a, cos a)
    k = crop.out_size / crop.side
    half = (crop.out_size - 1) / 2.0
    return along_x * k + half, along_y * k + half


@pytest.mark.parametrize("crop", CROPS, ids=IDS)
def test_maps_match_a_per_point_formula(crop: RotatedCrop) -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(-100, 700, (40, 2))
    expected = np.array([_naive_to_crop(crop, u, v) for u, v in points])
    got = crop.to_crop(points)
    assert np.allclose(got, expected, atol=1e-9), _worst(got - expected)
    m = crop.affine()
    via_affine = points @ m[:, :2].T + m[:, 2]
    assert np.allclose(via_affine, expected, atol=1e-9), _worst(via_affine - expected)
    # The crop's centre pixel is the image point c; one crop pixel along x is 1/s image
    # pixels along x_c.
    half = (crop.out_size - 1) / 2.0
    centre, step = crop.to_image(np.array([[half, half], [half + 1.0, half]]))
    assert np.allclose(centre, [crop.cx, crop.cy], atol=1e-9)
    x_axis = np.array([math.cos(crop.angle), math.sin(crop.angle)]) / crop.scale
    assert np.allclose(step - centre, x_axis, atol=1e-9), _worst(step - centre - x_axis)


@pytest.mark.parametrize("crop", CROPS, ids=IDS)
def test_round_trip_and_inverse(crop: RotatedCrop) -> None:
    rng = np.random.default_rng(1)
    points = rng.uniform(-50, 650, (3, 5, 2))  # any leading dimensions
    back = crop.to_image(crop.to_crop(points))
    assert back.shape == points.shape
    assert np.allclose(back, points, atol=1e-9), _worst(back - points)
    crop_pts = rng.uniform(0, crop.out_size - 1, (7, 2))
    again = crop.to_crop(crop.to_image(crop_pts))
    assert np.allclose(again, crop_pts, atol=1e-9), _worst(again - crop_pts)
    both = np.vstack([crop.affine(), [0, 0, 1]]) @ np.vstack([crop.inverse_affine(), [0, 0, 1]])
    assert np.allclose(both, np.eye(3), atol=1e-12), _worst(both - np.eye(3))


@pytest.mark.parametrize("crop", CROPS, ids=IDS)
def test_bounds_hold_the_turned_square(crop: RotatedCrop) -> None:
    # Naive: the four corners of the square (half a side from the centre along both axes).
    c, s = math.cos(crop.angle), math.sin(crop.angle)
    h = crop.side / 2
    corners = np.array(
        [[crop.cx + c * a * h - s * b * h, crop.cy + s * a * h + c * b * h]
         for a in (-1, 1) for b in (-1, 1)]
    )  # fmt: skip
    expected = (*corners.min(0), *corners.max(0))
    assert crop.bounds() == pytest.approx(expected, abs=1e-9)


def _coordinate_image(height: int = 480, width: int = 640) -> np.ndarray:
    """(H, W, 2) float32 image whose pixel (row, col) holds (col, row): what a crop samples
    from it is the image position it sampled."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([cols, rows], axis=-1)


@pytest.mark.parametrize("crop", CROPS, ids=IDS)
def test_cut_crop_samples_the_image_where_to_image_says(crop: RotatedCrop) -> None:
    x0, y0, x1, y1 = crop.bounds()
    assert x0 > 2 and y0 > 2 and x1 < 637 and y1 < 477  # inside: no border in the way
    sampled = cut_crop(_coordinate_image(), crop)
    assert sampled.shape == (crop.out_size, crop.out_size, 2) and sampled.dtype == np.float32
    rows, cols = np.mgrid[0 : crop.out_size, 0 : crop.out_size]
    expected = crop.to_image(np.stack([cols, rows], -1).astype(np.float64))
    # A Gaussian blur (antialiasing when shrinking) leaves a linear ramp unchanged.
    diff = sampled - expected
    assert np.abs(diff).max() < SAMPLE_ATOL_PX, _worst(diff)


@pytest.mark.parametrize("angle_deg", [0.0, 35.0, 120.0, -80.0])
def test_a_bright_dot_lands_where_to_crop_says(angle_deg: float) -> None:
    dot = np.array([412.6, 187.3])  # image pixels
    rows, cols = np.mgrid[0:480, 0:640].astype(np.float64)
    blob = np.exp(-((cols - dot[0]) ** 2 + (rows - dot[1]) ** 2) / (2 * 3.0**2))
    image = np.round(255 * blob).astype(np.uint8)
    crop = RotatedCrop(380.0, 220.0, 150.0, math.radians(angle_deg), 224)
    out = cut_crop(image, crop).astype(np.float64)
    r, c = np.mgrid[0:224, 0:224]
    centroid = np.array([(c * out).sum(), (r * out).sum()]) / out.sum()
    expected = crop.to_crop(dot)
    assert np.linalg.norm(centroid - expected) < 0.1, (centroid, expected)


@pytest.mark.parametrize(
    "x0, y0, side, out_size",
    [(100.0, 80.0, 160.0, 224), (37.25, 61.5, 300.0, 224), (200.0, 150.0, 96.0, 96)],
    ids=["grow", "shrink", "one-to-one"],
)
def test_angle_zero_is_the_axis_aligned_crop(x0, y0, side, out_size) -> None:
    # CropBox's crop pixel (0, 0) samples (x0, y0) and pixel S-1 samples x0 + (S-1)/s; the
    # RotatedCrop with the same samples is centred at x0 + (S-1)/(2s) (its centre sits
    # between the middle samples; x0 + side/2 would be half a crop pixel further).
    box = CropBox(x0, y0, side, out_size)
    half = (out_size - 1) / (2.0 * box.scale)
    turned = RotatedCrop(x0 + half, y0 + half, side, 0.0, out_size)
    assert np.allclose(turned.affine(), box.affine(), atol=1e-9), _worst(
        turned.affine() - box.affine()
    )
    photo = skimage.data.astronaut()  # (512, 512, 3) uint8
    a, b = cut_crop(photo, turned).astype(int), cut_crop(photo, box).astype(int)
    # Same samples; only the antialiasing blur's window may differ by a pixel at its edge.
    assert np.abs(a - b).max() <= 1, _worst(a - b)


def test_crops_outside_the_image_hold_the_border_value() -> None:
    image = np.full((100, 120, 3), 200, np.uint8)
    for side in (50.0, 400.0):  # the plain warp and the antialiasing path
        far = RotatedCrop(-1000.0, 2000.0, side, 0.7, 64)
        out = cut_crop(image, far, border_value=7.0)
        assert out.shape == (64, 64, 3) and out.dtype == np.uint8
        assert (out == 7).all()
    grey = cut_crop(np.full((100, 120), 9, np.uint8), RotatedCrop(60, 50, 40.0, 0.2, 32))
    assert grey.shape == (32, 32) and (grey == 9).all()
    single = cut_crop(np.full((100, 120, 1), 9, np.uint8), RotatedCrop(60, 50, 40.0, 0.2, 32))
    assert single.shape == (32, 32, 1)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"cx": math.nan}, "cx"),
        ({"cy": math.inf}, "cy"),
        ({"angle": math.nan}, "angle"),
        ({"side": 0.0}, "side"),
        ({"side": -5.0}, "side"),
        ({"side": math.inf}, "side"),
        ({"out_size": 0}, "out_size"),
        ({"out_size": 2.5}, "out_size"),
    ],
)
def test_invalid_crops_are_refused(kwargs: dict, field: str) -> None:
    values = {"cx": 10.0, "cy": 20.0, "side": 30.0, "angle": 0.1, "out_size": 32} | kwargs
    with pytest.raises(ConfigError, match=f"RotatedCrop.{field} expected"):
        RotatedCrop(**values)


def test_fields_are_plain_numbers_and_frozen() -> None:
    crop = RotatedCrop(np.float32(10), 20, np.int64(30), 0, 32.0)
    assert all(type(getattr(crop, f)) is float for f in ("cx", "cy", "side", "angle"))
    assert type(crop.out_size) is int
    with pytest.raises(AttributeError):
        crop.cx = 5.0  # type: ignore[misc]


def test_bad_points_and_images_are_refused() -> None:
    crop = RotatedCrop(10.0, 20.0, 30.0, 0.1, 32)
    for bad in (np.zeros(3), np.zeros((4, 3)), np.zeros((2, 2, 5))):
        with pytest.raises(ShapeError, match=r"points expected shape \(\*, 2\)"):
            crop.to_crop(bad)
        with pytest.raises(ShapeError, match=r"points expected shape \(\*, 2\)"):
            crop.to_image(bad)
    for bad in (np.zeros(10, np.uint8), np.zeros((2, 3, 4, 5), np.uint8), [[0, 1], [2, 3]]):
        with pytest.raises(ShapeError, match=r"image expected shape \(H, W\) or \(H, W, C\)"):
            cut_crop(bad, crop)  # type: ignore[arg-type]


def test_nearest_neighbour_interpolation_is_passed_through() -> None:
    # The interpolation flag reaches the warp: nearest sampling copies image values.
    image = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    crop = RotatedCrop(31.5, 31.5, 64.0, 0.0, 64)
    out = cut_crop(image, crop, interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(out, image), _worst(out - image)
