"""Self-supervised stereo adaptation (seed paper, section 3.2): no labels at all.

The source is opened without ground truth (:func:`~stereo_hand_mesh.train.crops.
load_crop_set` with ``ground_truth=False``), cut into crops around the hand masks (the
source's masks, else skin detection), and the network is fine-tuned with the six losses of
eq. 10 (:func:`~stereo_hand_mesh.losses.stereo_self_supervised_loss`) at the paper's weights.
The edge loss's pseudo-labels are the meshes of the frozen initial model, computed once
before training. ``drop`` sets chosen weights to zero (the ablation of Table 2).
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.losses import StereoLossSettings, StereoLossWeights
from stereo_hand_mesh.losses.stereo import stereo_self_supervised_loss
from stereo_hand_mesh.model.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
)
from stereo_hand_mesh.model.network import MeshNet
from stereo_hand_mesh.train.adapt_keypoints import KeypointAdaptSettings
from stereo_hand_mesh.train.common import (
    VARIANTS,
    HandTopology,
    NetworkPass,
    RunRecorder,
    batches_of_step,
    default_model_path,
    hand_topology,
    init_distributed,
    load_model,
    predict_all_meshes,
    predict_meshes,
    resume_state,
    topology_of,
)
from stereo_hand_mesh.train.crops import CropSet, load_crop_set

__all__ = ["LOSS_NAMES", "AdaptSettings", "adapt", "adapt_crops", "pseudo_labels"]

#: Names accepted by ``--drop`` (the fields of :class:`StereoLossWeights`).
LOSS_NAMES = ("photo", "edge", "laplacian", "mask", "chamfer", "normal")
#: Default budget: 15 passes over the pairs (about 2 minutes for 300 pairs on a 2-core CPU;
#: the issue's cap is 20 minutes). See README, "Adaptation".
DEFAULT_EPOCHS = 15


@dataclass(frozen=True)
class AdaptSettings:
    """Settings of :func:`adapt`.

    Attributes:
        epochs: passes over the unlabelled pairs.
        batch_size: stereo pairs per step.
        lr: Adam learning rate (constant after a short warm-up). 3e-4: at 1e-3 the losses
            spike and single runs on the synthetic shift ended up to 49 mm apart from one
            seed to the next (README, "Adaptation"; ``benchmarks/results/unit_probes``).
        drop: losses removed (weights set to 0), names from :data:`LOSS_NAMES`.
        variant: ``"binocular"`` (z from disparity) or ``"monocular"`` (root-relative
            depth head).
        weights: the weights of eq. 10 before ``drop`` (the paper's by default).
        mesh_unit_m: length unit of the edge, Laplacian and Chamfer terms
            (:attr:`~stereo_hand_mesh.losses.StereoLossSettings.mesh_unit_m`; metres).
        freeze_batchnorm: keep the BatchNorm layers in eval mode (the source's running
            statistics, as when the pseudo-labels were computed): the edge loss then starts
            at 0 instead of penalizing the train/eval difference of batch statistics of 8
            pairs, and the runs are steadier (README, "Adaptation").
        seed: batch order seed.
        save_every: steps between checkpoints.
        log_every: steps between log rows.
        keypoints: the keypoint network's schedule (``adapt --out X.onnx``): learning rate,
            epochs, layers and extra terms, chosen for that network
            (:class:`~stereo_hand_mesh.train.adapt_keypoints.KeypointAdaptSettings`); the
            fields above apart from ``epochs`` and ``lr`` (``drop``, ``variant``,
            ``weights``, ``mesh_unit_m``, ``batch_size``, ``seed``) apply to it too.
    """

    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 8
    lr: float = 3e-4
    drop: tuple[str, ...] = ()
    variant: str = "binocular"
    weights: StereoLossWeights = field(default_factory=StereoLossWeights)
    mesh_unit_m: float = 1.0
    freeze_batchnorm: bool = True
    seed: int = 0
    save_every: int = 100
    log_every: int = 10
    keypoints: KeypointAdaptSettings = field(default_factory=KeypointAdaptSettings)

    def __post_init__(self) -> None:
        bad = [d for d in self.drop if d not in LOSS_NAMES]
        if bad:
            raise ConfigError(f"drop expected names from {LOSS_NAMES}; got {bad}")
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant expected one of {VARIANTS}; got {self.variant!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(
                f"epochs and batch_size expected >= 1; got {self.epochs}, {self.batch_size}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr expected a finite value > 0; got {self.lr}")
        StereoLossSettings(mesh_unit_m=self.mesh_unit_m)  # its check, before any data is read
        object.__setattr__(self, "drop", tuple(sorted(set(self.drop))))

    @classmethod
    def from_cli(cls, args: argparse.Namespace) -> AdaptSettings:
        """From the adapt subcommand's options (``--lr`` and ``--epochs`` go to the keypoint
        settings when ``--out`` is an ``.onnx``)."""
        keypoint_path = str(getattr(args, "out", "")).endswith(".onnx")
        kp = {
            "lr": args.lr if keypoint_path else None,
            "epochs": args.epochs if keypoint_path else None,
            "layers": getattr(args, "layers", None),
            "keypoint_weight": getattr(args, "keypoint_weight", None),
            "epipolar_weight": getattr(args, "epipolar_weight", None),
            "time_budget_s": getattr(args, "time_budget", None),
        }
        keypoints = KeypointAdaptSettings(**{k: v for k, v in kp.items() if v is not None})
        if keypoint_path:
            return cls(
                batch_size=args.batch_size,
                drop=tuple(args.drop),
                variant=args.variant,
                seed=args.seed,
                keypoints=keypoints,
            )
        return cls(
            epochs=args.epochs or DEFAULT_EPOCHS,
            batch_size=args.batch_size,
            lr=cls.lr if args.lr is None else args.lr,
            drop=tuple(args.drop),
            variant=args.variant,
            seed=args.seed,
        )

    @property
    def effective_weights(self) -> StereoLossWeights:
        """The weights of eq. 10 with the dropped losses at 0."""
        return replace(self.weights, **{name: 0.0 for name in self.drop})

    def to_dict(self) -> dict[str, Any]:
        """Plain types (checkpoint metadata)."""
        out = asdict(self)
        out["drop"] = list(self.drop)
        out.pop("keypoints", None)  # the legacy checkpoint's record: its own fields only
        return out


def pseudo_labels(
    model: MeshNet,
    crops: CropSet,
    device: torch.device,
    variant: str,
    batch_size: int = 32,
    normalization: dict[str, Any] | None = None,
    topology: HandTopology | None = None,
) -> tuple[Tensor, Tensor]:
    """Meshes of the frozen initial model (eval mode) for every pair: the edge loss's labels.

    Returns:
        ``(left, right)``: (N, V, 3) float32 metres, left optical frame, on the CPU.
    """
    return predict_all_meshes(model, crops, device, variant, batch_size, normalization, topology)


def adapt_crops(
    crops: CropSet,
    init_model: MeshNet,
    init_metadata: dict[str, Any],
    out: Path,
    settings: AdaptSettings,
    device: torch.device,
    overwrite: bool = False,
    progress: bool = True,
    provenance: dict[str, Any] | None = None,
    stop_after: int | None = None,
    topology: HandTopology | None = None,
) -> Path:
    """Fine-tune ``init_model`` on unlabelled crops with the stereo losses; write ``out``.

    ``crops`` must carry no ground truth (it is refused otherwise, so no label can leak).

    Args:
        crops: unlabelled crop set.
        init_model: the starting network (also the frozen pseudo-label model).
        init_metadata: its checkpoint metadata (normalization, topology hash).
        out: checkpoint path; an unfinished adapt run there is resumed.
        settings: schedule, losses, variant.
        device: torch device.
        overwrite: replace a finished run at ``out``.
        progress: show a progress bar.
        provenance: extra metadata (command, data).
        stop_after: stop (unfinished, resumable) after this many steps of this process.
        topology: the model's hand topology (default: the template hand).

    Returns:
        ``out``.
    """

    if crops.vertices is not None or crops.joints is not None:
        raise ConfigError("adapt expected an unlabelled crop set; got one with ground truth")
    if settings.variant == "monocular" and init_model.depth_head is None:
        raise ConfigError("--variant monocular expected an init model with a depth head; got none")
    topo = topology or hand_topology()
    dist = init_distributed(device)
    device = dist.device
    faces = topo.faces.to(device)
    init_model = init_model.to(device)
    norm = init_metadata.get("normalization")
    pseudo_l, pseudo_r = pseudo_labels(
        init_model, crops, device, settings.variant, normalization=norm, topology=topo
    )
    resume = resume_state(out, "adapt", overwrite)
    if resume is not None:
        model = model_from_checkpoint(resume, device)
        start = int(resume.training["step"])
    else:
        model = init_model
        start = 0
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    if resume is not None:
        opt.load_state_dict(resume.training["optimizer"])
    loss_settings = StereoLossSettings(
        weights=settings.effective_weights, mesh_unit_m=settings.mesh_unit_m
    )
    per_epoch = max(len(crops) // settings.batch_size, 1)
    total = settings.epochs * per_epoch
    net = dist.wrap(NetworkPass(model, settings.variant))
    metadata = {
        **{k: v for k, v in init_metadata.items() if k not in ("config", "input_size")},
        "variant": settings.variant,
        "provenance": {
            "kind": "adapt",
            "settings": settings.to_dict(),
            "init": init_metadata.get("provenance", {}),
            "pairs": len(crops),
            "skipped_pairs": crops.skipped,
            "world_size": dist.world,
            **(provenance or {}),
        },
    }
    recorder = RunRecorder(
        out, "adapt", metadata, settings.to_dict(), dist, start, total,
        settings.log_every, settings.save_every, progress,
    )  # fmt: skip
    step = start
    model.train()
    if settings.freeze_batchnorm:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
    warm = max(total // 20, 1)
    while step < total:
        if stop_after is not None and step - start >= stop_after:
            break
        for group in opt.param_groups:
            group["lr"] = settings.lr * min(1.0, (step + 1) / warm)
        rows = dist.shard(batches_of_step(len(crops), settings.batch_size, settings.seed, step))
        batch = crops.batch(rows, device)
        meshes = predict_meshes(net, batch, settings.variant, normalization=norm, topology=topo)
        terms = stereo_self_supervised_loss(
            meshes.left,
            meshes.right,
            pseudo_l.index_select(0, rows).to(device),
            pseudo_r.index_select(0, rows).to(device),
            faces,
            batch,
            loss_settings,
        )
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        opt.step()
        step += 1
        recorder.step_done(
            step,
            model,
            opt,
            lambda step=step, terms=terms: {
                "epoch": step // per_epoch,
                **{k: float(v.detach()) for k, v in terms.as_dict().items()},
                "loss": float(terms.total.detach()),
            },
        )
    recorder.close(step, model, opt)
    return out


def adapt(
    data: str | os.PathLike[str],
    out: Path,
    settings: AdaptSettings,
    device: torch.device,
    init: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    limit: int | None = None,
    size: int = 128,
    provenance: dict[str, Any] | None = None,
    mano_path: str | os.PathLike[str] | None = None,
) -> Path:
    """:func:`adapt_crops` on a split or bag at ``data``, from ``init`` (default: shipped).

    ``data`` is read without ground truth. A resumed run keeps its original init model
    (recorded in the checkpoint) so its pseudo-labels do not change.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        previous = load_checkpoint(out)
        recorded = previous.metadata.get("provenance", {}).get("init_path")
        if previous.training.get("kind") == "adapt" and not previous.training.get("finished"):
            init = recorded or init
    init_path = Path(init) if init is not None else default_model_path()
    model, ckpt = load_model(init_path, device, mano_path)
    topology = topology_of(ckpt, mano_path, str(init_path))
    crops = load_crop_set(data, size, ground_truth=False, limit=limit)
    if progress:
        print(f"adapt: {len(crops)} unlabelled pairs from {data} ({crops.skipped} without a hand)")
    return adapt_crops(
        crops,
        model,
        ckpt.metadata,
        out,
        settings,
        device,
        overwrite=overwrite,
        progress=progress,
        provenance={"init_path": str(init_path), **(provenance or {})},
        topology=topology,
    )
