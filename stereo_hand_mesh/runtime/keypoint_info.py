"""What an imported keypoint network (MediaPipe hand landmark / palm detection) says about
itself: the ``stereo_hand_mesh_keypoints`` entry of its ONNX ``metadata_props``.

The entry is JSON written by ``tools/import_mediapipe_hands.py``::

    {"kind": "hand_landmark" | "palm_detection", "variant": "lite" | "full",
     "input_size": 224 | 192, "input_layout": "NCHW", "input_range": [0.0, 1.0],
     "input_name": "image", "outputs": [...], "activations": {...}, "source": {...}}

``activations`` maps each score output to what a consumer applies to get a probability:
``"none"`` (the network already applies a sigmoid) or ``"sigmoid"`` (raw logits).

Imports neither torch nor onnxruntime (only ``onnx`` to read the file's protobuf); no ROS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from stereo_hand_mesh.errors import ModelFileError

__all__ = ["KEYPOINT_METADATA_KEY", "read_keypoint_model_info"]

#: Key of the ONNX ``metadata_props`` entry of the imported keypoint networks.
KEYPOINT_METADATA_KEY = "stereo_hand_mesh_keypoints"

_REQUIRED = ("kind", "variant", "input_size", "input_layout", "input_range", "outputs")


def read_keypoint_model_info(onnx_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The keypoint metadata of an imported ONNX network, as a dict.

    Args:
        onnx_path: an ``.onnx`` file written by ``tools/import_mediapipe_hands.py``.

    Returns:
        The parsed JSON (at least ``kind``, ``variant``, ``input_size``, ``input_layout``,
        ``input_range``, ``outputs``; see the module docstring).

    Raises:
        ModelFileError: the file is missing, not ONNX, has no ``stereo_hand_mesh_keypoints``
            entry, or the entry is not JSON with the required fields (the message names the
            path).

    Examples:
        >>> info = read_keypoint_model_info("models/hand_landmark_lite.onnx")  # doctest: +SKIP
        >>> info["input_size"], info["outputs"][0]  # doctest: +SKIP
        (224, 'landmarks')
    """
    import onnx

    path = Path(onnx_path)
    if not path.is_file():
        raise ModelFileError(f"ONNX model expected at {path}; it does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf raises DecodeError and others for corrupt files
        raise ModelFileError(f"ONNX model {path} could not be read (corrupt?): {err}") from None
    for entry in proto.metadata_props:
        if entry.key != KEYPOINT_METADATA_KEY:
            continue
        try:
            info = json.loads(entry.value)
        except ValueError as err:
            raise ModelFileError(
                f"ONNX model {path}: '{KEYPOINT_METADATA_KEY}' expected JSON; got "
                f"{entry.value[:80]!r} ({err})"
            ) from None
        missing = [k for k in _REQUIRED if not isinstance(info, dict) or k not in info]
        if missing:
            raise ModelFileError(
                f"ONNX model {path}: '{KEYPOINT_METADATA_KEY}' expected the fields "
                f"{list(_REQUIRED)}; missing {missing}"
            )
        return info
    raise ModelFileError(
        f"ONNX model {path} expected '{KEYPOINT_METADATA_KEY}' metadata (written by "
        f"tools/import_mediapipe_hands.py); got keys {[e.key for e in proto.metadata_props]}"
    )
