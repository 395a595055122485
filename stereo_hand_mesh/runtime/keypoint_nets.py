"""The real-trained hand networks behind one interface: ONNX Runtime, torch, TensorRT.

Two networks, imported from MediaPipe's hand models by ``tools/import_mediapipe_hands.py``
(``models/``): the palm detector (``palm_detection_{lite,full}``, whole image letterboxed to
192 x 192) and the hand landmark network (``hand_landmark_{lite,full}``, a 224 x 224 crop
with the hand upright). Both take (N, 3, S, S) float32 RGB in [0, 1] named ``image`` and
return named outputs (:data:`LANDMARK_OUTPUTS`, :data:`PALM_OUTPUTS`). The pipeline runs each
on both views of a stereo pair as one batch of two.

ONNX Runtime and TensorRT take the ``.onnx`` files; torch takes the ``.npz`` weights the
import wrote (no pickle). Importing this module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from stereo_hand_mesh.errors import ConfigError, ModelFileError, ShapeError

__all__ = [
    "KEYPOINT_BACKENDS",
    "KEYPOINT_VARIANTS",
    "LANDMARK_OUTPUTS",
    "PALM_OUTPUTS",
    "HandNets",
    "KeypointNet",
    "create_hand_nets",
    "keypoint_model_files",
]

KEYPOINT_BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
KEYPOINT_VARIANTS = ("auto", "lite", "full")
#: Outputs of the landmark network: (N, 63) x, y in crop pixels (continuous, 0 at the crop's
#: left/top edge) and a relative depth; (N, 1) presence in [0, 1]; (N, 1) handedness in
#: [0, 1] (about 1 for a right hand seen by a camera that does not mirror); (N, 63) metric
#: landmarks about the hand's centre, metres, axes of the crop.
LANDMARK_OUTPUTS = ("landmarks", "presence", "handedness", "world_landmarks")
#: Outputs of the palm detector: (N, 2016, 18) box and keypoint offsets, (N, 2016, 1) logits.
PALM_OUTPUTS = ("regressors", "scores")


@runtime_checkable
class KeypointNet(Protocol):
    """One network on one runtime.

    Attributes:
        name: e.g. ``"onnxruntime-cpu"``, ``"torch-cuda-fp16"``.
        input_size: S, the square input's side in pixels.
        path: the file it was loaded from.
    """

    name: str
    input_size: int
    path: Path

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """(N, 3, S, S) float32 RGB in [0, 1] -> the named outputs, float32 numpy."""
        ...


@dataclass(frozen=True)
class HandNets:
    """The two networks the pipeline runs, and why these were chosen.

    Attributes:
        detector: the palm detector.
        landmarks: the hand landmark network.
        variant: ``"lite"`` or ``"full"`` (the landmark network's; the detector's matches).
        reason: one line for the log.
    """

    detector: KeypointNet
    landmarks: KeypointNet
    variant: str
    reason: str

    @property
    def name(self) -> str:
        """The runtime's name (both networks run on the same one)."""
        return self.landmarks.name


def keypoint_model_files(variant: str, models_dir: Path | None = None) -> dict[str, Path]:
    """Paths of the shipped networks of a variant: ``{"landmarks_onnx", "landmarks_npz",
    "palm_onnx", "palm_npz"}`` in ``models/`` of a checkout, else the installed share."""
    if variant not in ("lite", "full"):
        raise ConfigError(f"keypoint model variant expected 'lite' or 'full'; got {variant!r}")
    if models_dir is None:
        from stereo_hand_mesh.runtime.select import default_model_files

        models_dir = default_model_files()[1].parent
    return {
        "landmarks_onnx": models_dir / f"hand_landmark_{variant}.onnx",
        "landmarks_npz": models_dir / f"hand_landmark_{variant}.npz",
        "palm_onnx": models_dir / f"palm_detection_{variant}.onnx",
        "palm_npz": models_dir / f"palm_detection_{variant}.npz",
    }


