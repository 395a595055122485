"""Pieces shared by pretrain, adapt and eval: mesh prediction on crop sets, runs, logs.

A run (pretrain or adapt) writes one checkpoint file, ``--out``, every ``save_every`` steps
and at the end, atomically (:func:`~stereo_hand_mesh.model.save_checkpoint`); its
``training`` block holds what a resume needs (optimizer state, step, seed, settings) and
``finished``. Started again with the same ``--out``, an unfinished run resumes from its last
save; a finished one is refused unless ``--overwrite``. A CSV log sits beside it
(``<out>.csv``, one row per logged step; a resumed run appends).
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from stereo_hand_mesh.errors import ConfigError
from stereo_hand_mesh.geometry.branch_meshes import BranchMeshes, meshes_from_uv
from stereo_hand_mesh.losses.stereo import StereoCropBatch
from stereo_hand_mesh.model.checkpoint import Checkpoint, load_checkpoint
from stereo_hand_mesh.model.device import resolve_device
from stereo_hand_mesh.model.loading import (
    VARIANTS,
    HandTopology,
    NetworkPass,
    default_model_path,
    hand_topology,
    load_model,
    topology_of,
)
from stereo_hand_mesh.model.network import MeshNet
from stereo_hand_mesh.model.preprocess import normalize_crops
from stereo_hand_mesh.train.crops import CropSet

# Loading, device choice and preprocessing live in ``model/`` (inference needs them without
# training); they are re-exported here for the training modules.
__all__ = [
    "VARIANTS",
    "CsvLog",
    "Distributed",
    "HandTopology",
    "NetworkPass",
    "default_model_path",
    "hand_topology",
    "init_distributed",
    "load_model",
    "meshes_from_crop_uv",
    "normalize_crops",
    "predict_meshes",
    "resolve_device",
    "resume_state",
    "topology_of",
]


def meshes_from_crop_uv(
    uv: Tensor,
    batch: StereoCropBatch,
    rel_depth: Tensor | None = None,
    root_weights: Tensor | None = None,
) -> BranchMeshes:
    """Both branches' meshes from one network pass over a batch's left then right crops.

    Args:
        uv: (2B, V, 2) crop fractions of ``[left crops; right crops]``.
        batch: the B pairs' crops and geometry (float, on the device of ``uv``; see
            :meth:`~stereo_hand_mesh.losses.StereoCropBatch.batch`).
        rel_depth: (2B, V) root-relative depths of the monocular head, metres, or None.
        root_weights: (V,) the wrist row of the joint regressor; needed with ``rel_depth``.

    Returns:
        :class:`BranchMeshes`, metres, left optical frame (eq. 1).
    """
    size = batch.batch_size
    rel_l, rel_r = (None, None) if rel_depth is None else (rel_depth[:size], rel_depth[size:])
    return meshes_from_uv(
        uv[:size],
        uv[size:],
        batch.box_left,
        batch.box_right,
        batch.intrinsics_left,
        batch.intrinsics_right,
        batch.baseline,
        rel_l,
        rel_r,
        root_weights,
    )


def predict_meshes(
    model: MeshNet | nn.Module,
    batch: StereoCropBatch,
    variant: str = "binocular",
    normalization: dict[str, Any] | None = None,
    topology: HandTopology | None = None,
) -> BranchMeshes:
    """Run the network on both views of a batch's pairs (one batch of 2B) -> meshes.

    Args:
        model: a :class:`MeshNet`, or a :class:`NetworkPass` (possibly wrapped in
            DistributedDataParallel) whose variant is used; its mode is left as it is.
        batch: the pairs, on the device to run on (``crops.batch(rows, device)``).
        variant: ``"binocular"`` (z from disparity) or ``"monocular"`` (root depth from
            disparity plus the network's root-relative depth; needs the depth head).
            Ignored for a :class:`NetworkPass`.
        normalization: the checkpoint's input normalization.
        topology: the hand topology (its wrist row weights the monocular root); default
            the template hand.

    Returns:
        :class:`BranchMeshes` on the batch's device.
    """
    net = model if not isinstance(model, MeshNet) else NetworkPass(model, variant)
    images = torch.cat([batch.image_left, batch.image_right])
    uv, rel = net(normalize_crops(images, normalization))
    root = None
    if rel is not None:
        root = (topology or hand_topology()).regressor[0].to(images.device)
    return meshes_from_crop_uv(uv, batch, rel, root)


@torch.no_grad()
def predict_all_meshes(
    model: MeshNet,
    crops: CropSet,
    device: torch.device,
    variant: str = "binocular",
    batch_size: int = 32,
    normalization: dict[str, Any] | None = None,
    topology: HandTopology | None = None,
) -> tuple[Tensor, Tensor]:
    """Both branches' meshes for every pair, the network in eval mode (restored after).

    Returns:
        ``(left, right)``: (N, V, 3) float32 metres, left optical frame, on the CPU.
    """
    was = model.training
    model.eval()
    lefts, rights = [], []
    for start in range(0, len(crops), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(crops)))
        meshes = predict_meshes(model, crops.batch(rows, device), variant, normalization, topology)
        lefts.append(meshes.left.cpu())
        rights.append(meshes.right.cpu())
    model.train(was)
    return torch.cat(lefts), torch.cat(rights)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (world 1 when not under torchrun).

    Attributes:
        rank: global rank (0 saves checkpoints and logs).
        world: number of processes.
        device: this process's device (``cuda:LOCAL_RANK`` on GPUs).
    """

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0."""
        return self.rank == 0

    def shard(self, rows: Tensor) -> Tensor:
        """This rank's share of a step's rows (every rank computes the same rows)."""
        return rows[self.rank :: self.world] if self.world > 1 else rows

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DistributedDataParallel when world > 1."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def barrier(self) -> None:
        """Wait for every rank (no-op for world 1)."""
        if self.world > 1:
            torch.distributed.barrier()


def init_distributed(device: torch.device) -> Distributed:
    """Join the torchrun job described by the environment (WORLD_SIZE, RANK, LOCAL_RANK).

    Backend: NCCL on CUDA, gloo on the CPU. Without torchrun (WORLD_SIZE unset or 1) this
    is a world of one on ``device``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(0, 1, device)
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), device)


