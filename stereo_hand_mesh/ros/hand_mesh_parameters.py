"""The parameter table of ``hand_mesh_node`` and its mapping onto :class:`PipelineSettings`.

The pipeline settings are declared from the settings dataclasses (one source): a pipeline
parameter's default is the default of the field it sets, read from
:class:`~stereo_hand_mesh.pipeline.estimator.PipelineSettings` (parameter ``<field>``) or
:class:`~stereo_hand_mesh.pipeline.locator.LocatorSettings` (parameter ``locator_<field>``);
the table adds what the dataclass does not say (description, range, choices).
:func:`pipeline_settings_from` maps the parameter values back by the same names. The YAML
config and the README tables are generated from this table (tools/write_configs.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any

from stereo_hand_mesh.pipeline.estimator import HANDEDNESS, PUBLISHED_JOINTS, PipelineSettings
from stereo_hand_mesh.pipeline.locator import LocatorSettings
from stereo_hand_mesh.ros.parameters import SYNC_PARAMETERS, ParamSpec
from stereo_hand_mesh.ros.sync import IMAGE_TRANSPORTS

__all__ = [
    "HAND_MESH_PARAMETERS",
    "LOCATOR_PREFIX",
    "PIPELINE_PARAMETERS",
    "pipeline_settings_from",
]

#: Parameters named ``<LOCATOR_PREFIX><field>`` set ``PipelineSettings.locator.<field>``.
LOCATOR_PREFIX = "locator_"


def _field_default(name: str) -> bool | int | float | str:
    """Default of the settings field that parameter ``name`` sets."""
    cls: type = PipelineSettings
    field_name = name
    if name.startswith(LOCATOR_PREFIX):
        cls, field_name = LocatorSettings, name[len(LOCATOR_PREFIX) :]
    for f in fields(cls):
        if f.name == field_name and f.default is not MISSING:
            if not isinstance(f.default, bool | int | float | str):
                break
            return f.default
    raise ValueError(f"parameter {name} expected to name a scalar field of {cls.__name__}")


def _setting(
    name: str,
    description: str,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> ParamSpec:
    """A live pipeline parameter whose default is its settings field's default."""
    return ParamSpec(name, _field_default(name), description, low, high, choices, "live")


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
    *SYNC_PARAMETERS,
    ParamSpec(
        "rectify",
        False,
        "inputs are raw (left/image_raw, right/image_raw): rectify with camera_info D, R, P",
    ),
    ParamSpec(
        "image_transport",
        "raw",
        "images as sensor_msgs/Image (raw) or as JPEG/PNG sensor_msgs/CompressedImage on "
        "<image topic>/compressed (compressed), decoded in the node",
        choices=IMAGE_TRANSPORTS,
    ),
    ParamSpec(
        "frame_prefix",
        "hand_",
        "TF child frames <frame_prefix><side>_<joint_name>, side right or left (no leading "
        "slash, no spaces)",
        applies="live",
    ),
    _setting(
        "handedness",
        "auto: every hand, each with its side read from both views; right or left: only hands "
        "of that side (outputs hand/<side>/...)",
        choices=HANDEDNESS,
    ),
    _setting("max_hands", "the most hands meshed per pair", 1, 4),
    _setting(
        "new_hand_search_period",
        "while fewer than max_hands are tracked, look for more every this many pairs",
        1,
        1000,
    ),
    _setting(
        "min_presence",
        "below this hand presence (keypoint network) in either view, no mesh",
        0.0,
        1.0,
    ),
    _setting("palm_min_score", "palm detector score threshold at a cold start", 0.01, 0.99),
    _setting(
        "stereo_row_tolerance",
        "a right-view palm pairs with the left one within this many palm heights of rows",
        0.01,
        10.0,
    ),
    _setting(
        "refine_cold_start",
        "at a cold start, re-crop from the first keypoints and run the network again",
    ),
    _setting(
        "published_joints",
        "joints published: blended (fitted where the template explains the keypoints, else "
        "triangulated), fitted (the template hand's) or triangulated (keypoints, raw)",
        choices=PUBLISHED_JOINTS,
    ),
    _setting(
        "blend_residual_px",
        "blended: a fitted joint is published when its reprojection residual is below this, px",
        0.1,
        1000.0,
    ),
    _setting("min_confidence", "below this left-right confidence no mesh is published", 0.0, 1.0),
    _setting(
        "min_hand_extent_m",
        "no mesh when its bounding box's second side is shorter (a collapsed mesh), metres",
        0.0,
        1.0,
    ),
    _setting(
        "max_hand_extent_m",
        "no mesh when its bounding box's largest side is longer (no hand is), metres",
        0.01,
        10.0,
    ),
    _setting(
        "confidence_sigma_crop",
        "scale of row disagreement and fit residual in the confidence, fraction of crop side",
        0.001,
        1.0,
    ),
    _setting(
        "confidence_sigma_m",
        "legacy mesh-uv models: left-right 3D distance scale of the confidence, m",
        1e-4,
        1.0,
    ),
    _setting(
        "confidence_sigma_px",
        "legacy mesh-uv models: vertical disparity scale of the confidence, px",
        0.01,
        100.0,
    ),
    ParamSpec(
        "publish_overlay",
        False,
        "publish hand/overlay (left image with every hand's skeleton)",
        applies="live",
    ),
    ParamSpec(
        "markers_max_rate_hz",
        10.0,
        "largest rate of the mesh marker (0 = every pair); joints and skeleton every pair",
        0.0,
        1000.0,
        applies="live",
    ),
    _setting("smoothing", "One Euro filter on the vertices"),
    _setting("filter_min_cutoff_hz", "One Euro minimum cutoff, Hz", 0.01, 100.0),
    _setting("filter_beta", "One Euro speed coefficient, 1/m", 0.0, 10000.0),
    _setting("tracking", "crop the next pair from this pair's keypoints"),
    _setting("locator_margin", "crop side over the hand's extent", 1.0, 3.0),
    _setting("locator_min_area_px", "smallest skin region considered a hand, pixels", 1, 100000),
    _setting("locator_max_candidates", "skin regions tried, largest first", 1, 32),
    _setting(
        "locator_max_disparity_px",
        "largest disparity searched, pixels (nearest hand distance)",
        8.0,
        4000.0,
    ),
    _setting(
        "locator_min_match_score",
        "smallest left-right normalized cross-correlation accepted",
        -1.0,
        1.0,
    ),
    _setting(
        "locator_min_tracking_score",
        "smallest match score that keeps tracking (below it: a cold start)",
        -1.0,
        1.0,
    ),
    _setting(
        "locator_stereo_candidates",
        "where skin colour fires on the background, also rank candidates by coarse disparity",
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


def _sets_field(name: str) -> bool:
    try:
        _field_default(name)
    except ValueError:
        return False
    return True


#: The parameters of HAND_MESH_PARAMETERS that set a pipeline settings field (by name).
PIPELINE_PARAMETERS: tuple[ParamSpec, ...] = tuple(
    s for s in HAND_MESH_PARAMETERS if _sets_field(s.name)
)


def pipeline_settings_from(values: Mapping[str, Any]) -> PipelineSettings:
    """PipelineSettings from the node's parameter values: each of
    :data:`PIPELINE_PARAMETERS` sets the field of its name (``locator_<field>``: a field of
    ``PipelineSettings.locator``); the fields no parameter sets keep their defaults.

    Raises:
        KeyError: ``values`` lacks a pipeline parameter.
        ConfigError: the settings refuse a value.
    """
    top: dict[str, Any] = {}
    locator: dict[str, Any] = {}
    for spec in PIPELINE_PARAMETERS:
        if spec.name.startswith(LOCATOR_PREFIX):
            locator[spec.name[len(LOCATOR_PREFIX) :]] = values[spec.name]
        else:
            top[spec.name] = values[spec.name]
    return PipelineSettings(**top, locator=LocatorSettings(**locator))
