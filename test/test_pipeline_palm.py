"""Tests of the palm detector's numpy side (stereo_hand_mesh.pipeline.palm): anchors,
letterbox, decoding, weighted NMS and the rotated crops built from a palm or from keypoints.

No network runs here: the detector's raw outputs are built by hand (a known box and known
keypoints encoded at a few anchors), and every result is compared with a naive loop written
below or with a geometric invariant (rotating the hand rotates its crop).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.pipeline.palm import (
    PALM_INPUT_SIZE,
    PalmDetection,
    decode_palms,
    letterbox,
    palm_anchors,
    roi_from_landmarks,
    roi_from_palm,
    upright_angle,
    weighted_nms,
)


def _worst(diff: np.ndarray) -> str:
    """The largest absolute difference and where it is, for failure messages."""
    diff = np.abs(np.asarray(diff, dtype=np.float64))
    where = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return f"max |diff| {diff.max():.3g} at {tuple(int(i) for i in where)}"


def _wrapped(angle: float) -> float:
    """An angle in (-pi, pi]."""
    return math.atan2(math.sin(angle), math.cos(angle))


def _rotate(points: np.ndarray, degrees: float, about: np.ndarray) -> np.ndarray:
    """Turn image points clockwise on screen (image y points down) by ``degrees``."""
    a = math.radians(degrees)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (points - about) @ r.T + about


# --- anchors ------------------------------------------------------------------------------


def _naive_anchors(size: int) -> np.ndarray:
    """MediaPipe's palm SSD anchors, one cell at a time: the stride-8 grid with 2 anchors
    per cell, then the stride-16 grid with 6 (three layers of 2 sharing it), row by row."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        side = math.ceil(size / stride)
        for row in range(side):
            for col in range(side):
                for _ in range(per_cell):
                    out.append(((col + 0.5) / side, (row + 0.5) / side))
    return np.array(out)


@pytest.mark.parametrize("size, count", [(192, 2016), (128, 896)])
def test_anchors_match_a_naive_loop(size: int, count: int) -> None:
    # 2016 = 24*24*2 + 12*12*6 at 192 px; 896 (16*16*2 + 8*8*6) is the count MediaPipe's
    # 128-pixel palm model is known for.
    anchors = palm_anchors(size)
    expected = _naive_anchors(size)
    assert anchors.shape == (count, 2)
    assert np.array_equal(anchors, expected), _worst(anchors - expected)
    assert ((anchors > 0.0) & (anchors < 1.0)).all()


def test_anchor_grid_layout_at_192() -> None:
    anchors = palm_anchors()
    assert len(anchors) == 2016
    fine = anchors[: 24 * 24 * 2].reshape(24, 24, 2, 2)  # row, column, anchor, (x, y)
    coarse = anchors[24 * 24 * 2 :].reshape(12, 12, 6, 2)
    for grid, side in ((fine, 24), (coarse, 12)):
        centres = (np.arange(side) + 0.5) / side
        shape = grid.shape[:3]
        assert np.array_equal(grid[..., 0], np.broadcast_to(centres[None, :, None], shape))
        assert np.array_equal(grid[..., 1], np.broadcast_to(centres[:, None, None], shape))
    with pytest.raises(ValueError):  # the cached array is shared: read-only
        anchors[0, 0] = 0.5


# --- letterbox ----------------------------------------------------------------------------