def resume_state(out: Path, kind: str, overwrite: bool) -> Checkpoint | None:
    """The checkpoint to resume from at ``out``, or None to start afresh.

    Raises:
        ConfigError: ``out`` holds a finished run (or something that is not a resumable run
            of this ``kind``) and ``overwrite`` is False; nothing is written then.
        CheckpointError: ``out`` exists but is corrupt (and ``overwrite`` is False).
    """
    if not out.exists() or overwrite:
        return None
    ckpt = load_checkpoint(out)  # CheckpointError with the file named when corrupt
    training = ckpt.training
    if training.get("kind") != kind:
        raise ConfigError(
            f"--out {out} expected a resumable {kind} run or a new path; got an existing "
            f"checkpoint of kind {training.get('kind')!r} (pass --overwrite to replace it)"
        )
    if training.get("finished"):
        raise ConfigError(
            f"--out {out} holds a finished {kind} run (step {training.get('step')}); pass "
            "--overwrite to run again"
        )
    return ckpt


def save_run(
    out: Path,
    model: MeshNet,
    metadata: dict[str, Any],
    opt: torch.optim.Optimizer,
    step: int,
    total: int,
    kind: str,
    settings: dict[str, Any],
    wall_s: float,
) -> None:
    """Write a run's resumable checkpoint (weights, metadata, optimizer state, progress)."""
    from stereo_hand_mesh.model.checkpoint import save_checkpoint

    training = {
        "kind": kind,
        "step": step,
        "total_steps": total,
        "finished": step >= total,
        "optimizer": opt.state_dict(),
        "settings": settings,
        "wall_s_this_process": wall_s,
    }
    save_checkpoint(out, model, metadata, training)


