"""MediaPipe's real-trained hand networks (mediapipe 0.10.21, Apache-2.0) as project models.

The four float16 TFLite networks of the wheel are converted by
``tools/import_mediapipe_hands.py`` into ``models/<name>.npz`` (weights, loaded by
:func:`~stereo_hand_mesh.model.tflite_graph.load_tflite_graph_net`) and
``models/<name>.onnx`` (metadata readable with
:func:`~stereo_hand_mesh.runtime.keypoint_info.read_keypoint_model_info`).

Input (all four): ``image`` ``(B, 3, S, S)`` float32 RGB in [0, 1], NCHW. MediaPipe feeds the
same range: the ``ImageToTensorCalculator`` of its ``HandLandmarkCpu`` and
``PalmDetectionCpu`` graphs (compiled into the wheel's ``_framework_bindings`` library)
sets ``output_tensor_float_range {min: 0 max: 1}``, with a letterboxed, aspect-preserving
crop. Checked: on a real hand crop the palm detector's best logit is 3.1 with [0, 1] input
and 4363 (nonsense) with [-1, 1]. No affine is folded into the modules.

Outputs, exactly as the TFLite networks compute them:

Hand landmark (S = 224, ``hand_landmark_{lite,full}``):
    * ``landmarks`` ``(B, 63)``: 21 joints x (x, y, z) in MediaPipe order (wrist, thumb
      cmc/mcp/ip/tip, index, middle, ring, pinky mcp/pip/dip/tip). x, y are pixels of the
      224 x 224 crop; z is relative depth on roughly the same pixel scale (MediaPipe's graph
      divides it by 224 and by its ``normalize_z`` 0.4).
    * ``presence`` ``(B, 1)``: probability that a hand is in the crop. **Already sigmoid-ed**
      (a ``LOGISTIC`` op ends the head): 0.995 on a real hand crop, 0.007 on a black crop.
      MediaPipe thresholds it at 0.5.
    * ``handedness`` ``(B, 1)``: **already sigmoid-ed** probability of MediaPipe's label 0,
      "Left", which MediaPipe defines for mirrored (selfie) images. On an unmirrored camera
      image it is the probability of a *right* hand (measured: a real right hand 0.97, the
      same crop mirrored 0.004; MediaPipe itself reports "Left" 0.99 on that image).
    * ``world_landmarks`` ``(B, 63)``: 21 x (x, y, z) metres, origin near the hand's centre,
      axes of the crop (MediaPipe rotates them back by the crop rotation).

Palm detection (S = 192, ``palm_detection_{lite,full}``):
    * ``regressors`` ``(B, 2016, 18)``: per anchor, box (cx, cy, w, h) then 7 palm keypoints
      (x, y), in pixels of the 192 input, offsets from the anchor centre (MediaPipe's
      ``TensorsToDetectionsCalculator``: scale 192, x before y).
    * ``scores`` ``(B, 2016, 1)``: **raw logits** (no sigmoid in the network; MediaPipe
      applies sigmoid after clipping to +-100, and keeps scores >= 0.5).
    * Anchors (not in the network): 24 x 24 cells x 2 (stride 8) then 12 x 12 cells x 6
      (stride 16), row-major, centres at (col + 0.5, row + 0.5) * stride, fixed size
      (``SsdAnchorsCalculator``: 4 layers, strides 8, 16, 16, 16, offsets 0.5,
      ``fixed_anchor_size``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stereo_hand_mesh.runtime.keypoint_info import KEYPOINT_METADATA_KEY

__all__ = [
    "MEDIAPIPE_NETS",
    "MEDIAPIPE_VERSION",
    "MEDIAPIPE_WHEEL",
    "MEDIAPIPE_WHEEL_SHA256",
    "MediaPipeNet",
    "convert_mediapipe_net",
    "default_mediapipe_cache_dir",
    "keypoint_metadata",
    "sha256_of_file",
    "tflite_cache_path",
]

MEDIAPIPE_VERSION = "0.10.21"
#: The wheel the weights come from (pinned by name and hash; any other file is refused).
MEDIAPIPE_WHEEL = "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
MEDIAPIPE_WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"

_LANDMARK_OUTPUTS = ("landmarks", "presence", "handedness", "world_landmarks")
_PALM_OUTPUTS = ("regressors", "scores")


@dataclass(frozen=True)
class MediaPipeNet:
    """One imported network.

    Attributes:
        name: file stem in ``models/`` (``hand_landmark_lite``, ...).
        kind: ``"hand_landmark"`` or ``"palm_detection"``.
        variant: ``"lite"`` or ``"full"``.
        tflite_path: path of the ``.tflite`` inside the wheel.
        tflite_sha256: its pinned hash.
        input_size: S, pixels.
        outputs: stable output names, in the TFLite file's output order.
        activations: score output -> what a consumer applies to get a probability
            (``"none"``: already a probability; ``"sigmoid"``: a logit).
    """

    name: str
    kind: str
    variant: str
    tflite_path: str
    tflite_sha256: str
    input_size: int
    outputs: tuple[str, ...]
    activations: dict[str, str]


MEDIAPIPE_NETS: dict[str, MediaPipeNet] = {
    net.name: net
    for net in (
        MediaPipeNet(
            "hand_landmark_lite",
            "hand_landmark",
            "lite",
            "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite",
            "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
            224,
            _LANDMARK_OUTPUTS,
            {"presence": "none", "handedness": "none"},
        ),
        MediaPipeNet(
            "hand_landmark_full",
            "hand_landmark",
            "full",
            "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
            "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
            224,
            _LANDMARK_OUTPUTS,
            {"presence": "none", "handedness": "none"},
        ),
        MediaPipeNet(
            "palm_detection_lite",
            "palm_detection",
            "lite",
            "mediapipe/modules/palm_detection/palm_detection_lite.tflite",
            "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
            192,
            _PALM_OUTPUTS,
            {"scores": "sigmoid"},
        ),
        MediaPipeNet(
            "palm_detection_full",
            "palm_detection",
            "full",
            "mediapipe/modules/palm_detection/palm_detection_full.tflite",
            "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
            192,
            _PALM_OUTPUTS,
            {"scores": "sigmoid"},
        ),
    )
}

_PALM_ANCHORS = {
    "strides": [8, 16],
    "grid_sizes": [24, 12],
    "anchors_per_cell": [2, 6],
    "anchor_offset": 0.5,
    "fixed_anchor_size": True,
    "coordinate_scale_px": 192,
    "score_clip": 100.0,
    "min_score": 0.5,
}


def default_mediapipe_cache_dir() -> Path:
    """Where the import caches the wheel and its extracted ``.tflite`` files.

    ``$STEREO_HAND_MESH_CACHE`` if set, else ``$XDG_CACHE_HOME/stereo_hand_mesh`` (default
    ``~/.cache/stereo_hand_mesh``).
    """
    env = os.environ.get("STEREO_HAND_MESH_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "stereo_hand_mesh"


def tflite_cache_path(net: MediaPipeNet, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of ``net``'s extracted ``.tflite`` in the cache (it may not exist)."""
    root = Path(cache_dir) if cache_dir is not None else default_mediapipe_cache_dir()
    return root / f"mediapipe-{MEDIAPIPE_VERSION}" / net.tflite_path


