"""Our synthetic stereo split format on disk: writer and reader.

A split is one directory (``docs/data_format.md`` is the full description)::

    <split>/
      meta.json            written last; its presence marks a complete split
      left.yaml            camera_info of the left camera (camera_calibration_parsers YAML)
      right.yaml           camera_info of the right camera
      left/000000.png      8-bit RGB PNG, one per frame, numbered from 0
      right/000000.png
      mask_left/000000.png optional, 8-bit single-channel PNG, 255 = hand
      mask_right/000000.png
      annotations.npz      optional; ground truth for all frames (arrays with N rows)

``annotations.npz`` and ``meta.json`` are written through a temporary file and
``os.replace`` after every image, so an interrupted write leaves no ``meta.json`` and the
reader refuses the directory instead of serving frames that do not exist.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from stereo_hand_mesh.data.camera_info_yaml import (
    DEFAULT_LEFT_FRAME_ID,
    DEFAULT_RIGHT_FRAME_ID,
    read_camera_info_yaml,
    write_camera_info_yaml,
)
from stereo_hand_mesh.data.image_io import (
    read_image_rgb,
    read_mask,
    write_image_png,
    write_mask_png,
)
from stereo_hand_mesh.data.sample import GROUND_TRUTH_FIELDS, StereoSample
from stereo_hand_mesh.errors import CameraInfoError, ConfigError, DataError, ShapeError
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields
from stereo_hand_mesh.hand.joints import NUM_JOINTS

__all__ = [
    "STEREO_SET_FORMAT",
    "STEREO_SET_FORMAT_VERSION",
    "StereoSetReader",
    "StereoSetWriter",
    "is_stereo_set",
]

STEREO_SET_FORMAT = "stereo_hand_mesh/stereo_set"
STEREO_SET_FORMAT_VERSION = 1

META_FILE = "meta.json"
ANNOTATIONS_FILE = "annotations.npz"
_IMAGE_DIRS = ("left", "right", "mask_left", "mask_right")
_CAMERA_FILES = ("left.yaml", "right.yaml")

#: Per-frame shape of each annotation array ("V" = vertex count, equal across arrays) and
#: the dtype it is stored with.
_ANNOTATION_SPECS: dict[str, tuple[tuple[int | str, ...], type]] = {
    "joints": ((NUM_JOINTS, 3), np.float32),
    "vertices": (("V", 3), np.float32),
    "uv_left": ((NUM_JOINTS, 2), np.float32),
    "uv_right": ((NUM_JOINTS, 2), np.float32),
    "visibility": ((NUM_JOINTS,), np.bool_),
    "vertices_uv_left": (("V", 2), np.float32),
    "vertices_uv_right": (("V", 2), np.float32),
}
assert tuple(_ANNOTATION_SPECS) == GROUND_TRUTH_FIELDS


def frame_file_name(index: int) -> str:
    """File name of frame ``index`` in each image directory, e.g. ``000003.png``."""
    return f"{index:06d}.png"


def is_stereo_set(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a directory holding a stereo split's ``meta.json``."""
    return (Path(path) / META_FILE).is_file()


def _check_frame_shape(shape: tuple[int, ...], per_frame: tuple[int | str, ...]) -> bool:
    return len(shape) == len(per_frame) and all(
        isinstance(want, str) or size == want for size, want in zip(shape, per_frame)
    )


def _spec_str(per_frame: tuple[int | str, ...]) -> str:
    return "(" + ", ".join(str(s) for s in per_frame) + ")"


