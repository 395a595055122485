"""A small reader of TFLite flatbuffers: the graph as plain Python data and numpy arrays.

It reads what the float networks of MediaPipe's hand pipeline need (see :data:`SUPPORTED_OPS`)
and nothing more; any other operator raises :class:`~stereo_hand_mesh.errors.ModelFileError`
naming it. The flatbuffer is parsed with the ``tflite`` package (generated bindings of the
TFLite schema, build-time only); nothing here imports torch.

The description keeps TFLite's conventions: shapes are those stored in the file (activations
NHWC, batch first), convolution kernels are ``(O, KH, KW, I)``, depthwise kernels
``(1, KH, KW, C * M)``, fully connected weights ``(O, K)``. Two simplifications are made
while reading:

* ``DEQUANTIZE`` operators whose input is a constant (float16 weights) are folded: their
  output becomes a constant tensor whose stored array is the float16 data (float16 ->
  float32 is exact, so the executor casts it when it builds its float32 weights).
* Integer parameter tensors (``PAD`` paddings, ``RESHAPE`` shapes, ``MEAN`` axes,
  ``RESIZE_BILINEAR`` sizes) are moved into the operator's options; an operator's
  ``inputs`` then lists only float tensors (activations and weights).

Examples:
    >>> graph = read_tflite_graph("hand_landmark_lite.tflite")  # doctest: +SKIP
    >>> sorted({op.op for op in graph.operators})  # doctest: +SKIP
    ['ADD', 'CONV_2D', 'DEPTHWISE_CONV_2D', 'FULLY_CONNECTED', 'LOGISTIC', ...]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stereo_hand_mesh.errors import ModelFileError

__all__ = [
    "SUPPORTED_OPS",
    "TFLiteGraph",
    "TFLiteOperator",
    "TFLiteTensor",
    "graph_from_json_dict",
    "graph_to_json_dict",
    "read_tflite_graph",
]

#: Operators the reader (and :mod:`stereo_hand_mesh.model.tflite_graph`) supports.
#: ``DEQUANTIZE`` only with a constant input (it is folded away).
SUPPORTED_OPS = (
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEQUANTIZE",
    "FULLY_CONNECTED",
    "LOGISTIC",
    "MAX_POOL_2D",
    "MEAN",
    "PAD",
    "PRELU",
    "RELU",
    "RELU6",
    "RESHAPE",
    "RESIZE_BILINEAR",
)

_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}
_PADDINGS = {0: "SAME", 1: "VALID"}
# TFLite TensorType -> numpy dtype, for the types a float network holds.
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}


@dataclass(frozen=True)
class TFLiteTensor:
    """One tensor of the graph.

    Attributes:
        index: position in the subgraph's tensor table.
        name: the name stored in the file.
        shape: dimensions as stored (activations NHWC with batch first; the file's batch is 1).
        dtype: the dtype the graph computes with (``"float32"`` for folded float16 weights).
        constant: True when the tensor holds data (weights); its array is in
            :attr:`TFLiteGraph.constants`.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    constant: bool


@dataclass(frozen=True)
class TFLiteOperator:
    """One operator, in execution order.

    Attributes:
        op: builtin operator name, e.g. ``"CONV_2D"``.
        inputs: tensor indices of the float operands (activations, weights, bias); integer
            parameter tensors are folded into ``options``. A missing optional operand
            (e.g. no bias) is -1.
        outputs: tensor indices written.
        options: the operator's settings with readable values, e.g. ``{"stride": [2, 2],
            "padding": "SAME", "activation": "RELU6"}``; ``padding`` is ``"SAME"`` or
            ``"VALID"``, ``activation`` one of ``NONE``, ``RELU``, ``RELU_N1_TO_1``,
            ``RELU6``, ``TANH``.
    """

    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any]


