"""Broken but well-formed model files the tests feed to the pipeline and the node."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stereo_hand_mesh.runtime.select import default_model_files


def collapsed_model(path: Path) -> Path:
    """The shipped ONNX model with its uv head zeroed: every vertex of both branches lands
    on one crop point, so the two branches agree perfectly (confidence 1) on a mesh
    collapsed onto a point: a broken model that only a size check catches."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(default_model_files()[1]))
    for init in model.graph.initializer:
        if init.name.startswith("net.net.uv_head."):
            zero = np.zeros_like(numpy_helper.to_array(init))
            init.CopyFrom(numpy_helper.from_array(zero, init.name))
    onnx.save(model, str(path))
    return path