class RunRecorder:
    """Progress bar, CSV log and checkpoints of one pretrain or adapt run.

    Only rank 0 logs and writes; every rank waits for it at :meth:`close`.

    Args:
        out: the run's checkpoint path (the log is ``<out>.csv``).
        kind: ``"pretrain"`` or ``"adapt"``.
        metadata: checkpoint metadata.
        settings: the run's settings as plain types.
        dist: the process's place in the job.
        start: the step the run (re)starts from.
        total: the run's last step.
        log_every: steps between log rows.
        save_every: steps between checkpoints.
        progress: show the progress bar.
    """

    def __init__(
        self,
        out: Path,
        kind: str,
        metadata: dict[str, Any],
        settings: dict[str, Any],
        dist: Distributed,
        start: int,
        total: int,
        log_every: int,
        save_every: int,
        progress: bool,
    ) -> None:
        from tqdm import tqdm

        self.out, self.kind, self.metadata, self.settings = out, kind, metadata, settings
        self.dist, self.total = dist, total
        self.log_every, self.save_every = log_every, save_every
        self.log = (
            CsvLog(out.with_name(out.name + ".csv"), start > 0, start) if dist.is_main else None
        )
        self.bar = tqdm(
            total=total,
            initial=start,
            desc=kind,
            disable=not (progress and dist.is_main),
            unit="step",
        )
        self._t0 = time.monotonic()

    def _save(self, model: MeshNet, opt: torch.optim.Optimizer, step: int) -> None:
        save_run(
            self.out, model, self.metadata, opt, step, self.total, self.kind, self.settings,
            time.monotonic() - self._t0,
        )  # fmt: skip

    def step_done(
        self,
        step: int,
        model: MeshNet,
        opt: torch.optim.Optimizer,
        row: Callable[[], dict[str, Any]],
    ) -> None:
        """After optimizer step ``step``: bar, log row (built only when due), checkpoint."""
        self.bar.update(1)
        last = step == self.total
        if self.log is not None and (step % self.log_every == 0 or last):
            values = {"step": step, **row()}
            self.log.write(values)
            self.bar.set_postfix(loss=f"{values['loss']:.4f}")
        if self.dist.is_main and (step % self.save_every == 0 or last):
            self._save(model, opt, step)

    def close(self, step: int, model: MeshNet, opt: torch.optim.Optimizer) -> None:
        """End the run at ``step``: save an interrupted run, then wait for every rank."""
        self.bar.close()
        if self.dist.is_main and step < self.total:
            self._save(model, opt, step)
        self.dist.barrier()


class CsvLog:
    """Append-only CSV log of a run (``<out>.csv``); columns fixed by the first row.

    On resume from step ``k``, rows logged after ``k`` by the interrupted process (work the
    checkpoint does not hold) are removed first, so each step appears once.
    """

    def __init__(self, path: Path, resume: bool, resume_step: int = 0) -> None:
        self.path = path
        if not resume:
            path.unlink(missing_ok=True)
        self._fields: list[str] | None = None
        if resume and path.is_file():
            with path.open(newline="") as fh:
                rows = list(csv.reader(fh))
            if rows:
                self._fields = rows[0]
                kept = [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= resume_step]
                with path.open("w", newline="") as fh:
                    csv.writer(fh).writerows([rows[0], *kept])
        self._start = time.monotonic()

    def write(self, row: dict[str, float | int | str]) -> None:
        """Append one row (``elapsed_s`` of this process is added)."""
        row = {**row, "elapsed_s": round(time.monotonic() - self._start, 3)}
        new = self._fields is None
        if new:
            self._fields = list(row)
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self._fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The (n,) permutation of epoch ``epoch``: a pure function of (seed, epoch), so a
    resumed run sees the same order."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


def batches_of_step(n: int, batch_size: int, seed: int, step: int) -> Tensor:
    """Rows of global step ``step`` (epochs of ``n // batch_size`` full batches)."""
    per_epoch = max(n // batch_size, 1)
    epoch, pos = divmod(step, per_epoch)
    order = epoch_order(n, seed, epoch)
    if n < batch_size:
        return order
    return order[pos * batch_size : (pos + 1) * batch_size]