def _atomic_write_bytes(path: Path, write: Any) -> None:
    """Write through a temporary file in the same directory, fsync, then os.replace."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


class StereoSetWriter:
    """Stream stereo frames into a split directory; ``close()`` makes it readable.

    Example:
        >>> with StereoSetWriter(out, left_info, right_info, domain="source", seed=0) as w:
        ...     w.add(left_rgb, right_rgb, masks=(mask_l, mask_r), annotation={"joints": j})

    Every frame must carry the same kind of content as the first: masks either always or
    never, and the same annotation keys (or none). Annotations are kept in memory and written
    at ``close()`` as float32 (positions, pixels) and bool (visibility).

    Args:
        path: split directory; created if missing.
        left_info: camera_info of the left camera; images must be its width x height.
        right_info: camera_info of the right camera; same size as the left.
        domain: free-text domain tag, e.g. ``"source"`` or ``"target"``.
        seed: random seed the generator used, or None.
        generator: JSON-serializable generator settings recorded in ``meta.json``.
        topology_hash: hash of the hand mesh topology the vertices refer to, or None.
        created_by: the command that made the split; defaults to this process's argv.
        overwrite: replace an existing split at ``path``; otherwise refuse.

    Raises:
        DataError: ``path`` already holds a split (or other files) and ``overwrite`` is False.
        ConfigError: the camera_info sizes differ or ``generator`` is not JSON-serializable.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        left_info: CameraInfoFields,
        right_info: CameraInfoFields,
        *,
        domain: str,
        seed: int | None = None,
        generator: Mapping[str, Any] | None = None,
        topology_hash: str | None = None,
        created_by: str | None = None,
        overwrite: bool = False,
    ) -> None:
        if (left_info.width, left_info.height) != (right_info.width, right_info.height):
            raise ConfigError(
                f"stereo set expected equal left and right image sizes; got "
                f"{left_info.width}x{left_info.height} and {right_info.width}x{right_info.height}"
            )
        generator = dict(generator or {})
        try:
            json.dumps(generator)
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"stereo set generator settings expected JSON-serializable values; got {err}"
            ) from None
        self.path = Path(path)
        self.left_info = left_info
        self.right_info = right_info
        self._meta: dict[str, Any] = {
            "domain": domain,
            "seed": seed,
            "generator": generator,
            "hand_topology_hash": topology_hash,
            "created_by": created_by if created_by is not None else shlex.join(sys.argv),
        }
        self._count = 0
        self._has_masks: bool | None = None
        self._annotation_keys: tuple[str, ...] | None = None
        self._annotations: dict[str, list[np.ndarray]] = {}
        self._num_vertices: int | None = None
        self._closed = False
        self._prepare_directory(overwrite)

    def _prepare_directory(self, overwrite: bool) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise DataError(f"stereo set expected a directory path; got a file at {self.path}")
        if self.path.is_dir() and any(self.path.iterdir()):
            if not overwrite:
                raise DataError(
                    f"stereo set expected an empty or new directory; {self.path} is not empty "
                    f"(pass overwrite=True to replace a split)"
                )
            # meta.json goes first, so that a crash below leaves an unreadable split.
            for name in (META_FILE, ANNOTATIONS_FILE, *_CAMERA_FILES):
                (self.path / name).unlink(missing_ok=True)
            for sub in _IMAGE_DIRS:
                if (self.path / sub).is_dir():
                    for item in (self.path / sub).glob("*.png"):
                        item.unlink()
        for sub in ("left", "right"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        write_camera_info_yaml(self.path / "left.yaml", self.left_info)
        write_camera_info_yaml(self.path / "right.yaml", self.right_info)

    @property
    def count(self) -> int:
        """Number of frames added so far."""
        return self._count

    def _check_image(self, image: np.ndarray, name: str) -> None:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise ShapeError(
                f"{name} expected a uint8 array; got {getattr(image, 'dtype', image)}"
            )
        want = (self.left_info.height, self.left_info.width, 3)
        if image.shape != want:
            raise ShapeError(f"{name} expected shape {want} (camera_info size); got {image.shape}")

    def _check_annotation(self, annotation: Mapping[str, Any]) -> dict[str, np.ndarray]:
        unknown = sorted(set(annotation) - set(_ANNOTATION_SPECS))
        if unknown:
            raise DataError(
                f"annotation expected keys among {list(_ANNOTATION_SPECS)}; got unknown {unknown}"
            )
        keys = tuple(k for k in _ANNOTATION_SPECS if k in annotation)
        if self._annotation_keys is not None and keys != self._annotation_keys:
            raise DataError(
                f"annotation of frame {self._count} expected keys {list(self._annotation_keys)} "
                f"(as frame 0); got {list(keys)}"
            )
        arrays: dict[str, np.ndarray] = {}
        for key in keys:
            per_frame, dtype = _ANNOTATION_SPECS[key]
            arr = np.asarray(annotation[key])
            if not _check_frame_shape(arr.shape, per_frame):
                raise ShapeError(
                    f"annotation '{key}' expected shape {_spec_str(per_frame)}; got {arr.shape}"
                )
            if "V" in per_frame:
                if self._num_vertices is None:
                    self._num_vertices = arr.shape[0]
                elif arr.shape[0] != self._num_vertices:
                    raise ShapeError(
                        f"annotation '{key}' expected {self._num_vertices} vertices (as before); "
                        f"got {arr.shape[0]}"
                    )
            if dtype is not np.bool_ and not np.isfinite(arr).all():
                raise ShapeError(f"annotation '{key}' expected finite values; got NaN or inf")
            arrays[key] = arr.astype(dtype)
        return arrays

    def add(
        self,
        left_rgb: np.ndarray,
        right_rgb: np.ndarray,
        masks: tuple[np.ndarray, np.ndarray] | None = None,
        annotation: Mapping[str, Any] | None = None,
    ) -> int:
        """Write one frame.

        Args:
            left_rgb: (H, W, 3) uint8 RGB left image, H x W = the camera_info size.
            right_rgb: (H, W, 3) uint8 RGB right image.
            masks: (mask_left, mask_right), each (H, W) bool (or nonzero = hand), or None.
            annotation: ground truth keyed by name: ``joints`` (21, 3) m, ``vertices``
                (V, 3) m, ``uv_left`` / ``uv_right`` (21, 2) px, ``visibility`` (21,) bool,
                ``vertices_uv_left`` / ``vertices_uv_right`` (V, 2) px; any subset, the same
                for every frame; or None.

        Returns:
            The index of the frame written.

        Raises:
            ShapeError: an image, mask or annotation array has the wrong shape or dtype.
            DataError: masks or annotation keys differ from the first frame's, or the writer
                is closed.
        """
        if self._closed:
            raise DataError(f"stereo set writer for {self.path} expected to be open; got closed")
        self._check_image(left_rgb, "left_rgb")
        self._check_image(right_rgb, "right_rgb")
        has_masks = masks is not None
        if self._has_masks is not None and has_masks != self._has_masks:
            raise DataError(
                f"frame {self._count} expected masks {'present' if self._has_masks else 'absent'}"
                f" (as frame 0); got {'present' if has_masks else 'absent'}"
            )
        if masks is not None:
            if len(masks) != 2:
                raise ShapeError(f"masks expected (mask_left, mask_right); got {len(masks)} items")
            for mask, name in zip(masks, ("mask_left", "mask_right")):
                want = (self.left_info.height, self.left_info.width)
                if np.shape(mask) != want:
                    raise ShapeError(f"{name} expected shape {want}; got {np.shape(mask)}")
        arrays = self._check_annotation(annotation or {})
        if self._count == 0:
            self._annotation_keys = tuple(arrays)
        self._has_masks = has_masks

        name = frame_file_name(self._count)
        write_image_png(self.path / "left" / name, left_rgb)
        write_image_png(self.path / "right" / name, right_rgb)
        if masks is not None:
            for sub, mask in zip(("mask_left", "mask_right"), masks):
                (self.path / sub).mkdir(exist_ok=True)
                write_mask_png(self.path / sub / name, mask)
        for key, arr in arrays.items():
            self._annotations.setdefault(key, []).append(arr)
        self._count += 1
        return self._count - 1

    def close(self) -> Path:
        """Write ``annotations.npz`` (if any) then ``meta.json``; return the split path.

        Calling it twice is harmless.
        """
        if self._closed:
            return self.path
        keys = self._annotation_keys or ()
        if keys:
            stacked = {k: np.stack(self._annotations[k]) for k in keys}
            _atomic_write_bytes(
                self.path / ANNOTATIONS_FILE, lambda f: np.savez_compressed(f, **stacked)
            )
        meta = {
            "format": STEREO_SET_FORMAT,
            "format_version": STEREO_SET_FORMAT_VERSION,
            "count": self._count,
            "image_width": self.left_info.width,
            "image_height": self.left_info.height,
            "frame_ids": {
                "left": self.left_info.frame_id or DEFAULT_LEFT_FRAME_ID,
                "right": self.right_info.frame_id or DEFAULT_RIGHT_FRAME_ID,
            },
            "has_masks": bool(self._has_masks),
            "annotation_arrays": list(keys),
            "num_vertices": self._num_vertices,
            **self._meta,
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
        }
        text = json.dumps(meta, indent=2, sort_keys=False) + "\n"
        _atomic_write_bytes(self.path / META_FILE, lambda f: f.write(text.encode("utf-8")))
        self._closed = True
        self._annotations.clear()
        return self.path

    def __enter__(self) -> StereoSetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # On an exception the split is left without meta.json, i.e. unreadable, on purpose.
        if exc_type is None:
            self.close()
        else:
            self._closed = True


class StereoSetReader:
    """Random access to a synthetic stereo split written by :class:`StereoSetWriter`.

    Ground truth is optional: when ``annotations.npz`` is absent, holds none of the ground
    truth arrays, or ``load_ground_truth`` is False (the file is then never opened), samples
    carry None in every ground-truth field and :attr:`has_ground_truth` is False.

    Args:
        path: split directory.
        load_ground_truth: read ``annotations.npz`` when present.

    Raises:
        DataError: ``meta.json`` is missing (an incomplete split) or invalid, a camera_info
            file is missing or invalid, or an annotation array has the wrong length or shape.
    """

    def __init__(self, path: str | os.PathLike[str], *, load_ground_truth: bool = True) -> None:
        self.path = Path(path)
        self.meta = self._read_meta()
        self.count: int = self.meta["count"]
        frame_ids = self.meta.get("frame_ids") or {}
        self.left_info = self._read_info("left.yaml", frame_ids.get("left", ""))
        self.right_info = self._read_info("right.yaml", frame_ids.get("right", ""))
        if (self.left_info.width, self.left_info.height) != (
            self.right_info.width,
            self.right_info.height,
        ):
            raise DataError(
                f"stereo set {self.path} expected equal sizes in left.yaml and right.yaml; got "
                f"{self.left_info.width}x{self.left_info.height} and "
                f"{self.right_info.width}x{self.right_info.height}"
            )
        self.has_masks: bool = bool(self.meta.get("has_masks", False))
        self._annotations: dict[str, np.ndarray] = (
            self._read_annotations() if load_ground_truth else {}
        )

    def _read_meta(self) -> dict[str, Any]:
        meta_path = self.path / META_FILE
        if not self.path.is_dir():
            raise DataError(f"expected a stereo set directory; got no directory at {self.path}")
        if not meta_path.is_file():
            raise DataError(
                f"expected {meta_path} (a complete stereo set); got no such file "
                f"(not a stereo set, or its writing was interrupted)"
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"could not read {meta_path}: {err}") from None
        if not isinstance(meta, dict) or meta.get("format") != STEREO_SET_FORMAT:
            got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise DataError(f"{meta_path} expected format '{STEREO_SET_FORMAT}'; got {got!r}")
        version = meta.get("format_version")
        if not isinstance(version, int) or version > STEREO_SET_FORMAT_VERSION:
            raise DataError(
                f"{meta_path} expected format_version <= {STEREO_SET_FORMAT_VERSION}; "
                f"got {version!r}"
            )
        count = meta.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise DataError(f"{meta_path} expected a non-negative integer 'count'; got {count!r}")
        return meta

    def _read_info(self, name: str, frame_id: str) -> CameraInfoFields:
        try:
            return read_camera_info_yaml(self.path / name, frame_id=frame_id)
        except CameraInfoError as err:
            raise DataError(str(err)) from None

    def _read_annotations(self) -> dict[str, np.ndarray]:
        npz_path = self.path / ANNOTATIONS_FILE
        if not npz_path.is_file():
            return {}
        try:
            with np.load(npz_path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files if k in _ANNOTATION_SPECS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise DataError(f"could not read {npz_path} (truncated or corrupt): {err}") from None
        num_vertices: int | None = None
        for key, arr in arrays.items():
            per_frame, _ = _ANNOTATION_SPECS[key]
            if arr.shape[:1] != (self.count,) or not _check_frame_shape(arr.shape[1:], per_frame):
                raise DataError(
                    f"{npz_path} array '{key}' expected shape ({self.count}, "
                    f"{_spec_str(per_frame)[1:]}; got {arr.shape}"
                )
            if "V" in per_frame:
                if num_vertices is not None and arr.shape[1] != num_vertices:
                    raise DataError(
                        f"{npz_path} array '{key}' expected {num_vertices} vertices; "
                        f"got {arr.shape[1]}"
                    )
                num_vertices = arr.shape[1]
        return arrays

    @property
    def has_ground_truth(self) -> bool:
        """True when ground-truth arrays were loaded from ``annotations.npz``."""
        return bool(self._annotations)

    @property
    def ground_truth_fields(self) -> tuple[str, ...]:
        """Names of the ground-truth arrays loaded (a subset of GROUND_TRUTH_FIELDS)."""
        return tuple(k for k in GROUND_TRUTH_FIELDS if k in self._annotations)

    def ground_truth_array(self, name: str) -> np.ndarray | None:
        """All frames of one ground-truth array (e.g. ``joints`` (N, 21, 3) m), or None.

        Positions and pixels come as float64, visibility as bool.
        """
        if name not in _ANNOTATION_SPECS:
            raise ConfigError(
                f"ground truth name expected one of {GROUND_TRUTH_FIELDS}; got {name!r}"
            )
        arr = self._annotations.get(name)
        if arr is None:
            return None
        return arr if arr.dtype == np.bool_ else arr.astype(np.float64)

    def __len__(self) -> int:
        return self.count

    def _image(self, sub: str, index: int, mask: bool = False) -> np.ndarray:
        path = self.path / sub / frame_file_name(index)
        image = read_mask(path) if mask else read_image_rgb(path)
        want = (self.left_info.height, self.left_info.width)
        if image.shape[:2] != want:
            raise DataError(
                f"image {path} expected {want[1]}x{want[0]} (the camera_info size); got "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        return image

    def __getitem__(self, index: int) -> StereoSample:
        """Load frame ``index`` (negative indices count from the end).

        Raises:
            IndexError: ``index`` is out of range.
            DataError: an image is missing, truncated, corrupt or of the wrong size.
        """
        index = int(index)
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(f"stereo set index expected in [0, {self.count}); got {index}")
        gt: dict[str, np.ndarray | None] = {}
        for key in GROUND_TRUTH_FIELDS:
            arr = self._annotations.get(key)
            if arr is None:
                gt[key] = None
            else:
                gt[key] = arr[index] if arr.dtype == np.bool_ else arr[index].astype(np.float64)
        return StereoSample(
            left=self._image("left", index),
            right=self._image("right", index),
            left_info=self.left_info,
            right_info=self.right_info,
            index=index,
            mask_left=self._image("mask_left", index, mask=True) if self.has_masks else None,
            mask_right=self._image("mask_right", index, mask=True) if self.has_masks else None,
            **gt,
        )

    def __iter__(self) -> Iterator[StereoSample]:
        for index in range(self.count):
            yield self[index]
