"""Run a TFLite float graph (as read by :mod:`~stereo_hand_mesh.model.tflite_reader`) in torch.

:class:`TFLiteGraphNet` executes the operators in the file's order, in NCHW: every rank-4
tensor of the TFLite graph (NHWC there) is held as ``(N, C, H, W)``; tensors of other ranks
keep TFLite's layout. Weights are converted once, when the module is built: convolution
kernels ``(O, KH, KW, I)`` -> ``(O, I, KH, KW)``, depthwise kernels ``(1, KH, KW, C * M)``
-> ``(C * M, 1, KH, KW)``, channel-last constants -> channel-first. The computation is
float32 whatever the stored precision.

TFLite details the executor reproduces:

* ``SAME`` padding puts the odd pixel after (bottom/right): a stride-2 layer on an even
  size pads asymmetrically, so it is padded explicitly (``torch.nn.functional.pad``) before
  the convolution.
* ``RESHAPE`` and ``FULLY_CONNECTED`` read their input in NHWC order: a rank-4 input is
  transposed back to NHWC before a reshape that changes rank (or a flatten).
* ``RESIZE_BILINEAR`` with ``half_pixel_centers`` equals torch's ``align_corners=False``
  (both clamp the source index at the border); ``align_corners`` equals torch's
  ``align_corners=True``. The legacy mode (both false) is refused.
* The file's batch size (1) is not kept: the batch dimension is dynamic.

For MediaPipe's hand networks (``models/hand_landmark_*``, ``models/palm_detection_*``) the
input is ``(B, 3, S, S)`` RGB in [0, 1] (the range MediaPipe feeds; no affine folded in) and
the outputs are raw: ``presence`` and ``handedness`` are already probabilities (the graphs end
them in a LOGISTIC op; 0.995 / 0.007 presence on a real hand / a black crop), while the palm
``scores`` are logits that need a sigmoid. :mod:`stereo_hand_mesh.model.mediapipe_hands`
describes every output and its units.

The weights load safely from an ``.npz`` written by :func:`save_tflite_graph_npz`
(``np.load(..., allow_pickle=False)``): the graph description as a JSON string and one
array per constant tensor, stored as in the TFLite file (float16 weights stay float16).

Examples:
    >>> net = load_tflite_graph_net("models/hand_landmark_lite.npz")  # doctest: +SKIP
    >>> net(torch.rand(2, 3, 224, 224))["landmarks"].shape  # doctest: +SKIP
    torch.Size([2, 63])
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as nnf

from stereo_hand_mesh.errors import ModelFileError
from stereo_hand_mesh.model.tflite_reader import (
    TFLiteGraph,
    TFLiteOperator,
    graph_from_json_dict,
    graph_to_json_dict,
)

__all__ = [
    "NPZ_FORMAT",
    "TFLiteGraphNet",
    "export_tflite_graph_onnx",
    "graph_with_weights",
    "load_tflite_graph_net",
    "make_trainable",
    "read_tflite_graph_npz",
    "save_tflite_graph_npz",
    "weight_layers",
]

#: Value of the ``format`` field of the JSON stored in the ``.npz`` files.
NPZ_FORMAT = "stereo_hand_mesh.tflite_graph/1"

_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The fused activation ``name`` (TFLite's ActivationFunctionType) as a function."""
    if name == "NONE":
        return lambda x: x
    if name == "RELU":
        return nnf.relu
    if name == "RELU6":
        return lambda x: torch.clamp(x, 0.0, 6.0)
    if name == "RELU_N1_TO_1":
        return lambda x: torch.clamp(x, -1.0, 1.0)
    if name == "TANH":
        return torch.tanh
    raise ModelFileError(
        f"fused activation expected NONE, RELU, RELU6, RELU_N1_TO_1 or TANH; got {name}"
    )