def _to_square(square_to_image: np.ndarray, points: np.ndarray) -> np.ndarray:
    m = np.vstack([square_to_image, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(m)[:2]
    return points @ inv[:, :2].T + inv[:, 2]


def _apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ affine[:, :2].T + affine[:, 2]


@pytest.mark.parametrize(
    "height, width",
    [(480, 640), (640, 480), (588, 764), (120, 90), (100, 150)],
    ids=["landscape", "portrait", "tabletop", "small-portrait", "small-landscape"],
)
def test_letterbox_puts_a_dot_where_the_affine_says(height: int, width: int) -> None:
    # Gaussian dots at sub-pixel positions; each one's intensity centroid in the square,
    # mapped by the returned affine, must land on the dot's centre in the image. A
    # half-pixel slip in the affine moves it by half a square pixel, less half an image
    # pixel (1.2 image pixels at 640 px, 0.11 at 150 px); the dots land within 0.02 image
    # pixels of where they should.
    scale = PALM_INPUT_SIZE / max(height, width)
    sigma = max(2.0, 1.5 / scale)  # image pixels: 1.5 square pixels or more
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    dots = np.array([[0.23, 0.31], [0.71, 0.52], [0.47, 0.83]]) * [width, height] + [0.37, 0.61]
    image = np.zeros((height, width))
    for u, v in dots:
        image += np.exp(-((cols - u) ** 2 + (rows - v) ** 2) / (2.0 * sigma**2))
    rgb = np.repeat(np.round(255.0 * np.clip(image, 0, 1)).astype(np.uint8)[..., None], 3, 2)
    square, square_to_image = letterbox(rgb)
    assert square.shape == (PALM_INPUT_SIZE, PALM_INPUT_SIZE, 3) and square.dtype == np.uint8
    assert square_to_image.shape == (2, 3)
    grey = square[..., 0].astype(np.float64)
    found = []
    for expected_sq in _to_square(square_to_image, dots):
        half = math.ceil(4.0 * sigma * scale)
        c, r = np.round(expected_sq).astype(int)
        win = grey[r - half : r + half + 1, c - half : c + half + 1]
        wr, wc = np.mgrid[r - half : r + half + 1, c - half : c + half + 1]
        found.append([(wc * win).sum() / win.sum(), (wr * win).sum() / win.sum()])
    landed = _apply(square_to_image, np.array(found))
    err = np.linalg.norm(landed - dots, axis=1)
    assert err.max() < 0.05, f"dots land {err.round(3)} image px off ({_worst(landed - dots)})"


@pytest.mark.parametrize("height, width", [(480, 640), (640, 480), (100, 150)])
def test_letterbox_borders_are_black_and_the_image_fills_the_rest(height: int, width: int):
    white = np.full((height, width, 3), 255, np.uint8)
    square, square_to_image = letterbox(white)
    # Where each square pixel centre falls in the image (pixel centres at integers).
    rows, cols = np.mgrid[0:PALM_INPUT_SIZE, 0:PALM_INPUT_SIZE]
    pts = _apply(square_to_image, np.stack([cols, rows], -1).reshape(-1, 2).astype(float))
    inside_by = np.minimum(
        np.minimum(pts[:, 0] + 0.5, width - 0.5 - pts[:, 0]),
        np.minimum(pts[:, 1] + 0.5, height - 0.5 - pts[:, 1]),
    ).reshape(PALM_INPUT_SIZE, PALM_INPUT_SIZE)  # image pixels inside the image's edge
    scale = PALM_INPUT_SIZE / max(height, width)
    margin = 1.0 / scale  # one square pixel, in image pixels
    value = square[..., 0]
    assert (value[inside_by > margin] == 255).all()
    assert (value[inside_by < -margin] == 0).all()
    # The long side fills the square; the short one is centred.
    inside = inside_by > 0.0
    cols, rows = np.flatnonzero(inside.any(axis=0)), np.flatnonzero(inside.any(axis=1))
    long_side, short_side = (cols, rows) if width >= height else (rows, cols)
    assert len(long_side) == PALM_INPUT_SIZE
    assert abs(short_side[0] - (PALM_INPUT_SIZE - 1 - short_side[-1])) <= 1, short_side[[0, -1]]


@pytest.mark.parametrize("bad", [np.zeros((48, 64), np.uint8), np.zeros((48, 64, 4), np.uint8)])
def test_letterbox_refuses_what_is_not_rgb(bad: np.ndarray) -> None:
    with pytest.raises(ShapeError, match=r"image expected shape \(H, W, 3\)"):
        letterbox(bad)
    with pytest.raises(ShapeError, match="image expected"):
        letterbox(bad.tolist())  # type: ignore[arg-type]


# --- decoding -----------------------------------------------------------------------------

#: The image the synthetic detections are decoded into and its letterbox: 640 x 480 fills
#: 192 x 144 of the square, 24 rows of border above; 0.3 square pixels per image pixel.
IMAGE_HW = (480, 640)
SQUARE_SCALE, SQUARE_OFFSET = 0.3, np.array([0.0, 24.0])


def _image_to_square(points: np.ndarray) -> np.ndarray:
    """Image pixel-centre coordinates -> the detector's continuous square coordinates (0 at
    the square's edge), written out by hand for the 640 x 480 letterbox."""
    return (points + 0.5) * SQUARE_SCALE + SQUARE_OFFSET


def _palm_in_image(centre, size, rng) -> tuple[np.ndarray, np.ndarray]:
    box = np.r_[centre, size]
    keypoints = np.asarray(centre) + rng.uniform(-0.5, 0.5, (7, 2)) * size
    return box, keypoints


def _encode(regressors, logits, box, keypoints, anchor_ids, anchor_logits) -> None:
    """Write a palm given in image pixels as the detector would output it at each anchor."""
    anchors = palm_anchors() * PALM_INPUT_SIZE  # square pixels
    centre_sq = _image_to_square(box[:2])
    kps_sq = _image_to_square(keypoints)
    for i, logit in zip(anchor_ids, anchor_logits, strict=True):
        regressors[i, :2] = centre_sq - anchors[i]
        regressors[i, 2:4] = box[2:] * SQUARE_SCALE
        regressors[i, 4:] = (kps_sq - anchors[i]).ravel()
        logits[i] = logit


def _nearest_anchors(point_image: np.ndarray, n: int) -> np.ndarray:
    d = np.linalg.norm(palm_anchors() * PALM_INPUT_SIZE - _image_to_square(point_image), axis=1)
    return np.argsort(d)[:n]


def test_decode_recovers_encoded_palms_in_image_pixels() -> None:
    rng = np.random.default_rng(3)
    _, square_to_image = letterbox(np.zeros((*IMAGE_HW, 3), np.uint8))
    regressors = rng.normal(0.0, 30.0, (2016, 18))  # noise at anchors that score nothing
    logits = rng.uniform(-60.0, -5.0, 2016)
    first = _palm_in_image([412.3, 181.7], [90.0, 110.0], rng)
    second = _palm_in_image([120.6, 350.2], [60.0, 70.0], rng)
    _encode(regressors, logits, *first, _nearest_anchors(first[0][:2], 3), [4.0, 3.0, 2.5])
    _encode(regressors, logits, *second, _nearest_anchors(second[0][:2], 2), [1.0, 0.7])
    palms = decode_palms(regressors, logits, square_to_image)
    assert len(palms) == 2
    for palm, (box, keypoints), logit in zip(palms, (first, second), (4.0, 1.0), strict=True):
        assert palm.score == pytest.approx(1.0 / (1.0 + math.exp(-logit)), abs=1e-12)
        assert np.allclose(palm.box, box, atol=1e-9), _worst(palm.box - box)
        kp_diff = palm.keypoints - keypoints
        assert np.allclose(palm.keypoints, keypoints, atol=1e-9), _worst(kp_diff)
    # (A, 1) logits as the network outputs them; a higher threshold drops the second palm.
    assert len(decode_palms(regressors, logits[:, None], square_to_image)) == 2
    only = decode_palms(regressors, logits, square_to_image, min_score=0.8)
    assert len(only) == 1 and np.allclose(only[0].box, first[0], atol=1e-9)


def test_decode_keeps_exactly_the_anchors_at_or_above_min_score() -> None:
    _, square_to_image = letterbox(np.zeros((*IMAGE_HW, 3), np.uint8))
    regressors = np.zeros((2016, 18))
    logits = np.full(2016, -20.0)
    box, keypoints = np.array([320.0, 240.0, 50.0, 50.0]), np.full((7, 2), [320.0, 240.0])
    anchor = _nearest_anchors(box[:2], 1)
    _encode(regressors, logits, box, keypoints, anchor, [0.0])  # sigmoid(0) = 0.5
    assert len(decode_palms(regressors, logits, square_to_image, min_score=0.5)) == 1
    assert decode_palms(regressors, logits, square_to_image, min_score=0.5 + 1e-9) == []
    assert decode_palms(regressors, np.full(2016, -20.0), square_to_image) == []


def test_decode_drops_non_finite_outputs_and_survives_huge_logits() -> None:
    # A float16 overflow (TensorRT FP16) can put inf or NaN in the outputs: such an anchor
    # is no palm, whatever its score, and a finite palm beside it still comes out.
    _, square_to_image = letterbox(np.zeros((*IMAGE_HW, 3), np.uint8))
    rng = np.random.default_rng(4)
    regressors, logits = np.zeros((2016, 18)), np.full(2016, -1e4)  # clipped to -100
    box, keypoints = _palm_in_image([300.0, 200.0], [80.0, 80.0], rng)
    _encode(regressors, logits, box, keypoints, _nearest_anchors(box[:2], 1), [1e4])
    far = _nearest_anchors(np.array([50.0, 400.0]), 3)
    regressors[far[0], 5] = np.nan
    regressors[far[1], 0] = np.inf
    logits[far[:2]] = 8.0
    logits[far[2]] = np.nan
    with np.errstate(over="raise", invalid="raise"):
        palms = decode_palms(regressors, logits, square_to_image)
    assert len(palms) == 1 and palms[0].score == 1.0
    assert np.isfinite(palms[0].box).all() and np.isfinite(palms[0].keypoints).all()
    assert np.allclose(palms[0].box, box, atol=1e-9), _worst(palms[0].box - box)


def test_decode_refuses_outputs_of_the_wrong_size() -> None:
    m = letterbox(np.zeros((*IMAGE_HW, 3), np.uint8))[1]
    with pytest.raises(ShapeError, match=r"regressors expected shape \(2016, 18\)"):
        decode_palms(np.zeros((2016, 17)), np.zeros(2016), m)
    with pytest.raises(ShapeError, match=r"regressors expected shape \(2016, 18\)"):
        decode_palms(np.zeros((896, 18)), np.zeros(896), m)
    with pytest.raises(ShapeError, match="scores expected 2016 values"):
        decode_palms(np.zeros((2016, 18)), np.zeros((2016, 2)), m)
    with pytest.raises(ConfigError, match="min_score"):
        decode_palms(np.zeros((2016, 18)), np.zeros(2016), m, min_score=0.0)


# --- weighted NMS -------------------------------------------------------------------------


def _naive_iou(a: np.ndarray, b: np.ndarray) -> float:
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    w = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    h = max(0.0, min(ay1, by1) - max(ay0, by0))
    union = a[2] * a[3] + b[2] * b[3] - w * h
    return w * h / union if union > 0 else 0.0


def _naive_weighted_nms(boxes, keypoints, scores, threshold):
    """One cluster at a time, in plain Python: the best remaining detection takes every
    remaining one overlapping it by more than ``threshold``; the cluster's box and keypoints
    are their score-weighted mean, its score the best one's."""
    remaining = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable for ties
    out = []
    while remaining:
        best = remaining[0]
        members = [j for j in remaining if _naive_iou(boxes[best], boxes[j]) > threshold]
        if not members:  # a box of zero area overlaps nothing, not even itself
            members = [best]
        total = sum(scores[j] for j in members)
        box = sum(scores[j] * boxes[j] for j in members) / total
        kps = sum(scores[j] * keypoints[j] for j in members) / total
        out.append((box, kps, scores[best]))
        remaining = [j for j in remaining if j not in members and j != best]
    return out


def _assert_same_detections(got, expected) -> None:
    assert len(got) == len(expected), (len(got), len(expected))
    for k, ((b, kp, s), (eb, ekp, es)) in enumerate(zip(got, expected, strict=True)):
        assert s == pytest.approx(es, abs=1e-15), f"detection {k}: score {s} vs {es}"
        assert np.allclose(b, eb, atol=1e-9), f"detection {k} box: {_worst(b - eb)}"
        assert np.allclose(kp, ekp, atol=1e-9), f"detection {k} keypoints: {_worst(kp - ekp)}"


def test_weighted_nms_merges_a_cluster_by_score_weights() -> None:
    boxes = np.array(
        [[100.0, 100.0, 40.0, 40.0], [104.0, 100.0, 40.0, 40.0], [300.0, 300.0, 40.0, 40.0]]
    )
    keypoints = np.arange(3 * 7 * 2, dtype=np.float64).reshape(3, 7, 2)
    scores = np.array([0.9, 0.6, 0.8])
    got = weighted_nms(boxes, keypoints, scores, 0.3)
    # IoU of the first two is 1440 / 1760 = 0.82: one cluster, weights 0.9 and 0.6.
    merged_box = (0.9 * boxes[0] + 0.6 * boxes[1]) / 1.5
    merged_kps = (0.9 * keypoints[0] + 0.6 * keypoints[1]) / 1.5
    _assert_same_detections(got, [(merged_box, merged_kps, 0.9), (boxes[2], keypoints[2], 0.8)])


@pytest.mark.parametrize("seed", range(5))
def test_weighted_nms_matches_a_naive_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 400, (6, 2))
    sizes = rng.uniform(20, 80, (6, 1))
    member = rng.integers(0, 6, 50)
    boxes = np.concatenate(
        [centres[member] + rng.normal(0, 0.3, (50, 2)) * sizes[member],
         sizes[member] * rng.uniform(0.6, 1.4, (50, 2))], axis=1
    )  # fmt: skip
    keypoints = boxes[:, None, :2] + rng.normal(0, 10, (50, 7, 2))
    scores = rng.uniform(0.5, 1.0, 50)
    scores[:5] = scores[5]  # ties keep the input order
    for threshold in (0.1, 0.3, 0.6):
        got = weighted_nms(boxes, keypoints, scores, threshold)
        _assert_same_detections(got, _naive_weighted_nms(boxes, keypoints, scores, threshold))


def test_weighted_nms_outputs_a_degenerate_box_once() -> None:
    boxes = np.array([[10.0, 10.0, 0.0, 0.0], [10.0, 10.0, 0.0, 0.0], [10.0, 10.0, 5.0, 5.0]])
    keypoints = np.zeros((3, 7, 2))
    scores = np.array([0.9, 0.8, 0.7])
    got = weighted_nms(boxes, keypoints, scores, 0.3)
    _assert_same_detections(got, _naive_weighted_nms(boxes, keypoints, scores, 0.3))
    assert [s for _, _, s in got] == [0.9, 0.8, 0.7]


# --- crops from a palm and from keypoints ------------------------------------------------


def test_upright_angle_of_the_four_directions() -> None:
    base = np.array([100.0, 100.0])
    for tip, angle in (((100, 50), 0.0), ((150, 100), math.pi / 2), ((50, 100), -math.pi / 2)):
        assert upright_angle(base, np.array(tip, float)) == pytest.approx(angle, abs=1e-12)
    assert abs(upright_angle(base, np.array([100.0, 150.0]))) == pytest.approx(math.pi)


def _upright_palm() -> PalmDetection:
    """A palm with its wrist (keypoint 0) straight below its middle finger's MCP (2)."""
    keypoints = np.array(
        [[320, 285], [290, 270], [320, 200], [345, 205], [365, 215], [280, 250], [300, 230]],
        dtype=np.float64,
    )
    return PalmDetection(0.9, np.array([320.0, 240.0, 80.0, 100.0]), keypoints)


def test_roi_from_palm_upright_scale_and_shift() -> None:
    palm = _upright_palm()
    crop = roi_from_palm(palm, 224)
    # Documented: centre shifted up by half the box height, side 2.6 x the long side.
    assert crop.angle == pytest.approx(0.0, abs=1e-12)
    assert (crop.cx, crop.cy) == pytest.approx((320.0, 240.0 - 0.5 * 100.0), abs=1e-9)
    assert crop.side == pytest.approx(2.6 * 100.0) and crop.out_size == 224
    other = roi_from_palm(palm, 256, scale=2.0, shift_up=0.25)
    assert (other.cx, other.cy, other.side) == pytest.approx((320.0, 215.0, 200.0), abs=1e-9)
    wide = PalmDetection(0.9, np.array([320.0, 240.0, 120.0, 100.0]), palm.keypoints)
    assert roi_from_palm(wide, 224).side == pytest.approx(2.6 * 120.0)


@pytest.mark.parametrize("degrees", [30.0, 90.0, 180.0, -45.0])
def test_roi_from_palm_turns_with_the_hand(degrees: float) -> None:
    upright = _upright_palm()
    centre = upright.box[:2]
    turned = PalmDetection(
        upright.score, upright.box.copy(), _rotate(upright.keypoints, degrees, centre)
    )
    crop, crop0 = roi_from_palm(turned, 224), roi_from_palm(upright, 224)
    assert _wrapped(crop.angle - math.radians(degrees)) == pytest.approx(0.0, abs=1e-12)
    # The crop's centre turns with the hand about the box centre; its side stays.
    expected = _rotate(np.array([crop0.cx, crop0.cy]), degrees, centre)
    assert (crop.cx, crop.cy) == pytest.approx(tuple(expected), abs=1e-9)
    assert crop.side == pytest.approx(crop0.side)
    # In the crop the hand is upright: the keypoints land where the upright ones do.
    in_crop = crop.to_crop(turned.keypoints)
    upright_in_crop = crop0.to_crop(upright.keypoints)
    assert np.allclose(in_crop, upright_in_crop, atol=1e-9), _worst(in_crop - upright_in_crop)
    wrist, middle = in_crop[0], in_crop[2]
    assert middle[0] == pytest.approx(wrist[0], abs=1e-9) and middle[1] < wrist[1]


#: Our joint order (MediaPipe's): 0 wrist, 1-4 thumb, 5-8 index, 9-12 middle, 13-16 ring,
#: 17-20 little finger, base to tip. An upright right hand seen from the palm side, pixels.
_FINGER_X = {1: -25.0, 2: 0.0, 3: 25.0, 4: 47.0}  # index, middle, ring, little


def _upright_keypoints(origin=(300.0, 320.0)) -> np.ndarray:
    k = np.zeros((21, 2))
    k[0] = (0.0, 0.0)
    k[1:5] = [(-30, -20), (-50, -40), (-62, -62), (-70, -80)]
    for finger, x in _FINGER_X.items():
        base = 1 + 4 * finger
        k[base : base + 4] = [(x, -80), (x * 1.05, -115), (x * 1.1, -140), (x * 1.15, -160)]
    return k + np.asarray(origin)


#: The landmarks the next crop bounds (documented: wrist, thumb base, finger bases and their
#: first joints; the fingertips move too fast).
_PALM_SIDE = [0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18]


def test_roi_from_landmarks_upright_scale_and_shift() -> None:
    k = _upright_keypoints()
    for scale, shift in ((2.0, 0.1), (1.5, 0.3)):
        crop = roi_from_landmarks(k, 224, scale=scale, shift_up=shift)
        lo, hi = k[_PALM_SIDE].min(0), k[_PALM_SIDE].max(0)
        size = hi - lo
        centre = (lo + hi) / 2 - np.array([0.0, shift * size[1]])
        assert crop.angle == pytest.approx(0.0, abs=1e-12)
        assert (crop.cx, crop.cy) == pytest.approx(tuple(centre), abs=1e-9)
        assert crop.side == pytest.approx(scale * size.max()) and crop.out_size == 224
    # A fingertip flung far away moves nothing: only the palm side bounds the crop.
    flung = k.copy()
    flung[8] += (400.0, -300.0)
    assert roi_from_landmarks(flung, 224) == roi_from_landmarks(k, 224)


@pytest.mark.parametrize("degrees", [30.0, 90.0, 180.0, -120.0])
def test_roi_from_landmarks_turns_with_the_hand(degrees: float) -> None:
    k = _upright_keypoints()
    about = np.array([250.0, 280.0])  # any point: the whole picture turns about it
    turned = _rotate(k, degrees, about)
    crop, crop0 = roi_from_landmarks(turned, 224), roi_from_landmarks(k, 224)
    assert _wrapped(crop.angle - math.radians(degrees)) == pytest.approx(0.0, abs=1e-12)
    expected = _rotate(np.array([crop0.cx, crop0.cy]), degrees, about)
    assert (crop.cx, crop.cy) == pytest.approx(tuple(expected), abs=1e-9)
    assert crop.side == pytest.approx(crop0.side)
    in_crop, upright = crop.to_crop(turned), crop0.to_crop(k)
    assert np.allclose(in_crop, upright, atol=1e-9), _worst(in_crop - upright)
    # Upright in the crop: the wrist below the middle finger's base, same column.
    assert in_crop[9, 0] == pytest.approx(in_crop[0, 0], abs=1e-9)
    assert in_crop[9, 1] < in_crop[0, 1]


@pytest.mark.parametrize(
    "bad",
    [np.zeros((20, 2)), np.zeros((21, 3)), np.zeros((2, 21, 2)), np.zeros(42)],
    ids=["20x2", "21x3", "2x21x2", "flat"],
)
def test_roi_from_landmarks_refuses_wrong_shapes(bad: np.ndarray) -> None:
    with pytest.raises(ShapeError, match=r"keypoints expected shape \(21, 2\)"):
        roi_from_landmarks(bad, 224)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_roi_from_landmarks_and_palm_refuse_non_finite_keypoints(value: float) -> None:
    k = _upright_keypoints()
    k[7, 1] = value
    with pytest.raises(ShapeError, match="NaN or inf"):
        roi_from_landmarks(k, 224)
    palm = _upright_palm()
    kps = palm.keypoints.copy()
    kps[2, 0] = value
    with pytest.raises(ShapeError, match="NaN or inf"):
        roi_from_palm(PalmDetection(0.9, palm.box, kps), 224)
    box = palm.box.copy()
    box[3] = value
    with pytest.raises(ShapeError, match="NaN or inf"):
        roi_from_palm(PalmDetection(0.9, box, palm.keypoints), 224)


def test_roi_from_palm_refuses_wrong_shapes() -> None:
    palm = _upright_palm()
    with pytest.raises(ShapeError, match=r"palm.keypoints expected shape \(7, 2\)"):
        roi_from_palm(PalmDetection(0.9, palm.box, palm.keypoints[:3]), 224)
    with pytest.raises(ShapeError, match=r"palm.box expected shape \(4,\)"):
        roi_from_palm(PalmDetection(0.9, palm.box[:2], palm.keypoints), 224)