@dataclass(frozen=True)
class TFLiteGraph:
    """A whole single-subgraph TFLite model.

    Attributes:
        tensors: every tensor the operators use, indexed by :attr:`TFLiteTensor.index`.
        operators: in execution order, ``DEQUANTIZE`` of constants folded away.
        inputs: tensor indices of the graph inputs.
        outputs: tensor indices of the graph outputs, in the file's order.
        constants: tensor index -> stored array (float16 where the file stored float16
            weights behind a ``DEQUANTIZE``, else as stored).
    """

    tensors: dict[int, TFLiteTensor]
    operators: tuple[TFLiteOperator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    constants: dict[int, np.ndarray] = field(repr=False)

    def op_counts(self) -> dict[str, int]:
        """Operator name -> how many times it occurs (after folding), sorted by name."""
        counts: dict[str, int] = {}
        for op in self.operators:
            counts[op.op] = counts.get(op.op, 0) + 1
        return dict(sorted(counts.items()))


def read_tflite_graph(path: str | os.PathLike[str]) -> TFLiteGraph:
    """Parse a float TFLite model into a :class:`TFLiteGraph`.

    Args:
        path: the ``.tflite`` file.

    Returns:
        The graph description with its constant arrays.

    Raises:
        ModelFileError: the file is missing or not a TFLite flatbuffer, has more than one
            subgraph, or uses an operator, option or tensor type the reader does not
            support (the message names the operator and the file).
    """
    import tflite
    from tflite.utils import BUILTIN_OPCODE2NAME

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"TFLite model expected at {path}; it does not exist")
    buf = path.read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelFileError(
            f"TFLite model {path} expected the flatbuffer identifier 'TFL3' at bytes 4..8; "
            f"got {buf[4:8]!r}"
        )
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() != 1:
            raise ModelFileError(
                f"TFLite model {path} expected 1 subgraph; got {model.SubgraphsLength()}"
            )
        return _read_subgraph(model, buf, path, tflite, BUILTIN_OPCODE2NAME)
    except ModelFileError:
        raise
    except Exception as err:  # flatbuffers raise IndexError/struct.error on damaged files
        raise ModelFileError(
            f"TFLite model {path} expected a complete TFLite flatbuffer ({len(buf)} bytes "
            f"read); got {type(err).__name__}: {err} (truncated or corrupt?)"
        ) from None


def _buffer_array(model: Any, buf: bytes, tensor: Any, path: Path) -> np.ndarray | None:
    """The constant data of ``tensor`` as a numpy array of its shape, or None."""
    buffer = model.Buffers(tensor.Buffer())
    if buffer is None:
        return None
    if buffer.DataLength() > 0:
        raw = buffer.DataAsNumpy().tobytes()
    elif buffer.Offset() > 1:  # large models keep the data after the flatbuffer
        raw = buf[buffer.Offset() : buffer.Offset() + buffer.Size()]
    else:
        return None
    dtype = _DTYPES.get(tensor.Type())
    name = tensor.Name().decode()
    if dtype is None:
        raise ModelFileError(
            f"TFLite model {path}: constant tensor {name!r} expected float32, float16, int32 "
            f"or int64; got TensorType {tensor.Type()}"
        )
    shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
    if arr.size != int(np.prod(shape)):
        raise ModelFileError(
            f"TFLite model {path}: constant tensor {name!r} expected {int(np.prod(shape))} "
            f"values for shape {shape}; got {arr.size}"
        )
    return arr.reshape(shape).astype(dtype)


