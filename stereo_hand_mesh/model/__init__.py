"""The mesh network and its checkpoint format (torch; not imported by the ONNX/TRT path)."""

from stereo_hand_mesh.model.checkpoint import (
    Checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from stereo_hand_mesh.model.complexity import count_macs, count_parameters
from stereo_hand_mesh.model.network import MeshNet, MeshNetConfig

__all__ = [
    "Checkpoint",
    "MeshNet",
    "MeshNetConfig",
    "count_macs",
    "count_parameters",
    "load_checkpoint",
    "model_from_checkpoint",
    "save_checkpoint",
]
