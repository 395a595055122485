"""Self-supervised stereo adaptation of the real-trained keypoint network (seed paper, eq. 10).

The product's network (the imported landmark network, :mod:`stereo_hand_mesh.model.
tflite_graph`) outputs 21 keypoints per view; the mesh is the template hand fitted to both
views' keypoints (:mod:`stereo_hand_mesh.pipeline.fit`). The paper's six losses are computed
on fitted meshes, and their gradients reach the network's weights through a differentiable
chain::

    crops -> landmark network -> keypoints (crop px) -> image px (the crops' affine maps)
          -> unrolled template fit (model/hand_fit_torch.py) -> mesh, left optical frame

**Preparation** (once, frozen initial network, no gradient): every unlabelled pair goes
through the product pipeline (:class:`~stereo_hand_mesh.pipeline.estimator.HandMeshPipeline`,
each pair on its own); a pair without a published mesh is skipped (the reasons are counted).
For a kept pair we store the network's input crops (where the pipeline placed them), the
fit's parameters (the start of the differentiable refinement), the initial keypoints
(pseudo-labels of the optional keypoint term), and square loss crops around the fitted mesh
with their hand masks (skin colour inside the fitted hand's dilated outline) for eq. 10.

**Two branches.** The paper predicts one mesh per view and ties them with Chamfer and
normal consistency. Here each branch is a fit of the template in which the branch's own view
counts fully and the other view with ``other_view_weight`` (binocular variant: all its
keypoints, so depth comes from disparity; monocular variant: its wrist only, so the root
depth comes from disparity and the rest from the own view and the network's 3D landmarks,
the paper's monocular variant). Where the two views' keypoints disagree the branches differ,
and Chamfer and normal terms measure it.

**Terms.** Eq. 10 exactly as in :func:`~stereo_hand_mesh.losses.stereo.
stereo_self_supervised_loss` (photo-consistency through the mesh's depth between the loss
crops; edge vs the frozen initial network's branch meshes; Laplacian; mask; Chamfer;
normal), plus optionally ``keypoint_weight`` times the mean squared distance of both views'
keypoints to the frozen initial network's, in units of the crop side (a further term: it
keeps the network's outputs where the template cannot see, e.g. the wrist's convention).

Shapes: N pairs, B a batch, V template vertices, S network input side (224).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from stereo_hand_mesh.data.sample import StereoSample
from stereo_hand_mesh.errors import ConfigError, DataError, ShapeError
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.geometry.crop import cut_crop
from stereo_hand_mesh.hand.fit_types import FitSettings, HandFit
from stereo_hand_mesh.losses import StereoLossSettings, StereoLossWeights
from stereo_hand_mesh.losses.stereo import StereoCropBatch, stereo_self_supervised_loss
from stereo_hand_mesh.model.hand_fit_torch import HandParams, fit_hand_torch
from stereo_hand_mesh.model.tflite_graph import (
    TFLiteGraphNet,
    make_trainable,
    weight_layers,
)
from stereo_hand_mesh.pipeline.estimator import HandMeshPipeline
from stereo_hand_mesh.pipeline.skin import skin_mask, stereo_crop_boxes

__all__ = [
    "ADAPTATION_METADATA_KEY",
    "AdaptPairs",
    "BranchOutput",
    "KeypointAdaptReport",
    "KeypointAdaptResult",
    "KeypointAdaptSettings",
    "adapt_keypoint_network",
    "adapt_keypoints",
    "branch_meshes",
    "keypoint_score",
    "prepare_adapt_pairs",
    "save_adapted_network",
    "trainable_parameters",
]

#: Choices of :attr:`KeypointAdaptSettings.layers`.
LAYER_CHOICES = ("all", "late", "head")


@dataclass(frozen=True)
class KeypointAdaptSettings:
    """How the keypoint network adapts.

    The defaults were chosen without labels, by the product's own rule: on the first half
    of ``tabletop_a`` (frames 0:38, its labels never read), adapting on the first three
    quarters of the pairs and scoring the last quarter with :func:`keypoint_score`, over
    layers {head, late, all} x lr {1e-5, 1e-4} x keypoint_weight {1, 1000}
    (``benchmarks/results/adapt_keypoints_choice.json``). Only ``head`` at 1e-5 scored
    below the calibrated initial network (57.69 vs 57.98); every ``late``/``all`` run and
    every run at 1e-4 scored worse (58.4-68.1): with a few dozen pairs, moving the trunk
    of a network trained on millions of real hands makes its keypoints worse on held-out
    pairs, and the photo-consistency term (weight 100, ~0.3 per view on a 49 cm baseline
    with converging cameras) has easy minima away from the hand. ``keypoint_weight`` 1000
    anchors the keypoints (the heads scored the same with 1 and 1000; the trunk runs were
    1.3-6 points better with 1000).

    Attributes:
        lr: Adam learning rate.
        epochs: passes over the pairs (a time budget may stop earlier).
        time_budget_s: stop after this many seconds of training (None: none).
        layers: which weights adapt: ``"all"``, ``"late"`` (the last quarter of the weight
            layers: the last blocks and the heads) or ``"head"`` (the fully connected heads).
        keypoint_weight: weight of the keypoint pseudo-label term (0: the paper's six only).
        epipolar_weight: weight of the row-agreement term: on a rectified pair a joint lies
            on the same row in both views; the term is the mean squared row difference of
            the two views' keypoints in crop sides, weighted by the product's agreement
            weights (so a view that is plainly wrong does not drag the other).
        other_view_weight: weight of the other view's keypoints in a branch's fit.
        fit_iterations: unrolled Levenberg-Marquardt iterations of the branch fits.
        loss_crop: side of the square loss crops, pixels.
        max_grad_norm: gradient clipping (global L2 norm).
        divergence_ratio: the run stops as diverged when a step's loss exceeds this multiple
            of the initial weights' loss (the first step's, before it moves them), or when a
            loss or weight is not finite.
    """

    lr: float = 1e-5
    epochs: int = 6
    time_budget_s: float | None = None
    layers: str = "head"
    keypoint_weight: float = 1000.0
    epipolar_weight: float = 0.0
    other_view_weight: float = 0.5
    fit_iterations: int = 2
    loss_crop: int = 96
    max_grad_norm: float = 1.0
    divergence_ratio: float = 3.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr expected a finite value > 0; got {self.lr}")
        if self.epochs < 1:
            raise ConfigError(f"epochs expected >= 1; got {self.epochs}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ConfigError(f"time_budget_s expected > 0 or None; got {self.time_budget_s}")
        if self.layers not in LAYER_CHOICES:
            raise ConfigError(f"layers expected one of {LAYER_CHOICES}; got {self.layers!r}")
        for name in ("keypoint_weight", "epipolar_weight", "other_view_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} expected a finite value >= 0; got {value}")
        if self.other_view_weight > 1:
            raise ConfigError(f"other_view_weight expected <= 1; got {self.other_view_weight}")
        if self.fit_iterations < 1 or self.loss_crop < 16:
            raise ConfigError(
                f"fit_iterations expected >= 1 and loss_crop >= 16; got "
                f"{self.fit_iterations}, {self.loss_crop}"
            )
        if not self.divergence_ratio > 1:
            raise ConfigError(f"divergence_ratio expected > 1; got {self.divergence_ratio}")


@dataclass(frozen=True)
class AdaptPairs:
    """Unlabelled pairs prepared for adaptation (CPU tensors; N pairs).

    Attributes:
        net_input: (N, 2, S, S, 3) uint8 RGB network crops, left then right view.
        crop_to_image: (N, 2, 2, 3) float64 affine maps, crop pixels -> image pixels.
        keypoints: (N, 2, 21, 2) float64 the initial network's keypoints, image pixels.
        joint_weights: (N, 21) float64 row agreement of each keypoint in [0, 1] (the fit's
            weights in the product pipeline).
        crop_side: (N,) float64 mean side of the two network crops, image pixels.
        params: the product fit's parameters (float64), start of the branch fits.
        handedness: ``"right"`` or ``"left"`` (every pair).
        loss: the loss crops, masks and geometry (:class:`StereoCropBatch`).
        frames: (N,) int64 the pairs' indices in the source.
        skipped: reason -> count of the pairs left out.
        fits: the product's fits (calibration reads their shapes).
        confidence: (N,) float64 the product's confidence of each pair.
        image_size: ``(width, height)`` of the pairs, pixels.
    """

    net_input: Tensor
    crop_to_image: Tensor
    keypoints: Tensor
    joint_weights: Tensor
    crop_side: Tensor
    params: HandParams
    handedness: str
    loss: StereoCropBatch
    frames: Tensor
    skipped: dict[str, int]
    fits: tuple[HandFit, ...] = ()
    confidence: Tensor | None = None
    image_size: tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return int(self.net_input.shape[0])

    def subset(self, rows: Tensor) -> AdaptPairs:
        """The pairs at ``rows`` (int64)."""

        def pick(t: Tensor) -> Tensor:
            return t.index_select(0, rows)

        p = self.params
        return AdaptPairs(
            pick(self.net_input),
            pick(self.crop_to_image),
            pick(self.keypoints),
            pick(self.joint_weights),
            pick(self.crop_side),
            HandParams(pick(p.pose), pick(p.shape), pick(p.global_rot), pick(p.trans)),
            self.handedness,
            StereoCropBatch(
                **{f.name: pick(getattr(self.loss, f.name)) for f in fields(StereoCropBatch)}
            ),
            pick(self.frames),
            dict(self.skipped),
            tuple(self.fits[int(i)] for i in rows) if self.fits else (),
            None if self.confidence is None else pick(self.confidence),
            self.image_size,
        )


def _hull_mask(uv: np.ndarray, shape: tuple[int, int], grow: float) -> np.ndarray:
    """(H, W) bool: the convex hull of (V, 2) pixel points, dilated by ``grow`` of its size."""
    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(uv).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    size = float(np.ptp(uv, axis=0).max())
    k = max(round(grow * size) | 1, 3)
    return cv2.dilate(mask, np.ones((k, k), np.uint8)) > 0


def prepare_adapt_pairs(
    samples: Iterable[StereoSample],
    pipeline: HandMeshPipeline,
    loss_crop: int = 96,
    limit: int | None = None,
    progress: bool = False,
) -> AdaptPairs:
    """Run the frozen product pipeline on unlabelled pairs and keep what adaptation needs.

    Each pair is processed on its own (``pipeline.reset()`` first; the pipeline should have
    ``smoothing=False``); its most confident hand is kept. Ground truth, if the samples carry
    any, is never read. Adaptation is for one hand (the user's): with the pipeline's
    ``handedness`` ``"auto"``, the side most pairs show is that hand, and pairs whose hand is
    of the other side are left out (counted in ``skipped``).

    Args:
        samples: stereo pairs (any reader; open it with ``load_ground_truth=False``).
        pipeline: the product pipeline with the initial network.
        loss_crop: side of the loss crops, pixels.
        limit: stop after this many pairs of the source.
        progress: print a line every 50 pairs.

    Returns:
        :class:`AdaptPairs`.

    Raises:
        DataError: no pair had a hand the pipeline would publish (the reasons are named).
    """
    cols: dict[str, list[Any]] = {
        k: []
        for k in [
            "in",
            "aff",
            "kp",
            "w",
            "side",
            "pose",
            "shape",
            "rot",
            "trans",
            "il",
            "ir",
            "ml",
            "mr",
            "bl",
            "br",
            "kl",
            "kr",
            "b",
            "f",
        ]
    }
    cols["c"] = []
    fits: list[HandFit] = []
    rig0: tuple[np.ndarray, tuple[int, int]] | None = None
    skipped: Counter[str] = Counter()
    sigma_crop = pipeline.settings.confidence_sigma_crop
    sides: list[str] = []
    for n, sample in enumerate(samples):
        if limit is not None and n >= limit:
            break
        if progress and n and n % 50 == 0:
            print(f"adapt: prepared {n} pairs ({sum(skipped.values())} skipped)", flush=True)
        rig = StereoRig.from_camera_info(sample.left_info, sample.right_info)
        geometry = np.array(
            [rig.left.fx, rig.left.fy, rig.left.cx, rig.left.cy, rig.right.cx, rig.baseline]
        )
        size = (int(rig.left.width), int(rig.left.height))
        if rig0 is None:
            rig0 = (geometry, size)
        elif size != rig0[1] or not np.allclose(geometry, rig0[0], rtol=1e-6, atol=1e-9):
            raise DataError(
                f"adapt expected one camera for the whole recording; the camera_info changes "
                f"at pair {sample.index}: {rig0[1][0]}x{rig0[1][1]} [fx fy cx cy cx_r B] "
                f"{np.round(rig0[0], 4).tolist()} before, {size[0]}x{size[1]} "
                f"{np.round(geometry, 4).tolist()} there (record one rig per session)"
            )
        pipeline.reset()
        try:
            est = pipeline.process(sample.left, sample.right, rig)
        except ShapeError as err:  # e.g. images of another size than their camera_info
            skipped[f"bad pair: {err}"] += 1
            continue
        if not est.found or est.fit is None or est.keypoints is None:
            skipped[_reason_kind(est.reason)] += 1
            continue
        crops = est.boxes
        fit = est.fit
        kp = est.keypoints
        side = 0.5 * (crops.left.side + crops.right.side)
        dv = np.abs(kp[0, :, 1] - kp[1, :, 1])
        cols["w"].append(np.exp(-0.5 * (dv / (sigma_crop * side)) ** 2))
        cols["in"].append(
            np.stack(
                [
                    cut_crop(sample.left, crops.left, antialias=False),
                    cut_crop(sample.right, crops.right, antialias=False),
                ]
            )
        )
        cols["aff"].append(np.stack([crops.left.inverse_affine(), crops.right.inverse_affine()]))
        cols["kp"].append(kp)
        cols["side"].append(side)
        for key, value in (
            ("pose", fit.pose),
            ("shape", fit.shape),
            ("rot", fit.global_rot),
            ("trans", fit.trans),
        ):
            cols[key].append(np.asarray(value, np.float64))
        uv_l, uv_r = rig.project_left(fit.vertices), rig.project_right(fit.vertices)
        box_l, box_r = stereo_crop_boxes(
            uv_l.min(0), uv_l.max(0), uv_r.min(0), uv_r.max(0), loss_crop, 1.3
        )
        for image, uv, box, ki, km in (
            (sample.left, uv_l, box_l, "il", "ml"),
            (sample.right, uv_r, box_r, "ir", "mr"),
        ):
            hand = skin_mask(image) & _hull_mask(uv, image.shape[:2], 0.15)
            if hand.sum() < 0.2 * _hull_mask(uv, image.shape[:2], 0.0).sum():
                hand = _hull_mask(uv, image.shape[:2], 0.0)  # skin colour failed: the outline
            cols[ki].append(cut_crop(image, box).transpose(2, 0, 1))
            cols[km].append(cut_crop(hand.astype(np.uint8), box) > 0)
        cols["bl"].append(box_l.as_array())
        cols["br"].append(box_r.as_array())
        cols["kl"].append(np.array([rig.left.fx, rig.left.fy, rig.left.cx, rig.left.cy]))
        cols["kr"].append(np.array([rig.right.fx, rig.right.fy, rig.right.cx, rig.right.cy]))
        cols["b"].append(np.array(rig.baseline))
        cols["f"].append(np.array(sample.index))
        fits.append(fit)
        cols["c"].append(np.array(est.confidence))
        sides.append(est.handedness)
    handedness = pipeline.settings.handedness
    if handedness == "auto" and sides:
        counts = Counter(sides)
        handedness = max(("right", "left"), key=lambda side: counts[side])
        keep = [k for k, side in enumerate(sides) if side == handedness]
        if len(keep) < len(sides):
            other = "left" if handedness == "right" else "right"
            skipped[f"a {other} hand (the recording's hand is the {handedness} one)"] += len(
                sides
            ) - len(keep)
            cols = {key: [values[k] for k in keep] for key, values in cols.items()}
            fits = [fits[k] for k in keep]
    if not cols["in"]:
        raise DataError(
            "adapt expected stereo pairs in which the product pipeline finds a hand; got none "
            f"(skipped: {dict(skipped) or 'no pairs at all'})"
        )

    def stack(key: str, dtype: torch.dtype) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.stack(cols[key]))).to(dtype)

    f64 = torch.float64
    return AdaptPairs(
        net_input=stack("in", torch.uint8),
        crop_to_image=stack("aff", f64),
        keypoints=stack("kp", f64),
        joint_weights=stack("w", f64),
        crop_side=stack("side", f64),
        params=HandParams(
            stack("pose", f64), stack("shape", f64), stack("rot", f64), stack("trans", f64)
        ),
        handedness=handedness,
        loss=StereoCropBatch(
            stack("il", torch.uint8),
            stack("ir", torch.uint8),
            stack("ml", torch.uint8),
            stack("mr", torch.uint8),
            stack("bl", f64),
            stack("br", f64),
            stack("kl", f64),
            stack("kr", f64),
            stack("b", f64),
        ),
        frames=stack("f", torch.int64),
        skipped=dict(skipped),
        fits=tuple(fits),
        confidence=stack("c", f64),
        image_size=rig0[1] if rig0 is not None else (0, 0),
    )


def _reason_kind(reason: str) -> str:
    """A reason without its numbers (for counting)."""
    return "".join(c for c in reason.split("(")[0] if not c.isdigit()).strip() or "unknown"


def trainable_parameters(net: TFLiteGraphNet, layers: str) -> list[torch.nn.Parameter]:
    """Freeze every weight of ``net``, then make the chosen layers trainable (their params)."""
    if layers not in LAYER_CHOICES:
        raise ConfigError(f"layers expected one of {LAYER_CHOICES}; got {layers!r}")
    for p in net.parameters():
        p.requires_grad_(False)
    found = weight_layers(net)
    if layers == "head":
        chosen = [m for _, name, m in found if name == "FULLY_CONNECTED"]
    elif layers == "late":
        chosen = [m for _, _, m in found[-max(len(found) // 4, 1) :]]
    else:
        chosen = [m for _, _, m in found]
    params: list[torch.nn.Parameter] = []
    for module in chosen:
        params += make_trainable(module)
    return params


@dataclass(frozen=True)
class BranchOutput:
    """The chain's output for a batch of B pairs (float64, left optical frame).

    Attributes:
        left: (B, V, 3) left branch mesh, metres.
        right: (B, V, 3) right branch mesh, metres.
        keypoints: (B, 2, 21, 2) both views' keypoints, image pixels.
        presence: (B, 2) the network's presence per view.
        joints: (B, 2, 21, 3) the left and right branches' fitted joints, metres.
    """

    left: Tensor
    right: Tensor
    keypoints: Tensor
    presence: Tensor
    joints: Tensor | None = None


def branch_meshes(
    net: TFLiteGraphNet,
    pairs: AdaptPairs,
    variant: str,
    settings: KeypointAdaptSettings,
    fit_settings: FitSettings | None = None,
) -> BranchOutput:
    """Both branches' fitted meshes for ``pairs`` (differentiable w.r.t. the network).

    Args:
        net: the landmark network (gradients flow to its trainable weights).
        pairs: a batch (:meth:`AdaptPairs.subset`).
        variant: ``"binocular"`` or ``"monocular"`` (module docstring).
        settings: fit iterations and the other view's weight.
        fit_settings: the template fit's settings (e.g. a calibrated ``fixed_shape``).
    """
    if variant not in ("binocular", "monocular"):
        raise ConfigError(f"variant expected binocular or monocular; got {variant!r}")
    batch = len(pairs)
    size = pairs.net_input.shape[2]
    images = pairs.net_input.reshape(batch * 2, size, size, 3).permute(0, 3, 1, 2)
    out = net(images.to(torch.float32) / 255.0)
    raw = out["landmarks"].reshape(batch, 2, 21, 3).to(torch.float64)
    aff = pairs.crop_to_image
    uv = torch.einsum("bvij,bvkj->bvki", aff[..., :2], raw[..., :2] - 0.5) + aff[:, :, None, :, 2]
    world = out["world_landmarks"].reshape(batch, 2, 21, 3).to(torch.float64)
    # crop axes -> image axes: the crop's rotation (the affine's linear part, normalized)
    lin = aff[..., :2]
    rot = lin / torch.sqrt((lin[..., 0] ** 2).sum(-1))[..., None, None]
    world_xy = torch.einsum("bvij,bvkj->bvki", rot, world[..., :2])
    world = torch.cat([world_xy, world[..., 2:]], dim=-1)
    w = pairs.joint_weights
    other = settings.other_view_weight
    if variant == "monocular":
        other_w = torch.zeros_like(w)
        other_w[:, 0] = w[:, 0].clamp_min(0.5)  # the wrist: root depth from disparity
    else:
        other_w = w * other
    k_l, k_r = pairs.loss.intrinsics_left, pairs.loss.intrinsics_right
    meshes, joints = [], []
    for own in (0, 1):
        weights = torch.stack([w, other_w] if own == 0 else [other_w, w], dim=1)
        verts, fitted, _ = fit_hand_torch(
            uv[:, 0],
            uv[:, 1],
            k_l,
            k_r,
            pairs.loss.baseline,
            weights.clamp(0.0, 1.0),
            pairs.params,
            settings.fit_iterations,
            settings=fit_settings,
            handedness=pairs.handedness,
            world_landmarks=world[:, own],
        )
        meshes.append(verts)
        joints.append(fitted)
    presence = out["presence"].reshape(batch, 2).to(torch.float64)
    return BranchOutput(meshes[0], meshes[1], uv, presence, torch.stack(joints, dim=1))


def _faces(handedness: str) -> Tensor:
    from stereo_hand_mesh.hand import template_hand

    faces = np.array(template_hand().faces, dtype=np.int64)
    if handedness == "left":
        faces = faces[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(faces))


def _loss_batch(pairs: AdaptPairs) -> StereoCropBatch:
    rows = torch.arange(len(pairs))
    return pairs.loss.batch(rows, torch.device("cpu"))


def _keypoint_term(uv: Tensor, pairs: AdaptPairs) -> Tensor:
    """Mean squared keypoint distance to the initial network's, in crop sides squared."""
    d = (uv - pairs.keypoints) / pairs.crop_side[:, None, None, None]
    return (d * d).sum(-1).mean()


def _epipolar_term(uv: Tensor, pairs: AdaptPairs) -> Tensor:
    """Weighted mean squared row difference of the two views' keypoints, crop sides^2."""
    dv = (uv[:, 0, :, 1] - uv[:, 1, :, 1]) / pairs.crop_side[:, None]
    w = pairs.joint_weights
    return (w * dv * dv).sum() / w.sum().clamp_min(1e-9)


def _terms(
    net: TFLiteGraphNet,
    pairs: AdaptPairs,
    pseudo: tuple[Tensor, Tensor],
    faces: Tensor,
    variant: str,
    settings: KeypointAdaptSettings,
    loss_settings: StereoLossSettings,
    fit_settings: FitSettings | None = None,
) -> tuple[Tensor, dict[str, float], BranchOutput]:
    out = branch_meshes(net, pairs, variant, settings, fit_settings)
    crops = _loss_batch(pairs)
    terms = stereo_self_supervised_loss(
        out.left.to(torch.float32),
        out.right.to(torch.float32),
        pseudo[0].to(torch.float32),
        pseudo[1].to(torch.float32),
        faces,
        crops,
        loss_settings,
    )
    kp = _keypoint_term(out.keypoints, pairs)
    epi = _epipolar_term(out.keypoints, pairs)
    total = terms.total + settings.keypoint_weight * kp + settings.epipolar_weight * epi
    logged = {k: float(v.detach()) for k, v in terms.as_dict().items()}
    logged["keypoint"] = float(kp.detach())
    logged["epipolar"] = float(epi.detach())
    logged["loss"] = float(total.detach())
    return total, logged, out


@torch.no_grad()
def pseudo_meshes(
    net: TFLiteGraphNet,
    pairs: AdaptPairs,
    variant: str,
    settings: KeypointAdaptSettings,
    batch_size: int = 16,
    fit_settings: FitSettings | None = None,
) -> tuple[Tensor, Tensor]:
    """The frozen initial network's branch meshes (the edge loss's labels), (N, V, 3) each."""
    left, right = [], []
    for start in range(0, len(pairs), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(pairs)))
        out = branch_meshes(net, pairs.subset(rows), variant, settings, fit_settings)
        left.append(out.left)
        right.append(out.right)
    return torch.cat(left), torch.cat(right)


