"""Declared node parameters: one table per node, with descriptions, ranges and choices.

Each node declares its :class:`ParamSpec` table with :func:`declare_parameters` (descriptors
with ranges, so ``ros2 param describe`` shows them); ``hand_mesh_node``'s table, whose
pipeline settings take their defaults from the settings dataclasses, is in
:mod:`stereo_hand_mesh.ros.hand_mesh_parameters`. The YAML configs under ``config/`` hold
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
    "SYNC_PARAMETERS",
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
SYNC_PARAMETERS = (
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

#: Parameters of ``adaptation_node``.
ADAPTATION_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("bag_dir", "~/.ros/stereo_hand_mesh/bags", "where recordings are written"),
    ParamSpec("split_seconds", 5.0, "length of one bag split, seconds", 0.5, 3600.0),
    ParamSpec(
        "min_free_mb", 200, "stop recording when free disk space falls below this, MB", 0, 10**7
    ),
    *SYNC_PARAMETERS,
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
        "model adaptation starts from: a keypoint network (.onnx with its .npz beside it) or a "
        "legacy mesh checkpoint (.pt); empty = the shipped keypoint network",
        applies="adapt",
    ),
    ParamSpec("epochs", 6, "adaptation epochs", 1, 10000, applies="adapt"),
    ParamSpec(
        "device",
        "cpu",
        "adaptation device (cpu; cuda, cuda:N for a legacy .pt only)",
        applies="adapt",
    ),
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
    from stereo_hand_mesh.ros.hand_mesh_parameters import HAND_MESH_PARAMETERS
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
