"""The ROS-free per-pair pipeline (numpy in, numpy out): the stereo input stage (checks,
rectification, the rig; :class:`StereoInput`), palm detection, rotated crops, the
real-trained keypoint network on both views, stereo triangulation, the template fit,
confidence, temporal filter (:class:`HandMeshPipeline`); and the legacy mesh-uv path of the
synthetic-trained network (:class:`MeshUVPipeline`).

Importing this package imports neither torch nor onnxruntime.
"""

from stereo_hand_mesh.pipeline.estimator import (
    HANDEDNESS,
    PUBLISHED_JOINTS,
    HandEstimate,
    HandMeshPipeline,
    PipelineSettings,
    StereoCrops,
)
from stereo_hand_mesh.pipeline.factory import PipelineChoice, create_pipeline, model_kind
from stereo_hand_mesh.pipeline.filter import OneEuroFilter
from stereo_hand_mesh.pipeline.fit import FitSettings, HandFit, fit_hand
from stereo_hand_mesh.pipeline.locator import (
    LocatorSettings,
    StereoBoxes,
    locate_hand,
    match_right_box,
)
from stereo_hand_mesh.pipeline.mesh_uv import MeshUVPipeline, joint_regressor_for
from stereo_hand_mesh.pipeline.skin import crop_boxes_from_masks, skin_mask, stereo_crop_boxes
from stereo_hand_mesh.pipeline.stereo_input import PreparedPair, StereoInput, camera_info_key
from stereo_hand_mesh.pipeline.stream import LogThrottle, NewestOnlyWorker, PairStatistics

__all__ = [
    "HANDEDNESS",
    "PUBLISHED_JOINTS",
    "FitSettings",
    "HandEstimate",
    "HandFit",
    "HandMeshPipeline",
    "LocatorSettings",
    "LogThrottle",
    "MeshUVPipeline",
    "NewestOnlyWorker",
    "OneEuroFilter",
    "PairStatistics",
    "PipelineChoice",
    "PipelineSettings",
    "PreparedPair",
    "StereoBoxes",
    "StereoCrops",
    "StereoInput",
    "camera_info_key",
    "create_pipeline",
    "crop_boxes_from_masks",
    "fit_hand",
    "joint_regressor_for",
    "locate_hand",
    "match_right_box",
    "model_kind",
    "skin_mask",
    "stereo_crop_boxes",
]
