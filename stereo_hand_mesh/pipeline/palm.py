"""Palm detection around the real-trained palm detector: letterbox, anchors, decoding, NMS.

The detector (MediaPipe's ``palm_detection_{lite,full}``, imported into ``models/``) sees the
whole image letterboxed into a ``192 x 192`` square and outputs, for each of 2016 fixed
anchors, a box and seven palm keypoints as offsets in input pixels, plus a score logit.
This module builds the anchors, decodes the raw outputs into detections in image pixels,
merges overlapping detections (weighted non-maximum suppression) and turns a detection into
the rotated square crop the landmark network expects (:func:`roi_from_palm`).

The numbers are those of MediaPipe's published palm detection graph (facts, not code): SSD
anchors with 4 layers, strides 8, 16, 16, 16, one aspect ratio plus one interpolated scale,
fixed anchor size; offsets scaled by 192; score clipped to +-100 then a sigmoid; weighted NMS
at IoU 0.3; keypoint 0 is the wrist centre and keypoint 2 the middle finger's MCP; the hand
crop is the palm box turned so that wrist -> middle MCP points up, shifted by half its height
toward the fingers and grown 2.6 times (square on its long side).

Numpy only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ConfigError, ShapeError
from stereo_hand_mesh.geometry.crop import RotatedCrop

__all__ = [
    "PALM_INPUT_SIZE",
    "PalmDetection",
    "decode_palms",
    "letterbox",
    "palm_anchors",
    "roi_from_landmarks",
    "roi_from_palm",
    "upright_angle",
    "weighted_nms",
]

#: Side of the detector's square input, pixels.
PALM_INPUT_SIZE = 192
_STRIDES = (8, 16, 16, 16)
_NUM_KEYPOINTS = 7
_WRIST_CENTER, _MIDDLE_MCP = 0, 2


@dataclass(frozen=True)
class PalmDetection:
    """One palm in image pixels.

    Attributes:
        score: detector score in [0, 1] (after the sigmoid).
        box: (4,) ``[x_center, y_center, width, height]``, image pixels (axis-aligned).
        keypoints: (7, 2) palm keypoints ``(u, v)``, image pixels (0: wrist centre,
            2: middle finger MCP).
    """

    score: float
    box: np.ndarray
    keypoints: np.ndarray


@functools.lru_cache(maxsize=4)
def palm_anchors(input_size: int = PALM_INPUT_SIZE) -> np.ndarray:
    """(A, 2) anchor centres of the palm detector, in fractions of the input side.

    Two anchors per cell for each layer; consecutive layers of equal stride share the grid,
    so the 8-stride grid has 2 anchors per cell and the 16-stride grid 6 (2016 anchors at
    192 pixels). Fixed anchor size: every anchor is 1 x 1.
    """
    centres = []
    layer = 0
    while layer < len(_STRIDES):
        stride = _STRIDES[layer]
        repeat = 0
        while layer < len(_STRIDES) and _STRIDES[layer] == stride:
            repeat += 2
            layer += 1
        side = math.ceil(input_size / stride)
        ys, xs = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
        grid = np.stack([(xs + 0.5) / side, (ys + 0.5) / side], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, repeat, axis=1).reshape(-1, 2))
    out = np.concatenate(centres).astype(np.float64)
    out.setflags(write=False)
    return out


def letterbox(image: np.ndarray, size: int = PALM_INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Fit an image into a ``size x size`` square, keeping its aspect ratio (zero borders).

    Args:
        image: (H, W, 3) uint8 RGB.
        size: side of the square.

    Returns:
        ((size, size, 3) uint8 square, (2, 3) affine mapping square pixels to image pixels).

    Raises:
        ShapeError: ``image`` is not (H, W, 3).
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ShapeError(f"image expected shape (H, W, 3); got {getattr(image, 'shape', None)}")
    h, w = image.shape[:2]
    scale = size / max(h, w)  # square pixels per image pixel
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    square = np.zeros((size, size, 3), np.uint8)
    y0, x0 = (size - new_h) // 2, (size - new_w) // 2
    square[y0 : y0 + new_h, x0 : x0 + new_w] = resized
    # cv2.resize aligns pixel centres: dst = s * (src + 0.5) - 0.5, per axis.
    sx, sy = new_w / w, new_h / h
    to_square = np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]])
    return square, cv2.invertAffineTransform(to_square)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -100.0, 100.0)))


def decode_palms(
    regressors: np.ndarray,
    scores: np.ndarray,
    square_to_image: np.ndarray,
    min_score: float = 0.5,
    nms_iou: float = 0.3,
    input_size: int = PALM_INPUT_SIZE,
) -> list[PalmDetection]:
    """Raw detector outputs of one image -> palms in image pixels, best first.

    Args:
        regressors: (A, 18) raw offsets (box x, y, w, h, then 7 keypoints x, y), input
            pixels relative to the anchor centre.
        scores: (A,) or (A, 1) raw score logits.
        square_to_image: (2, 3) affine from the letterboxed square to the image
            (:func:`letterbox`).
        min_score: keep anchors whose sigmoid score is at least this.
        nms_iou: IoU above which two detections are merged.
        input_size: the detector's input side, pixels.

    Anchors whose outputs are not all finite are dropped.

    Raises:
        ShapeError: outputs not of the anchor count.
    """
    anchors = palm_anchors(input_size)
    a = len(anchors)
    check_shape(regressors, (a, 4 + 2 * _NUM_KEYPOINTS), "regressors")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape != (a,):
        raise ShapeError(f"scores expected {a} values (one per anchor); got {scores.shape}")
    if not (0.0 < min_score < 1.0):
        raise ConfigError(f"min_score expected in (0, 1); got {min_score}")
    prob = _sigmoid(scores)
    regressors = np.asarray(regressors, dtype=np.float64)
    # A NaN or inf output (a float16 overflow, say) is no palm: it would make a crop of NaN.
    finite = np.isfinite(regressors).all(axis=1) & np.isfinite(scores)
    keep = np.flatnonzero(finite & (prob >= min_score))
    if keep.size == 0:
        return []
    raw = regressors[keep] / input_size
    centre = anchors[keep]
    box = np.concatenate([raw[:, :2] + centre, raw[:, 2:4]], axis=1) * input_size
    kps = (raw[:, 4:].reshape(-1, _NUM_KEYPOINTS, 2) + centre[:, None]) * input_size
    merged = weighted_nms(box, kps, prob[keep], nms_iou)
    lin, off = square_to_image[:, :2], square_to_image[:, 2]
    scale = math.sqrt(abs(np.linalg.det(lin)))
    out = []
    for b, k, s in merged:  # square pixels (continuous) -> image pixels
        centre_img = (b[:2] - 0.5) @ lin.T + off
        k_img = (k - 0.5) @ lin.T + off
        out.append(PalmDetection(float(s), np.r_[centre_img, b[2:] * scale], k_img))
    return out


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one (4,) centre-size box with (N, 4) others."""
    lo = np.maximum(box[:2] - box[2:] / 2, others[:, :2] - others[:, 2:] / 2)
    hi = np.minimum(box[:2] + box[2:] / 2, others[:, :2] + others[:, 2:] / 2)
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=1)
    union = np.prod(box[2:]) + np.prod(others[:, 2:], axis=1) - inter
    return inter / np.maximum(union, 1e-12)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Weighted non-maximum suppression: each cluster of overlapping detections becomes one,
    its box and keypoints the score-weighted mean of the cluster, its score the best.

    Args:
        boxes: (N, 4) ``[x_center, y_center, w, h]``.
        keypoints: (N, K, 2).
        scores: (N,) in [0, 1].
        iou: detections overlapping the cluster's best by more than this join it.

    Returns:
        ``[(box (4,), keypoints (K, 2), score)]``, best first.
    """
    order = np.argsort(-scores, kind="stable")
    remaining = order
    out = []
    while remaining.size:
        best = remaining[0]
        overlap = _iou(boxes[best], boxes[remaining])
        members = remaining[overlap > iou]
        members = members if members.size else remaining[:1]
        w = scores[members] / scores[members].sum()
        out.append(
            (
                (w[:, None] * boxes[members]).sum(0),
                (w[:, None, None] * keypoints[members]).sum(0),
                float(scores[best]),
            )
        )
        remaining = remaining[overlap <= iou]
        if best in remaining:  # a degenerate box overlaps nothing, not even itself
            remaining = remaining[remaining != best]
    return out


def upright_angle(base: np.ndarray, tip: np.ndarray) -> float:
    """Angle of the :class:`~stereo_hand_mesh.geometry.crop.RotatedCrop` whose up points from
    ``base`` to ``tip`` (image pixels), radians."""
    v = np.asarray(tip, np.float64) - np.asarray(base, np.float64)
    return math.atan2(float(v[0]), float(-v[1]))


def roi_from_palm(
    palm: PalmDetection, out_size: int, scale: float = 2.6, shift_up: float = 0.5
) -> RotatedCrop:
    """The landmark network's crop around a detected palm.

    Args:
        palm: the detection, image pixels.
        out_size: the landmark network's input side, pixels.
        scale: the crop's side over the palm box's long side.
        shift_up: shift of the centre toward the fingers, in palm-box heights.

    Raises:
        ShapeError: the palm's box is not (4,) or its keypoints not (7, 2), or either holds
            NaN or inf.
    """
    check_shape(palm.box, (4,), "palm.box")
    check_shape(palm.keypoints, (_NUM_KEYPOINTS, 2), "palm.keypoints")
    if not (np.isfinite(palm.box).all() and np.isfinite(palm.keypoints).all()):
        raise ShapeError("palm expected a finite box and keypoints (pixels); got NaN or inf")
    angle = upright_angle(palm.keypoints[_WRIST_CENTER], palm.keypoints[_MIDDLE_MCP])
    up = np.array([math.sin(angle), -math.cos(angle)])  # the crop's up in the image
    centre = palm.box[:2] + up * shift_up * palm.box[3]
    side = float(max(palm.box[2], palm.box[3])) * scale
    return RotatedCrop(float(centre[0]), float(centre[1]), side, angle, out_size)


#: Landmarks that bound the hand for the next crop (wrist, thumb base, the finger bases and
#: their first joints: the fingertips move too fast to bound the next pair's hand).
_ROI_LANDMARKS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)


def roi_from_landmarks(
    keypoints: np.ndarray, out_size: int, scale: float = 2.0, shift_up: float = 0.1
) -> RotatedCrop:
    """The landmark network's next crop from this pair's keypoints (tracking).

    Up points from the wrist toward the middle of the index, middle and ring MCPs; the crop
    bounds the palm-side keypoints in that turned frame, shifted ``shift_up`` of its height
    toward the fingers and grown ``scale`` times on its long side.

    Args:
        keypoints: (21, 2) image pixels, our joint order.
        out_size: the landmark network's input side, pixels.
        scale: crop side over the bounded region's long side.
        shift_up: shift toward the fingers, in heights of the bounded region.

    Raises:
        ShapeError: ``keypoints`` is not (21, 2) finite.
    """
    check_shape(keypoints, (21, 2), "keypoints")
    if not np.isfinite(keypoints).all():
        raise ShapeError("keypoints expected finite pixel coordinates; got NaN or inf")
    k = np.asarray(keypoints, np.float64)
    tip = 0.5 * (0.5 * (k[5] + k[13]) + k[9])
    angle = upright_angle(k[0], tip)
    c, s = math.cos(angle), math.sin(angle)
    axes = np.array([[c, s], [-s, c]])  # rows: the crop's x and y axes in the image
    local = k[list(_ROI_LANDMARKS)] @ axes.T
    lo, hi = local.min(axis=0), local.max(axis=0)
    size = hi - lo
    centre_local = 0.5 * (lo + hi) - np.array([0.0, shift_up * size[1]])
    centre = centre_local @ axes
    side = float(max(size[0], size[1])) * scale
    return RotatedCrop(float(centre[0]), float(centre[1]), max(side, 1.0), angle, out_size)
