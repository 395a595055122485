"""Supervised pretraining on labelled stereo pairs (the hand prior of the seed paper).

Per view, the network regresses every template vertex's (u, v) in its crop; the loss is the
L1 of those crop fractions, of the joints' fractions (through the joint regressor), of the
triangulated 3D vertices (eq. 1 on the two views' u, metres) and, for the monocular head, of
the root-relative depths (metres). Crops come from the ground-truth vertex projections with
box jitter; photometric jitter (gain, contrast, colour balance, noise) is applied per batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.geometry.branch_meshes import crop_fractions_from_image
from stereo_hand_mesh.losses.stereo import StereoCropBatch
from stereo_hand_mesh.model.checkpoint import (
    IMAGENET_NORMALIZATION,
    model_from_checkpoint,
)
from stereo_hand_mesh.model.network import MeshNet, MeshNetConfig
from stereo_hand_mesh.train.common import (
    HandTopology,
    NetworkPass,
    RunRecorder,
    batches_of_step,
    hand_topology,
    init_distributed,
    meshes_from_crop_uv,
    normalize_crops,
    resume_state,
)
from stereo_hand_mesh.train.crops import CropSet

__all__ = ["PretrainSettings", "photometric_jitter", "pretrain"]


@dataclass(frozen=True)
class PretrainSettings:
    """Settings of :func:`pretrain`.

    Attributes:
        epochs: passes over the crop set.
        batch_size: stereo pairs per step (2x crops through the network).
        lr: peak Adam learning rate (cosine decay to 5% after a short warm-up).
        weight_decay: AdamW weight decay.
        w_uv: weight of the vertex (u, v) L1, crop fractions.
        w_joints: weight of the joint (u, v) L1, crop fractions.
        w_3d: weight of the triangulated vertex L1, metres.
        w_depth: weight of the root-relative depth L1 (monocular head), metres.
        seed: seed of initialization, batch order and augmentation.
        save_every: steps between checkpoints.
        log_every: steps between log rows.
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    w_uv: float = 1.0
    w_joints: float = 1.0
    w_3d: float = 10.0
    w_depth: float = 10.0
    seed: int = 0
    save_every: int = 200
    log_every: int = 20

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(
                f"epochs and batch_size expected >= 1; got {self.epochs}, {self.batch_size}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr expected a finite value > 0; got {self.lr}")


def photometric_jitter(images: Tensor, gen: torch.Generator) -> Tensor:
    """Random gain, contrast, colour balance and noise on (N, 3, S, S) [0, 1] crops."""
    n = images.shape[0]

    def u(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=gen).to(images)

    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    out = (images - mean) * u(0.75, 1.25, 1, 1, 1) + mean
    out = out * u(0.6, 1.3, 1, 1, 1) * u(0.9, 1.1, 3, 1, 1)
    noise = torch.randn(images.shape, generator=gen).to(images) * u(0.0, 0.03, 1, 1, 1)
    return (out + noise).clamp(0.0, 1.0)


def _lr_at(step: int, total: int, peak: float) -> float:
    warm = max(total // 50, 1)
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(total - warm, 1)
    return peak * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t)))


def pretrain(
    crops: CropSet,
    out: Path,
    settings: PretrainSettings,
    device: torch.device,
    monocular_head: bool = True,
    overwrite: bool = False,
    provenance: dict[str, Any] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    topology: HandTopology | None = None,
    hand_model: str = "template",
) -> Path:
    """Train a :class:`MeshNet` on labelled crops; write the checkpoint to ``out``.

    Args:
        crops: labelled crop set (vertices and joints present).
        out: checkpoint path (resumed when it holds an unfinished pretrain run).
        settings: the schedule and loss weights.
        device: torch device.
        monocular_head: also train the root-relative depth head (the monocular variant).
        overwrite: replace a finished run at ``out``.
        provenance: extra metadata (command, data) recorded in the checkpoint.
        progress: show a progress bar.
        stop_after: stop (unfinished, resumable) after this many steps of this process.
        topology: the hand topology of the labels (default: the template hand).
        hand_model: ``"template"`` or ``"mano"``, recorded in the checkpoint.

    Returns:
        ``out``.
    """

    if crops.vertices is None or crops.joints is None:
        raise ConfigError("pretrain expected a crop set with ground truth; got none")
    topo = topology or hand_topology()
    if not crops.stereo and not monocular_head:
        raise ConfigError(
            "pretrain on monocular data (FreiHAND) expected the depth head; got none"
        )
    dist = init_distributed(device)
    device = dist.device
    resume = resume_state(out, "pretrain", overwrite)
    torch.manual_seed(settings.seed)
    if resume is not None:
        model = model_from_checkpoint(resume, device)
        start = int(resume.training["step"])
    else:
        config = MeshNetConfig(
            num_vertices=topo.num_vertices, input_size=crops.size, monocular=monocular_head
        )
        model = MeshNet(config).to(device)
        # Start the regressor at the mean (u, v) of the training crops.
        mean_uv = _target_fractions(crops, torch.arange(len(crops)))[0].mean(0)
        model.init_uv_bias(mean_uv.to(device))
        start = 0
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    if resume is not None:
        opt.load_state_dict(resume.training["optimizer"])
    per_epoch = max(len(crops) // settings.batch_size, 1)
    total = settings.epochs * per_epoch
    variant = "monocular" if monocular_head else "binocular"
    net = dist.wrap(NetworkPass(model, variant))
    metadata = {
        "topology_hash": topo.topology_hash,
        "hand_model": hand_model,
        "normalization": IMAGENET_NORMALIZATION,
        "variant": "monocular" if monocular_head else "binocular",
        "provenance": {
            "kind": "pretrain",
            "settings": asdict(settings),
            "world_size": dist.world,
            **(provenance or {}),
        },
    }
    recorder = RunRecorder(
        out, "pretrain", metadata, asdict(settings), dist, start, total,
        settings.log_every, settings.save_every, progress,
    )  # fmt: skip
    step = start
    model.train()
    while step < total:
        if stop_after is not None and step - start >= stop_after:
            break
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, total, settings.lr)
        rows = dist.shard(batches_of_step(len(crops), settings.batch_size, settings.seed, step))
        # Augmentation drawn from (seed, step) alone: a resumed run repeats it exactly.
        gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
        terms = _supervised_terms(net, crops, rows, device, settings, gen, topo)
        loss = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        recorder.step_done(
            step,
            model,
            opt,
            lambda step=step, terms=terms, loss=loss: {
                "epoch": step // per_epoch,
                "lr": opt.param_groups[0]["lr"],
                **{k: float(v.detach()) for k, v in terms.items()},
                "loss": float(loss.detach()),
            },
        )
    recorder.close(step, model, opt)
    return out