def _read_subgraph(
    model: Any, buf: bytes, path: Path, tflite: Any, opnames: dict[int, str]
) -> TFLiteGraph:
    """Tensors, operators (DEQUANTIZE folded, int parameters into options), inputs, outputs."""
    sg = model.Subgraphs(0)
    raw_tensors: dict[int, tuple[str, tuple[int, ...], int]] = {}
    arrays: dict[int, np.ndarray] = {}
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        raw_tensors[i] = (t.Name().decode(), shape, t.Type())
        data = _buffer_array(model, buf, t, path)
        if data is not None:
            arrays[i] = data

    constants: dict[int, np.ndarray] = {}
    operators: list[TFLiteOperator] = []
    for k in range(sg.OperatorsLength()):
        op = sg.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = opnames.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            custom = code.CustomCode()
            name = f"CUSTOM:{custom.decode() if custom else '?'}"
        if name not in SUPPORTED_OPS:
            raise ModelFileError(
                f"TFLite model {path}: operator {k} is {name}; supported operators are "
                f"{', '.join(SUPPORTED_OPS)}"
            )
        ins = [int(j) for j in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(j) for j in op.OutputsAsNumpy()]
        if name == "DEQUANTIZE":
            src = ins[0]
            if src not in arrays or raw_tensors[src][2] != 1:
                raise ModelFileError(
                    f"TFLite model {path}: operator {k} DEQUANTIZE expected a constant "
                    f"float16 input; got tensor {raw_tensors[src][0]!r} (TensorType "
                    f"{raw_tensors[src][2]}, constant: {src in arrays})"
                )
            arrays[outs[0]] = arrays[src]  # float16 storage; float32 is exact
            continue
        options, float_ins = _options(name, op, ins, arrays, raw_tensors, path, tflite, k)
        operators.append(TFLiteOperator(name, tuple(float_ins), tuple(outs), options))

    used = {j for op in operators for j in (*op.inputs, *op.outputs) if j >= 0}
    inputs = tuple(int(j) for j in sg.InputsAsNumpy())
    outputs = tuple(int(j) for j in sg.OutputsAsNumpy())
    used |= set(inputs) | set(outputs)
    tensors: dict[int, TFLiteTensor] = {}
    for j in sorted(used):
        tname, shape, ttype = raw_tensors[j]
        if j in arrays:
            constants[j] = arrays[j]
            dtype = "float32" if arrays[j].dtype == np.float16 else str(arrays[j].dtype)
        else:
            if ttype != 0:
                raise ModelFileError(
                    f"TFLite model {path}: tensor {tname!r} expected float32 activations; got "
                    f"TensorType {ttype} (quantized models are not supported)"
                )
            dtype = "float32"
        tensors[j] = TFLiteTensor(j, tname, shape, dtype, j in arrays)
    return TFLiteGraph(tensors, tuple(operators), inputs, outputs, constants)


def _int_param(
    arrays: dict[int, np.ndarray], j: int, what: str, path: Path, k: int, opname: str
) -> list[int]:
    """A constant integer operand as a list (paddings flattened row-major)."""
    if j not in arrays or arrays[j].dtype.kind != "i":
        raise ModelFileError(
            f"TFLite model {path}: operator {k} {opname} expected a constant integer {what}; "
            "got a computed or non-integer tensor"
        )
    return [int(v) for v in arrays[j].reshape(-1)]


