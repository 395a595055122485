"""Rectification of raw images with the K, D, R, P of a CameraInfo (OpenCV remap)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stereo_hand_mesh.errors import CameraInfoError, ShapeError
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields

__all__ = ["RectificationMaps", "rectification_maps", "rectify"]

#: CameraInfo distortion models OpenCV's ``initUndistortRectifyMap`` handles.
_PINHOLE_MODELS = ("plumb_bob", "rational_polynomial", "")


@dataclass(frozen=True)
class RectificationMaps:
    """Lookup maps from rectified pixels to raw pixels (``cv2.remap`` format).

    Attributes:
        map1: (H, W, 2) int16 fixed-point coordinates, or (H, W) float32 x.
        map2: (H, W) uint16 interpolation table indices, or (H, W) float32 y.
        width: rectified image width, pixels.
        height: rectified image height, pixels.
    """

    map1: np.ndarray
    map2: np.ndarray
    width: int
    height: int


def rectification_maps(info: CameraInfoFields, map_type: int = cv2.CV_16SC2) -> RectificationMaps:
    """Build the rectification maps of one camera from its CameraInfo (computed once).

    Uses ``cv2.initUndistortRectifyMap(K, D, R, P[:, :3])``; the rectified image has the
    CameraInfo's width and height.

    Args:
        info: CameraInfo of the raw camera.
        map_type: ``cv2.CV_16SC2`` (fast fixed-point, default) or ``cv2.CV_32FC1``.

    Raises:
        CameraInfoError: when the fields are invalid or the distortion model is not a
            pinhole model OpenCV handles (``plumb_bob``, ``rational_polynomial``).
    """
    info.validate()
    if info.distortion_model not in _PINHOLE_MODELS:
        raise CameraInfoError(
            f"camera_info distortion_model expected one of {_PINHOLE_MODELS[:2]}; "
            f"got {info.distortion_model!r}"
        )
    map1, map2 = cv2.initUndistortRectifyMap(
        info.K, info.D, info.R, info.P[:, :3], (info.width, info.height), map_type
    )
    return RectificationMaps(map1=map1, map2=map2, width=info.width, height=info.height)


def rectify(
    image: np.ndarray,
    maps: RectificationMaps,
    interpolation: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """Rectify a raw image.

    Args:
        image: (H, W) or (H, W, C) raw image of the size the maps were built for.
        maps: from :func:`rectification_maps`.
        interpolation: OpenCV interpolation flag.

    Returns:
        The rectified image, same shape and dtype; pixels without a source are 0.

    Raises:
        ShapeError: when the image size differs from the maps' size.
    """
    shape = getattr(image, "shape", None)
    if shape is None or len(shape) not in (2, 3) or shape[:2] != (maps.height, maps.width):
        raise ShapeError(
            f"image expected shape ({maps.height}, {maps.width}[, C]) (the camera_info size); "
            f"got {shape}"
        )
    out = cv2.remap(image, maps.map1, maps.map2, interpolation, borderMode=cv2.BORDER_CONSTANT)
    if np.ndim(image) == 3 and out.ndim == 2:
        out = out[..., None]
    return out