def _check_images(images: np.ndarray, size: int, path: Path) -> np.ndarray:
    if (
        not isinstance(images, np.ndarray)
        or images.ndim != 4
        or images.shape[1:] != (3, size, size)
        or images.shape[0] < 1
    ):
        raise ShapeError(
            f"{path.name} expected images of shape (N, 3, {size}, {size}); got "
            f"{getattr(images, 'shape', type(images).__name__)}"
        )
    return np.ascontiguousarray(images, dtype=np.float32)


class OnnxRuntimeKeypointNet:
    """A keypoint network in ONNX Runtime (CUDA provider when present and asked for).

    Args:
        path: the ``.onnx`` file the import wrote.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        intra_op_threads: CPU threads for one inference (0: ONNX Runtime's default).

    Raises:
        ModelFileError: missing or corrupt file, or not one of the imported networks.
        ConfigError: ``device="cuda"`` without the CUDA provider.
    """

    def __init__(self, path: Path, device: str = "auto", intra_op_threads: int = 0) -> None:
        import onnxruntime as ort

        from stereo_hand_mesh.runtime.onnxruntime_backend import session_options

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileError(f"keypoint model expected a file; {self.path} does not exist")
        has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        if device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"ONNX Runtime device expected auto, cpu or cuda; got {device!r}")
        if device == "cuda" and not has_cuda:
            raise ConfigError("ONNX Runtime device 'cuda' expected the CUDA provider; got none")
        use_cuda = has_cuda and device != "cpu"
        providers = ["CUDAExecutionProvider"] * use_cuda + ["CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=session_options(intra_op_threads), providers=providers
            )
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelFileError(f"ONNX model {self.path} could not be loaded: {err}") from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != "image" or len(inputs[0].shape) != 4:
            raise ModelFileError(
                f"{self.path} expected one input 'image' (N, 3, S, S) (an imported hand "
                f"network); got {[(i.name, i.shape) for i in inputs]}"
            )
        self.input_size = int(inputs[0].shape[-1])
        self._outputs = [o.name for o in self._session.get_outputs()]
        self.name = "onnxruntime-cuda" if use_cuda else "onnxruntime-cpu"
        #: The file's ``metadata_props`` (key -> value), as the session read them.
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = _check_images(images, self.input_size, self.path)
        return dict(zip(self._outputs, self._session.run(self._outputs, {"image": x})))


class TorchKeypointNet:
    """A keypoint network in torch, built from the imported ``.npz`` weights.

    Args:
        path: the ``.npz`` file the import wrote.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        fp16: half precision (CUDA only).

    Raises:
        ModelFileError: missing or corrupt weights.
        ConfigError: fp16 on the CPU, or CUDA asked for and absent.
    """

    def __init__(self, path: Path, device: str = "auto", fp16: bool = False) -> None:
        import torch

        from stereo_hand_mesh.model.device import resolve_device
        from stereo_hand_mesh.model.tflite_graph import load_tflite_graph_net

        self._torch = torch
        self.path = Path(path)
        self.device = resolve_device(device)
        if fp16 and self.device.type != "cuda":
            raise ConfigError(f"fp16 expected a CUDA device; got {self.device}")
        self.dtype = torch.float16 if fp16 else torch.float32
        self._net = load_tflite_graph_net(self.path).eval().to(self.device, self.dtype)
        self.input_size = int(self._net.input_size)
        self.name = f"torch-{self.device.type}" + ("-fp16" if fp16 else "")

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        x = _check_images(images, self.input_size, self.path)
        with torch.inference_mode():
            out = self._net(torch.from_numpy(x).to(self.device, self.dtype))
            return {k: v.float().cpu().numpy() for k, v in out.items()}


def _auto_backend() -> tuple[str, str]:
    """The runtime ``auto`` picks for the keypoint networks, and why."""
    from stereo_hand_mesh.runtime.select import _torch_cuda, _torch_cuda_or_trt
    from stereo_hand_mesh.runtime.tensorrt_backend import tensorrt_available

    if tensorrt_available() and _torch_cuda_or_trt():
        return "tensorrt", "TensorRT and a GPU are available"
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return "onnxruntime", "ONNX Runtime has the CUDA provider"
    if _torch_cuda():
        return "torch", "torch sees a GPU and ONNX Runtime has no CUDA provider"
    return "onnxruntime", "no GPU backend available: ONNX Runtime on the CPU"


