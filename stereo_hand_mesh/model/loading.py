"""Loading the mesh network for inference and training alike: the hand topology a checkpoint
was trained for (checked against its topology hash), the shipped default checkpoint, and one
forward pass of a variant (:class:`NetworkPass`, what the torch backend runs and the ONNX
export traces). Device choice is :func:`~stereo_hand_mesh.model.device.resolve_device`;
preprocessing is :func:`~stereo_hand_mesh.model.preprocess.normalize_crops`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from stereo_hand_mesh.errors import CheckpointError, ConfigError
from stereo_hand_mesh.model.checkpoint import Checkpoint, load_checkpoint, model_from_checkpoint
from stereo_hand_mesh.model.network import MeshNet

__all__ = [
    "HAND_MODELS",
    "VARIANTS",
    "HandTopology",
    "NetworkPass",
    "default_model_path",
    "hand_topology",
    "load_model",
    "topology_of",
]

VARIANTS = ("binocular", "monocular")


@dataclass(frozen=True)
class HandTopology:
    """The template hand as torch constants.

    Attributes:
        faces: (F, 3) int64.
        regressor: (21, V) float32 joint regressor (rows sum to 1).
        topology_hash: identifies the connectivity (stored in checkpoints).
        num_vertices: V.
    """

    faces: Tensor
    regressor: Tensor
    topology_hash: str
    num_vertices: int

    def joints(self, vertices: Tensor) -> Tensor:
        """(B, V, 3) -> (B, 21, 3) joints, same units."""
        return torch.einsum("jv,bvc->bjc", self.regressor.to(vertices), vertices)


#: Name recorded in checkpoint metadata (``hand_model``) for each topology kind.
HAND_MODELS = ("template", "mano")
_TOPOLOGIES: dict[str, HandTopology] = {}


def hand_topology(mano_path: str | os.PathLike[str] | None = None) -> HandTopology:
    """The package's template hand, or MANO's topology read from a user's ``MANO_RIGHT.pkl``
    (safely, see :func:`~stereo_hand_mesh.hand.load_mano`); built once per process.

    Raises:
        ModelFileError: the MANO file is missing or unreadable.
    """
    key = "template" if mano_path is None else str(Path(mano_path).resolve())
    if key not in _TOPOLOGIES:
        from stereo_hand_mesh.hand import load_mano, template_hand

        model = template_hand() if mano_path is None else load_mano(mano_path)
        _TOPOLOGIES[key] = HandTopology(
            faces=torch.tensor(np.array(model.faces), dtype=torch.int64),
            regressor=torch.tensor(np.array(model.joint_regressor), dtype=torch.float32),
            topology_hash=model.topology_hash,
            num_vertices=model.num_vertices,
        )
    return _TOPOLOGIES[key]


def topology_of(
    ckpt: Checkpoint, mano_path: str | os.PathLike[str] | None = None, where: str = ""
) -> HandTopology:
    """The hand topology a checkpoint was trained for, checked against its topology hash.

    Raises:
        CheckpointError: a MANO model without ``mano_path``, or a hash mismatch.
    """
    kind = ckpt.metadata.get("hand_model", "template")
    if kind == "mano" and mano_path is None:
        raise CheckpointError(
            f"checkpoint {where} expected the MANO topology it was trained with; got no MANO "
            "file (pass --mano MANO_RIGHT.pkl)"
        )
    topo = hand_topology(mano_path if kind == "mano" else None)
    if ckpt.metadata.get("topology_hash") != topo.topology_hash:
        raise CheckpointError(
            f"checkpoint {where} expected topology {topo.topology_hash} (the {kind} hand); "
            f"got {ckpt.metadata.get('topology_hash')}"
        )
    return topo


def default_model_path() -> Path:
    """The shipped default checkpoint: ``models/default.pt`` of a checkout, or the installed
    ``share/stereo_hand_mesh/models/default.pt``."""
    here = Path(__file__).resolve().parents[2] / "models" / "default.pt"
    if here.is_file():
        return here
    return Path(sys.prefix) / "share" / "stereo_hand_mesh" / "models" / "default.pt"


def load_model(
    path: str | os.PathLike[str] | None,
    device: torch.device,
    mano_path: str | os.PathLike[str] | None = None,
) -> tuple[MeshNet, Checkpoint]:
    """Load a checkpoint (the shipped default when ``path`` is None) and check its topology.

    Args:
        path: checkpoint file, or None for the shipped default.
        device: where to put the network.
        mano_path: the user's MANO file, for models trained with MANO topology.

    Raises:
        CheckpointError: missing, corrupt, or made for another hand topology.
    """
    ckpt_path = Path(path) if path is not None else default_model_path()
    if path is None and not ckpt_path.is_file():
        raise CheckpointError(
            f"the shipped default model expected at {ckpt_path}; it is missing (pass --model "
            "or --init)"
        )
    ckpt = load_checkpoint(ckpt_path)
    topology_of(ckpt, mano_path, str(ckpt_path))
    return model_from_checkpoint(ckpt, device), ckpt


class NetworkPass(nn.Module):
    """One forward of a :class:`MeshNet` for a variant: (N, 3, S, S) -> (uv, rel depth).

    Wrapping the chosen head in ``forward`` lets DistributedDataParallel wrap the pass.

    Args:
        net: the network.
        variant: ``"binocular"`` (uv only; rel depth is None) or ``"monocular"``.
    """

    def __init__(self, net: MeshNet, variant: str) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ConfigError(f"variant expected one of {VARIANTS}; got {variant!r}")
        if variant == "monocular" and net.depth_head is None:
            raise ConfigError("variant 'monocular' expected a network with a depth head; got none")
        self.net = net
        self.variant = variant

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(N, 3, S, S) normalized crops -> (N, V, 2) uv fractions, (N, V) metres or None."""
        if self.variant == "monocular":
            return self.net.forward_with_depth(x)
        return self.net(x), None