class _ConstantPad(torch.autograd.Function):
    """``torch.nn.functional.pad`` (constant mode) whose ONNX export is one Pad node with
    constant ``pads``.

    The TorchScript exporter writes ``pad`` through a Slice/Concat subgraph that ONNX Runtime
    folds only after its Pad -> Conv fusion has run, so every asymmetric SAME convolution kept
    a separate Pad (about a fifth of the landmark network's time on 2 CPU threads). A
    constant ``pads`` input lets ONNX Runtime fold the Pad into the Conv's own ``pads``.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, pad: tuple[int, ...], value: float) -> torch.Tensor:
        ctx.pad = pad
        return nnf.pad(x, pad, value=value)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        # The padded border is constant: the input's gradient is the grad's inner part
        # (adaptation trains through the network).
        pad = ctx.pad
        for i in range(len(pad) // 2):
            dim = grad.dim() - 1 - i
            grad = grad.narrow(dim, pad[2 * i], grad.shape[dim] - pad[2 * i] - pad[2 * i + 1])
        return grad, None, None

    @staticmethod
    def symbolic(g: Any, x: Any, pad: tuple[int, ...], value: float) -> Any:
        rank = x.type().dim()
        begins, ends = [0] * rank, [0] * rank
        for i in range(len(pad) // 2):  # pad lists the last dimension first
            begins[rank - 1 - i], ends[rank - 1 - i] = pad[2 * i], pad[2 * i + 1]
        pads = g.op("Constant", value_t=torch.tensor(begins + ends, dtype=torch.int64))
        if value == 0.0:
            return g.op("Pad", x, pads, mode_s="constant")
        fill = g.op("Constant", value_t=torch.tensor(value, dtype=torch.float32))
        return g.op("Pad", x, pads, fill, mode_s="constant")


def _pad(x: torch.Tensor, pad: tuple[int, ...], value: float = 0.0) -> torch.Tensor:
    """Constant padding, ``torch.nn.functional.pad`` order; exports as a plain ONNX Pad."""
    return _ConstantPad.apply(x, tuple(int(p) for p in pad), float(value))


def _held_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a tensor has in the executor: rank-4 NHWC shapes become NCHW."""
    return (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else shape


def _same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TFLite SAME padding (before, after) of one spatial dimension; the odd pixel goes after."""
    out = math.ceil(size / stride)
    effective = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class _Conv(nn.Module):
    """CONV_2D / DEPTHWISE_CONV_2D in NCHW with TFLite padding and a fused activation."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: Sequence[int],
        dilation: Sequence[int],
        pads: tuple[int, int, int, int],
        groups: int,
        activation: str,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        self.stride = (int(stride[0]), int(stride[1]))
        self.dilation = (int(dilation[0]), int(dilation[1]))
        top, bottom, left, right = pads
        # Symmetric padding goes into the convolution; asymmetric (SAME, stride 2) first.
        self.symmetric = top == bottom and left == right
        self.conv_padding = (top, left) if self.symmetric else (0, 0)
        self.explicit_pad = (left, right, top, bottom)
        self.groups = groups
        self.act = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.symmetric:
            x = _pad(x, self.explicit_pad)
        y = nnf.conv2d(
            x, self.weight, self.bias, self.stride, self.conv_padding, self.dilation, self.groups
        )
        return self.act(y)


class _Pool(nn.Module):
    """MAX_POOL_2D / AVERAGE_POOL_2D with TFLite SAME padding.

    TFLite's SAME max pool ignores the padding (padded with -inf here); its SAME average
    pool divides by the number of real pixels under the window (sum / count, count from a
    padded map of ones built once).
    """

    def __init__(
        self,
        kind: str,
        filt: Sequence[int],
        stride: Sequence[int],
        pads: tuple[int, int, int, int],
        in_hw: tuple[int, int],
        activation: str,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.kernel = (int(filt[0]), int(filt[1]))
        self.stride = (int(stride[0]), int(stride[1]))
        top, bottom, left, right = pads
        self.pad = (left, right, top, bottom)
        self.padded = any(self.pad)
        self.act = _activation(activation)
        if kind == "AVERAGE_POOL_2D" and self.padded:
            with torch.no_grad():  # constant: the count of real pixels under each window
                ones = nnf.pad(torch.ones(1, 1, *in_hw), self.pad)
                count = nnf.avg_pool2d(ones, self.kernel, self.stride) * (
                    self.kernel[0] * self.kernel[1]
                )
            self.register_buffer("count", count, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "MAX_POOL_2D":
            if self.padded:
                x = _pad(x, self.pad, float("-inf"))
            y = nnf.max_pool2d(x, self.kernel, self.stride)
        elif self.padded:
            area = self.kernel[0] * self.kernel[1]
            y = nnf.avg_pool2d(_pad(x, self.pad), self.kernel, self.stride) * area / self.count
        else:
            y = nnf.avg_pool2d(x, self.kernel, self.stride)
        return self.act(y)


class _Step(nn.Module):
    """One operator without weights of its own (or with small constant operands)."""

    def __init__(self, fn: Callable[..., torch.Tensor], consts: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn
        for key, value in consts.items():
            self.register_buffer(key, value)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.fn(self, *xs)


class TFLiteGraphNet(nn.Module):
    """A TFLite float graph executed in torch, NCHW, float32, dynamic batch.

    The MediaPipe networks imported by ``tools/import_mediapipe_hands.py`` take
    ``(B, 3, S, S)`` RGB in [0, 1] (S = 224 landmark, 192 palm) and return their outputs in
    a dict keyed by :attr:`output_names`; see :mod:`stereo_hand_mesh.model.mediapipe_hands` for
    what each output holds.

    Args:
        graph: the description from :func:`~stereo_hand_mesh.model.tflite_reader.
            read_tflite_graph` or :func:`read_tflite_graph_npz`.
        output_names: one stable name per graph output, in the file's output order (default:
            the TFLite tensor names).

    Raises:
        ModelFileError: an operator or a combination of options the executor does not
            support (the message names the operator and its position).
    """

    def __init__(self, graph: TFLiteGraph, output_names: Sequence[str] | None = None) -> None:
        super().__init__()
        if output_names is None:
            output_names = [graph.tensors[j].name for j in graph.outputs]
        if len(output_names) != len(graph.outputs):
            raise ModelFileError(
                f"output_names expected {len(graph.outputs)} names (one per graph output); got "
                f"{list(output_names)}"
            )
        if len(graph.inputs) != 1:
            raise ModelFileError(f"TFLite graph expected 1 input; got {len(graph.inputs)}")
        self.output_names: tuple[str, ...] = tuple(output_names)
        # Output shapes without the batch, in the layout forward() returns them.
        self.output_shapes: tuple[tuple[int, ...], ...] = tuple(
            _held_shape(graph.tensors[j].shape)[1:] for j in graph.outputs
        )
        self.input_shape_nhwc: tuple[int, ...] = graph.tensors[graph.inputs[0]].shape
        #: Input side S in pixels (the file's input height).
        self.input_size: int = (
            int(self.input_shape_nhwc[1]) if len(self.input_shape_nhwc) == 4 else 0
        )
        self._graph = graph
        self._input = graph.inputs[0]
        self._outputs = graph.outputs
        self.steps = nn.ModuleList()
        self._wiring: list[tuple[tuple[int, ...], int]] = []
        with torch.no_grad():
            for k, op in enumerate(graph.operators):
                step, act_inputs = self._build(k, op)
                self.steps.append(step)
                self._wiring.append((act_inputs, op.outputs[0]))

    # --- building -------------------------------------------------------------------------

    def _const(self, j: int) -> torch.Tensor:
        """Constant tensor ``j`` as float32 in TFLite layout."""
        return torch.from_numpy(np.asarray(self._graph.constants[j], dtype=np.float32).copy())

    def _rank(self, j: int) -> int:
        return len(self._graph.tensors[j].shape)

    def _fail(self, k: int, op: TFLiteOperator, why: str) -> ModelFileError:
        return ModelFileError(f"operator {k} {op.op} {op.options}: {why}")

    def _build(self, k: int, op: TFLiteOperator) -> tuple[nn.Module, tuple[int, ...]]:
        g = self._graph
        name, opt = op.op, op.options
        ins = op.inputs
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            x_shape = g.tensors[ins[0]].shape
            if len(x_shape) != 4 or not g.tensors[ins[1]].constant:
                raise self._fail(k, op, "expected a rank-4 input and constant weights")
            w = self._const(ins[1])
            bias = self._const(ins[2]) if ins[2] >= 0 else None
            cin = x_shape[3]
            if name == "CONV_2D":
                weight = w.permute(0, 3, 1, 2).contiguous()  # (O, KH, KW, I) -> (O, I, KH, KW)
                groups = cin // weight.shape[1]
            else:
                # (1, KH, KW, C * M) -> (C * M, 1, KH, KW); output channel c*M+m reads input c.
                weight = w[0].permute(2, 0, 1).unsqueeze(1).contiguous()
                groups = cin
                if weight.shape[0] != cin * int(opt["depth_multiplier"]):
                    raise self._fail(
                        k, op, f"weights {tuple(w.shape)} do not match {cin} channels"
                    )
            kh, kw = weight.shape[2], weight.shape[3]
            if opt["padding"] == "SAME":
                top, bottom = _same_pads(x_shape[1], kh, opt["stride"][0], opt["dilation"][0])
                left, right = _same_pads(x_shape[2], kw, opt["stride"][1], opt["dilation"][1])
            else:
                top = bottom = left = right = 0
            conv = _Conv(
                weight,
                bias,
                opt["stride"],
                opt["dilation"],
                (top, bottom, left, right),
                groups,
                opt["activation"],
            )
            return conv, ins[:1]
        if name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            x_shape = g.tensors[ins[0]].shape
            pads = (0, 0, 0, 0)
            if opt["padding"] == "SAME":
                pads = (
                    *_same_pads(x_shape[1], opt["filter"][0], opt["stride"][0], 1),
                    *_same_pads(x_shape[2], opt["filter"][1], opt["stride"][1], 1),
                )
            pool = _Pool(name, opt["filter"], opt["stride"], pads, x_shape[1:3], opt["activation"])
            return pool, ins[:1]
        if name == "PRELU":
            return self._prelu(k, op)
        if name in ("ADD", "CONCATENATION"):
            return self._elementwise(k, op)
        if name == "PAD":
            pads = opt["paddings"]
            if self._rank(ins[0]) == 4:
                pads = [pads[0], pads[3], pads[1], pads[2]]  # NHWC -> NCHW
            flat: list[int] = []
            for before, after in reversed(pads):  # pad lists the last dimension first
                flat += [int(before), int(after)]
            if pads[0] != [0, 0]:
                raise self._fail(k, op, "padding the batch dimension is not supported")
            return _Step(lambda s, x, p=tuple(flat): _pad(x, p), {}), ins[:1]
        if name == "RESIZE_BILINEAR":
            if opt["align_corners"] and opt["half_pixel_centers"]:
                raise self._fail(k, op, "align_corners with half_pixel_centers is invalid")
            if not opt["align_corners"] and not opt["half_pixel_centers"]:
                raise self._fail(k, op, "the legacy mode (both options false) is not supported")
            size = (int(opt["size"][0]), int(opt["size"][1]))
            corners = bool(opt["align_corners"])

            def resize(s: nn.Module, x: torch.Tensor) -> torch.Tensor:
                return nnf.interpolate(x, size=size, mode="bilinear", align_corners=corners)

            return _Step(resize, {}), ins[:1]
        if name == "RESHAPE":
            return self._reshape(k, op)
        if name == "MEAN":
            return self._mean(k, op)
        if name == "FULLY_CONNECTED":
            return self._fully_connected(k, op)
        if name == "LOGISTIC":
            return _Step(lambda s, x: torch.sigmoid(x), {}), ins[:1]
        if name in ("RELU", "RELU6"):
            act = _activation(name)
            return _Step(lambda s, x: act(x), {}), ins[:1]
        raise self._fail(k, op, "operator not supported by TFLiteGraphNet")

    def _prelu(self, k: int, op: TFLiteOperator) -> tuple[nn.Module, tuple[int, ...]]:
        x, a = op.inputs
        if not self._graph.tensors[a].constant:
            raise self._fail(k, op, "expected a constant alpha")
        alpha = self._const(a)
        if self._rank(x) == 4:
            alpha = alpha.reshape((1,) * (4 - alpha.dim()) + tuple(alpha.shape))
            alpha = alpha.permute(0, 3, 1, 2).contiguous()

        def prelu(s: nn.Module, t: torch.Tensor) -> torch.Tensor:
            # Exactly TFLite's x >= 0 ? x : alpha * x (one of the two terms is 0). Written
            # as Relu + Clip + Mul + Add rather than ONNX PRelu: ONNX Runtime keeps these in
            # its blocked (NCHWc) layout, and the palm detector runs 30% faster on 2 CPU
            # threads (5.3 vs 7.6 ms).
            return torch.relu(t) + s.alpha * torch.clamp(t, max=0.0)

        return _Step(prelu, {"alpha": alpha}), (x,)

    def _elementwise(self, k: int, op: TFLiteOperator) -> tuple[nn.Module, tuple[int, ...]]:
        """ADD and CONCATENATION; constant operands become buffers in the held layout."""
        g = self._graph
        out_rank = len(g.tensors[op.outputs[0]].shape)
        consts: dict[str, torch.Tensor] = {}
        operands: list[tuple[str, int]] = []  # ("a", tensor) activation or ("c", slot)
        act_inputs: list[int] = []
        for j in op.inputs:
            if g.tensors[j].constant:
                c = self._const(j)
                if out_rank == 4:
                    c = c.reshape((1,) * (4 - c.dim()) + tuple(c.shape)).permute(0, 3, 1, 2)
                consts[f"c{len(consts)}"] = c.contiguous()
                operands.append(("c", len(consts) - 1))
            else:
                if self._rank(j) != out_rank:
                    raise self._fail(k, op, "broadcasting between activations of other ranks")
                operands.append(("a", len(act_inputs)))
                act_inputs.append(j)
        act = _activation(op.options["activation"])
        plan = tuple(operands)

        def gather(s: nn.Module, xs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
            return [xs[i] if kind == "a" else getattr(s, f"c{i}") for kind, i in plan]

        if op.op == "ADD":
            if len(plan) != 2:
                raise self._fail(k, op, "expected 2 operands")

            def add(s: nn.Module, *xs: torch.Tensor) -> torch.Tensor:
                a, b = gather(s, xs)
                return act(a + b)

            return _Step(add, consts), tuple(act_inputs)
        axis = int(op.options["axis"])
        axis = axis + out_rank if axis < 0 else axis
        if out_rank == 4:
            axis = _NHWC_TO_NCHW_AXIS[axis]

        def concat(s: nn.Module, *xs: torch.Tensor) -> torch.Tensor:
            return act(torch.cat(gather(s, xs), dim=axis))

        return _Step(concat, consts), tuple(act_inputs)

    def _reshape(self, k: int, op: TFLiteOperator) -> tuple[nn.Module, tuple[int, ...]]:
        g = self._graph
        x = op.inputs[0]
        in_shape = g.tensors[x].shape
        out_shape = g.tensors[op.outputs[0]].shape
        batch = in_shape[0] if in_shape else 1
        if (
            not in_shape
            or not out_shape
            or out_shape[0] != batch
            or math.prod(in_shape[1:]) != math.prod(out_shape[1:])
        ):
            raise self._fail(
                k, op, f"expected a reshape that keeps the batch; got {in_shape} -> {out_shape}"
            )
        target = (-1, *(int(d) for d in out_shape[1:]))
        in4, out4 = len(in_shape) == 4, len(out_shape) == 4

        def reshape(s: nn.Module, t: torch.Tensor) -> torch.Tensor:
            if in4:
                t = t.permute(0, 2, 3, 1)  # back to NHWC: TFLite reshapes in NHWC order
            t = t.reshape(target)
            return t.permute(0, 3, 1, 2) if out4 else t

        return _Step(reshape, {}), (x,)

    def _mean(self, k: int, op: TFLiteOperator) -> tuple[nn.Module, tuple[int, ...]]:
        x = op.inputs[0]
        rank = self._rank(x)
        axes = sorted({a + rank if a < 0 else a for a in op.options["axes"]})
        keep = bool(op.options["keep_dims"])
        if 0 in axes:
            raise self._fail(k, op, "a mean over the batch dimension is not supported")
        if rank == 4 and (keep or axes == [1, 2] or axes == [1, 2, 3]):
            dims = tuple(_NHWC_TO_NCHW_AXIS[a] for a in axes)  # same result in NCHW

            def mean(s: nn.Module, t: torch.Tensor) -> torch.Tensor:
                return t.mean(dim=dims, keepdim=keep)

        else:
            dims = tuple(axes)
            to_nhwc = rank == 4

            def mean(s: nn.Module, t: torch.Tensor) -> torch.Tensor:
                if to_nhwc:
                    t = t.permute(0, 2, 3, 1)
                return t.mean(dim=dims, keepdim=keep)

        return _Step(mean, {}), (x,)

    def _fully_connected(self, k: int, op: TFLiteOperator) -> tuple[nn.Module, tuple[int, ...]]:
        x, w, b = op.inputs
        if not self._graph.tensors[w].constant:
            raise self._fail(k, op, "expected constant weights")
        weight = self._const(w)
        consts = {"weight": weight}
        if b >= 0:
            consts["bias"] = self._const(b)
        rank = self._rank(x)
        keep = bool(op.options["keep_num_dims"])
        act = _activation(op.options["activation"])
        units, depth = int(weight.shape[0]), int(weight.shape[1])

        def fully_connected(s: nn.Module, t: torch.Tensor) -> torch.Tensor:
            if rank == 4:
                t = t.permute(0, 2, 3, 1)  # TFLite flattens NHWC
            lead = t.shape[:-1]
            y = nnf.linear(t.reshape(-1, depth), s.weight, getattr(s, "bias", None))
            if keep:
                y = y.reshape(*lead, units)
            return act(y)

        return _Step(fully_connected, consts), (x,)

    # --- running --------------------------------------------------------------------------

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the graph.

        Args:
            image: ``(B, C, H, W)`` float32, the graph's input in NCHW (for the MediaPipe
                networks: RGB in [0, 1], H = W = :attr:`input_size`).

        Returns:
            Output name -> tensor, in :attr:`output_names` order, raw as TFLite computes
            them (rank-4 outputs would be NCHW; the MediaPipe networks have none). The ONNX
            export keeps the order and the names.
        """
        env: dict[int, torch.Tensor] = {self._input: image}
        for step, (inputs, out) in zip(self.steps, self._wiring):
            env[out] = step(*(env[j] for j in inputs))
        return {name: env[j] for name, j in zip(self.output_names, self._outputs)}


# --- trainable weights ------------------------------------------------------------------


def weight_layers(net: TFLiteGraphNet) -> list[tuple[int, str, nn.Module]]:
    """The layers with weights, in execution order: ``(operator index, op name, module)``.

    Convolutions (:class:`_Conv`, weights already ``nn.Parameter``) and fully connected
    layers (weights held as buffers until :func:`make_trainable` turns them into parameters).
    """
    out = []
    for k, (step, op) in enumerate(zip(net.steps, net._graph.operators)):
        if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            out.append((k, op.op, step))
    return out


def make_trainable(module: nn.Module) -> list[nn.Parameter]:
    """Turn a weight layer's weight and bias into trainable parameters; return them.

    Args:
        module: one module of :func:`weight_layers`.
    """
    params = []
    for name in ("weight", "bias"):
        value = getattr(module, name, None)
        if value is None:
            continue
        if not isinstance(value, nn.Parameter):
            del module._buffers[name]
            value = nn.Parameter(value.detach().clone())
            module.register_parameter(name, value)
        value.requires_grad_(True)
        params.append(value)
    return params


def graph_with_weights(net: TFLiteGraphNet) -> TFLiteGraph:
    """The net's graph with its current (e.g. fine-tuned) weights as TFLite constants.

    Every weight layer's weight and bias go back to the TFLite layout (the inverse of the
    conversion in :class:`TFLiteGraphNet`) as float32; other constants are kept as stored.
    :func:`save_tflite_graph_npz` of the result and :func:`load_tflite_graph_net` give a
    module that computes what ``net`` computes.
    """
    graph = net._graph
    constants = dict(graph.constants)
    for k, name, module in weight_layers(net):
        ins = graph.operators[k].inputs
        weight = module.weight.detach().to(torch.float32).cpu()
        if name == "CONV_2D":
            w = weight.permute(0, 2, 3, 1)  # (O, I, KH, KW) -> (O, KH, KW, I)
        elif name == "DEPTHWISE_CONV_2D":
            w = weight[:, 0].permute(1, 2, 0)[None]  # (C * M, 1, KH, KW) -> (1, KH, KW, C * M)
        else:
            w = weight
        constants[ins[1]] = np.ascontiguousarray(w.numpy())
        bias = getattr(module, "bias", None)
        if bias is not None and len(ins) > 2 and ins[2] >= 0:
            constants[ins[2]] = np.ascontiguousarray(bias.detach().to(torch.float32).numpy())
    return TFLiteGraph(graph.tensors, graph.operators, graph.inputs, graph.outputs, constants)


# --- the .npz format -----------------------------------------------------------------------


def save_tflite_graph_npz(
    graph: TFLiteGraph,
    path: str | os.PathLike[str],
    output_names: Sequence[str],
    info: dict[str, Any] | None = None,
) -> Path:
    """Write ``graph`` as an ``.npz`` that :func:`load_tflite_graph_net` reads (atomically).

    The archive holds ``graph_json`` (a 0-d unicode array: the JSON of
    :func:`~stereo_hand_mesh.model.tflite_reader.graph_to_json_dict` plus ``format``,
    ``output_names`` and ``info``) and one array ``t<index>`` per constant tensor, in its
    stored dtype (float16 weights stay float16). Nothing needs pickle to load.

    Args:
        graph: the graph to store.
        path: the ``.npz`` to write.
        output_names: stable names of the graph outputs, in the file's order.
        info: free JSON-ready data stored beside the graph (kind, source, ...).

    Returns:
        The written path.
    """
    path = Path(path)
    doc = {
        "format": NPZ_FORMAT,
        "graph": graph_to_json_dict(graph),
        "output_names": list(output_names),
        "info": info or {},
    }
    arrays: dict[str, np.ndarray] = {"graph_json": np.array(json.dumps(doc, sort_keys=True))}
    for j, arr in sorted(graph.constants.items()):
        arrays[f"t{j}"] = np.ascontiguousarray(arr)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        # Fixed member timestamps would need zipfile by hand; np.savez_compressed is enough
        # because --check compares contents, not bytes.
        np.savez_compressed(tmp, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def read_tflite_graph_npz(
    path: str | os.PathLike[str],
) -> tuple[TFLiteGraph, tuple[str, ...], dict[str, Any]]:
    """Read an ``.npz`` written by :func:`save_tflite_graph_npz`.

    Returns:
        ``(graph, output_names, info)``.

    Raises:
        ModelFileError: the file is missing, not a zip/npz, truncated, needs pickle, or lacks
            part of the description (the message names the path).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"TFLite graph .npz expected at {path}; it does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "graph_json" not in npz.files:
                raise ModelFileError(
                    f"TFLite graph .npz {path} expected a 'graph_json' entry; got entries "
                    f"{sorted(npz.files)[:8]}"
                )
            doc = json.loads(str(npz["graph_json"][()]))
            if doc.get("format") != NPZ_FORMAT:
                raise ModelFileError(
                    f"TFLite graph .npz {path} expected format {NPZ_FORMAT!r}; got "
                    f"{doc.get('format')!r}"
                )
            constants = {
                int(t["index"]): npz[f"t{int(t['index'])}"]
                for t in doc["graph"]["tensors"]
                if t["constant"]
            }
            graph = graph_from_json_dict(doc["graph"], constants)
            names = tuple(str(n) for n in doc["output_names"])
            info = dict(doc.get("info", {}))
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, TypeError) as err:
        raise ModelFileError(
            f"TFLite graph .npz {path} expected a complete archive written by "
            f"save_tflite_graph_npz; got {type(err).__name__}: {err} (truncated or corrupt?)"
        ) from None
    for j, arr in graph.constants.items():
        want = graph.tensors[j].shape
        if tuple(arr.shape) != want or arr.dtype.kind not in "fi":
            raise ModelFileError(
                f"TFLite graph .npz {path}: constant t{j} expected shape {want} (float or int); "
                f"got {tuple(arr.shape)} {arr.dtype}"
            )
    return graph, names, info


def load_tflite_graph_net(path: str | os.PathLike[str]) -> TFLiteGraphNet:
    """Build the :class:`TFLiteGraphNet` stored in ``path`` (eval mode, float32, CPU).

    The module's ``info`` attribute holds the ``info`` block stored with the graph (kind,
    variant, input size, source of the weights).

    Raises:
        ModelFileError: missing, corrupt or truncated file, or a graph the executor cannot
            run (the message names the path).
    """
    graph, names, info = read_tflite_graph_npz(path)
    try:
        net = TFLiteGraphNet(graph, names)
    except ModelFileError as err:
        raise ModelFileError(f"TFLite graph .npz {path}: {err}") from None
    net.info = info
    return net.eval()


def export_tflite_graph_onnx(
    net: TFLiteGraphNet,
    path: str | os.PathLike[str],
    metadata: dict[str, str],
    opset: int = 17,
    input_name: str = "image",
) -> Path:
    """Export ``net`` to ONNX (TorchScript exporter, dynamic batch), atomically.

    The input is named ``input_name`` with shape ``(B, C, H, W)``; the outputs carry
    :attr:`TFLiteGraphNet.output_names`. Float32 initializers that float16 holds exactly
    (all weights of a float16 TFLite model) are stored as float16 behind a Cast to float32:
    the file is half the size and computes the same (ONNX Runtime folds the casts at load).

    Args:
        net: the module to export.
        path: the ``.onnx`` to write.
        metadata: ``metadata_props`` entries (key -> string value).
        opset: ONNX opset (>= 17).
        input_name: name of the graph input.

    Returns:
        The written path.

    Raises:
        ModelFileError: the export or the ONNX checker failed.
    """
    import onnx

    if opset < 17:
        raise ModelFileError(f"ONNX opset expected >= 17; got {opset}")
    _, h, w, c = net.input_shape_nhwc
    example = torch.zeros(2, c, h, w)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    axes = {input_name: {0: "batch"}} | {name: {0: "batch"} for name in net.output_names}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # F.pad exports its pad list through a reversing Slice the exporter cannot fold;
            # ONNX Runtime folds it at load. The warning says nothing actionable.
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
            torch.onnx.export(
                net.eval(),
                (example,),
                tmp,
                input_names=[input_name],
                output_names=list(net.output_names),
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
        proto = onnx.load(tmp)
        _store_exact_float16(proto)
        for value, shape in zip(proto.graph.output, net.output_shapes):
            dims = value.type.tensor_type.shape.dim
            if len(dims) == len(shape) + 1:  # the exporter leaves reshaped sizes symbolic
                for dim, size in zip(list(dims)[1:], shape):
                    dim.dim_value = int(size)
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.producer_name = "stereo_hand_mesh"
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except Exception as err:
        raise ModelFileError(f"ONNX export to {path} failed: {err}") from err
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _store_exact_float16(proto: Any) -> None:
    """Store each float32 initializer that float16 represents exactly as float16 + Cast."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    casts = []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        full = numpy_helper.to_array(init)
        half = full.astype(np.float16)
        if full.size < 16 or not np.array_equal(half.astype(np.float32), full):
            continue
        stored = numpy_helper.from_array(half, init.name + "__fp16")
        graph.initializer.remove(init)
        graph.initializer.append(stored)
        casts.append(helper.make_node("Cast", [stored.name], [init.name], to=TensorProto.FLOAT))
    for node in reversed(casts):
        graph.node.insert(0, node)