@torch.no_grad()
def keypoint_score(
    net: TFLiteGraphNet,
    pairs: AdaptPairs,
    variant: str = "binocular",
    settings: KeypointAdaptSettings | None = None,
    batch_size: int = 16,
    fit_settings: FitSettings | None = None,
) -> dict[str, Any]:
    """Label-free score of a network on prepared held-out pairs (lower is better).

    ``objective``: eq. 10 without its edge term (the edge term compares with the initial
    network's meshes: 0 for it by construction). ``row_disagreement``: the mean over pairs
    and joints of ``|v_left - v_right|`` over the crop side (rectified views: a joint lies
    on the same row in both). ``score`` = objective + 100 * row_disagreement (a 1%-of-crop
    disagreement weighs as 1 unit of the objective). ``fit_residual``: the mean over pairs of
    the median distance, over both views' 21 keypoints, between a keypoint and its fitted
    joint's projection (both branches), over the crop side: how well the template hand, with
    its shape, explains what both views see; the calibration's criterion (the objective
    rewards any mesh that covers more of the hand mask, a larger hand included).
    """
    settings = settings or KeypointAdaptSettings()
    faces = _faces(pairs.handedness)
    loss_settings = StereoLossSettings(weights=StereoLossWeights(edge=0.0))
    sums: Counter[str] = Counter()
    for start in range(0, len(pairs), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(pairs)))
        part = pairs.subset(rows)
        out = branch_meshes(net, part, variant, settings, fit_settings)
        terms = stereo_self_supervised_loss(
            out.left.float(), out.right.float(), out.left.float(), out.right.float(),
            faces, _loss_batch(part), loss_settings,
        )  # fmt: skip
        dv = (out.keypoints[:, 0, :, 1] - out.keypoints[:, 1, :, 1]).abs()
        rows_off = (dv / part.crop_side[:, None]).mean(1)
        n = len(rows)
        sums["objective"] += float(terms.total) * n
        sums["row_disagreement"] += float(rows_off.sum())
        sums["presence"] += float(out.presence.min(1).values.sum())
        sums["fit_residual"] += float(_fit_residual(out, part).sum())
        for key, value in terms.as_dict().items():
            sums[key] += float(value) * n
    count = max(len(pairs), 1)
    means = {k: v / count for k, v in sums.items()}
    means["score"] = means["objective"] + 100.0 * means["row_disagreement"]
    means["pairs"] = len(pairs)
    return means


