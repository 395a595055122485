"""Declared node parameters: one table per node, with descriptions, ranges and choices.

Each node declares its :class:`ParamSpec` table with :func:`declare_parameters` (descriptors
with ranges, so ``ros2 param describe`` shows them). The YAML configs under ``config/`` hold
every key of these tables, and a test checks both ways. :func:`validate_value` enforces
ranges and choices for values given at start-up (rclpy enforces ranges only on later
``set_parameters``) and on changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stereo_hand_mesh.errors import ConfigError

__all__ = [
    "ADAPTATION_PARAMETERS",
    "HAND_MESH_PARAMETERS",
    "ParamSpec",
    "config_yaml_text",
    "declare_parameters",
    "node_parameter_tables",
    "parameters_markdown",
    "validate_value",
]


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter.

    Attributes:
        name: parameter name.
        default: default value; its Python type fixes the parameter type.
        description: one line for ``ros2 param describe`` and the README.
        low: smallest value (numbers), or None.
        high: largest value (numbers), or None.
        choices: allowed values (strings), or None.
        applies: when a change takes effect: ``"live"`` (from the next pair on),
            ``"reload"`` (at the next ``~/reload_model``), ``"adapt"`` (at the next ``~/adapt``)
            or ``"startup"`` (restart the node).
    """

    name: str
    default: bool | int | float | str
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    applies: str = "startup"

    @property
    def live(self) -> bool:
        """True when a change takes effect from the next pair on."""
        return self.applies == "live"


_WHEN = {
    "live": "changes apply from the next pair",
    "reload": "changes apply at ~/reload_model",
    "adapt": "changes apply at the next ~/adapt",
    "startup": "read-only after start-up",
}


def validate_value(spec: ParamSpec, value: Any) -> Any:
    """Return ``value`` converted to the spec's type, or raise ConfigError naming the
    parameter, what was expected and what came."""
    kind = type(spec.default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise ConfigError(
            f"parameter {spec.name} expected a {kind.__name__}; got {value!r} "
            f"({type(value).__name__})"
        )
    if kind in (int, float):
        if kind is float and not math.isfinite(value):
            raise ConfigError(f"parameter {spec.name} expected a finite number; got {value}")
        if (spec.low is not None and value < spec.low) or (
            spec.high is not None and value > spec.high
        ):
            raise ConfigError(
                f"parameter {spec.name} expected a value in [{spec.low}, {spec.high}]; got {value}"
            )
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"parameter {spec.name} expected one of {spec.choices}; got {value!r}")
    return value


def _descriptor(spec: ParamSpec) -> Any:
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    desc = ParameterDescriptor(
        name=spec.name,
        description=spec.description,
        read_only=spec.applies == "startup",  # refused by set_parameters rather than ignored
    )
    notes = []
    if spec.choices is not None:
        notes.append("one of: " + ", ".join(spec.choices))
    notes.append(_WHEN[spec.applies])
    desc.additional_constraints = "; ".join(notes)
    if isinstance(spec.default, float) and spec.low is not None and spec.high is not None:
        desc.floating_point_range = [
            FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high), step=0.0)
        ]
    elif (
        isinstance(spec.default, int)
        and not isinstance(spec.default, bool)
        and spec.low is not None
        and spec.high is not None
    ):
        desc.integer_range = [
            IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)
        ]
    return desc


