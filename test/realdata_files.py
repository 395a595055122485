"""Small real stereo folders (the format of stereo_hand_mesh/data/realdata.py) written in tmp
dirs: camera_info through the project's YAML writer, drawn images, and a gt.npz with the keys
of the evaluation sets' labels files."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stereo_hand_mesh.data import (
    rectified_stereo_camera_infos,
    write_camera_info_yaml,
    write_image_png,
)
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields
from stereo_hand_mesh.hand.joints import JOINT_NAMES

W, H = 96, 72
FX = 80.0
CX_LEFT, CX_RIGHT, CY = 40.0, 52.0, 35.0
BASELINE_M = 0.12


def stereo_infos(width: int = W, height: int = H) -> tuple[CameraInfoFields, CameraInfoFields]:
    """A rectified pair whose right principal point differs from the left one (as in
    software-rectified converging cameras)."""
    left, right = rectified_stereo_camera_infos(width, height, FX, FX, CX_LEFT, CY, BASELINE_M)
    K, P = right.K.copy(), right.P.copy()
    K[0, 2] = P[0, 2] = CX_RIGHT
    return left, dataclasses.replace(right, K=K, P=P)


def frame_image(frame: int, side: str, width: int = W, height: int = H) -> np.ndarray:
    """(H, W, 3) uint8 image of a frame; pixel (0, 0) holds the frame number in red (the fake
    pipelines of the tests read it back) and a skin-coloured disc stands for a hand."""
    rng = np.random.default_rng(1000 * frame + (side == "right"))
    image = rng.integers(40, 90, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    cx = width * (0.45 if side == "left" else 0.35)
    disc = (xx - cx) ** 2 + (yy - height / 2) ** 2 < (height / 4) ** 2
    image[disc] = (205, 150, 120)
    image[0, 0] = (frame % 256, 0, 0)
    return image


def frame_joints(frame: int) -> np.ndarray:
    """(21, 3) joints in metres of a frame, in front of the rig (0.5-0.7 m)."""
    rng = np.random.default_rng(frame)
    return rng.normal(0.0, 0.04, (21, 3)) + np.array([0.0, 0.0, 0.6])


def write_real_folder(
    path: Path,
    frames: Sequence[int] = (0, 1, 2, 3),
    *,
    labels: bool = True,
    labelled: Sequence[int] | None = None,
    inside: Sequence[bool] | None = None,
    unknown: Sequence[tuple[int, int]] = ((1, 4), (2, 0)),
    width: int = W,
    height: int = H,
) -> Path:
    """Write a real stereo folder.

    Args:
        path: the folder to create.
        frames: frame numbers with both images.
        labels: write gt.npz.
        labelled: frames with a gt.npz row (default: all).
        inside: the ``inside`` flag of each labelled frame (default: all True).
        unknown: (row, joint) entries of ``joints_m`` set to NaN (unlabelled joints).
        width: image width, pixels (the camera_info says so too).
        height: image height, pixels.

    Returns:
        ``path``.
    """
    path.mkdir(parents=True)
    left_info, right_info = stereo_infos(width, height)
    write_camera_info_yaml(path / "left.yaml", left_info)
    write_camera_info_yaml(path / "right.yaml", right_info)
    for side in ("left", "right"):
        (path / side).mkdir()
        for frame in frames:
            write_image_png(
                path / side / f"{frame:06d}.png", frame_image(frame, side, width, height)
            )
    if labels:
        rows = list(frames if labelled is None else labelled)
        write_labels(path / "gt.npz", rows, inside=inside, unknown=unknown, size=(width, height))
    return path


def write_labels(
    path: Path,
    rows: Sequence[int],
    *,
    inside: Sequence[bool] | None = None,
    unknown: Sequence[tuple[int, int]] = (),
    size: tuple[int, int] = (W, H),
    **override: np.ndarray,
) -> None:
    """Write a gt.npz with every key of the evaluation sets' labels files; ``override``
    replaces arrays (or adds them)."""
    m = len(rows)
    joints = np.stack([frame_joints(f) for f in rows]) if m else np.zeros((0, 21, 3))
    for row, joint in unknown:
        if row < m:
            joints[row, joint] = np.nan
    left_info, right_info = stereo_infos(*size)
    uv = np.zeros((m, 21, 2))
    arrays: dict[str, np.ndarray] = {
        "frames": np.asarray(rows, dtype=np.int64),
        "joints_m": joints,
        "n_views": np.full((m, 21), 8, dtype=np.int64),
        "labelled_in_pair": np.ones((m, 21, 2), dtype=bool),
        "reproj_px": np.full((m, 21), 4.0),
        "uv_left": uv,
        "uv_right": uv,
        "labels_left": uv,
        "labels_right": uv,
        "inside": np.asarray([True] * m if inside is None else inside, dtype=bool),
        "joint_names": np.asarray(JOINT_NAMES),
        "K_left": left_info.K,
        "K_right": right_info.K,
        "P_left": left_info.P,
        "P_right": right_info.P,
        "baseline_m": np.asarray(BASELINE_M),
        "width": np.asarray(size[0]),
        "height": np.asarray(size[1]),
        "R_rect_from_master": np.eye(3),
        "left_centre_in_master_m": np.zeros(3),
        "H_left": np.eye(3),
        "H_right": np.eye(3),
        "serials": np.asarray(["000000000001", "000000000002"]),
        "doc": np.asarray("frames (M,) ...; joints_m (M,21,3) metres, NaN = unknown; ..."),
    }
    arrays.update(override)
    np.savez(path, **arrays)