def _fit_residual(out: BranchOutput, pairs: AdaptPairs) -> Tensor:
    """(B,) median keypoint-to-fitted-joint distance over both views and branches, in crop
    sides (see :func:`keypoint_score`)."""
    k_l, k_r = pairs.loss.intrinsics_left, pairs.loss.intrinsics_right
    base = pairs.loss.baseline
    res = []
    for branch in (0, 1):
        j = out.joints[:, branch]  # (B, 21, 3)
        for view, k, shift in ((0, k_l, torch.zeros_like(base)), (1, k_r, base)):
            x = (j[..., 0] - shift[:, None]) / j[..., 2]
            y = j[..., 1] / j[..., 2]
            uv = torch.stack(
                [k[:, None, 0] * x + k[:, None, 2], k[:, None, 1] * y + k[:, None, 3]], -1
            )
            res.append((uv - out.keypoints[:, view]).norm(dim=-1))
    return torch.cat(res, dim=1).median(dim=1).values / pairs.crop_side


@dataclass(frozen=True)
class KeypointAdaptResult:
    """What a run did.

    Attributes:
        steps: optimizer steps taken.
        epochs: full passes completed.
        seconds: training wall time (preparation excluded).
        diverged: why the run was stopped as diverged, or None.
        first_loss: mean loss of the first epoch.
        last_loss: mean loss of the last epoch.
        log: CSV log path (one row per step).
    """

    steps: int
    epochs: int
    seconds: float
    diverged: str | None
    first_loss: float
    last_loss: float
    log: Path | None