def declare_parameters(node: Any, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Declare every parameter of ``specs`` on ``node`` and return the validated values.

    Raises:
        ConfigError: a value given at start-up (command line or YAML) is of the wrong type,
            outside its range or not one of its choices.
    """
    values: dict[str, Any] = {}
    for spec in specs:
        try:
            param = node.declare_parameter(spec.name, spec.default, _descriptor(spec))
        except Exception as err:  # rclpy raises InvalidParameterTypeException and others
            raise ConfigError(f"parameter {spec.name}: {err}") from None
        values[spec.name] = validate_value(spec, param.value)
    return values


#: Pairing of the four stereo inputs (both nodes that subscribe them).
_SYNC = (
    ParamSpec("queue_size", 10, "messages kept per input while pairing", 1, 1000),
    ParamSpec("approximate_sync", True, "pair by nearest stamps (else exact stamps)"),
    ParamSpec(
        "approximate_sync_tolerance_seconds",
        0.01,
        "largest stamp spread of a synchronized set, seconds",
        0.0,
        10.0,
    ),
)

_LOCATOR = (
    ParamSpec("locator_margin", 1.3, "crop side over the hand's extent", 1.0, 3.0),
    ParamSpec(
        "locator_min_area_px", 400, "smallest skin region considered a hand, pixels", 1, 100000
    ),
    ParamSpec("locator_max_candidates", 4, "skin regions tried, largest first", 1, 32),
    ParamSpec(
        "locator_max_disparity_px",
        500.0,
        "largest disparity searched, pixels (nearest hand distance)",
        8.0,
        4000.0,
    ),
    ParamSpec(
        "locator_min_match_score",
        0.3,
        "smallest left-right normalized cross-correlation accepted",
        -1.0,
        1.0,
    ),
    ParamSpec(
        "locator_min_tracking_score",
        0.5,
        "smallest match score that keeps tracking (below it: a cold start)",
        -1.0,
        1.0,
    ),
    ParamSpec(
        "locator_stereo_candidates",
        True,
        "where skin colour fires on the background, also rank candidates by coarse disparity",
    ),
)

#: Parameters of ``hand_mesh_node``.
HAND_MESH_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "model_file_path",
        "",
        "hand landmark network (.onnx; .npz for torch), or a legacy mesh model (.onnx/.pt from "
        "pretrain/adapt); empty = the shipped real-trained networks",
        applies="reload",
    ),
    ParamSpec(
        "palm_model_file_path",
        "",
        "palm detector (.onnx; .npz for torch); empty = the shipped one of keypoint_variant",
        applies="reload",
    ),
    ParamSpec(
        "keypoint_variant",
        "auto",
        "shipped networks: lite (CPU), full (GPU) or auto (full when a GPU runs them)",
        choices=("auto", "lite", "full"),
        applies="reload",
    ),
    ParamSpec(
        "engine_file_path",
        "",
        "TensorRT engine file (.plan/.engine) inside engine_cache_dir; empty = <model stem>.plan",
        applies="reload",
    ),
    ParamSpec(
        "engine_cache_dir",
        "~/.ros/stereo_hand_mesh/engines",
        "the only directory the node writes TensorRT engines to",
    ),
    ParamSpec(
        "force_engine_update",
        False,
        "rebuild the TensorRT engine even if cached",
        applies="reload",
    ),
    ParamSpec("enable_fp16", False, "FP16 for TensorRT and for torch on CUDA", applies="reload"),
    ParamSpec(
        "backend",
        "auto",
        "inference backend (auto: tensorrt, onnxruntime+CUDA, torch+CUDA, onnxruntime CPU)",
        choices=("auto", "tensorrt", "onnxruntime", "torch"),
        applies="reload",
    ),
    ParamSpec(
        "intra_op_threads",
        0,
        "ONNX Runtime CPU threads (0 = its default)",
        0,
        256,
        applies="reload",
    ),
    *_SYNC,
    ParamSpec(
        "rectify",
        False,
        "inputs are raw (left/image_raw, right/image_raw): rectify with camera_info D, R, P",
    ),
    ParamSpec(
        "frame_prefix",
        "hand_",
        "TF child frame prefix: <frame_prefix><joint_name> (no leading slash, no spaces)",
        applies="live",
    ),
    ParamSpec(
        "handedness",
        "right",
        "hand to fit: right or left",
        choices=("right", "left"),
        applies="live",
    ),
    ParamSpec(
        "min_presence",
        0.5,
        "below this hand presence (keypoint network) in either view, no mesh",
        0.0,
        1.0,
        applies="live",
    ),
    ParamSpec(
        "palm_min_score",
        0.5,
        "palm detector score threshold at a cold start",
        0.01,
        0.99,
        applies="live",
    ),
    ParamSpec(
        "stereo_row_tolerance",
        0.5,
        "a right-view palm pairs with the left one within this many palm heights of rows",
        0.01,
        10.0,
        applies="live",
    ),
    ParamSpec(
        "refine_cold_start",
        True,
        "at a cold start, re-crop from the first keypoints and run the network again",
        applies="live",
    ),
    ParamSpec(
        "published_joints",
        "blended",
        "joints published: blended (fitted where the template explains the keypoints, else "
        "triangulated), fitted (the template hand's) or triangulated (keypoints, raw)",
        choices=("blended", "fitted", "triangulated"),
        applies="live",
    ),
    ParamSpec(
        "blend_residual_px",
        8.0,
        "blended: a fitted joint is published when its reprojection residual is below this, px",
        0.1,
        1000.0,
        applies="live",
    ),
    ParamSpec(
        "min_confidence",
        0.3,
        "below this left-right confidence no mesh is published",
        0.0,
        1.0,
        applies="live",
    ),
    ParamSpec(
        "min_hand_extent_m",
        0.03,
        "no mesh when its bounding box's second side is shorter (a collapsed mesh), metres",
        0.0,
        1.0,
        applies="live",
    ),
    ParamSpec(
        "max_hand_extent_m",
        0.4,
        "no mesh when its bounding box's largest side is longer (no hand is), metres",
        0.01,
        10.0,
        applies="live",
    ),
    ParamSpec(
        "confidence_sigma_crop",
        0.04,
        "scale of row disagreement and fit residual in the confidence, fraction of crop side",
        0.001,
        1.0,
        applies="live",
    ),
    ParamSpec(
        "confidence_sigma_m",
        0.02,
        "legacy mesh-uv models: left-right 3D distance scale of the confidence, m",
        1e-4,
        1.0,
        applies="live",
    ),
    ParamSpec(
        "confidence_sigma_px",
        4.0,
        "legacy mesh-uv models: vertical disparity scale of the confidence, px",
        0.01,
        100.0,
        applies="live",
    ),
    ParamSpec(
        "publish_overlay", False, "publish hand/overlay (left image with skeleton)", applies="live"
    ),
    ParamSpec(
        "markers_max_rate_hz",
        10.0,
        "largest rate of the mesh marker (0 = every pair); joints and skeleton every pair",
        0.0,
        1000.0,
        applies="live",
    ),
    ParamSpec("smoothing", True, "One Euro filter on the vertices", applies="live"),
    ParamSpec(
        "filter_min_cutoff_hz", 1.0, "One Euro minimum cutoff, Hz", 0.01, 100.0, applies="live"
    ),
    ParamSpec(
        "filter_beta", 20.0, "One Euro speed coefficient, 1/m", 0.0, 10000.0, applies="live"
    ),
    ParamSpec("tracking", True, "crop the next pair from this pair's keypoints", applies="live"),
    *(
        ParamSpec(s.name, s.default, s.description, s.low, s.high, applies="live")
        for s in _LOCATOR
    ),
    ParamSpec(
        "roi_timeout_s",
        0.5,
        "an ROI on hand/roi older than this is ignored, seconds",
        0.0,
        60.0,
        applies="live",
    ),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics, seconds", 0.05, 60.0),
)

#: Parameters of ``adaptation_node``.
ADAPTATION_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("bag_dir", "~/.ros/stereo_hand_mesh/bags", "where recordings are written"),
    ParamSpec("split_seconds", 5.0, "length of one bag split, seconds", 0.5, 3600.0),
    ParamSpec(
        "min_free_mb", 200, "stop recording when free disk space falls below this, MB", 0, 10**7
    ),
    *_SYNC,
    ParamSpec(
        "min_change",
        2.0,
        "skip pairs whose left thumbnail differs from the last kept one by less (0-255)",
        0.0,
        255.0,
    ),
    ParamSpec("min_interval_s", 0.2, "smallest time between two kept pairs, seconds", 0.0, 60.0),
    ParamSpec("model_dir", "~/.ros/stereo_hand_mesh/models", "where adapted models are written"),
    ParamSpec(
        "init_model",
        "",
        "checkpoint adaptation starts from; empty = the shipped default",
        applies="adapt",
    ),
    ParamSpec("epochs", 15, "adaptation epochs", 1, 10000, applies="adapt"),
    ParamSpec("device", "cpu", "adaptation device (cpu, cuda, cuda:N)", applies="adapt"),
    ParamSpec(
        "adapt_threads",
        0,
        "torch CPU threads of the adapt run (0 = default)",
        0,
        256,
        applies="adapt",
    ),
    ParamSpec(
        "adapt_limit",
        0,
        "use at most this many recorded pairs (0 = all)",
        0,
        10**7,
        applies="adapt",
    ),
    ParamSpec(
        "validation_fraction",
        0.2,
        "share of the recorded splits (the newest) held out for validation",
        0.05,
        0.9,
        applies="adapt",
    ),
    ParamSpec(
        "hand_mesh_node",
        "/hand_mesh_node",
        "node whose model is replaced after adaptation",
        applies="adapt",
    ),
)


def _number(value: float) -> str:
    """A range bound as written in the configs and the README (integers in full)."""
    return str(int(value)) if float(value).is_integer() and abs(value) >= 1e5 else f"{value:g}"


def _yaml_scalar(value: bool | int | float | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_yaml_text(node_name: str, specs: Sequence[ParamSpec]) -> str:
    """A ROS 2 parameters file (``--params-file``) with every parameter of ``specs`` at its
    default, each preceded by a comment."""
    lines = [
        f"# Parameters of {node_name}, every one at its default (generated from the node's",
        "# parameter table by tools/write_configs.py; edit a copy, or the table, not this file).",
        f"{node_name}:",
        "  ros__parameters:",
    ]
    for spec in specs:
        notes = []
        if spec.low is not None and spec.high is not None:
            notes.append(f"range [{_number(spec.low)}, {_number(spec.high)}]")
        if spec.choices is not None:
            notes.append("one of " + " | ".join(spec.choices))
        notes.append(_WHEN[spec.applies])
        extra = f" ({'; '.join(notes)})" if notes else ""
        lines.append(f"    # {spec.description}{extra}")
        lines.append(f"    {spec.name}: {_yaml_scalar(spec.default)}")
    return "\n".join(lines) + "\n"


def node_parameter_tables() -> dict[str, tuple[str, tuple[ParamSpec, ...]]]:
    """Node name -> (config file name, parameter table) of every node of the package."""
    from stereo_hand_mesh.ros.stereo_camera_sim import STEREO_CAMERA_SIM_PARAMETERS

    return {
        "hand_mesh_node": ("hand_mesh.yaml", HAND_MESH_PARAMETERS),
        "adaptation_node": ("adaptation.yaml", ADAPTATION_PARAMETERS),
        "stereo_camera_sim": ("stereo_camera_sim.yaml", STEREO_CAMERA_SIM_PARAMETERS),
    }


def parameters_markdown() -> str:
    """The README's parameter tables (one per node), from the parameter tables."""
    out = []
    for node, (_, specs) in node_parameter_tables().items():
        out += [
            f"### `{node}`",
            "",
            "| parameter | default | range / choices | applies | what |",
            "|---|---|---|---|---|",
        ]
        for spec in specs:
            if spec.choices:
                allowed = " \\| ".join(spec.choices)
            elif spec.low is not None and spec.high is not None:
                allowed = f"[{_number(spec.low)}, {_number(spec.high)}]"
            else:
                allowed = ""
            default = _yaml_scalar(spec.default)
            out.append(
                f"| `{spec.name}` | `{default}` | {allowed} | {spec.applies} | "
                f"{spec.description} |"
            )
        out.append("")
    return "\n".join(out)
