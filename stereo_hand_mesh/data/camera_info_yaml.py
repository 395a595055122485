"""camera_info YAML files (the ROS camera_calibration_parsers format) and stereo rig helpers.

The format, as written by ``camera_calibration`` and read by ``camera_info_manager``::

    image_width: 640
    image_height: 480
    camera_name: stereo/left
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, t1, t2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [...]}
    projection_matrix: {rows: 3, cols: 4, data: [fx', 0, cx', Tx, 0, fy', cy', 0, 0, 0, 1, 0]}

The file carries no frame_id; readers take it as an argument. For the right camera of a
rectified pair ``Tx = -fx' * B`` with B the baseline in metres.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from stereo_hand_mesh.errors import CameraInfoError, ConfigError
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields

__all__ = [
    "DEFAULT_LEFT_FRAME_ID",
    "DEFAULT_RIGHT_FRAME_ID",
    "STB_BUMBLEBEE2",
    "StereoRigSpec",
    "camera_info_from_yaml_text",
    "camera_info_to_yaml_text",
    "read_camera_info_yaml",
    "rectified_stereo_camera_infos",
    "rig_for_size",
    "write_camera_info_yaml",
]

DEFAULT_LEFT_FRAME_ID = "stereo_left_optical_frame"
DEFAULT_RIGHT_FRAME_ID = "stereo_right_optical_frame"

#: (yaml key, rows, cols or None for "any count") of each matrix in the file.
_MATRICES: tuple[tuple[str, str, int, int | None], ...] = (
    ("camera_matrix", "K", 3, 3),
    ("distortion_coefficients", "D", 1, None),
    ("rectification_matrix", "R", 3, 3),
    ("projection_matrix", "P", 3, 4),
)


def _require(doc: Mapping[str, Any], key: str, source: str) -> Any:
    if key not in doc:
        raise CameraInfoError(
            f"camera_info YAML {source} expected key '{key}'; got keys {sorted(doc)}"
        )
    return doc[key]


def _int_field(doc: Mapping[str, Any], key: str, source: str) -> int:
    value = _require(doc, key, source)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CameraInfoError(
            f"camera_info YAML {source} expected '{key}' to be a positive integer; got {value!r}"
        )
    return value


def _matrix_field(
    doc: Mapping[str, Any], key: str, rows: int, cols: int | None, source: str
) -> np.ndarray:
    node = _require(doc, key, source)
    if not isinstance(node, Mapping) or not all(k in node for k in ("rows", "cols", "data")):
        raise CameraInfoError(
            f"camera_info YAML {source} expected '{key}' to be a mapping with rows, cols and "
            f"data; got {node!r}"
        )
    data = node["data"]
    if not isinstance(data, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in data
    ):
        raise CameraInfoError(
            f"camera_info YAML {source} expected '{key}.data' to be a list of numbers; "
            f"got {data!r}"
        )
    n_rows, n_cols = node["rows"], node["cols"]
    want_cols = len(data) if cols is None else cols
    if n_rows != rows or n_cols != want_cols or len(data) != rows * want_cols:
        raise CameraInfoError(
            f"camera_info YAML {source} expected '{key}' of {rows}x{want_cols} = "
            f"{rows * want_cols} values; got rows={n_rows}, cols={n_cols} and "
            f"{len(data)} values"
        )
    return np.asarray(data, dtype=np.float64)


def camera_info_from_yaml_text(
    text: str, source: str = "<string>", frame_id: str = ""
) -> CameraInfoFields:
    """Parse camera_calibration_parsers YAML text.

    Args:
        text: the YAML document.
        source: name used in error messages (usually the file path).
        frame_id: frame_id to give the result (the format has none).

    Returns:
        The camera_info fields. ``distortion_model`` defaults to ``"plumb_bob"`` and
        ``camera_name`` to ``""`` when absent, as in camera_calibration_parsers.

    Raises:
        CameraInfoError: the text is not YAML, a key is missing, or a matrix has the wrong
            number of values.
    """
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise CameraInfoError(f"camera_info YAML {source} could not be parsed: {err}") from None
    if not isinstance(doc, Mapping):
        raise CameraInfoError(
            f"camera_info YAML {source} expected a mapping at the top level; "
            f"got {type(doc).__name__}"
        )
    width = _int_field(doc, "image_width", source)
    height = _int_field(doc, "image_height", source)
    mats = {
        field: _matrix_field(doc, key, rows, cols, source) for key, field, rows, cols in _MATRICES
    }
    model = doc.get("distortion_model", "plumb_bob")
    name = doc.get("camera_name", "")
    try:
        return CameraInfoFields(
            width=width,
            height=height,
            K=mats["K"],
            D=mats["D"],
            R=mats["R"],
            P=mats["P"],
            distortion_model=str(model),
            camera_name="" if name is None else str(name),
            frame_id=frame_id,
        )
    except CameraInfoError as err:  # pragma: no cover - sizes are checked above
        raise CameraInfoError(f"camera_info YAML {source}: {err}") from None


def read_camera_info_yaml(path: str | os.PathLike[str], frame_id: str = "") -> CameraInfoFields:
    """Read a camera_info YAML file (camera_calibration_parsers format).

    Args:
        path: the ``.yaml`` file.
        frame_id: frame_id to give the result (the file has none).

    Returns:
        The camera_info fields.

    Raises:
        CameraInfoError: the file is missing or unreadable, a key is missing or a matrix has
            the wrong number of values; the message names the file and the key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CameraInfoError(f"expected a camera_info YAML file; got no file at {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CameraInfoError(f"could not read camera_info YAML {path}: {err}") from None
    return camera_info_from_yaml_text(text, source=str(path), frame_id=frame_id)


def _number(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return repr(value)


def _matrix_yaml(key: str, values: np.ndarray, rows: int, cols: int) -> str:
    data = ", ".join(_number(v) for v in np.asarray(values, dtype=np.float64).reshape(-1))
    return f"{key}:\n  rows: {rows}\n  cols: {cols}\n  data: [{data}]\n"


def _string(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_/.\-]*", value) else json.dumps(value)


def camera_info_to_yaml_text(info: CameraInfoFields) -> str:
    """Format camera_info fields as camera_calibration_parsers YAML (frame_id is not stored).

    Floats are written with Python's shortest round-trip representation, so reading the text
    back gives bit-identical matrices.
    """
    return (
        f"image_width: {info.width}\n"
        f"image_height: {info.height}\n"
        f"camera_name: {_string(info.camera_name)}\n"
        + _matrix_yaml("camera_matrix", info.K, 3, 3)
        + f"distortion_model: {_string(info.distortion_model)}\n"
        + _matrix_yaml("distortion_coefficients", info.D, 1, info.D.size)
        + _matrix_yaml("rectification_matrix", info.R, 3, 3)
        + _matrix_yaml("projection_matrix", info.P, 3, 4)
    )


def write_camera_info_yaml(path: str | os.PathLike[str], info: CameraInfoFields) -> None:
    """Write camera_info fields to a YAML file in the camera_calibration_parsers format.

    Raises:
        CameraInfoError: the file could not be written.
    """
    try:
        Path(path).write_text(camera_info_to_yaml_text(info), encoding="utf-8")
    except OSError as err:
        raise CameraInfoError(f"could not write camera_info YAML {path}: {err.strerror}") from None


def rectified_stereo_camera_infos(
    width: int,
    height: int,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    baseline_m: float,
    *,
    left_frame_id: str = DEFAULT_LEFT_FRAME_ID,
    right_frame_id: str = DEFAULT_RIGHT_FRAME_ID,
    camera_name: str = "stereo",
) -> tuple[CameraInfoFields, CameraInfoFields]:
    """camera_info of an ideal rectified stereo pair (no distortion, identity rectification).

    The right camera sits ``baseline_m`` to the +x side of the left one, so its projection
    matrix carries ``P[0, 3] = Tx = -fx * baseline_m`` and a point at depth z has disparity
    ``u_left - u_right = fx * baseline_m / z``.

    Args:
        width: image width in pixels.
        height: image height in pixels.
        fx: focal length along x, pixels.
        fy: focal length along y, pixels.
        cx: principal point x, pixels.
        cy: principal point y, pixels.
        baseline_m: distance between the optical centres, metres (> 0).
        left_frame_id: frame_id of the left camera_info.
        right_frame_id: frame_id of the right camera_info.
        camera_name: prefix of the camera names (``<name>/left``, ``<name>/right``).

    Returns:
        (left, right) camera_info fields.

    Raises:
        CameraInfoError: a size, focal length or the baseline is not positive.
    """
    if width <= 0 or height <= 0 or fx <= 0 or fy <= 0:
        raise CameraInfoError(
            f"stereo camera_info expected positive width, height, fx and fy; got "
            f"{width}x{height}, fx={fx}, fy={fy}"
        )
    if not baseline_m > 0:
        raise CameraInfoError(f"stereo camera_info expected baseline_m > 0; got {baseline_m}")
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    P_left = np.hstack([K, np.zeros((3, 1))])
    P_right = P_left.copy()
    P_right[0, 3] = -fx * baseline_m
    common = {"width": width, "height": height, "K": K, "D": np.zeros(5), "R": np.eye(3)}
    left = CameraInfoFields(
        P=P_left, camera_name=f"{camera_name}/left", frame_id=left_frame_id, **common
    )
    right = CameraInfoFields(
        P=P_right, camera_name=f"{camera_name}/right", frame_id=right_frame_id, **common
    )
    return left, right


@dataclass(frozen=True)
class StereoRigSpec:
    """An ideal rectified stereo rig.

    Attributes:
        width: image width in pixels.
        height: image height in pixels.
        fx: focal length along x, pixels.
        fy: focal length along y, pixels.
        cx: principal point x, pixels.
        cy: principal point y, pixels.
        baseline_m: baseline in metres; the right camera is to the +x side of the left.
        name: camera name prefix.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    baseline_m: float
    name: str = "stereo"

    def camera_infos(
        self,
        left_frame_id: str = DEFAULT_LEFT_FRAME_ID,
        right_frame_id: str = DEFAULT_RIGHT_FRAME_ID,
    ) -> tuple[CameraInfoFields, CameraInfoFields]:
        """(left, right) camera_info of this rig; see :func:`rectified_stereo_camera_infos`."""
        return rectified_stereo_camera_infos(
            self.width,
            self.height,
            self.fx,
            self.fy,
            self.cx,
            self.cy,
            self.baseline_m,
            left_frame_id=left_frame_id,
            right_frame_id=right_frame_id,
            camera_name=self.name,
        )


#: The Point Grey Bumblebee2 rig of the STB dataset (rectified, 640x480, baseline 120.054 mm).
STB_BUMBLEBEE2 = StereoRigSpec(
    width=640,
    height=480,
    fx=822.79041,
    fy=822.79041,
    cx=318.47345,
    cy=250.31296,
    baseline_m=0.120054,
    name="stb_bumblebee2",
)


def rig_for_size(width: int, height: int, baseline_m: float | None) -> StereoRigSpec:
    """STB's Bumblebee2 rig scaled to ``width`` x ``height`` (same field of view along x)."""
    if width < 64 or height < 48:
        raise ConfigError(f"image size expected at least 64x48; got {width}x{height}")
    s = width / STB_BUMBLEBEE2.width
    return replace(
        STB_BUMBLEBEE2,
        width=width,
        height=height,
        fx=STB_BUMBLEBEE2.fx * s,
        fy=STB_BUMBLEBEE2.fy * s,
        cx=STB_BUMBLEBEE2.cx * s,
        cy=STB_BUMBLEBEE2.cy * height / STB_BUMBLEBEE2.height,
        baseline_m=STB_BUMBLEBEE2.baseline_m if baseline_m is None else baseline_m,
    )