def adapt_keypoint_network(
    net: TFLiteGraphNet,
    pairs: AdaptPairs,
    settings: KeypointAdaptSettings,
    variant: str = "binocular",
    weights: StereoLossWeights | None = None,
    batch_size: int = 8,
    seed: int = 0,
    log_path: Path | None = None,
    progress: bool = False,
    mesh_unit_m: float = 1.0,
    fit_settings: FitSettings | None = None,
) -> KeypointAdaptResult:
    """Fine-tune ``net`` in place on prepared unlabelled pairs with eq. 10 (module docstring).

    On divergence (a non-finite loss or weight, or a step's loss above ``divergence_ratio``
    times the initial weights') the weights are put back to those at the end of
    the last good epoch (the initial ones if none) and the reason is returned.

    Args:
        net: the network to adapt (its trainable layers chosen here by ``settings.layers``).
        pairs: from :func:`prepare_adapt_pairs` with the same network.
        settings: the schedule.
        variant: ``"binocular"`` or ``"monocular"``.
        weights: eq. 10's weights (default the paper's).
        batch_size: pairs per step.
        seed: batch order.
        log_path: CSV log, one row per step (None: none).
        progress: print one line per epoch.
        mesh_unit_m: unit of the mesh terms (:class:`StereoLossSettings`).
        fit_settings: the branch fits' settings (e.g. the user's calibrated shape).

    Returns:
        :class:`KeypointAdaptResult`.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size expected >= 1; got {batch_size}")
    params = trainable_parameters(net, settings.layers)
    net.eval()  # no dropout or batch norm in the graph; eval keeps it as served
    faces = _faces(pairs.handedness)
    loss_settings = StereoLossSettings(
        weights=weights or StereoLossWeights(), mesh_unit_m=mesh_unit_m
    )
    pseudo = pseudo_meshes(net, pairs, variant, settings, fit_settings=fit_settings)
    opt = torch.optim.Adam(params, lr=settings.lr)
    gen = torch.Generator().manual_seed(seed)
    good = [p.detach().clone() for p in params]
    writer = None
    log_file = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "w", newline="")  # noqa: SIM115 (closed below)
    steps = epochs = 0
    first = last = reference = float("nan")
    diverged: str | None = None
    t0 = time.perf_counter()
    try:
        for epoch in range(settings.epochs):
            order = torch.randperm(len(pairs), generator=gen)
            losses = []
            for start in range(0, len(pairs), batch_size):
                rows = order[start : start + batch_size]
                part = pairs.subset(rows)
                pseudo_b = (pseudo[0].index_select(0, rows), pseudo[1].index_select(0, rows))
                total, logged, _ = _terms(
                    net, part, pseudo_b, faces, variant, settings, loss_settings, fit_settings
                )
                if not math.isfinite(logged["loss"]):
                    diverged = f"non-finite loss at step {steps + 1}"
                    break
                if steps == 0:
                    reference = logged["loss"]  # the initial weights' loss, before any step
                elif logged["loss"] > settings.divergence_ratio * reference:
                    diverged = (
                        f"loss went up: {logged['loss']:.4g} at step {steps + 1} > "
                        f"{settings.divergence_ratio} x the initial {reference:.4g}"
                    )
                    break
                opt.zero_grad(set_to_none=True)
                total.backward()
                torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
                opt.step()
                steps += 1
                losses.append(logged["loss"])
                if log_file is not None:
                    if writer is None:
                        writer = csv.DictWriter(log_file, ["step", "epoch", *logged])
                        writer.writeheader()
                    writer.writerow({"step": steps, "epoch": epoch, **logged})
                if settings.time_budget_s and time.perf_counter() - t0 > settings.time_budget_s:
                    break
            if diverged is None and not all(bool(torch.isfinite(p).all()) for p in params):
                diverged = f"non-finite weights after epoch {epoch}"
            if diverged is None and losses:
                mean = float(np.mean(losses))
                if epoch == 0:
                    first = mean
                if diverged is None:
                    last = mean
                    good = [p.detach().clone() for p in params]
                    epochs = epoch + 1
            if progress:
                print(
                    f"adapt: epoch {epoch} loss {np.mean(losses) if losses else float('nan'):.4g}"
                    f" ({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
            if diverged is not None or (
                settings.time_budget_s and time.perf_counter() - t0 > settings.time_budget_s
            ):
                break
    finally:
        if log_file is not None:
            log_file.close()
    if diverged is not None:
        with torch.no_grad():
            for p, g in zip(params, good):
                p.copy_(g)
    for p in params:
        p.requires_grad_(False)
    return KeypointAdaptResult(
        steps, epochs, time.perf_counter() - t0, diverged, first, last, log_path
    )


def settings_json(settings: KeypointAdaptSettings) -> str:
    """The settings as JSON (model metadata)."""
    return json.dumps(asdict(settings), sort_keys=True)


#: Key of the adaptation's record in an adapted model's metadata (ONNX ``metadata_props``
#: and the ``.npz`` info): settings, data, scores.
ADAPTATION_METADATA_KEY = "stereo_hand_mesh_adaptation"


def save_adapted_network(
    net: TFLiteGraphNet, out: Path, record: dict[str, Any]
) -> tuple[Path, Path]:
    """Write an adapted landmark network as ``out`` (ONNX, what the product serves) and
    ``out`` with suffix ``.npz`` (the torch graph: eval with ``--backend torch``, further
    adaptation), both atomically, with the initial network's keypoint metadata plus
    ``record`` under :data:`ADAPTATION_METADATA_KEY`.

    Returns:
        ``(onnx_path, npz_path)``.

    Raises:
        ConfigError: ``out`` does not end in ``.onnx``.
    """
    from stereo_hand_mesh.model.tflite_graph import (
        export_tflite_graph_onnx,
        graph_with_weights,
        load_tflite_graph_net,
        save_tflite_graph_npz,
    )
    from stereo_hand_mesh.runtime.keypoint_info import KEYPOINT_METADATA_KEY

    out = Path(out)
    if out.suffix != ".onnx":
        raise ConfigError(f"adapted model path expected a .onnx file; got {out}")
    info = {k: v for k, v in dict(getattr(net, "info", {}) or {}).items()}
    info["adaptation"] = record
    npz = save_tflite_graph_npz(
        graph_with_weights(net), out.with_suffix(".npz"), net.output_names, info
    )
    module = load_tflite_graph_net(npz)
    keypoint_info = {k: v for k, v in info.items() if k != "adaptation"}
    onnx_path = export_tflite_graph_onnx(
        module,
        out,
        {
            KEYPOINT_METADATA_KEY: json.dumps(keypoint_info, sort_keys=True),
            ADAPTATION_METADATA_KEY: json.dumps(record, sort_keys=True, default=str),
        },
    )
    return onnx_path, npz


#: A calibration replaces a free (per-pair) shape unless the template with it explains the
#: held-out keypoints this many times worse: one shape for every pair cannot fit each pair
#: as closely as 9 new shape factors per pair do (on tabletop_a's first half: 1.33 times),
#: but it keeps the hand's size from drifting between pairs (fitted joints 1 mm better on
#: the second half, docs/benchmarks.md "Per-user calibration"). A sanity bound set a priori,
#: not tuned: a calibration from pairs where the network read another hand fails it.
FREE_SHAPE_RESIDUAL_RATIO = 1.5

#: Fewest pairs with a hand that an adaptation accepts (training and validation together).
MIN_PAIRS = 4


@dataclass(frozen=True)
class KeypointAdaptReport:
    """What :func:`adapt_keypoints` did and decided (written as JSON beside the model).

    Attributes:
        better: the written model (adapted network, or the initial one with the user's
            calibration) scored lower than the current model on the held-out pairs.
        decision: one line: what the run concluded and why.
        model: the written ONNX model, or None when nothing was written.
        details: settings, data counts, calibration, validation scores, timings.
    """

    better: bool
    decision: str
    model: Path | None
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain types."""
        return {
            "better": self.better,
            "decision": self.decision,
            "model": None if self.model is None else str(self.model),
            **self.details,
        }


