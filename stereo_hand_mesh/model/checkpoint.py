"""Checkpoint files: weights plus metadata, loaded without executing code from the file.

A checkpoint is a ``torch.save`` of a dict holding only tensors and plain Python types::

    {"format": "stereo_hand_mesh.checkpoint", "version": 1,
     "metadata": {"config": {...MeshNetConfig...}, "input_size": 128,
                  "normalization": {"mean": [r, g, b], "std": [r, g, b]},
                  "topology_hash": "...", "provenance": {...}},
     "state_dict": {name: tensor, ...},
     "training": {...optional: optimizer state, step, epoch, rng...}}

It is read back with ``torch.load(weights_only=True)``, which refuses any pickled global
outside torch's tensor allowlist, so a crafted file cannot run code. Writes go to a temporary
file in the same directory, then ``os.replace``: a crash mid-write never corrupts the file
that was there.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stereo_hand_mesh.errors import CheckpointError
from stereo_hand_mesh.model.network import MeshNet, MeshNetConfig
from stereo_hand_mesh.model.preprocess import IMAGENET_NORMALIZATION

__all__ = [
    "CHECKPOINT_FORMAT",
    "IMAGENET_NORMALIZATION",
    "Checkpoint",
    "load_checkpoint",
    "model_from_checkpoint",
    "release_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "stereo_hand_mesh.checkpoint"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        config: the network architecture.
        state_dict: parameter and buffer tensors by name.
        metadata: plain-type metadata (normalization, topology_hash, provenance, ...).
        training: optional resumable training state (plain types and tensors), else {}.
    """

    config: MeshNetConfig
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | Path,
    model: MeshNet,
    metadata: dict[str, Any],
    training: dict[str, Any] | None = None,
) -> Path:
    """Atomically write ``model``'s weights and ``metadata`` to ``path``.

    Args:
        path: destination file (conventionally ``*.pt``).
        model: the network (its config is stored too).
        metadata: plain types only; must hold ``topology_hash``; ``normalization`` defaults
            to :data:`IMAGENET_NORMALIZATION`.
        training: optional resumable state (optimizer state_dict, step, ...).

    Returns:
        The written path.
    """
    path = Path(path)
    meta = {"normalization": IMAGENET_NORMALIZATION, **metadata}
    meta["config"] = model.config.to_dict()
    meta["input_size"] = model.config.input_size
    if "topology_hash" not in meta:
        raise CheckpointError("checkpoint metadata expected a 'topology_hash'; got none")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "metadata": meta,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "training": training or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint safely (weights only; no code from the file runs).

    Raises:
        CheckpointError: missing file, not a torch file, truncated/corrupt, forbidden pickle
            content, or not a stereo_hand_mesh checkpoint (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} expected a file; it does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(
            f"checkpoint {path} could not be loaded safely (corrupt, truncated, or holds "
            f"content outside the weights-only allowlist): {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} expected format '{CHECKPOINT_FORMAT}'; got "
            f"{payload.get('format') if isinstance(payload, dict) else type(payload).__name__}"
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} expected version {CHECKPOINT_VERSION}; "
            f"got {payload.get('version')}"
        )
    meta = payload["metadata"]
    cfg = dict(meta["config"])
    cfg["widths"] = tuple(cfg["widths"])
    try:
        config = MeshNetConfig(**cfg)
    except TypeError as err:
        raise CheckpointError(f"checkpoint {path} has an unknown network config: {err}") from err
    return Checkpoint(config, payload["state_dict"], meta, payload.get("training") or {})


def model_from_checkpoint(ckpt: Checkpoint, device: str | torch.device = "cpu") -> MeshNet:
    """Build the network of a checkpoint and load its weights (strict)."""
    model = MeshNet(ckpt.config)  # float32; float16 weights are cast on copy
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint weights do not fit its network: {err}") from err
    return model.to(device)


def release_checkpoint(src: str | Path, dst: str | Path, half: bool = True) -> Path:
    """Copy a finished run's checkpoint without its optimizer state (the shipped form).

    The weights, the metadata and the training summary (kind, steps, settings) are kept;
    the optimizer moments (about twice the weights' size) are dropped, so the copy cannot be
    resumed but loads and adapts like the original. With ``half`` the floating-point
    tensors are stored as float16 (half the file; loading casts them back to float32, a
    relative change of at most 2^-11 per weight).

    Raises:
        CheckpointError: ``src`` is unreadable or its run is not finished.
    """
    ckpt = load_checkpoint(src)
    if not ckpt.training.get("finished"):
        raise CheckpointError(
            f"checkpoint {src} expected a finished run to release; got step "
            f"{ckpt.training.get('step')} of {ckpt.training.get('total_steps')}"
        )
    model = model_from_checkpoint(ckpt)
    if half:
        model = model.half()
    training = {k: v for k, v in ckpt.training.items() if k != "optimizer"}
    meta = dict(ckpt.metadata) | {"weights_dtype": "float16" if half else "float32"}
    return save_checkpoint(dst, model, meta, training)