def sha256_of_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def keypoint_metadata(net: MediaPipeNet) -> dict[str, Any]:
    """The ``stereo_hand_mesh_keypoints`` JSON of ``net`` (also stored in its ``.npz``)."""
    info: dict[str, Any] = {
        "kind": net.kind,
        "variant": net.variant,
        "input_size": net.input_size,
        "input_name": "image",
        "input_layout": "NCHW",
        "input_channels": "RGB",
        "input_range": [0.0, 1.0],
        "outputs": list(net.outputs),
        "activations": dict(net.activations),
        "source": {
            "wheel": f"mediapipe=={MEDIAPIPE_VERSION}",
            "wheel_file": MEDIAPIPE_WHEEL,
            "wheel_sha256": MEDIAPIPE_WHEEL_SHA256,
            "tflite_path": net.tflite_path,
            "tflite_sha256": net.tflite_sha256,
            "license": "Apache-2.0",
            "converted_by": "tools/import_mediapipe_hands.py",
        },
    }
    if net.kind == "hand_landmark":
        info["units"] = {
            "landmarks": "x, y: pixels of the input crop; z: relative depth, same scale",
            "world_landmarks": "metres",
        }
        info["handedness_label"] = (
            "probability of MediaPipe's 'Left' (defined for mirrored images): a right hand "
            "in an unmirrored camera image"
        )
    else:
        info["units"] = {"regressors": "pixels of the input, offsets from anchor centres"}
        info["anchors"] = dict(_PALM_ANCHORS)
    return info


def convert_mediapipe_net(
    net: MediaPipeNet, tflite_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> tuple[Path, Path]:
    """Convert one ``.tflite`` into ``out_dir/<name>.npz`` and ``out_dir/<name>.onnx``.

    The ONNX file is exported from the module built from the written ``.npz`` (so the two
    hold the same weights) with opset 17, input ``image``, dynamic batch, and the
    ``stereo_hand_mesh_keypoints`` metadata.

    Returns:
        ``(npz_path, onnx_path)``.

    Raises:
        ModelFileError: the ``.tflite`` has the wrong hash, cannot be read, or the export
            failed.
    """
    from stereo_hand_mesh.errors import ModelFileError
    from stereo_hand_mesh.model.tflite_graph import (
        export_tflite_graph_onnx,
        load_tflite_graph_net,
        save_tflite_graph_npz,
    )
    from stereo_hand_mesh.model.tflite_reader import read_tflite_graph

    tflite_path = Path(tflite_path)
    digest = sha256_of_file(tflite_path) if tflite_path.is_file() else "missing"
    if digest != net.tflite_sha256:
        raise ModelFileError(
            f"{tflite_path} expected sha256 {net.tflite_sha256} ({net.tflite_path} of "
            f"{MEDIAPIPE_WHEEL}); got {digest}"
        )
    graph = read_tflite_graph(tflite_path)
    shape = graph.tensors[graph.inputs[0]].shape
    if shape != (1, net.input_size, net.input_size, 3) or len(graph.outputs) != len(net.outputs):
        raise ModelFileError(
            f"{tflite_path} expected input (1, {net.input_size}, {net.input_size}, 3) and "
            f"{len(net.outputs)} outputs; got {shape} and {len(graph.outputs)}"
        )
    info = keypoint_metadata(net)
    out_dir = Path(out_dir)
    npz = save_tflite_graph_npz(graph, out_dir / f"{net.name}.npz", net.outputs, info)
    module = load_tflite_graph_net(npz)
    onnx_path = export_tflite_graph_onnx(
        module,
        out_dir / f"{net.name}.onnx",
        {KEYPOINT_METADATA_KEY: json.dumps(info, sort_keys=True)},
    )
    return npz, onnx_path
