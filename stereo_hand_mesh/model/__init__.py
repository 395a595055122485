"""The mesh network, its checkpoint format, loading, device choice and preprocessing; the
executor of imported TFLite graphs (MediaPipe's hand networks); the differentiable template
fit.

Importing this package does not import torch: :func:`normalize_crops` (numpy or torch input)
is imported eagerly, the torch names (everything else) lazily on first use, so the ONNX
Runtime and TensorRT path can preprocess without paying for torch.
"""

from importlib import import_module
from typing import Any

from stereo_hand_mesh.model.preprocess import IMAGENET_NORMALIZATION, normalize_crops

__all__ = [
    "IMAGENET_NORMALIZATION",
    "VARIANTS",
    "Checkpoint",
    "HandParams",
    "HandTopology",
    "MeshNet",
    "MeshNetConfig",
    "NetworkPass",
    "TFLiteGraph",
    "TFLiteGraphNet",
    "count_macs",
    "count_parameters",
    "default_model_path",
    "fit_hand_torch",
    "forward_kinematics_torch",
    "hand_params_from_fits",
    "hand_topology",
    "load_checkpoint",
    "load_model",
    "load_tflite_graph_net",
    "model_from_checkpoint",
    "normalize_crops",
    "read_tflite_graph",
    "resolve_device",
    "save_checkpoint",
    "skin_hand_torch",
    "topology_of",
]

#: Lazily imported public name -> its module (each of these imports torch).
_LAZY = {
    "Checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "model_from_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "count_macs": "complexity",
    "count_parameters": "complexity",
    "resolve_device": "device",
    "HandParams": "hand_fit_torch",
    "fit_hand_torch": "hand_fit_torch",
    "forward_kinematics_torch": "hand_fit_torch",
    "hand_params_from_fits": "hand_fit_torch",
    "skin_hand_torch": "hand_fit_torch",
    "VARIANTS": "loading",
    "HandTopology": "loading",
    "NetworkPass": "loading",
    "default_model_path": "loading",
    "hand_topology": "loading",
    "load_model": "loading",
    "topology_of": "loading",
    "MeshNet": "network",
    "MeshNetConfig": "network",
    "TFLiteGraphNet": "tflite_graph",
    "load_tflite_graph_net": "tflite_graph",
    "TFLiteGraph": "tflite_reader",
    "read_tflite_graph": "tflite_reader",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
