"""Export a checkpoint to ONNX (torch at export time only).

The graph takes ``crops`` of shape (2, 3, S, S) float32, the left and right crops of one
stereo pair already normalized, and returns ``uv`` (2, V, 2) in crop fractions and, for
models with the monocular head, ``rel_depth`` (2, V) in metres. The checkpoint's
:class:`~stereo_hand_mesh.runtime.base.ModelInfo` is stored as JSON in the ONNX
``metadata_props`` under ``stereo_hand_mesh``, so backends never guess.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from stereo_hand_mesh.errors import ModelFileError
from stereo_hand_mesh.runtime.base import METADATA_KEY, ModelInfo

__all__ = ["DEFAULT_OPSET", "export_onnx", "read_onnx_info"]

DEFAULT_OPSET = 17


def export_onnx(
    checkpoint: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    opset: int = DEFAULT_OPSET,
    mano_path: str | os.PathLike[str] | None = None,
    half_weights: bool = False,
) -> Path:
    """Write ``checkpoint`` (the shipped default when None) as an ONNX file, atomically.

    With ``half_weights`` the weights are stored as float16 and cast to float32 inside the
    graph (the computation stays float32; ONNX Runtime folds the casts at load): half the
    file. Not lossless even for float16 checkpoints, because the export folds batch norm
    into the convolutions; the README gives the measured deviation.

    Returns:
        The written path.

    Raises:
        CheckpointError: the checkpoint is missing or corrupt.
        ModelFileError: the export or its check failed.
    """
    import onnx
    import torch

    from stereo_hand_mesh.model.loading import NetworkPass, load_model

    if opset < 17:
        raise ModelFileError(f"ONNX opset expected >= 17; got {opset}")
    model, ckpt = load_model(checkpoint, torch.device("cpu"), mano_path)
    info = ModelInfo.from_checkpoint_metadata(ckpt.metadata)
    variant = "monocular" if info.has_depth_head else "binocular"
    net = NetworkPass(model.eval(), variant).eval()

    class _Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, crops: torch.Tensor):
            uv, rel = self.net(crops)
            return (uv, rel) if rel is not None else (uv,)

    size = info.input_size
    example = torch.zeros(2, 3, size, size)
    outputs = ["uv", "rel_depth"] if info.has_depth_head else ["uv"]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(
                _Graph().eval(),
                (example,),
                tmp,
                input_names=["crops"],
                output_names=outputs,
                opset_version=opset,
                dynamo=False,
            )
        proto = onnx.load(tmp)
        if half_weights:
            _store_weights_as_float16(proto)
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, info.to_json()
        proto.producer_name = "stereo_hand_mesh"
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
        os.replace(tmp, out)
    except ModelFileError:
        raise
    except Exception as err:
        raise ModelFileError(f"ONNX export of {checkpoint} to {out} failed: {err}") from err
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out


def read_onnx_info(path: str | os.PathLike[str]) -> ModelInfo:
    """The :class:`ModelInfo` stored in an ONNX file (reads only the file's protobuf).

    Raises:
        ModelFileError: missing, not ONNX, or without our metadata.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"ONNX model expected at {path}; it does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf raises DecodeError and others for corrupt files
        raise ModelFileError(f"ONNX model {path} could not be read (corrupt?): {err}") from None
    for entry in proto.metadata_props:
        if entry.key == METADATA_KEY:
            return ModelInfo.from_json(entry.value, str(path))
    raise ModelFileError(
        f"ONNX model {path} expected '{METADATA_KEY}' metadata (export it with "
        "`stereo-hand-mesh export`); got none"
    )


def _store_weights_as_float16(proto) -> None:
    """Turn every float32 initializer into float16 plus a Cast back to float32."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    casts = []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        half = numpy_helper.from_array(
            numpy_helper.to_array(init).astype(np.float16), init.name + "__fp16"
        )
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
    for node in reversed(casts):
        graph.node.insert(0, node)
