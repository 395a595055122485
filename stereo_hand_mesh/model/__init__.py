"""The mesh network and its checkpoint format, the executor of imported TFLite graphs
(MediaPipe's hand networks), and the differentiable template fit (torch; not imported by the
ONNX/TRT path)."""

from stereo_hand_mesh.model.checkpoint import (
    Checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from stereo_hand_mesh.model.complexity import count_macs, count_parameters
from stereo_hand_mesh.model.hand_fit_torch import (
    HandParams,
    fit_hand_torch,
    forward_kinematics_torch,
    hand_params_from_fits,
    skin_hand_torch,
)
from stereo_hand_mesh.model.network import MeshNet, MeshNetConfig
from stereo_hand_mesh.model.tflite_graph import TFLiteGraphNet, load_tflite_graph_net
from stereo_hand_mesh.model.tflite_reader import TFLiteGraph, read_tflite_graph

__all__ = [
    "Checkpoint",
    "HandParams",
    "MeshNet",
    "MeshNetConfig",
    "TFLiteGraph",
    "TFLiteGraphNet",
    "count_macs",
    "count_parameters",
    "fit_hand_torch",
    "forward_kinematics_torch",
    "hand_params_from_fits",
    "load_checkpoint",
    "load_tflite_graph_net",
    "model_from_checkpoint",
    "read_tflite_graph",
    "save_checkpoint",
    "skin_hand_torch",
]
