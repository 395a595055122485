"""Rectified pinhole cameras and stereo rigs (numpy, the per-frame path).

Conventions (those of ROS ``image_geometry``):

* Points are in metres in the **left optical frame** (x right, y down, z forward), which is
  also the rectified frame of the left camera. The right camera sits at ``(+B, 0, 0)``.
* Pixels are continuous coordinates with the centre of pixel ``(col, row)`` at ``(col, row)``
  (OpenCV's convention).
* A camera projects with its rectified ``P`` (3, 4): ``[u w, v w, w] = P [X, Y, Z, 1]``. For
  the right camera ``P[0, 3] = Tx = -fx * B``, so ``u_r = (fx * X + Tx) / Z + cx_r``.
* Disparity is ``d = u_l - u_r = fx * B / Z + (cx_l - cx_r)`` in pixels of the full rectified
  image; eq. 1 of the seed paper (``z = f * b / (u_l - u_r)``) is the case ``cx_l = cx_r``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stereo_hand_mesh._check import check_shape
from stereo_hand_mesh.errors import CameraInfoError, ConfigError, ShapeError
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields

__all__ = ["DEFAULT_MIN_DISPARITY", "PinholeCamera", "StereoRig", "TriangulatedPoints"]

#: Disparities at or below this many pixels are invalid (z would exceed fx * B metres).
DEFAULT_MIN_DISPARITY = 1.0


@dataclass(frozen=True)
class PinholeCamera:
    """A rectified pinhole camera built from a CameraInfo.

    Attributes:
        width: image width in pixels.
        height: image height in pixels.
        fx: focal length along x of the rectified image, pixels (``P[0, 0]``).
        fy: focal length along y, pixels (``P[1, 1]``).
        cx: principal point x, pixels (``P[0, 2]``).
        cy: principal point y, pixels (``P[1, 2]``).
        Tx: ``P[0, 3]``, pixels * metres; 0 for the left camera, ``-fx * B`` for the right.
        Ty: ``P[1, 3]``, pixels * metres; 0 for horizontal rigs.
        K: (3, 3) intrinsic matrix of the raw (distorted) image, kept for rectification.
        D: (N,) distortion coefficients of the raw image.
        R: (3, 3) rectification rotation.
        P: (3, 4) projection matrix of the rectified image.
        distortion_model: e.g. ``"plumb_bob"``.
        frame_id: the camera's optical frame.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    Tx: float
    Ty: float
    K: np.ndarray
    D: np.ndarray
    R: np.ndarray
    P: np.ndarray
    distortion_model: str = "plumb_bob"
    frame_id: str = ""

    @classmethod
    def from_camera_info(cls, info: CameraInfoFields) -> PinholeCamera:
        """Build a camera from validated CameraInfo fields.

        Raises:
            CameraInfoError: when ``info`` fails :meth:`CameraInfoFields.validate`.
        """
        info.validate()
        P = info.P.copy()
        for arr in (P, info.K, info.D, info.R):
            arr.setflags(write=False)
        return cls(
            width=info.width,
            height=info.height,
            fx=float(P[0, 0]),
            fy=float(P[1, 1]),
            cx=float(P[0, 2]),
            cy=float(P[1, 2]),
            Tx=float(P[0, 3]),
            Ty=float(P[1, 3]),
            K=info.K,
            D=info.D,
            R=info.R,
            P=P,
            distortion_model=info.distortion_model,
            frame_id=info.frame_id,
        )

    @property
    def intrinsics(self) -> np.ndarray:
        """(4,) ``[fx, fy, cx, cy]`` of the rectified image, pixels."""
        return np.array([self.fx, self.fy, self.cx, self.cy])

    def project(self, points: np.ndarray) -> np.ndarray:
        """Project points to rectified pixels with ``P``.

        Args:
            points: (*, 3) points in metres in the left (reference) optical frame, z > 0.

        Returns:
            (*, 2) pixel coordinates ``(u, v)``. Points with z <= 0 give non-finite pixels;
            callers filter them first.
        """
        check_shape(points, ("*", 3), "points")
        pts = np.asarray(points, dtype=np.float64)
        x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (self.fx * x + self.Tx) / z + self.cx
            v = (self.fy * y + self.Ty) / z + self.cy
        return np.stack([u, v], axis=-1)

    def backproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Invert :meth:`project` at a known depth.

        Args:
            uv: (*, 2) rectified pixel coordinates.
            depth: (*) z in metres, broadcastable to ``uv[..., 0]``.

        Returns:
            (*, 3) points in metres in the left (reference) optical frame.
        """
        check_shape(uv, ("*", 2), "uv")
        uv = np.asarray(uv, dtype=np.float64)
        z = np.broadcast_to(np.asarray(depth, dtype=np.float64), uv.shape[:-1])
        x = ((uv[..., 0] - self.cx) * z - self.Tx) / self.fx
        y = ((uv[..., 1] - self.cy) * z - self.Ty) / self.fy
        return np.stack([x, y, z], axis=-1)


@dataclass(frozen=True)
class TriangulatedPoints:
    """Result of a triangulation from disparity.

    Attributes:
        points: (*, 3) points in metres in the left optical frame; invalid entries hold the
            finite fill value.
        valid: (*) bool, True where the disparity was finite and above the minimum.
    """

    points: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True)
class StereoRig:
    """A rectified horizontal stereo pair.

    Attributes:
        left: the left (reference) camera.
        right: the right camera.
        baseline: distance between the optical centres, metres (> 0).
    """

    left: PinholeCamera
    right: PinholeCamera
    baseline: float

    @classmethod
    def from_camera_info(
        cls,
        left: CameraInfoFields,
        right: CameraInfoFields,
        rtol: float = 1e-3,
    ) -> StereoRig:
        """Build and validate a rig from the two CameraInfo of a rectified pair.

        The baseline is ``B = -P_right[0, 3] / P_right[0, 0]`` (ROS stores
        ``Tx = -fx * B``).

        Args:
            left: CameraInfo of the left camera (``P[0, 3]`` must be 0).
            right: CameraInfo of the right camera.
            rtol: relative tolerance for the equality of fx, fy and cy (and ``atol`` of
                ``rtol * fx`` pixels for cy and the left Tx).

        Raises:
            CameraInfoError: when the sizes differ, fx/fy/cy differ beyond ``rtol``, the
                left ``P[0, 3]`` is not 0, or the baseline is not finite and positive.
        """
        cam_l = PinholeCamera.from_camera_info(left)
        cam_r = PinholeCamera.from_camera_info(right)
        if (cam_l.width, cam_l.height) != (cam_r.width, cam_r.height):
            raise CameraInfoError(
                f"right camera_info width x height expected {cam_l.width}x{cam_l.height} "
                f"(the left size); got {cam_r.width}x{cam_r.height}"
            )
        atol = rtol * cam_l.fx
        for name, a, b, tol in (
            ("fx (P[0, 0])", cam_l.fx, cam_r.fx, rtol * cam_l.fx),
            ("fy (P[1, 1])", cam_l.fy, cam_r.fy, rtol * cam_l.fy),
            ("cy (P[1, 2])", cam_l.cy, cam_r.cy, atol),
        ):
            if abs(a - b) > tol:
                raise CameraInfoError(
                    f"right camera_info {name} expected {a} (equal to the left one for a "
                    f"rectified pair); got {b}"
                )
        if abs(cam_l.Tx) > atol or abs(cam_l.Ty) > atol or abs(cam_r.Ty) > atol:
            raise CameraInfoError(
                "camera_info P[0, 3] (left) and P[1, 3] expected 0 for a horizontal rectified "
                f"pair; got left Tx={cam_l.Tx}, left Ty={cam_l.Ty}, right Ty={cam_r.Ty}"
            )
        baseline = -cam_r.Tx / cam_r.fx
        if not math.isfinite(baseline) or baseline <= 0.0:
            raise CameraInfoError(
                "right camera_info P[0, 3] expected -fx * baseline with baseline > 0 "
                f"(finite); got P[0, 3]={cam_r.Tx} (baseline {baseline} m)"
            )
        return cls(left=cam_l, right=cam_r, baseline=float(baseline))

    @property
    def focal(self) -> float:
        """fx of the rectified pair, pixels."""
        return self.left.fx

    @property
    def disparity_offset(self) -> float:
        """``cx_l - cx_r`` in pixels: the disparity of a point at infinity (usually 0)."""
        return self.left.cx - self.right.cx

    def project_left(self, points: np.ndarray) -> np.ndarray:
        """(*, 3) metres, left optical frame -> (*, 2) left rectified pixels."""
        return self.left.project(points)

    def project_right(self, points: np.ndarray) -> np.ndarray:
        """(*, 3) metres, left optical frame -> (*, 2) right rectified pixels."""
        return self.right.project(points)

    def disparity_from_depth(self, depth: np.ndarray) -> np.ndarray:
        """(*) z in metres (> 0) -> (*) disparity ``u_l - u_r`` in pixels."""
        depth = np.asarray(depth, dtype=np.float64)
        with np.errstate(divide="ignore"):
            return self.focal * self.baseline / depth + self.disparity_offset

    def points_from_disparity(
        self,
        uv_left: np.ndarray,
        disparity: np.ndarray,
        min_disparity: float = DEFAULT_MIN_DISPARITY,
        fill: float = 0.0,
    ) -> TriangulatedPoints:
        """Triangulate left pixels with their disparities (eq. 1 of the seed paper).

        ``z = fx * B / (d - (cx_l - cx_r))``; x and y come from the left view. Unlike eq. 1
        (which takes ``|u_l - u_r|``), a disparity at or below ``min_disparity`` (a negative
        one included: the match lies behind the camera) is invalid rather than mirrored.

        Args:
            uv_left: (*, 2) left rectified pixels.
            disparity: (*) ``u_l - u_r`` in pixels.
            min_disparity: smallest valid disparity after removing the offset, pixels (> 0).
            fill: value written to every coordinate of invalid points (finite).

        Returns:
            Points (*, 3) in metres in the left optical frame, and the validity mask (*).
            NaN/inf inputs are invalid; no NaN or inf is ever returned.

        Raises:
            ShapeError: when ``disparity`` does not have the shape ``uv_left[..., 0]``.
            ConfigError: when ``min_disparity`` is not finite and > 0 or ``fill`` not finite.
        """
        check_shape(uv_left, ("*", 2), "uv_left")
        uv = np.asarray(uv_left, dtype=np.float64)
        disp = np.asarray(disparity, dtype=np.float64)
        if disp.shape != uv.shape[:-1]:
            raise ShapeError(f"disparity expected shape {uv.shape[:-1]}; got {disp.shape}")
        _check_min_disparity(min_disparity, fill)
        d = disp - self.disparity_offset
        valid = np.isfinite(d) & np.isfinite(uv).all(axis=-1) & (d > min_disparity)
        d_safe = np.where(valid, d, 1.0)
        uv_safe = np.where(valid[..., None], uv, 0.0)
        z = self.focal * self.baseline / d_safe
        points = self.left.backproject(uv_safe, z)
        points = np.where(valid[..., None], points, fill)
        return TriangulatedPoints(points=points, valid=valid)

    def triangulate(
        self,
        uv_left: np.ndarray,
        uv_right: np.ndarray,
        min_disparity: float = DEFAULT_MIN_DISPARITY,
        fill: float = 0.0,
    ) -> TriangulatedPoints:
        """Triangulate matched rectified pixels; see :meth:`points_from_disparity`.

        Args:
            uv_left: (*, 2) left rectified pixels.
            uv_right: (*, 2) matching right rectified pixels (only u is used: rows are
                equal in a rectified pair, and x, y come from the left view).
            min_disparity: smallest valid disparity, pixels (> 0).
            fill: value for invalid points.

        Returns:
            Points (*, 3) in metres in the left optical frame and the validity mask (*).
        """
        check_shape(uv_left, ("*", 2), "uv_left")
        check_shape(uv_right, ("*", 2), "uv_right")
        if tuple(np.shape(uv_left)) != tuple(np.shape(uv_right)):
            raise ShapeError(
                f"uv_right expected the shape of uv_left {tuple(np.shape(uv_left))}; "
                f"got {tuple(np.shape(uv_right))}"
            )
        uv_l = np.asarray(uv_left, dtype=np.float64)
        uv_r = np.asarray(uv_right, dtype=np.float64)
        return self.points_from_disparity(uv_l, uv_l[..., 0] - uv_r[..., 0], min_disparity, fill)


def _check_min_disparity(min_disparity: float, fill: float) -> None:
    if not (math.isfinite(min_disparity) and min_disparity > 0.0):
        raise ConfigError(f"min_disparity expected a finite value > 0 pixels; got {min_disparity}")
    if not math.isfinite(fill):
        raise ConfigError(f"fill expected a finite value; got {fill}")
