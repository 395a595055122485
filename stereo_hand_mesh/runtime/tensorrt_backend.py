"""TensorRT backend: build an engine from the ONNX file, cache it, run it.

Written against TensorRT's public Python API (8.6 / 10.x, desktop and JetPack) and
``cuda-python`` for device buffers; neither exists on the machines this project is built and
tested on, so only what needs no GPU is tested here: the cache key, the sidecar that records
it, the decision to rebuild, and the import guard. To check it on a Jetson or a desktop GPU::

    stereo-hand-mesh export --onnx model.onnx --engine model.plan --fp16 && \
    stereo-hand-mesh infer --backend tensorrt --model model.onnx --engine model.plan \
        --left L.png --right R.png --left-info L.yaml --right-info R.yaml --json out.json

Engines are cached at ``engine_file_path`` with a sidecar ``<engine>.json`` holding the key
(ONNX hash + TensorRT version + GPU name + precision). An engine is rebuilt when the key
changes, when ``force_engine_update`` is set, or when it fails to deserialize (an engine of
another TensorRT version or GPU): the log says which, and the node does not crash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import ModelFileError
from stereo_hand_mesh.runtime.base import ModelInfo
from stereo_hand_mesh.runtime.export import read_onnx_info

__all__ = [
    "EngineKey",
    "TensorRTBackend",
    "TensorRTKeypointNet",
    "engine_key",
    "needs_rebuild",
    "onnx_sha256",
    "save_engine",
    "tensorrt_available",
]

_LOG = logging.getLogger(__name__)


def tensorrt_available() -> bool:
    """True when ``import tensorrt`` and ``cuda-python`` work here."""
    try:
        import tensorrt  # noqa: F401
        from cuda import cudart  # noqa: F401
    except ImportError:
        return False
    return True


def onnx_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of an ONNX file's bytes.

    Raises:
        ModelFileError: the file is missing.
    """
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as err:
        raise ModelFileError(f"ONNX model expected at {path}; got {err}") from None


@dataclass(frozen=True)
class EngineKey:
    """What an engine is valid for.

    Attributes:
        onnx_sha256: hash of the ONNX file it was built from.
        tensorrt_version: ``tensorrt.__version__`` that built it.
        gpu_name: the CUDA device name it was built on.
        precision: ``"fp16"`` or ``"fp32"``.
    """

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    precision: str


def engine_key(
    onnx_path: str | os.PathLike[str], tensorrt_version: str, gpu_name: str, fp16: bool
) -> EngineKey:
    """The cache key of an engine for this ONNX file, TensorRT, GPU and precision."""
    return EngineKey(
        onnx_sha256(onnx_path), tensorrt_version, gpu_name, "fp16" if fp16 else "fp32"
    )


def _sidecar(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".json")


def needs_rebuild(engine_path: str | os.PathLike[str], key: EngineKey, force: bool) -> str | None:
    """Why the engine at ``engine_path`` must be (re)built, or None when it can be used.

    Returns:
        A reason for the log (``"force_engine_update is set"``, ``"no engine at ..."``,
        ``"the engine was built for <field> = <old>; now <new>"``), or None.
    """
    engine_path = Path(engine_path)
    if force:
        return "force_engine_update is set"
    if not engine_path.is_file():
        return f"no engine at {engine_path}"
    try:
        recorded = json.loads(_sidecar(engine_path).read_text())
    except (OSError, ValueError):
        return f"no readable cache key beside {engine_path}"
    for name, value in asdict(key).items():
        if recorded.get(name) != value:
            return f"the engine was built for {name} = {recorded.get(name)!r}; now {value!r}"
    return None


def save_engine(engine_path: str | os.PathLike[str], blob: bytes, key: EngineKey) -> None:
    """Write a serialized engine and, beside it, the sidecar with its cache key.

    The engine goes to a temporary file first and is renamed into place, so a reader never
    sees half an engine; the sidecar is written last (an engine without one is rebuilt).

    Raises:
        ModelFileError: the engine or the sidecar cannot be written (the message names the
            path and the reason: no such directory, read-only, no space, ...).
    """
    engine_path = Path(engine_path)
    tmp = engine_path.with_name(f".{engine_path.name}.tmp")
    try:
        engine_path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(blob)
        os.replace(tmp, engine_path)
    except OSError as err:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise ModelFileError(
            f"engine_file_path {engine_path} expected a writable location; got {err}"
        ) from None
    sidecar = _sidecar(engine_path)
    try:
        sidecar.write_text(json.dumps(asdict(key), indent=2))
    except OSError as err:
        raise ModelFileError(
            f"engine cache key {sidecar} expected a writable location; got {err}"
        ) from None