def _landmark_npz(init: Path | None, variant: str) -> Path:
    """The torch graph (.npz) of an initial landmark network."""
    from stereo_hand_mesh.runtime.keypoint_nets import keypoint_model_files

    if init is None:
        return keypoint_model_files(variant)["landmarks_npz"]
    init = Path(init)
    npz = init if init.suffix == ".npz" else init.with_suffix(".npz")
    if not npz.is_file():
        raise ConfigError(
            f"adapt --init expected a landmark network with its torch graph (.npz) beside it "
            f"(the shipped models and adapted ones have one); {npz} does not exist"
        )
    return npz


def _split_validation(pairs: AdaptPairs, fraction: float) -> tuple[AdaptPairs, AdaptPairs]:
    """The last ``fraction`` of the pairs (time order, at least 1) held out for validation."""
    n = len(pairs)
    held = min(max(math.ceil(fraction * n), 1), n - 2)
    return pairs.subset(torch.arange(0, n - held)), pairs.subset(torch.arange(n - held, n))


def adapt_keypoints(
    data: str | Path,
    out: str | Path,
    settings: KeypointAdaptSettings,
    *,
    variant: str = "binocular",
    weights: StereoLossWeights | None = None,
    batch_size: int = 8,
    seed: int = 0,
    init: str | Path | None = None,
    keypoint_variant: str = "lite",
    frames: slice | None = None,
    validation_data: str | Path | None = None,
    validation_frames: slice | None = None,
    validation_fraction: float = 0.25,
    calibrate: bool = True,
    handedness: str = "right",
    threads: int = 0,
    limit: int | None = None,
    progress: bool = True,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
    output: str = "best",
) -> KeypointAdaptReport:
    """Adapt the landmark network to unlabelled recordings and validate it without labels.

    1. The frozen product pipeline (the initial network) reads every pair of ``data``
       (:func:`prepare_adapt_pairs`); pairs where it publishes no mesh are skipped
       (``handedness`` ``"auto"``: the hand is the side most pairs show).
    2. Held-out pairs: ``validation_data`` if given, else the last ``validation_fraction``
       of the pairs in time order.
    3. Per-user calibration (``calibrate``): the hand's 9 shape factors from the training
       pairs' fits (:func:`~stereo_hand_mesh.pipeline.calibration.calibrate_hand`,
       confidence-weighted). It replaces the served model's calibration only if the template
       then explains the held-out keypoints better (:func:`keypoint_score`'s
       ``fit_residual``), and a free per-pair shape unless it explains them more than
       :data:`FREE_SHAPE_RESIDUAL_RATIO` times worse.
    4. Fine-tuning (:func:`adapt_keypoint_network`) with that shape; the adapted weights
       replace the initial ones only if the run did not diverge and they lower the held-out
       ``score`` (eq. 10 without the edge term, plus left-right row agreement) under the same
       shape. ``better``: either replacement happened.
    5. ``out`` (ONNX: the chosen network with the chosen calibration) and its ``.npz``,
       ``.csv`` (log) and ``.json`` (the report) are written either way; the report says
       whether to deploy. ``output="adapted"`` writes the adapted network (with
       the calibration) whatever won, for experiments that measure it.

    Raises:
        ConfigError: bad arguments, an existing ``out`` without ``overwrite``.
        DataError: too few pairs with a hand, a camera that changes within the data.
    """
    from stereo_hand_mesh.data.sources import iter_stereo_samples
    from stereo_hand_mesh.model.tflite_graph import load_tflite_graph_net
    from stereo_hand_mesh.pipeline import PipelineSettings
    from stereo_hand_mesh.pipeline.calibration import (
        calibrate_hand,
        calibrated_fit_settings,
        read_model_calibration,
        write_model_calibration,
    )
    from stereo_hand_mesh.pipeline.factory import create_pipeline

    out = Path(out)
    if out.suffix != ".onnx":
        raise ConfigError(f"adapt --out expected a .onnx path for the keypoint network; got {out}")
    if out.exists() and not overwrite:
        raise ConfigError(f"adapt --out {out} exists; expected a new path or --overwrite")
    if output not in ("best", "adapted"):
        raise ConfigError(f"output expected 'best' or 'adapted'; got {output!r}")
    if not 0 < validation_fraction < 1:
        raise ConfigError(f"validation_fraction expected in (0, 1); got {validation_fraction}")
    t_start = time.perf_counter()
    npz = _landmark_npz(None if init is None else Path(init), keypoint_variant)
    backend = "torch" if init is not None and Path(init).suffix == ".npz" else "onnxruntime"
    # The pairs are read with the hand's shape free (the calibration is estimated from
    # them); the current model is scored as it is served, with its own calibration if any.
    choice = create_pipeline(
        PipelineSettings(handedness=handedness, smoothing=False, tracking=False),
        backend,
        init,
        keypoint_variant=keypoint_variant,
        intra_op_threads=threads,
        apply_calibration=False,
    )
    pipeline = choice.pipeline
    if not isinstance(pipeline, HandMeshPipeline):
        raise ConfigError(f"adapt --init expected a keypoint network; got {choice.kind} ({init})")
    served_calibration = read_model_calibration(init) if init is not None else None
    served_fit = calibrated_fit_settings(pipeline.settings.fit, served_calibration)

    def prepared(source: str | Path, sel: slice | None) -> AdaptPairs:
        samples = iter_stereo_samples(source, load_ground_truth=False, frames=sel)
        return prepare_adapt_pairs(samples, pipeline, settings.loss_crop, limit, progress)

    pairs = prepared(data, frames)
    if validation_data is not None:
        train, held = pairs, prepared(validation_data, validation_frames)
        if len(train) < 2:
            raise DataError(
                f"adapt expected at least 2 pairs with a hand to adapt on; got {len(train)} in "
                f"{data} (skipped: {pairs.skipped})"
            )
    else:
        if len(pairs) < MIN_PAIRS:
            raise DataError(
                f"adapt expected at least {MIN_PAIRS} pairs with a hand (some held out for "
                f"validation); got {len(pairs)} in {data} (skipped: {pairs.skipped})"
            )
        train, held = _split_validation(pairs, validation_fraction)
    if progress:
        print(
            f"adapt: {len(train)} pairs to adapt on, {len(held)} held out, skipped "
            f"{sum(pairs.skipped.values())} {pairs.skipped}",
            flush=True,
        )
    t_prepared = time.perf_counter()
    net = load_tflite_graph_net(npz)
    if threads > 0:
        torch.set_num_threads(threads)
    # 1. The hand's shape: the new calibration replaces the served one (or the free shape)
    #    only if the template then explains the held-out keypoints better.
    served = keypoint_score(net, held, variant, settings, fit_settings=served_fit)
    calibration, calibrated = None, None
    use_calibration = False
    if calibrate:
        calibration = calibrate_hand(
            train.fits,
            train.confidence.numpy(),
            min_pairs=min(10, len(train)),
            source=str(data),
        )
        calibrated = keypoint_score(
            net, held, variant, settings, fit_settings=calibrated_fit_settings(
                pipeline.settings.fit, calibration
            ),
        )  # fmt: skip
        if served_calibration is not None:  # two fixed shapes: the better one
            use_calibration = calibrated["fit_residual"] < served["fit_residual"]
        else:  # vs a shape fitted to every pair afresh (which always fits each pair closer)
            use_calibration = (
                calibrated["fit_residual"] <= FREE_SHAPE_RESIDUAL_RATIO * served["fit_residual"]
            )
    fit_settings = (
        calibrated_fit_settings(pipeline.settings.fit, calibration)
        if use_calibration
        else served_fit
    )
    kept_calibration = calibration if use_calibration else served_calibration
    base = calibrated if use_calibration else served
    # 2. The network: the adapted weights replace the initial ones only if they lower the
    #    held-out objective with left-right agreement (the score), with that shape.
    result = adapt_keypoint_network(
        net,
        train,
        settings,
        variant,
        weights,
        batch_size,
        seed,
        out.with_suffix(".csv"),
        progress,
        fit_settings=fit_settings,
    )
    after = keypoint_score(net, held, variant, settings, fit_settings=fit_settings)
    use_network = result.diverged is None and after["score"] < base["score"]
    better = use_calibration or use_network
    chosen = "adapted" if use_network else "calibrated" if use_calibration else "current"
    held_n = f"{len(held)} held-out pairs"
    if not calibrate:
        shape_line = "no calibration asked"
    elif use_calibration:
        shape_line = (
            f"calibrated hand (scale {calibration.shape[0]:.3f}): fit residual "
            f"{calibrated['fit_residual']:.4f} vs {served['fit_residual']:.4f} with the "
            f"current {'calibration' if served_calibration is not None else 'free shape'}"
        )
    else:
        shape_line = (
            f"current hand shape kept: fit residual {served['fit_residual']:.4f}, "
            f"{calibrated['fit_residual']:.4f} with the new calibration"
        )
    if result.diverged is not None:
        net_line = f"initial network kept: adaptation diverged ({result.diverged})"
    elif use_network:
        net_line = f"adapted network: score {after['score']:.4g} < {base['score']:.4g}"
    else:
        net_line = (
            f"initial network kept: adapted score {after['score']:.4g} >= {base['score']:.4g}"
        )
    verb = "deploy" if better else "keep the current model"
    decision = f"{verb}: {shape_line}; {net_line} ({held_n})"
    if not use_network and output == "best":  # write the initial weights (+ the calibration)
        net = load_tflite_graph_net(npz)
    if output == "adapted":
        kept_calibration = calibration if calibration is not None else served_calibration
    details: dict[str, Any] = {
        "settings": asdict(settings),
        "variant": variant,
        "loss_weights": asdict(weights or StereoLossWeights()),
        "batch_size": batch_size,
        "seed": seed,
        "init": str(init) if init is not None else f"shipped {keypoint_variant}",
        "data": str(data),
        "frames": None if frames is None else f"{frames.start or ''}:{frames.stop or ''}",
        "validation_data": None if validation_data is None else str(validation_data),
        "pairs_adapted": len(train),
        "pairs_validation": len(held),
        "skipped": pairs.skipped,
        "image_size": list(pairs.image_size),
        "calibration": None if calibration is None else calibration.to_dict(),
        "served_calibration": (
            None if served_calibration is None else served_calibration.to_dict()
        ),
        "chosen": chosen,
        "written": "adapted" if output == "adapted" else chosen,
        "calibration_used": use_calibration,
        "network_adapted": use_network,
        "validation": {
            "current": served,
            "calibrated": calibrated,
            "adapted": after,
        },
        "training": {
            "steps": result.steps,
            "epochs": result.epochs,
            "seconds": result.seconds,
            "diverged": result.diverged,
            "first_epoch_loss": result.first_loss,
            "last_epoch_loss": result.last_loss,
        },
        "seconds": {
            "prepare": t_prepared - t_start,
            "train": result.seconds,
            "total": time.perf_counter() - t_start,
        },
        **(provenance or {}),
    }
    record = {"better": better, "decision": decision, **details}
    record.pop("validation", None)
    record["validation_score"] = {
        k: None if v is None else {"score": v["score"], "fit_residual": v["fit_residual"]}
        for k, v in (("current", served), ("calibrated", calibrated), ("adapted", after))
    }
    onnx_path, npz_path = save_adapted_network(net, out, record)
    if kept_calibration is not None:
        write_model_calibration(onnx_path, onnx_path, kept_calibration)
        write_model_calibration(npz_path, npz_path, kept_calibration)
    details["seconds"]["total"] = time.perf_counter() - t_start
    report = KeypointAdaptReport(better, decision, onnx_path, details)
    out.with_suffix(".json").write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    if progress:
        print(f"adapt: {decision}", flush=True)
    return report
