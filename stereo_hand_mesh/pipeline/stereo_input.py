"""The stereo input stage: two images and their camera_info in, a rectified pair and its rig out.

:class:`StereoInput` checks that the two views have the same size, validates both
camera_info, rectifies raw views when asked (OpenCV remap with the camera_info's K, D, R, P)
and builds the :class:`~stereo_hand_mesh.geometry.camera.StereoRig`. Rectification maps and
rigs are built once per calibration and cached, keyed on the camera_info contents: K, D, R,
P, the image size and the distortion model. A camera_info that changes any of them (a
recalibration that touches only K or R, say) gets new maps and a new rig; the frame_id and
camera_name do not take part.

Free of ROS: the node converts its messages to arrays and
:class:`~stereo_hand_mesh.geometry.camera_info.CameraInfoFields` and calls
:meth:`StereoInput.prepare`. One stage serves one stream from one thread (the caches are not
locked).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stereo_hand_mesh.errors import ShapeError
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields
from stereo_hand_mesh.geometry.rectify import RectificationMaps, rectification_maps, rectify

__all__ = ["PreparedPair", "StereoInput", "camera_info_key"]

#: Entries each cache holds before it is emptied (a rig changes rarely: recalibration,
#: a resolution switch); bounds the memory a stream of changing camera_info can take.
_MAX_CACHED = 16


def camera_info_key(info: CameraInfoFields) -> bytes:
    """The bytes that identify everything the maps and the rig are built from: K, D, R, P
    (float64), width, height and the distortion model of one camera_info."""
    arrays = b"".join(
        np.ascontiguousarray(arr, dtype=np.float64).tobytes()
        for arr in (info.P, info.K, info.D, info.R)
    )
    # D has a variable length: its size goes into the key so that the byte strings of two
    # camera_info cannot coincide by shifting values between D and R.
    return arrays + f"|{info.D.size}|{info.width}x{info.height}|{info.distortion_model}".encode()


@dataclass(frozen=True)
class PreparedPair:
    """A stereo pair ready for the pipeline.

    Attributes:
        left: (H, W, C) left image, rectified (as given when the stage does not rectify).
        right: (H, W, C) right image, rectified likewise.
        rig: the rectified stereo rig of the pair (left optical frame, metres).
    """

    left: np.ndarray
    right: np.ndarray
    rig: StereoRig


class StereoInput:
    """Prepares the stereo input of each pair (see the module docstring).

    Args:
        rectify: the images are raw: rectify them with their camera_info's K, D, R, P.

    Attributes:
        rig_builds: rigs built so far (cache misses).
        map_builds: rectification maps built so far, one per view (cache misses).
    """

    def __init__(self, rectify: bool = False) -> None:
        self.rectify = rectify
        self.rig_builds = 0
        self.map_builds = 0
        self._rigs: dict[bytes, StereoRig] = {}
        self._maps: dict[bytes, RectificationMaps] = {}

    def prepare(
        self,
        left: np.ndarray,
        right: np.ndarray,
        left_info: CameraInfoFields,
        right_info: CameraInfoFields,
    ) -> PreparedPair:
        """Check, rectify (when the stage rectifies) and return the pair with its rig.

        Args:
            left: (H, W, C) or (H, W) left image.
            right: the right image, the same shape as ``left``.
            left_info: the left camera_info (not necessarily validated).
            right_info: the right camera_info.

        Returns:
            The pair and its rig; the rig object is the cached one while the camera_info
            contents stay the same.

        Raises:
            ShapeError: the images' sizes differ, or differ from the rectification maps'.
            CameraInfoError: a camera_info fails validation, or the two do not form a
                rectified rig, or its distortion model cannot be rectified.
        """
        if left.shape != right.shape:
            raise ShapeError(
                f"right image expected {left.shape[1]}x{left.shape[0]} (the left size); got "
                f"{right.shape[1]}x{right.shape[0]}"
            )
        left_key, right_key = camera_info_key(left_info), camera_info_key(right_info)
        if self.rectify:
            left = rectify(left, self._maps_for(left_info, left_key))
            right = rectify(right, self._maps_for(right_info, right_key))
        key = left_key + b"/" + right_key
        rig = self._rigs.get(key)
        if rig is None:
            rig = StereoRig.from_camera_info(left_info.validate(), right_info.validate())
            self.rig_builds += 1
            if len(self._rigs) >= _MAX_CACHED:
                self._rigs.clear()
            self._rigs[key] = rig
        return PreparedPair(left, right, rig)

    def _maps_for(self, info: CameraInfoFields, key: bytes) -> RectificationMaps:
        maps = self._maps.get(key)
        if maps is None:
            maps = rectification_maps(info.validate())
            self.map_builds += 1
            if len(self._maps) >= _MAX_CACHED:
                self._maps.clear()
            self._maps[key] = maps
        return maps