class TensorRTBackend:
    """Run an ONNX model as a TensorRT engine (built and cached on first use).

    Args:
        model_file_path: the ONNX file (with our metadata).
        engine_file_path: where the engine is cached.
        enable_fp16: build with FP16 kernels allowed.
        force_engine_update: rebuild even when the cached engine's key matches.

    Raises:
        ModelFileError: TensorRT or cuda-python is not installed, the ONNX file is bad, the
            build fails, or the engine cannot be written.
    """

    def __init__(
        self,
        model_file_path: str | os.PathLike[str],
        engine_file_path: str | os.PathLike[str],
        enable_fp16: bool = False,
        force_engine_update: bool = False,
    ) -> None:
        trt, cudart = _import_tensorrt()
        self._trt, self._cudart = trt, cudart
        self.info: ModelInfo = read_onnx_info(model_file_path)
        onnx_path = Path(model_file_path)
        self._logger = trt.Logger(trt.Logger.WARNING)
        engine = _cached_engine(
            trt,
            cudart,
            self._logger,
            onnx_path,
            Path(engine_file_path),
            enable_fp16,
            force_engine_update,
            lambda: self._build(onnx_path, enable_fp16),
        )
        self._engine = engine
        self._context = engine.create_execution_context()
        self.name = "tensorrt-fp16" if enable_fp16 else "tensorrt-fp32"
        self._stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._buffers: dict[str, tuple[int, np.ndarray]] = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = tuple(engine.get_tensor_shape(name))
            host = np.empty(shape, dtype=np.float32)
            ptr = _check(cudart.cudaMalloc(host.nbytes), "cudaMalloc")
            self._context.set_tensor_address(name, ptr)
            self._buffers[name] = (ptr, host)

    def _build(self, onnx_path: Path, fp16: bool) -> bytes:
        trt = self._trt
        builder = trt.Builder(self._logger)
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelFileError(f"TensorRT could not parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        blob = builder.build_serialized_network(network, config)
        if blob is None:
            raise ModelFileError(f"TensorRT engine build from {onnx_path} failed (see the log)")
        return bytes(blob)

    def infer(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(2, 3, S, S) float32 normalized crops -> (2, V, 2) uv, (2, V) depth or None."""
        cudart = self._cudart
        s = self.info.input_size
        check_shape(crops, (2, 3, s, s), "crops")
        h2d, d2h = (
            cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
            cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
        )
        ptr, host = self._buffers["crops"]
        host[...] = crops
        _check(
            cudart.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, h2d, self._stream), "copy"
        )
        if not self._context.execute_async_v3(self._stream):
            raise ModelFileError("TensorRT execution failed")
        outs = {}
        for name in ("uv", "rel_depth"):
            if name in self._buffers:
                p, h = self._buffers[name]
                _check(
                    cudart.cudaMemcpyAsync(h.ctypes.data, p, h.nbytes, d2h, self._stream), "copy"
                )
                outs[name] = h
        _check(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        rel = outs.get("rel_depth")
        return outs["uv"].copy(), (rel.copy() if rel is not None else None)


def _check(result, what: str):
    """Unpack a cuda-python ``(err, value...)`` tuple, raising on an error code."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise ModelFileError(f"CUDA call {what} failed with error {err}")
    return values[0] if len(values) == 1 else (values or None)


#: The largest batch a keypoint engine takes: both views of up to 4 hands (``max_hands``).
KEYPOINT_MAX_BATCH = 8


class TensorRTKeypointNet:
    """One imported hand network (palm detector or landmark network) as a TensorRT engine.

    The engine takes batches of 1 to :data:`KEYPOINT_MAX_BATCH` (both views of every hand of
    a pair; optimized for 2, one hand) through an optimization profile on the ``image``
    input; outputs keep the ONNX file's names. Written against the
    same TensorRT API as :class:`TensorRTBackend` and, like it, not run on the machines this
    project is tested on (no TensorRT there): the verification command is in the README.

    Args:
        onnx_path: the imported ``.onnx`` file.
        engine_path: where the engine is cached (with its key sidecar).
        enable_fp16: build with FP16 kernels allowed.
        force_engine_update: rebuild even when the cached engine's key matches.

    Raises:
        ModelFileError: TensorRT or cuda-python missing, the build fails, or the engine
            cannot be written or loaded.
    """

    def __init__(
        self,
        onnx_path: str | os.PathLike[str],
        engine_path: str | os.PathLike[str],
        enable_fp16: bool = False,
        force_engine_update: bool = False,
    ) -> None:
        trt, cudart = _import_tensorrt()
        self._trt, self._cudart = trt, cudart
        self.path = Path(onnx_path)
        self._logger = trt.Logger(trt.Logger.WARNING)
        engine = _cached_engine(
            trt,
            cudart,
            self._logger,
            self.path,
            Path(engine_path),
            enable_fp16,
            force_engine_update,
            lambda: self._build(enable_fp16),
            profile=f"batch1-{KEYPOINT_MAX_BATCH}",
        )
        self._engine = engine
        self._context = engine.create_execution_context()
        self.input_size = int(engine.get_tensor_shape("image")[-1])
        self.name = "tensorrt-fp16" if enable_fp16 else "tensorrt-fp32"
        self._stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        shape = (KEYPOINT_MAX_BATCH, 3, self.input_size, self.input_size)
        self._context.set_input_shape("image", shape)
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        for name in self._names:  # sized for the largest batch
            nbytes = 4 * int(np.prod(self._context.get_tensor_shape(name)))
            ptr = _check(cudart.cudaMalloc(nbytes), "cudaMalloc")
            self._context.set_tensor_address(name, ptr)
            self._buffers[name] = (ptr, nbytes)

    def _build(self, fp16: bool) -> bytes:
        trt = self._trt
        builder = trt.Builder(self._logger)
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(self.path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelFileError(f"TensorRT could not parse {self.path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
        side = int(network.get_input(0).shape[-1])
        profile = builder.create_optimization_profile()
        profile.set_shape(
            "image", (1, 3, side, side), (2, 3, side, side), (KEYPOINT_MAX_BATCH, 3, side, side)
        )
        config.add_optimization_profile(profile)
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        blob = builder.build_serialized_network(network, config)
        if blob is None:
            raise ModelFileError(f"TensorRT engine build from {self.path} failed (see the log)")
        return bytes(blob)

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """(N, 3, S, S) float32 RGB in [0, 1], N <= KEYPOINT_MAX_BATCH -> the named outputs."""
        cudart = self._cudart
        s = self.input_size
        n = images.shape[0] if images.ndim == 4 else 0
        if images.shape[1:] != (3, s, s) or not 1 <= n <= KEYPOINT_MAX_BATCH:
            raise ModelFileError(
                f"{self.path.name} engine expected images (1..{KEYPOINT_MAX_BATCH}, 3, {s}, "
                f"{s}); got {images.shape}"
            )
        x = np.ascontiguousarray(images, dtype=np.float32)
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._context.set_input_shape("image", x.shape)
        ptr, _ = self._buffers["image"]
        _check(cudart.cudaMemcpyAsync(ptr, x.ctypes.data, x.nbytes, h2d, self._stream), "copy")
        if not self._context.execute_async_v3(self._stream):
            raise ModelFileError("TensorRT execution failed")
        outs = {}
        for name in self._names:
            if name == "image":
                continue
            host = np.empty(tuple(self._context.get_tensor_shape(name)), np.float32)
            p, _ = self._buffers[name]
            _check(
                cudart.cudaMemcpyAsync(host.ctypes.data, p, host.nbytes, d2h, self._stream),
                "copy",
            )
            outs[name] = host
        _check(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return outs


def _import_tensorrt():
    """``(tensorrt, cudart)``, or ModelFileError saying how to get them."""
    if not tensorrt_available():
        raise ModelFileError(
            "backend 'tensorrt' expected the tensorrt and cuda-python packages; got none "
            "(JetPack ships TensorRT; on a desktop GPU install tensorrt and cuda-python)"
        )
    import tensorrt as trt
    from cuda import cudart

    return trt, cudart


def _deserialize(trt, logger, blob: bytes):
    """An engine from its bytes, or None when this TensorRT cannot load it."""
    try:
        return trt.Runtime(logger).deserialize_cuda_engine(blob)
    except Exception:
        return None


def _cached_engine(
    trt,
    cudart,
    logger,
    onnx_path: Path,
    engine_path: Path,
    fp16: bool,
    force: bool,
    build: Callable[[], bytes],
    profile: str = "",
):
    """The engine cached at ``engine_path`` when its key (ONNX hash, TensorRT version, GPU,
    precision, and the input ``profile`` it was built for) matches and it deserializes; else
    ``build()``, saved with its key.

    Raises:
        ModelFileError: the build fails, or the engine cannot be written or loaded.
    """
    props = _check(cudart.cudaGetDeviceProperties(0), "cudaGetDeviceProperties")
    gpu = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    key = engine_key(onnx_path, trt.__version__ + (f"+{profile}" if profile else ""), gpu, fp16)
    reason = needs_rebuild(engine_path, key, force)
    engine = None if reason else _deserialize(trt, logger, engine_path.read_bytes())
    if reason is None and engine is None:
        reason = f"the engine at {engine_path} did not deserialize (other TensorRT/GPU?)"
    if reason is not None:
        _LOG.warning("building TensorRT engine %s: %s", engine_path, reason)
        blob = build()
        save_engine(engine_path, blob, key)
        engine = _deserialize(trt, logger, blob)
        if engine is None:
            raise ModelFileError(f"TensorRT engine built from {onnx_path} does not load")
    return engine
