"""ONNX Runtime backend: the CUDA execution provider when present, else the CPU one.

Imports onnxruntime and numpy only (no torch), so a node on this backend stays light.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ConfigError, ModelFileError
from stereo_hand_mesh.runtime.base import ModelInfo
from stereo_hand_mesh.runtime.export import read_onnx_info

__all__ = ["OnnxRuntimeBackend", "cuda_provider_available", "session_options"]


def cuda_provider_available() -> bool:
    """True when this onnxruntime build offers the CUDA execution provider."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def session_options(intra_op_threads: int = 0):
    """The ONNX Runtime session options every model of the package runs with.

    Args:
        intra_op_threads: CPU threads for one inference (0: ONNX Runtime's default).

    Raises:
        ConfigError: a negative thread count.
    """
    import onnxruntime as ort

    if intra_op_threads < 0:
        raise ConfigError(f"intra_op_threads expected >= 0; got {intra_op_threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Worker threads sleep between inferences instead of spin-waiting: a node shares its
    # cores with the camera driver and the rest of the robot (measured in the system
    # benchmark: node CPU at 30 Hz with and without spinning, README).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxRuntimeBackend:
    """Run an exported ONNX model with ONNX Runtime.

    Args:
        path: ONNX file written by :func:`~stereo_hand_mesh.runtime.export.export_onnx`.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        intra_op_threads: CPU threads for one inference (0: ONNX Runtime's default).

    Raises:
        ModelFileError: missing, corrupt or foreign ONNX file.
        ConfigError: ``device="cuda"`` without the CUDA provider, or bad thread count.
    """

    def __init__(
        self, path: str | os.PathLike[str], device: str = "auto", intra_op_threads: int = 0
    ) -> None:
        import onnxruntime as ort

        if intra_op_threads < 0:
            raise ConfigError(f"intra_op_threads expected >= 0; got {intra_op_threads}")
        self.path = Path(path)
        self.info: ModelInfo = read_onnx_info(self.path)
        use_cuda = device == "cuda" or (device == "auto" and cuda_provider_available())
        if device == "cuda" and not cuda_provider_available():
            raise ConfigError("ONNX Runtime device 'cuda' expected the CUDA provider; got none")
        if device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"ONNX Runtime device expected auto, cpu or cuda; got {device!r}")
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if use_cuda
            else ["CPUExecutionProvider"]
        )
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=session_options(intra_op_threads), providers=providers
            )
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelFileError(f"ONNX model {self.path} could not be loaded: {err}") from None
        self.name = "onnxruntime-cuda" if use_cuda else "onnxruntime-cpu"
        self._outputs = [o.name for o in self._session.get_outputs()]

    def infer(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(2, 3, S, S) float32 normalized crops -> (2, V, 2) uv, (2, V) depth or None."""
        s = self.info.input_size
        check_shape(crops, (2, 3, s, s), "crops")
        result = self._session.run(self._outputs, {"crops": crops.astype(np.float32, copy=False)})
        uv = result[0]
        rel = result[1] if len(result) > 1 else None
        return uv, rel
