"""Inference backends behind one small interface (ONNX Runtime, TensorRT, torch), the ONNX
export and the TensorRT engine cache.

Importing this package imports neither torch nor onnxruntime: each backend module imports
its own runtime when it is created (see :func:`create_backend`).
"""

from stereo_hand_mesh.runtime.base import METADATA_KEY, Backend, ModelInfo
from stereo_hand_mesh.runtime.keypoint_info import KEYPOINT_METADATA_KEY, read_keypoint_model_info
from stereo_hand_mesh.runtime.select import (
    BACKENDS,
    BackendChoice,
    create_backend,
    default_model_files,
)

__all__ = [
    "BACKENDS",
    "KEYPOINT_METADATA_KEY",
    "METADATA_KEY",
    "Backend",
    "BackendChoice",
    "ModelInfo",
    "create_backend",
    "default_model_files",
    "read_keypoint_model_info",
]