def _options(
    name: str,
    op: Any,
    ins: list[int],
    arrays: dict[int, np.ndarray],
    raw_tensors: dict[int, tuple[str, tuple[int, ...], int]],
    path: Path,
    tflite: Any,
    k: int,
) -> tuple[dict[str, Any], list[int]]:
    """Readable options of operator ``k`` and its float inputs."""

    def table(cls: Any) -> Any:
        opt = op.BuiltinOptions()
        if opt is None:
            raise ModelFileError(
                f"TFLite model {path}: operator {k} {name} expected builtin options; got none"
            )
        obj = cls()
        obj.Init(opt.Bytes, opt.Pos)
        return obj

    def activation(obj: Any) -> str:
        code = obj.FusedActivationFunction()
        if code not in _ACTIVATIONS:
            raise ModelFileError(
                f"TFLite model {path}: operator {k} {name} expected a fused activation in "
                f"{sorted(_ACTIVATIONS.values())}; got code {code}"
            )
        return _ACTIVATIONS[code]

    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        cls = tflite.Conv2DOptions if name == "CONV_2D" else tflite.DepthwiseConv2DOptions
        o = table(cls)
        options: dict[str, Any] = {
            "stride": [o.StrideH(), o.StrideW()],
            "dilation": [o.DilationHFactor(), o.DilationWFactor()],
            "padding": _PADDINGS[o.Padding()],
            "activation": activation(o),
        }
        if name == "DEPTHWISE_CONV_2D":
            options["depth_multiplier"] = o.DepthMultiplier()
        return options, ins + [-1] * (3 - len(ins))
    if name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        o = table(tflite.Pool2DOptions)
        return {
            "stride": [o.StrideH(), o.StrideW()],
            "filter": [o.FilterHeight(), o.FilterWidth()],
            "padding": _PADDINGS[o.Padding()],
            "activation": activation(o),
        }, ins
    if name == "ADD":
        return {"activation": activation(table(tflite.AddOptions))}, ins
    if name == "CONCATENATION":
        o = table(tflite.ConcatenationOptions)
        return {"axis": o.Axis(), "activation": activation(o)}, ins
    if name == "FULLY_CONNECTED":
        o = table(tflite.FullyConnectedOptions)
        if o.WeightsFormat() != 0:
            raise ModelFileError(
                f"TFLite model {path}: operator {k} FULLY_CONNECTED expected the DEFAULT "
                f"weights format; got format {o.WeightsFormat()}"
            )
        options = {"activation": activation(o), "keep_num_dims": bool(o.KeepNumDims())}
        return options, ins + [-1] * (3 - len(ins))
    if name == "RESIZE_BILINEAR":
        o = table(tflite.ResizeBilinearOptions)
        size = _int_param(arrays, ins[1], "output size", path, k, name)
        return {
            "size": size,
            "align_corners": bool(o.AlignCorners()),
            "half_pixel_centers": bool(o.HalfPixelCenters()),
        }, ins[:1]
    if name == "RESHAPE":
        if len(ins) > 1 and ins[1] >= 0:
            shape = _int_param(arrays, ins[1], "new shape", path, k, name)
        else:
            shape = [int(v) for v in table(tflite.ReshapeOptions).NewShapeAsNumpy()]
        return {"new_shape": shape}, ins[:1]
    if name == "PAD":
        flat = _int_param(arrays, ins[1], "paddings", path, k, name)
        return {"paddings": [flat[i : i + 2] for i in range(0, len(flat), 2)]}, ins[:1]
    if name == "MEAN":
        o = table(tflite.ReducerOptions)
        axes = _int_param(arrays, ins[1], "axes", path, k, name)
        return {"axes": axes, "keep_dims": bool(o.KeepDims())}, ins[:1]
    # PRELU, LOGISTIC, RELU, RELU6: no options.
    return {}, ins


def graph_to_json_dict(graph: TFLiteGraph) -> dict[str, Any]:
    """The graph's structure as JSON-ready data (no arrays; constants by tensor index).

    The inverse is :func:`graph_from_json_dict` given the same constants.
    """
    return {
        "tensors": [
            {
                "index": t.index,
                "name": t.name,
                "shape": list(t.shape),
                "dtype": t.dtype,
                "constant": t.constant,
            }
            for t in graph.tensors.values()
        ],
        "operators": [
            {
                "op": o.op,
                "inputs": list(o.inputs),
                "outputs": list(o.outputs),
                "options": o.options,
            }
            for o in graph.operators
        ],
        "inputs": list(graph.inputs),
        "outputs": list(graph.outputs),
    }


def graph_from_json_dict(data: dict[str, Any], constants: dict[int, np.ndarray]) -> TFLiteGraph:
    """Rebuild a :class:`TFLiteGraph` from :func:`graph_to_json_dict` output.

    Raises:
        KeyError, TypeError, ValueError: the data is not a complete description (callers
            turn these into ModelFileError naming their file).
    """
    tensors = {
        int(t["index"]): TFLiteTensor(
            int(t["index"]),
            str(t["name"]),
            tuple(int(d) for d in t["shape"]),
            str(t["dtype"]),
            bool(t["constant"]),
        )
        for t in data["tensors"]
    }
    operators = tuple(
        TFLiteOperator(
            str(o["op"]),
            tuple(int(j) for j in o["inputs"]),
            tuple(int(j) for j in o["outputs"]),
            dict(o["options"]),
        )
        for o in data["operators"]
    )
    for t in tensors.values():
        if t.constant and t.index not in constants:
            raise KeyError(f"constant tensor {t.index} ({t.name!r}) has no array")
    return TFLiteGraph(
        tensors,
        operators,
        tuple(int(j) for j in data["inputs"]),
        tuple(int(j) for j in data["outputs"]),
        dict(constants),
    )
