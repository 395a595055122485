"""Choosing and creating a backend (``backend: auto | tensorrt | onnxruntime | torch``).

``auto`` picks TensorRT (when tensorrt and cuda-python import and a GPU is there), then ONNX
Runtime with CUDA, then torch on CUDA, then ONNX Runtime on the CPU, and says why. ONNX
Runtime and TensorRT take the ``.onnx`` file (``model_file_path``); torch takes the ``.pt``
checkpoint. Without a model path the shipped default model is used, in the form the backend
needs (``models/default.onnx`` or ``models/default.pt``). torch is imported only when the
torch backend is chosen or probed for CUDA (and only when torch is installed).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from stereo_hand_mesh.errors import ConfigError, ModelFileError
from stereo_hand_mesh.runtime.base import Backend

__all__ = [
    "BACKENDS",
    "BackendChoice",
    "choose_auto_backend",
    "create_backend",
    "default_model_files",
]

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


@dataclass(frozen=True)
class BackendChoice:
    """A created backend and why it was chosen.

    Attributes:
        backend: the backend.
        reason: one line for the log.
    """

    backend: Backend
    reason: str


def default_model_files() -> tuple[Path, Path]:
    """(checkpoint, ONNX) of the shipped default model: ``models/`` of a checkout, else the
    installed ``share/stereo_hand_mesh/models/``."""
    here = Path(__file__).resolve().parents[2] / "models"
    if not (here / "default.onnx").is_file():
        here = Path(sys.prefix) / "share" / "stereo_hand_mesh" / "models"
    return here / "default.pt", here / "default.onnx"


def _gpu_device_present() -> bool:
    """An NVIDIA GPU device node exists (desktop driver or Jetson), checked without imports."""
    return any(
        os.path.exists(p)
        for p in ("/dev/nvidiactl", "/proc/driver/nvidia/gpus", "/dev/nvhost-ctrl-gpu")
    )


def _torch_cuda() -> bool:
    """torch sees a GPU; torch is not imported on a machine without an NVIDIA device node
    (importing it costs seconds and hundreds of MB that an ONNX Runtime node must not pay)."""
    if not _gpu_device_present() or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def choose_auto_backend(model_file_path: Path | None) -> tuple[str, str]:
    """The backend ``auto`` picks, and why (one line for the log).

    Order: TensorRT (tensorrt and cuda-python import and CUDA sees a device), then ONNX
    Runtime with its CUDA provider, then torch on CUDA (only for the shipped default, whose
    checkpoint it can load), then ONNX Runtime on the CPU. A ``.pt`` model path means torch.

    Args:
        model_file_path: the model asked for, or None for the shipped default.

    Returns:
        ``(backend name, reason)``.
    """
    from stereo_hand_mesh.runtime.onnxruntime_backend import cuda_provider_available
    from stereo_hand_mesh.runtime.tensorrt_backend import tensorrt_available

    if model_file_path is not None and model_file_path.suffix == ".pt":
        return "torch", f"model_file_path {model_file_path} is a torch checkpoint"
    if tensorrt_available() and _torch_cuda_or_trt():
        return "tensorrt", "TensorRT and a GPU are available"
    if cuda_provider_available():
        return "onnxruntime", "ONNX Runtime has the CUDA provider"
    if model_file_path is None and _torch_cuda():
        return "torch", "torch sees a GPU and ONNX Runtime has no CUDA provider"
    return "onnxruntime", "no GPU backend available: ONNX Runtime on the CPU"


def create_backend(
    backend: str = "auto",
    model_file_path: str | os.PathLike[str] | None = None,
    engine_file_path: str | os.PathLike[str] | None = None,
    enable_fp16: bool = False,
    force_engine_update: bool = False,
    intra_op_threads: int = 0,
) -> BackendChoice:
    """Create the backend asked for (or the best available for ``auto``).

    Args:
        backend: one of :data:`BACKENDS`.
        model_file_path: ``.onnx`` (ONNX Runtime, TensorRT) or ``.pt`` (torch); None for the
            shipped default.
        engine_file_path: TensorRT engine cache (default: the ONNX path with ``.plan``).
        enable_fp16: FP16 for TensorRT and torch on CUDA.
        force_engine_update: rebuild the TensorRT engine.
        intra_op_threads: ONNX Runtime CPU threads (0: default).

    Raises:
        ConfigError: unknown backend, or a model file of the wrong kind for it.
        ModelFileError: missing or corrupt model file, or the backend is not installed.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend expected one of {BACKENDS}; got {backend!r}")
    default_pt, default_onnx = default_model_files()
    path = Path(model_file_path) if model_file_path else None
    if path is not None and not path.is_file():
        raise ModelFileError(f"model_file_path expected a file; {path} does not exist")
    is_pt = path is not None and path.suffix == ".pt"
    onnx_path = path if (path is not None and not is_pt) else default_onnx
    pt_path = path if is_pt else default_pt
    if backend == "auto":
        backend, reason = choose_auto_backend(path)
    else:
        reason = f"backend '{backend}' asked for"
    if backend == "torch":
        from stereo_hand_mesh.runtime.torch_backend import TorchBackend

        checkpoint = pt_path if is_pt or path is None else None
        if checkpoint is None:
            raise ConfigError(f"backend 'torch' expected a .pt checkpoint; got {path}")
        made: Backend = TorchBackend(checkpoint, "auto", enable_fp16 and _torch_cuda())
    elif is_pt:
        raise ConfigError(
            f"backend '{backend}' expected an .onnx model (stereo-hand-mesh export); got {path}"
        )
    elif backend == "tensorrt":
        from stereo_hand_mesh.runtime.tensorrt_backend import TensorRTBackend

        engine = Path(engine_file_path) if engine_file_path else onnx_path.with_suffix(".plan")
        made = TensorRTBackend(onnx_path, engine, enable_fp16, force_engine_update)
    else:
        from stereo_hand_mesh.runtime.onnxruntime_backend import OnnxRuntimeBackend

        made = OnnxRuntimeBackend(onnx_path, "auto", intra_op_threads)
    return BackendChoice(made, f"{made.name}: {reason}")


def _torch_cuda_or_trt() -> bool:
    """A CUDA device is present (asked of cuda-python, not torch)."""
    from cuda import cudart

    err, count = cudart.cudaGetDeviceCount()
    return int(err) == 0 and count > 0