def create_hand_nets(
    backend: str = "auto",
    variant: str = "auto",
    landmark_file_path: str | os.PathLike[str] | None = None,
    palm_file_path: str | os.PathLike[str] | None = None,
    engine_dir: str | os.PathLike[str] | None = None,
    enable_fp16: bool = False,
    force_engine_update: bool = False,
    intra_op_threads: int = 0,
) -> HandNets:
    """Create the palm detector and the landmark network on one runtime.

    Args:
        backend: one of :data:`KEYPOINT_BACKENDS`.
        variant: ``lite`` (CPU default), ``full`` (GPU default) or ``auto``.
        landmark_file_path: a landmark network file (``.onnx`` for ONNX Runtime and
            TensorRT, ``.npz`` for torch); None for the shipped one of ``variant``.
        palm_file_path: the same for the palm detector.
        engine_dir: where TensorRT engines are cached (default: beside the ONNX files).
        enable_fp16: FP16 for TensorRT and torch on CUDA.
        force_engine_update: rebuild the TensorRT engines.
        intra_op_threads: ONNX Runtime CPU threads (0: default).

    Raises:
        ConfigError: unknown backend or variant, or a file of the wrong kind for it.
        ModelFileError: missing or corrupt file, or the runtime is not installed.
    """
    if backend not in KEYPOINT_BACKENDS:
        raise ConfigError(f"backend expected one of {KEYPOINT_BACKENDS}; got {backend!r}")
    if variant not in KEYPOINT_VARIANTS:
        raise ConfigError(f"keypoint variant expected one of {KEYPOINT_VARIANTS}; got {variant!r}")
    if backend == "auto":
        backend, reason = _auto_backend()
    else:
        reason = f"backend '{backend}' asked for"
    on_gpu = backend == "tensorrt" or (backend != "onnxruntime" and _cuda_for(backend))
    if variant == "auto":
        variant = "full" if on_gpu or _onnxruntime_cuda(backend) else "lite"
        reason += f"; variant {variant} ({'GPU' if variant == 'full' else 'CPU'} default)"
    files = keypoint_model_files(variant)
    suffix = ".npz" if backend == "torch" else ".onnx"
    paths = []
    for given, key, flag in (
        (landmark_file_path, "landmarks", "landmark model"),
        (palm_file_path, "palm", "palm model"),
    ):
        path = Path(given) if given else files[f"{key}{'_npz' if suffix == '.npz' else '_onnx'}"]
        if path.suffix != suffix:
            raise ConfigError(
                f"backend '{backend}' expected a {suffix} {flag}; got {path} (torch takes the "
                ".npz weights, ONNX Runtime and TensorRT the .onnx files)"
            )
        paths.append(path)
    nets: list[KeypointNet] = []
    for path in paths:
        if backend == "torch":
            nets.append(TorchKeypointNet(path, "auto", enable_fp16))
        elif backend == "tensorrt":
            from stereo_hand_mesh.runtime.tensorrt_backend import TensorRTKeypointNet

            cache = Path(engine_dir) if engine_dir else path.parent
            engine = cache / (path.stem + (".fp16" if enable_fp16 else "") + ".plan")
            nets.append(TensorRTKeypointNet(path, engine, enable_fp16, force_engine_update))
        else:
            nets.append(OnnxRuntimeKeypointNet(path, "auto", intra_op_threads))
    landmarks, detector = nets
    for net, size, what in ((landmarks, 224, "landmark"), (detector, 192, "palm")):
        if net.input_size != size:
            raise ModelFileError(
                f"the {what} network expected a {size}x{size} input; {net.path} takes "
                f"{net.input_size}x{net.input_size}"
            )
    return HandNets(detector, landmarks, variant, f"{landmarks.name}: {reason}")


def _cuda_for(backend: str) -> bool:
    if backend != "torch":
        return False
    from stereo_hand_mesh.runtime.select import _torch_cuda

    return _torch_cuda()


def _onnxruntime_cuda(backend: str) -> bool:
    if backend != "onnxruntime":
        return False
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()
