"""Stereo geometry: cameras, rectified rigs, projection, triangulation, crops, rectification.

The per-frame path uses the numpy API (:class:`StereoRig`, :class:`CropBox`, :func:`cut_crop`,
:func:`rectify`); training and the losses use the batched torch functions of
:mod:`stereo_hand_mesh.geometry.batched`, re-exported here lazily: importing this package
does not import torch (the ONNX Runtime and TensorRT path must not pay for it).
"""

from typing import Any

from stereo_hand_mesh.geometry.camera import (
    DEFAULT_MIN_DISPARITY,
    PinholeCamera,
    StereoRig,
    TriangulatedPoints,
)
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields
from stereo_hand_mesh.geometry.crop import CropBox, crop_to_image, cut_crop, image_to_crop
from stereo_hand_mesh.geometry.rectify import RectificationMaps, rectification_maps, rectify

__all__ = [
    "DEFAULT_MIN_DISPARITY",
    "CameraInfoFields",
    "CropBox",
    "PinholeCamera",
    "RectificationMaps",
    "StereoRig",
    "TriangulatedPoints",
    "crop_images",
    "crop_intrinsics",
    "crop_to_image",
    "cut_crop",
    "disparity_from_depth",
    "image_to_crop",
    "intrinsics_vector",
    "points_from_disparity",
    "project_points",
    "rectification_maps",
    "rectify",
    "unproject_points",
]

_BATCHED = {
    "crop_images",
    "crop_intrinsics",
    "disparity_from_depth",
    "intrinsics_vector",
    "points_from_disparity",
    "project_points",
    "unproject_points",
}


def __getattr__(name: str) -> Any:
    if name in _BATCHED:
        from stereo_hand_mesh.geometry import batched

        return getattr(batched, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
