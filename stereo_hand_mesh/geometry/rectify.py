"""Rectification of raw images with the K, D, R, P of a CameraInfo (OpenCV remap).

Distortion models: ``plumb_bob`` and ``rational_polynomial`` (OpenCV's pinhole model,
``cv2.initUndistortRectifyMap``) and ``equidistant`` (the Kannala-Brandt fisheye model of
camera_calibration and Kalibr, four coefficients k1..k4, ``cv2.fisheye``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stereo_hand_mesh.errors import CameraInfoError, ShapeError
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields

__all__ = [
    "RectificationMaps",
    "rectification_maps",
    "rectify",
    "stereo_camera_infos_from_calibration",
]

#: CameraInfo distortion models OpenCV's ``initUndistortRectifyMap`` handles.
_PINHOLE_MODELS = ("plumb_bob", "rational_polynomial", "")
#: The fisheye model (``cv2.fisheye``), with its four coefficients.
_EQUIDISTANT = "equidistant"


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

    Uses ``cv2.initUndistortRectifyMap(K, D, R, P[:, :3])`` (``cv2.fisheye``'s for the
    ``equidistant`` model); the rectified image has the CameraInfo's width and height.

    Args:
        info: CameraInfo of the raw camera.
        map_type: ``cv2.CV_16SC2`` (fast fixed-point, default) or ``cv2.CV_32FC1``.

    Raises:
        CameraInfoError: when the fields are invalid, the distortion model is not one of
            ``plumb_bob``, ``rational_polynomial`` or ``equidistant``, or an equidistant D
            does not have four coefficients.
    """
    info.validate()
    size = (info.width, info.height)
    if info.distortion_model == _EQUIDISTANT:
        if info.D.size != 4:
            raise CameraInfoError(
                f"camera_info D expected 4 coefficients (k1..k4) for the equidistant model; "
                f"got {info.D.size}"
            )
        map1, map2 = cv2.fisheye.initUndistortRectifyMap(
            info.K, info.D.reshape(4, 1), info.R, info.P[:, :3], size, map_type
        )
        return RectificationMaps(map1=map1, map2=map2, width=info.width, height=info.height)
    if info.distortion_model not in _PINHOLE_MODELS:
        raise CameraInfoError(
            f"camera_info distortion_model expected one of "
            f"{(*_PINHOLE_MODELS[:2], _EQUIDISTANT)}; got {info.distortion_model!r}"
        )
    map1, map2 = cv2.initUndistortRectifyMap(info.K, info.D, info.R, info.P[:, :3], size, map_type)
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


def stereo_camera_infos_from_calibration(
    width: int,
    height: int,
    k_left: np.ndarray,
    d_left: np.ndarray,
    k_right: np.ndarray,
    d_right: np.ndarray,
    rotation: np.ndarray,
    translation_m: np.ndarray,
    distortion_model: str = "plumb_bob",
    frame_ids: tuple[str, str] = ("left_optical_frame", "right_optical_frame"),
    fov_scale: float = 1.0,
) -> tuple[CameraInfoFields, CameraInfoFields]:
    """The left and right camera_info of a raw stereo calibration, rectified as ROS's
    camera_calibration does (OpenCV ``stereoRectify`` with zero disparity at infinity, or
    ``cv2.fisheye.stereoRectify`` for ``equidistant``): K and D of each raw camera, R the
    rectifying rotation, P the rectified projection (right ``P[0, 3] = -f * B``).

    Args:
        width: image width, pixels (raw and rectified).
        height: image height, pixels.
        k_left: (3, 3) left intrinsics, pixels.
        d_left: left distortion coefficients (5 for plumb_bob, 4 for equidistant).
        k_right: (3, 3) right intrinsics, pixels.
        d_right: right distortion coefficients.
        rotation: (3, 3) rotation from the left camera frame to the right camera frame
            (``x_right = rotation @ x_left + translation_m``, as ``cv2.stereoCalibrate``).
        translation_m: (3,) translation of that transform, metres.
        distortion_model: ``plumb_bob``, ``rational_polynomial`` or ``equidistant``.
        frame_ids: (left, right) optical frame ids.
        fov_scale: equidistant only: the rectified focal length is OpenCV's divided by this
            (OpenCV keeps a fisheye's whole field of view, which leaves a short focal
            length; below 1 zooms in, e.g. 0.35 on a 190 px fisheye).

    Raises:
        CameraInfoError: the model is not one of those, or the right camera is not to the
            right of the left one after rectification.
    """
    size = (int(width), int(height))
    kl, kr = np.ascontiguousarray(k_left, np.float64), np.ascontiguousarray(k_right, np.float64)
    dl, dr = np.ascontiguousarray(d_left, np.float64), np.ascontiguousarray(d_right, np.float64)
    rot = np.ascontiguousarray(rotation, np.float64)
    t = np.ascontiguousarray(translation_m, np.float64).reshape(3, 1)
    if distortion_model == _EQUIDISTANT:
        r1, r2, p1, p2, _ = cv2.fisheye.stereoRectify(
            kl, dl.reshape(4, 1), kr, dr.reshape(4, 1), size, rot, t,
            flags=cv2.CALIB_ZERO_DISPARITY, newImageSize=size, balance=0.0, fov_scale=fov_scale,
        )  # fmt: skip
    elif distortion_model in _PINHOLE_MODELS:
        r1, r2, p1, p2, *_ = cv2.stereoRectify(
            kl, dl, kr, dr, size, rot, t, flags=cv2.CALIB_ZERO_DISPARITY, alpha=0.0
        )
    else:
        raise CameraInfoError(
            f"distortion_model expected one of {(*_PINHOLE_MODELS[:2], _EQUIDISTANT)}; "
            f"got {distortion_model!r}"
        )
    if not p2[0, 3] < 0:
        raise CameraInfoError(
            f"the right camera expected to the right of the left one (P_right[0, 3] < 0); "
            f"got {p2[0, 3]:.3f}: swap the cameras or invert the transform"
        )
    infos = []
    for k, d, r, proj, frame in ((kl, dl, r1, p1, frame_ids[0]), (kr, dr, r2, p2, frame_ids[1])):
        info = CameraInfoFields(size[0], size[1], k, d, r, proj, distortion_model, "", frame)
        infos.append(info)
    return infos[0], infos[1]