def _target_fractions(crops: CropSet, rows: Tensor) -> tuple[Tensor, Tensor]:
    """Ground-truth vertex crop fractions of both views, (B, V, 2) each."""
    from stereo_hand_mesh.geometry.batched import project_points

    verts = crops.vertices.index_select(0, rows).double()
    k_l = crops.intrinsics_left.index_select(0, rows)
    k_r = crops.intrinsics_right.index_select(0, rows)
    shift = torch.zeros_like(verts)
    shift[..., 0] = crops.baseline.index_select(0, rows)[:, None]
    uv_l = project_points(verts, k_l)
    uv_r = project_points(verts - shift, k_r)
    frac_l = crop_fractions_from_image(uv_l, crops.box_left.index_select(0, rows))
    frac_r = crop_fractions_from_image(uv_r, crops.box_right.index_select(0, rows))
    return frac_l.float(), frac_r.float()


def _supervised_terms(
    net: nn.Module,
    crops: CropSet,
    rows: Tensor,
    device: torch.device,
    settings: PretrainSettings,
    gen: torch.Generator,
    topo: HandTopology,
) -> dict[str, Tensor]:
    """The weighted supervised loss terms of one batch (one network pass of 2B crops, or of
    B crops for monocular data)."""
    step = crops.batch(rows, device)
    if not crops.stereo:
        return _monocular_terms(net, crops, rows, step, settings, gen, topo)
    batch = step.batch_size
    x = normalize_crops(photometric_jitter(torch.cat([step.image_left, step.image_right]), gen))
    uv, rel = net(x)
    meshes = meshes_from_crop_uv(uv, step)
    frac_l, frac_r = (t.to(device) for t in _target_fractions(crops, rows))
    reg = topo.regressor.to(device)
    gt_v = crops.vertices.index_select(0, rows).to(device)
    pred_l, pred_r = uv[:batch], uv[batch:]
    terms = {
        "uv": settings.w_uv
        * 0.5
        * ((pred_l - frac_l).abs().mean() + (pred_r - frac_r).abs().mean()),
        "joints_uv": settings.w_joints
        * 0.5
        * (
            (reg @ pred_l - reg @ frac_l).abs().mean() + (reg @ pred_r - reg @ frac_r).abs().mean()
        ),
        "vertices_3d": settings.w_3d * (meshes.mean - gt_v).abs().mean(),
    }
    if rel is not None:
        gt_rel = gt_v[..., 2] - (gt_v[..., 2] @ reg[0])[:, None]
        terms["depth"] = settings.w_depth * (rel - torch.cat([gt_rel, gt_rel])).abs().mean()
    return terms


def _monocular_terms(
    net: nn.Module,
    crops: CropSet,
    rows: Tensor,
    step: StereoCropBatch,
    settings: PretrainSettings,
    gen: torch.Generator,
    topo: HandTopology,
) -> dict[str, Tensor]:
    """Loss terms of monocular labelled crops (FreiHAND): uv, joints uv, root-relative depth,
    and 3D vertices rebuilt from uv with the true root depth plus the predicted relative
    depth (metres)."""
    device = step.image_left.device
    uv, rel = net(normalize_crops(photometric_jitter(step.image_left, gen)))
    frac, _ = (t.to(device) for t in _target_fractions(crops, rows))
    reg = topo.regressor.to(device)
    gt_v = crops.vertices.index_select(0, rows).to(device)
    gt_root_z = gt_v[..., 2] @ reg[0]  # (B,)
    gt_rel = gt_v[..., 2] - gt_root_z[:, None]
    box, k = step.box_left, step.intrinsics_left
    pix = box[:, None, :2] + uv * box[:, None, 2:3]
    z = gt_root_z[:, None] + rel
    verts = torch.stack(
        [(pix[..., 0] - k[:, 2:3]) * z / k[:, 0:1], (pix[..., 1] - k[:, 3:4]) * z / k[:, 1:2], z],
        dim=-1,
    )
    return {
        "uv": settings.w_uv * (uv - frac).abs().mean(),
        "joints_uv": settings.w_joints * (reg @ uv - reg @ frac).abs().mean(),
        "vertices_3d": settings.w_3d * (verts - gt_v).abs().mean(),
        "depth": settings.w_depth * (rel - gt_rel).abs().mean(),
    }
