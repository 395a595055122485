"""FreiHAND reader (monocular RGB, intrinsics, 3D joints and MANO vertices).

Layout of a FreiHAND root (``FreiHAND_pub_v2`` and its evaluation release)::

    <root>/training/rgb/00000000.jpg ...   4 * N images (4 versions of N labelled hands)
    <root>/training/mask/00000000.jpg ...  N masks (optional)
    <root>/training_K.json                 N x (3x3) intrinsics
    <root>/training_xyz.json               N x (21x3) joints, metres, camera frame
    <root>/training_verts.json             N x (778x3) MANO vertices, metres (optional)
    <root>/training_mano.json              N x (1x61) MANO parameters (optional)
    <root>/training_scale.json             N scales (optional)
    <root>/evaluation/rgb/...              same pattern with ``evaluation_*`` files

Each JSON file is a list with one entry per labelled hand. Image ``i`` uses labels
``i % N`` (FreiHAND's training images repeat the N hands with four backgrounds). FreiHAND's
joint order is ours. FreiHAND hands are right hands.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from stereo_hand_mesh.data.image_io import read_image_rgb, read_mask
from stereo_hand_mesh.data.sample import MonoSample
from stereo_hand_mesh.errors import ConfigError, DataError
from stereo_hand_mesh.hand.joints import NUM_JOINTS

__all__ = ["FREIHAND_NUM_VERTICES", "FREIHAND_SPLITS", "FreiHANDReader"]

FREIHAND_SPLITS: tuple[str, ...] = ("training", "evaluation")
FREIHAND_NUM_VERTICES = 778

_IMAGE_NAME = re.compile(r"^(\d{8})\.jpg$")


def _load_json_list(path: Path) -> list[Any]:
    try:
        with path.open("r", encoding="utf-8") as handle:
            value = json.load(handle)
    except FileNotFoundError:
        raise DataError(f"expected FreiHAND file {path}; got no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"could not read FreiHAND file {path}: {err}") from None
    if not isinstance(value, list):
        raise DataError(f"FreiHAND file {path} expected a JSON list; got {type(value).__name__}")
    return value


def _label_array(path: Path, entry_shape: tuple[int, ...], count: int | None) -> np.ndarray:
    """Load a FreiHAND JSON list as a float array of shape (N, *entry_shape)."""
    entries = _load_json_list(path)
    if count is not None and len(entries) != count:
        raise DataError(
            f"FreiHAND file {path} expected {count} entries (as the K file); got {len(entries)}"
        )
    try:
        arr = np.asarray(entries, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            f"FreiHAND file {path} expected entries of shape {entry_shape}; got ragged or "
            f"non-numeric entries"
        ) from None
    size = int(np.prod(entry_shape))
    if arr.ndim < 1 or arr.shape[0] != len(entries) or arr.size != len(entries) * size:
        raise DataError(
            f"FreiHAND file {path} expected entries of shape {entry_shape}; got {arr.shape[1:]}"
        )
    return arr.reshape((len(entries), *entry_shape))


class FreiHANDReader:
    """Monocular samples of one FreiHAND split.

    K (required) and joints are loaded when the reader is made; vertices (large: about
    0.3 GB as float32 for the training split, several GB of Python objects while parsing)
    are loaded on the first sample that needs them.

    Args:
        root: FreiHAND root directory.
        split: ``"training"`` or ``"evaluation"``.
        load_vertices: read ``<split>_verts.json`` when present.

    Raises:
        ConfigError: ``split`` is unknown.
        DataError: the image directory or ``<split>_K.json`` is missing, a label file does
            not parse or has a different number of entries than the K file, or the image
            count is not a multiple of the label count.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "training",
        *,
        load_vertices: bool = True,
    ) -> None:
        if split not in FREIHAND_SPLITS:
            raise ConfigError(f"FreiHAND split expected one of {FREIHAND_SPLITS}; got {split!r}")
        self.root = Path(root)
        self.split = split
        self.rgb_dir = self.root / split / "rgb"
        self.mask_dir = self.root / split / "mask"
        if not self.rgb_dir.is_dir():
            raise DataError(f"expected FreiHAND image directory {self.rgb_dir}; got none")
        self._K = _label_array(self._label_path("K"), (3, 3), None)
        self.num_labels = self._K.shape[0]
        if self.num_labels == 0:
            raise DataError(f"FreiHAND file {self._label_path('K')} expected entries; got none")
        self._joints = self._optional("xyz", (NUM_JOINTS, 3))
        self._mano = self._optional("mano", (61,))
        self._scale = self._optional("scale", ())
        self._load_vertices = load_vertices
        self._vertices: np.ndarray | None = None
        self.num_images = self._count_images()
        if self.num_images % self.num_labels != 0:
            raise DataError(
                f"FreiHAND {self.rgb_dir} expected a multiple of {self.num_labels} images "
                f"(one per label and version); got {self.num_images}"
            )
        self.num_versions = self.num_images // self.num_labels

    def _label_path(self, kind: str) -> Path:
        return self.root / f"{self.split}_{kind}.json"

    def _optional(self, kind: str, entry_shape: tuple[int, ...]) -> np.ndarray | None:
        path = self._label_path(kind)
        if not path.is_file():
            return None
        return _label_array(path, entry_shape, self.num_labels)

    def _count_images(self) -> int:
        count = sum(1 for name in os.listdir(self.rgb_dir) if _IMAGE_NAME.match(name))
        if count == 0:
            raise DataError(f"FreiHAND {self.rgb_dir} expected images 00000000.jpg ...; got none")
        return count

    @property
    def has_ground_truth(self) -> bool:
        """True when joints (``<split>_xyz.json``) are present."""
        return self._joints is not None

    @property
    def has_vertices(self) -> bool:
        """True when vertices will be returned (file present and ``load_vertices``)."""
        return self._load_vertices and self._label_path("verts").is_file()

    def _vertices_array(self) -> np.ndarray | None:
        if not self.has_vertices:
            return None
        if self._vertices is None:
            verts = _label_array(
                self._label_path("verts"), (FREIHAND_NUM_VERTICES, 3), self.num_labels
            )
            self._vertices = verts.astype(np.float32)
        return self._vertices

    def __len__(self) -> int:
        return self.num_images

    def label_index(self, index: int) -> int:
        """Index of the labels of image ``index`` (``index % N``)."""
        return index % self.num_labels

    def __getitem__(self, index: int) -> MonoSample:
        """Load image ``index`` and its labels.

        Raises:
            IndexError: ``index`` is out of range.
            DataError: the image is missing, truncated or corrupt.
        """
        index = int(index)
        if index < 0:
            index += self.num_images
        if not 0 <= index < self.num_images:
            raise IndexError(f"FreiHAND index expected in [0, {self.num_images}); got {index}")
        label = self.label_index(index)
        image = read_image_rgb(self.rgb_dir / f"{index:08d}.jpg")
        mask_path = self.mask_dir / f"{label:08d}.jpg"
        verts = self._vertices_array()
        return MonoSample(
            image=image,
            K=self._K[label].copy(),
            index=index,
            joints=None if self._joints is None else self._joints[label].copy(),
            vertices=None if verts is None else verts[label].astype(np.float64),
            mano=None if self._mano is None else self._mano[label].copy(),
            mask=read_mask(mask_path) if mask_path.is_file() else None,
            scale=None if self._scale is None else float(self._scale[label]),
        )

    def __iter__(self) -> Iterator[MonoSample]:
        for index in range(self.num_images):
            yield self[index]
