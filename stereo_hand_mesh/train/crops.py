"""Stereo crop sets: every pair of a source cut once into two square crops, kept in memory.

Training and evaluation read a :class:`CropSet` built from any stereo source (synthetic
split or rosbag2 bag) by :func:`build_crop_set`. Crop boxes come from the hand masks
(``box_source="masks"``: the source's masks, else :func:`~stereo_hand_mesh.pipeline.skin.
skin_mask`), which is what adapt and eval use and what needs no label, or from the ground
truth vertex projections (``"ground_truth"``, pretraining only, with box jitter).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from stereo_hand_mesh.data.sample import MonoSample, StereoSample
from stereo_hand_mesh.data.sources import iter_stereo_samples
from stereo_hand_mesh.errors import ConfigError, DataError
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.geometry.crop import CropBox, cut_crop
from stereo_hand_mesh.losses.stereo import StereoCropBatch
from stereo_hand_mesh.pipeline.skin import crop_boxes_from_masks, skin_mask, stereo_crop_boxes

__all__ = [
    "BOX_SOURCES",
    "CropSet",
    "build_crop_set",
    "build_monocular_crop_set",
    "load_crop_set",
]

BOX_SOURCES = ("masks", "ground_truth")


@dataclass(frozen=True)
class CropSet(StereoCropBatch):
    """N stereo pairs as square crops of side S, their geometry and labels (CPU tensors).

    The crop type the losses read (:class:`~stereo_hand_mesh.losses.StereoCropBatch`) over
    every pair of a source, with its labels; ``crops.batch(rows, device)`` takes a step's
    pairs from it as the float32 input of the network and the losses.

    Attributes:
        image_left: (N, 3, S, S) uint8 RGB left crops.
        image_right: (N, 3, S, S) uint8 RGB right crops.
        mask_left: (N, S, S) uint8 0/1 hand mask of the left crops.
        mask_right: (N, S, S) uint8 0/1 hand mask of the right crops.
        box_left: (N, 3) float64 ``[x0, y0, side]`` in left image pixels.
        box_right: (N, 3) float64 in right image pixels.
        intrinsics_left: (N, 4) float64 ``[fx, fy, cx, cy]`` of the rectified left image.
        intrinsics_right: (N, 4) float64 of the right image.
        baseline: (N,) float64 metres.
        index: (N,) int64 position of each pair in its source.
        vertices: (N, V, 3) float32 ground-truth vertices (metres, left frame) or None.
        joints: (N, 21, 3) float32 ground-truth joints or None.
        skipped: pairs of the source left out (no hand found in a view).
        stereo: False for monocular labelled data (FreiHAND): the "right" fields repeat the
            left ones and the baseline is 0; only pretraining accepts such a set.
    """

    index: Tensor
    vertices: Tensor | None = None
    joints: Tensor | None = None
    skipped: int = 0
    stereo: bool = True

    def __len__(self) -> int:
        return int(self.image_left.shape[0])

    def without_ground_truth(self) -> CropSet:
        """The same set with the ground-truth fields dropped."""
        return replace(self, vertices=None, joints=None)

    def subset(self, rows: Tensor) -> CropSet:
        """The pairs at ``rows`` (int64 positions), as they are (CPU, own dtypes)."""
        pick = {
            name: (None if value is None else value.index_select(0, rows))
            for name, value in self.__dict__.items()
            if isinstance(value, Tensor) or value is None
        }
        return replace(self, **pick)


def _rig_arrays(sample: StereoSample) -> tuple[np.ndarray, np.ndarray, float]:
    rig = StereoRig.from_camera_info(sample.left_info, sample.right_info)
    k_l = np.array([rig.left.fx, rig.left.fy, rig.left.cx, rig.left.cy])
    k_r = np.array([rig.right.fx, rig.right.fy, rig.right.cx, rig.right.cy])
    return k_l, k_r, rig.baseline


def _jitter(
    boxes: tuple[CropBox, CropBox], rng: np.random.Generator, amount: float
) -> tuple[CropBox, CropBox]:
    """Scale both boxes alike and shift them (same row shift, own column shifts)."""
    left, right = boxes
    scale = float(np.exp(rng.uniform(-amount, amount)))
    side = left.side * scale
    dy = rng.uniform(-amount, amount) * left.side
    out = []
    for box in (left, right):
        cx = box.x0 + box.side / 2 + rng.uniform(-amount, amount) * box.side
        cy = box.y0 + box.side / 2 + dy
        out.append(CropBox(cx - side / 2, cy - side / 2, side, box.out_size))
    return out[0], out[1]


def build_crop_set(
    samples: Iterable[StereoSample],
    out_size: int = 128,
    box_source: str = "masks",
    margin: float = 1.3,
    copies: int = 1,
    jitter: float = 0.0,
    seed: int = 0,
    ground_truth: bool = False,
    limit: int | None = None,
) -> CropSet:
    """Cut every stereo pair into two square crops of equal scale and rows.

    Args:
        samples: stereo samples (any reader).
        out_size: crop side S, pixels.
        box_source: ``"masks"`` (the sample's hand masks, else skin detection; needs no
            label) or ``"ground_truth"`` (projected ground-truth vertices).
        margin: crop side over the hand's larger extent.
        copies: crops per pair (each with its own jitter) for augmentation.
        jitter: relative box jitter (scale and shift), 0 for none.
        seed: seed of the jitter.
        ground_truth: keep the ground-truth vertices and joints (pretrain, eval).
        limit: stop after this many pairs of the source.

    Returns:
        :class:`CropSet`.

    Raises:
        ConfigError: on an unknown ``box_source`` or bad counts.
        DataError: when no pair has a hand, or ground truth is asked for and missing.
    """
    if box_source not in BOX_SOURCES:
        raise ConfigError(f"box_source expected one of {BOX_SOURCES}; got {box_source!r}")
    if copies < 1:
        raise ConfigError(f"copies expected >= 1; got {copies}")
    rng = np.random.default_rng(seed)
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("il", "ir", "ml", "mr", "bl", "br", "kl", "kr", "b", "i", "v", "j")
    }
    skipped = 0
    for n, sample in enumerate(samples):
        if limit is not None and n >= limit:
            break
        if ground_truth and (sample.vertices is None or sample.joints is None):
            raise DataError(
                f"pair {sample.index} expected ground-truth vertices and joints; got none "
                "(pretrain and eval need a labelled source)"
            )
        mask_l, mask_r = sample.mask_left, sample.mask_right
        if mask_l is None or mask_r is None:
            mask_l, mask_r = skin_mask(sample.left), skin_mask(sample.right)
        if box_source == "ground_truth":
            if sample.vertices_uv_left is None or sample.vertices_uv_right is None:
                raise DataError(f"pair {sample.index} has no vertex projections for boxes")
            uv_l, uv_r = sample.vertices_uv_left, sample.vertices_uv_right
            boxes = stereo_crop_boxes(
                uv_l.min(0), uv_l.max(0), uv_r.min(0), uv_r.max(0), out_size, margin
            )
        else:
            found = crop_boxes_from_masks(mask_l, mask_r, out_size, margin)
            if found is None:
                skipped += 1
                continue
            boxes = found
        k_l, k_r, baseline = _rig_arrays(sample)
        for _ in range(copies):
            bl, br = _jitter(boxes, rng, jitter) if jitter > 0 else boxes
            cols["il"].append(cut_crop(sample.left, bl).transpose(2, 0, 1))
            cols["ir"].append(cut_crop(sample.right, br).transpose(2, 0, 1))
            cols["ml"].append(cut_crop(mask_l.astype(np.uint8), bl) > 0)
            cols["mr"].append(cut_crop(mask_r.astype(np.uint8), br) > 0)
            cols["bl"].append(bl.as_array())
            cols["br"].append(br.as_array())
            cols["kl"].append(k_l)
            cols["kr"].append(k_r)
            cols["b"].append(np.array(baseline))
            cols["i"].append(np.array(sample.index))
            if ground_truth:
                cols["v"].append(np.asarray(sample.vertices, dtype=np.float32))
                cols["j"].append(np.asarray(sample.joints, dtype=np.float32))
    if not cols["il"]:
        raise DataError(
            f"expected stereo pairs with a hand in both views; got none ({skipped} without a hand)"
        )

    def stack(key: str, dtype: torch.dtype) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.stack(cols[key]))).to(dtype)

    return CropSet(
        image_left=stack("il", torch.uint8),
        image_right=stack("ir", torch.uint8),
        mask_left=stack("ml", torch.uint8),
        mask_right=stack("mr", torch.uint8),
        box_left=stack("bl", torch.float64),
        box_right=stack("br", torch.float64),
        intrinsics_left=stack("kl", torch.float64),
        intrinsics_right=stack("kr", torch.float64),
        baseline=stack("b", torch.float64),
        index=stack("i", torch.int64),
        vertices=stack("v", torch.float32) if ground_truth else None,
        joints=stack("j", torch.float32) if ground_truth else None,
        skipped=skipped,
    )


def load_crop_set(
    path: str | os.PathLike[str],
    out_size: int = 128,
    ground_truth: bool = False,
    limit: int | None = None,
    **kwargs,
) -> CropSet:
    """:func:`build_crop_set` over a split directory or a rosbag2 bag at ``path``.

    With ``ground_truth=False`` the source is opened without ground truth (a split's
    ``annotations.npz`` is never read, a bag's ground-truth topic is skipped).
    """
    samples = iter_stereo_samples(path, load_ground_truth=ground_truth)
    return build_crop_set(samples, out_size, ground_truth=ground_truth, limit=limit, **kwargs)


def build_monocular_crop_set(
    samples: Iterable[MonoSample],
    out_size: int = 128,
    margin: float = 1.3,
    copies: int = 1,
    jitter: float = 0.0,
    seed: int = 0,
    limit: int | None = None,
) -> CropSet:
    """Crops of labelled monocular images (FreiHAND) around their projected vertices.

    The result has ``stereo=False``: the right-view fields repeat the left ones (the same
    tensors, no copy) and the baseline is 0.

    Raises:
        DataError: a sample without vertices or joints, or no sample at all.
    """
    rng = np.random.default_rng(seed)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("i", "m", "b", "k", "n", "v", "j")}
    for n, sample in enumerate(samples):
        if limit is not None and n >= limit:
            break
        if sample.vertices is None or sample.joints is None:
            raise DataError(
                f"image {sample.index} expected ground-truth vertices and joints; got none "
                "(FreiHAND pretraining needs training_verts.json and training_xyz.json)"
            )
        k = np.asarray(sample.K, dtype=np.float64)
        v = np.asarray(sample.vertices, dtype=np.float64)
        uv = (v[:, :2] / v[:, 2:3]) * [k[0, 0], k[1, 1]] + [k[0, 2], k[1, 2]]
        box, _ = stereo_crop_boxes(uv.min(0), uv.max(0), uv.min(0), uv.max(0), out_size, margin)
        mask = sample.mask if sample.mask is not None else np.zeros(sample.image.shape[:2], bool)
        for _ in range(copies):
            b = _jitter((box, box), rng, jitter)[0] if jitter > 0 else box
            cols["i"].append(cut_crop(sample.image, b).transpose(2, 0, 1))
            cols["m"].append(cut_crop(mask.astype(np.uint8), b) > 0)
            cols["b"].append(b.as_array())
            cols["k"].append(np.array([k[0, 0], k[1, 1], k[0, 2], k[1, 2]]))
            cols["n"].append(np.array(sample.index))
            cols["v"].append(v.astype(np.float32))
            cols["j"].append(np.asarray(sample.joints, dtype=np.float32))
    if not cols["i"]:
        raise DataError("expected labelled monocular images; got none")

    def stack(key: str, dtype: torch.dtype) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.stack(cols[key]))).to(dtype)

    image, mask_t = stack("i", torch.uint8), stack("m", torch.uint8)
    box_t, k_t = stack("b", torch.float64), stack("k", torch.float64)
    return CropSet(
        image_left=image,
        image_right=image,
        mask_left=mask_t,
        mask_right=mask_t,
        box_left=box_t,
        box_right=box_t,
        intrinsics_left=k_t,
        intrinsics_right=k_t,
        baseline=torch.zeros(len(image), dtype=torch.float64),
        index=stack("n", torch.int64),
        vertices=stack("v", torch.float32),
        joints=stack("j", torch.float32),
        stereo=False,
    )
