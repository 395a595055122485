"""The ROS-free per-pair pipeline (numpy in, numpy out): hand locator, crops, backend,
branch meshes, left-right confidence, temporal filter.

Importing this package imports neither torch nor onnxruntime.
"""

from stereo_hand_mesh.pipeline.estimator import (
    HANDEDNESS,
    HandEstimate,
    HandMeshPipeline,
    PipelineSettings,
)
from stereo_hand_mesh.pipeline.filter import OneEuroFilter
from stereo_hand_mesh.pipeline.locator import (
    LocatorSettings,
    StereoBoxes,
    locate_hand,
    match_right_box,
)
from stereo_hand_mesh.pipeline.skin import crop_boxes_from_masks, skin_mask, stereo_crop_boxes

__all__ = [
    "HANDEDNESS",
    "HandEstimate",
    "HandMeshPipeline",
    "LocatorSettings",
    "OneEuroFilter",
    "PipelineSettings",
    "StereoBoxes",
    "crop_boxes_from_masks",
    "locate_hand",
    "match_right_box",
    "skin_mask",
    "stereo_crop_boxes",
]
