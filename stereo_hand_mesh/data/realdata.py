"""Real rectified stereo recordings in a plain folder, with optional 3D joint labels.

The format (``docs/data_format.md``, "Real stereo folder") is what a user writes from their own
camera, and what the evaluation sets of the project use::

    <folder>/
      left.yaml            camera_info of the left camera (camera_calibration_parsers YAML)
      right.yaml           camera_info of the right camera; P[0, 3] = -fx * baseline
      left/000000.png      rectified left image of frame 0 (any 8-bit PNG)
      right/000000.png     rectified right image of the same frame
      gt.npz               optional: 3D joint labels (see below)

A frame is a number; its images are ``left/<frame>.png`` and ``right/<frame>.png`` (the
digits zero-padded, usually to six). Every left image needs its right image and vice versa.

``gt.npz`` (numpy, no pickles) holds, for M labelled frames:

- ``frames`` (M,) int: the frame numbers;
- ``joints_m`` (M, 21, 3) float: joints in metres in the rectified left optical frame, in our
  joint order, NaN where a joint is not labelled; or (M, H, 21, 3) for frames with up to H
  hands (a hand absent from a frame: all its joints NaN);
- ``inside`` (M,) bool: the hand is wholly inside both images (the frames to score); (M, H)
  with several hands (per hand);
- optional ``hand_sides`` (H,) str, ``"right"`` or ``"left"``: each hand slot's side (an
  evaluation then compares every labelled hand with the estimate of its side; without it, a
  single hand is compared with the most confident estimate);
- ``joint_names`` (21,) str: the joint order, which must be ours
  (:data:`~stereo_hand_mesh.hand.joints.JOINT_NAMES`);
- optional per-frame arrays with M rows (``n_views``, ``reproj_px``, ``uv_left``,
  ``uv_right``, ``labels_left``, ``labels_right``, ``labelled_in_pair``), optional ``width``
  and ``height`` (checked against the camera_info), and a free-text ``doc``.

Frames with images but no row in ``gt.npz`` are unlabelled; a row whose images are missing
is an error.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stereo_hand_mesh.data.camera_info_yaml import (
    DEFAULT_LEFT_FRAME_ID,
    DEFAULT_RIGHT_FRAME_ID,
    read_camera_info_yaml,
)
from stereo_hand_mesh.data.image_io import read_image_rgb
from stereo_hand_mesh.data.sample import StereoSample
from stereo_hand_mesh.errors import CameraInfoError, DataError
from stereo_hand_mesh.geometry.camera import StereoRig
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields
from stereo_hand_mesh.hand.joints import JOINT_NAMES, NUM_JOINTS

__all__ = [
    "REAL_LABELS_FILE",
    "RealStereoFolder",
    "RealStereoLabels",
    "is_real_stereo_folder",
    "read_real_stereo_labels",
    "write_real_stereo_folder",
]

REAL_LABELS_FILE = "gt.npz"

_FRAME_NAME = re.compile(r"(\d+)\.png")
#: Optional gt.npz arrays with one row per labelled frame (checked for their length only).
_OPTIONAL_PER_FRAME = (
    "n_views",
    "reproj_px",
    "uv_left",
    "uv_right",
    "labels_left",
    "labels_right",
    "labelled_in_pair",
)
#: Files or folders only a synthetic split (stereo_set.py) has; a folder holding one is no
#: real stereo folder, even when its meta.json is missing (an interrupted write).
_SYNTHETIC_MARKS = ("meta.json", "annotations.npz", "mask_left", "mask_right")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_real_stereo_folder(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` looks like a real stereo folder: ``left/`` and ``right/`` image
    folders beside ``left.yaml``, ``right.yaml`` or ``gt.npz``, and nothing of a synthetic
    split (``meta.json``, ``annotations.npz``, mask folders).

    Only the layout is looked at; :meth:`RealStereoFolder.open` checks the content.
    """
    path = Path(path)
    if not ((path / "left").is_dir() and (path / "right").is_dir()):
        return False
    if any((path / mark).exists() for mark in _SYNTHETIC_MARKS):
        return False
    return any((path / name).is_file() for name in ("left.yaml", "right.yaml", REAL_LABELS_FILE))


@dataclass(frozen=True, eq=False)
class RealStereoLabels:
    """The 3D joint labels of a real stereo folder (its ``gt.npz``).

    Attributes:
        frames: (M,) int64 frame numbers, unique.
        hands_m: (M, H, 21, 3) float64 joints of up to H hands per frame in metres,
            rectified left optical frame, our joint order; NaN where a joint has no label
            (all NaN: the hand is not in the frame). H is 1 for a ``(M, 21, 3)`` file.
        hands_inside: (M, H) bool, True where the hand is wholly inside both images.
        source: the file they came from.
        image_size: (width, height) in pixels the labels were made for, or None when the
            file does not say.
        hand_sides: (H,) each hand slot's side, ``"right"`` or ``"left"``, or ``""`` where
            the file does not say.
    """

    frames: np.ndarray
    hands_m: np.ndarray
    hands_inside: np.ndarray
    source: Path
    image_size: tuple[int, int] | None = None
    hand_sides: tuple[str, ...] = ("",)

    @property
    def joints_m(self) -> np.ndarray:
        """(M, 21, 3) the first hand slot's joints (the only one in a one-hand file)."""
        return self.hands_m[:, 0]

    @property
    def inside(self) -> np.ndarray:
        """(M,) True where every labelled hand of the frame is wholly inside both images."""
        labelled = np.isfinite(self.hands_m).any(axis=(2, 3))
        return (self.hands_inside | ~labelled).all(axis=1) & labelled.any(axis=1)

    def row(self, frame: int) -> int | None:
        """Row of ``frame`` in the arrays, or None when it is not labelled."""
        hits = np.flatnonzero(self.frames == frame)
        return int(hits[0]) if hits.size else None


def _array(data: dict[str, np.ndarray], key: str, path: Path) -> np.ndarray:
    if key not in data:
        raise DataError(f"{path} expected an array '{key}'; got arrays {sorted(data)}")
    return data[key]


def read_real_stereo_labels(path: str | os.PathLike[str]) -> RealStereoLabels:
    """Read and check a ``gt.npz`` of the real stereo folder format (module docstring).

    Args:
        path: the ``gt.npz`` file.

    Returns:
        The labels.

    Raises:
        DataError: the file is missing or unreadable, an array is missing or has the wrong
            shape, the arrays disagree in length, frames repeat, the joint order is not ours,
            or a joint holds inf.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise DataError(f"expected a labels file {path}; got no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"could not read labels {path} (a numpy .npz expected): {err}") from None
    frames = _array(data, "frames", path)
    joints = _array(data, "joints_m", path)
    inside = _array(data, "inside", path)
    names = _array(data, "joint_names", path)
    if frames.ndim != 1 or not np.issubdtype(frames.dtype, np.integer):
        raise DataError(
            f"{path} 'frames' expected a 1-D integer array; got {frames.dtype} {frames.shape}"
        )
    count = frames.shape[0]
    one_hand = joints.shape == (count, NUM_JOINTS, 3)
    several = joints.ndim == 4 and joints.shape[0] == count and joints.shape[2:] == (NUM_JOINTS, 3)
    if not (one_hand or several) or not np.issubdtype(joints.dtype, np.floating):
        raise DataError(
            f"{path} 'joints_m' expected float shape ({count}, {NUM_JOINTS}, 3) (one row per "
            f"entry of 'frames'), or ({count}, H, {NUM_JOINTS}, 3) for up to H hands per "
            f"frame; got {joints.dtype} {joints.shape}"
        )
    hands = joints[:, None] if one_hand else joints
    n_hands = hands.shape[1]
    if n_hands < 1:
        raise DataError(
            f"{path} 'joints_m' expected at least one hand slot; got shape (.., 0, ..)"
        )
    want_inside = (count,) if one_hand else (count, n_hands)
    if inside.shape != want_inside or inside.dtype != np.bool_:
        raise DataError(
            f"{path} 'inside' expected bool shape {want_inside} (one per entry of 'frames'"
            f"{'' if one_hand else ' and hand'}); got {inside.dtype} {inside.shape}"
        )
    sides: tuple[str, ...] = ("",) * n_hands
    if "hand_sides" in data:
        got_sides = tuple(str(v) for v in np.asarray(data["hand_sides"]).reshape(-1))
        if len(got_sides) != n_hands or not set(got_sides) <= {"right", "left"}:
            raise DataError(
                f"{path} 'hand_sides' expected {n_hands} of 'right' / 'left' (one per hand "
                f"slot of 'joints_m'); got {list(got_sides)}"
            )
        sides = got_sides
    for key in _OPTIONAL_PER_FRAME:
        if key in data and (data[key].ndim == 0 or data[key].shape[0] != count):
            raise DataError(
                f"{path} '{key}' expected {count} rows (one per entry of 'frames'); got shape "
                f"{data[key].shape}"
            )
    got_names = tuple(str(n) for n in np.asarray(names).reshape(-1))
    if got_names != JOINT_NAMES:
        first = next(
            (i for i, (a, b) in enumerate(zip(JOINT_NAMES, got_names)) if a != b),
            min(len(got_names), NUM_JOINTS),
        )
        raise DataError(
            f"{path} 'joint_names' expected our joint order {list(JOINT_NAMES)}; got "
            f"{list(got_names)} (first difference at index {first})"
        )
    unique, counts = np.unique(frames, return_counts=True)
    if (counts > 1).any():
        raise DataError(
            f"{path} 'frames' expected unique frame numbers; got repeats {unique[counts > 1]}"
        )
    if np.isinf(joints).any():
        raise DataError(f"{path} 'joints_m' expected finite values or NaN (unlabelled); got inf")
    image_size = None
    if "width" in data and "height" in data:
        if data["width"].size != 1 or data["height"].size != 1:
            raise DataError(
                f"{path} 'width' and 'height' expected one integer each; got shapes "
                f"{data['width'].shape} and {data['height'].shape}"
            )
        image_size = (int(data["width"].item()), int(data["height"].item()))
    return RealStereoLabels(
        frames=frames.astype(np.int64),
        hands_m=hands.astype(np.float64),
        hands_inside=inside.reshape(count, n_hands).copy(),
        source=path,
        image_size=image_size,
        hand_sides=sides,
    )


def _png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, or None when the file is no PNG (the decoder
    then says what is wrong with it)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(24)
    except OSError as err:
        raise DataError(f"could not read image {path}: {err.strerror}") from None
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _frame_files(folder: Path, side: str) -> dict[int, Path]:
    """Frame number -> image file of one side's folder."""
    images = folder / side
    if not images.is_dir():
        raise DataError(f"real stereo folder {folder} expected a folder {images}; got none")
    files: dict[int, Path] = {}
    for item in sorted(images.iterdir()):
        if item.name.startswith(".") or item.suffix.lower() != ".png":
            continue
        match = _FRAME_NAME.fullmatch(item.name)
        if match is None:
            raise DataError(
                f"image {item} expected a frame-number name like 000012.png; got {item.name}"
            )
        frame = int(match.group(1))
        if frame in files:
            raise DataError(
                f"frame {frame} expected one image in {images}; got {files[frame].name} and "
                f"{item.name}"
            )
        files[frame] = item
    return files


def _read_info(folder: Path, name: str, frame_id: str) -> CameraInfoFields:
    path = folder / name
    if not path.is_file():
        raise CameraInfoError(
            f"real stereo folder {folder} expected the camera_info file {path}; got none"
        )
    info = read_camera_info_yaml(path, frame_id=frame_id)
    try:
        info.validate()
    except CameraInfoError as err:
        raise CameraInfoError(f"{path}: {err}") from None
    return info


@dataclass(frozen=True, eq=False)
class RealStereoFolder:
    """A real stereo folder, opened and checked (see the module docstring).

    Open one with :meth:`open`. Frames are addressed by their number (the image file name),
    not by their position in :attr:`frames`.

    Attributes:
        path: the folder.
        left_info: camera_info of the left camera (``left.yaml``).
        right_info: camera_info of the right camera (``right.yaml``).
        rig: the rectified rig built from them.
        frames: the frame numbers with both images, increasing.
        labels: the labels of ``gt.npz``, or None when the folder has none.

    Examples:
        >>> folder = RealStereoFolder.open("../shared/realdata/tabletop_a")  # doctest: +SKIP
        >>> left, right = folder.read_pair(folder.frames[0])  # doctest: +SKIP
    """

    path: Path
    left_info: CameraInfoFields
    right_info: CameraInfoFields
    rig: StereoRig
    frames: tuple[int, ...]
    labels: RealStereoLabels | None
    _left_files: dict[int, Path] = field(repr=False)
    _right_files: dict[int, Path] = field(repr=False)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        left_frame_id: str = DEFAULT_LEFT_FRAME_ID,
        right_frame_id: str = DEFAULT_RIGHT_FRAME_ID,
        load_labels: bool = True,
    ) -> RealStereoFolder:
        """Open a folder and check it: camera_info, image pairs, image sizes, labels.

        Image sizes are read from the PNG headers here (decoding waits for
        :meth:`read_pair`).

        Args:
            path: the folder.
            left_frame_id: frame_id given to the left camera_info (the YAML has none).
            right_frame_id: frame_id given to the right camera_info.
            load_labels: False never opens ``gt.npz`` (label-free use such as adaptation).

        Raises:
            DataError: the folder or an image folder is missing, no frame has both images,
                a left image has no right image (or the reverse), an image's size differs
                from its camera_info, or ``gt.npz`` is invalid or labels a frame without
                images.
            CameraInfoError: ``left.yaml`` or ``right.yaml`` is missing or invalid (NaN,
                no baseline, sizes that differ); the message names the file.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise DataError(f"expected a real stereo folder at {folder}; got no folder there")
        left_info = _read_info(folder, "left.yaml", left_frame_id)
        right_info = _read_info(folder, "right.yaml", right_frame_id)
        try:
            rig = StereoRig.from_camera_info(left_info, right_info)
        except CameraInfoError as err:
            raise CameraInfoError(
                f"{folder / 'left.yaml'} and {folder / 'right.yaml'}: {err}"
            ) from None
        left_files = _frame_files(folder, "left")
        right_files = _frame_files(folder, "right")
        for have, lack, files, other in (
            ("left", "right", left_files, right_files),
            ("right", "left", right_files, left_files),
        ):
            alone = sorted(set(files) - set(other))
            if alone:
                first = files[alone[0]]
                raise DataError(
                    f"{first} expected its {lack} image {folder / lack / first.name}; got no "
                    f"such file ({len(alone)} {have} image(s) without a {lack} one)"
                )
        if not left_files:
            raise DataError(
                f"real stereo folder {folder} expected at least one image pair in left/ and "
                "right/ (NNNNNN.png); got none"
            )
        size = (left_info.width, left_info.height)
        for frame in sorted(left_files):
            for name, files in (("left.yaml", left_files), ("right.yaml", right_files)):
                got = _png_size(files[frame])
                if got is not None and got != size:
                    raise DataError(
                        f"image {files[frame]} expected {size[0]}x{size[1]} (the size in "
                        f"{folder / name}); got {got[0]}x{got[1]}"
                    )
        labels = None
        if load_labels and (folder / REAL_LABELS_FILE).exists():
            labels = read_real_stereo_labels(folder / REAL_LABELS_FILE)
            if labels.image_size is not None and labels.image_size != size:
                raise DataError(
                    f"{labels.source} expected labels for {size[0]}x{size[1]} images (the size "
                    f"in {folder / 'left.yaml'}); got width x height {labels.image_size[0]}x"
                    f"{labels.image_size[1]}"
                )
            orphans = sorted(set(labels.frames.tolist()) - set(left_files))
            if orphans:
                raise DataError(
                    f"{labels.source} labels frame {orphans[0]}: expected its images in "
                    f"{folder / 'left'} and {folder / 'right'}; got none ({len(orphans)} "
                    "labelled frame(s) without images)"
                )
        return cls(
            path=folder,
            left_info=left_info,
            right_info=right_info,
            rig=rig,
            frames=tuple(sorted(left_files)),
            labels=labels,
            _left_files=left_files,
            _right_files=right_files,
        )

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def has_labels(self) -> bool:
        """True when the folder has a ``gt.npz`` (and it was loaded)."""
        return self.labels is not None

    def _labels_row(self, frame: int) -> tuple[RealStereoLabels | None, int | None]:
        """(the labels, the frame's row in them or None); DataError for no such frame."""
        self._check_frame(frame)
        return self.labels, None if self.labels is None else self.labels.row(frame)

    def _check_frame(self, frame: int) -> None:
        if frame not in self._left_files:
            raise DataError(
                f"real stereo folder {self.path} expected a frame number from "
                f"{self.frames[0]}..{self.frames[-1]} with images; got {frame}"
            )

    def image_paths(self, frame: int) -> tuple[Path, Path]:
        """(left, right) image files of ``frame``.

        Raises:
            DataError: the folder has no such frame.
        """
        self._check_frame(frame)
        return self._left_files[frame], self._right_files[frame]

    def read_pair(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """The two images of ``frame``.

        Returns:
            (left, right), each (H, W, 3) uint8 RGB with H, W of the camera_info.

        Raises:
            DataError: no such frame, an image is unreadable, or its size differs from the
                camera_info.
        """
        pair = []
        for path, name in zip(self.image_paths(frame), ("left.yaml", "right.yaml")):
            image = read_image_rgb(path)
            if image.shape[:2] != (self.left_info.height, self.left_info.width):
                raise DataError(
                    f"image {path} expected {self.left_info.width}x{self.left_info.height} (the "
                    f"size in {self.path / name}); got {image.shape[1]}x{image.shape[0]}"
                )
            pair.append(image)
        return pair[0], pair[1]

    def joints_m(self, frame: int) -> np.ndarray | None:
        """(21, 3) labelled joints of ``frame`` in metres (rectified left optical frame, our
        order, NaN where a joint has no label), or None when the frame is unlabelled.

        Raises:
            DataError: the folder has no such frame.
        """
        labels, row = self._labels_row(frame)
        return None if labels is None or row is None else labels.joints_m[row].copy()

    @property
    def hand_sides(self) -> tuple[str, ...]:
        """Each labelled hand slot's side (``"right"``, ``"left"``, or ``""`` unknown); one
        unknown slot without labels."""
        return ("",) if self.labels is None else self.labels.hand_sides

    def hands_m(self, frame: int) -> np.ndarray | None:
        """(H, 21, 3) the labelled joints of every hand slot of ``frame`` (metres; all NaN
        where that hand is absent), or None when the frame is unlabelled.

        Raises:
            DataError: the folder has no such frame.
        """
        labels, row = self._labels_row(frame)
        return None if labels is None or row is None else labels.hands_m[row].copy()

    def hands_inside(self, frame: int) -> np.ndarray | None:
        """(H,) whether each hand slot of ``frame`` is wholly inside both images, or None
        when the frame is unlabelled.

        Raises:
            DataError: the folder has no such frame.
        """
        labels, row = self._labels_row(frame)
        return None if labels is None or row is None else labels.hands_inside[row].copy()

    def inside(self, frame: int) -> bool | None:
        """Whether every labelled hand of ``frame`` is wholly inside both images (the frames
        to score); None when the frame is unlabelled.

        Raises:
            DataError: the folder has no such frame.
        """
        labels, row = self._labels_row(frame)
        return None if labels is None or row is None else bool(labels.inside[row])

    def read_sample(self, frame: int, *, load_ground_truth: bool = True) -> StereoSample:
        """``frame`` as a :class:`StereoSample` (``index`` = the frame number, no stamp).

        Its ``joints`` are set only when every joint of the frame is labelled (a sample's
        joints are complete); read partial labels with :meth:`joints_m`.
        """
        left, right = self.read_pair(frame)
        joints = self.joints_m(frame) if load_ground_truth else None
        if joints is not None and not np.isfinite(joints).all():
            joints = None
        return StereoSample(
            left=left,
            right=right,
            left_info=self.left_info,
            right_info=self.right_info,
            index=frame,
            joints=joints,
        )

    def iter_samples(self, *, load_ground_truth: bool = True) -> Iterator[StereoSample]:
        """Every frame in order as :meth:`read_sample` gives it."""
        for frame in self.frames:
            yield self.read_sample(frame, load_ground_truth=load_ground_truth)


def write_real_stereo_folder(
    path: str | os.PathLike[str],
    left_info: CameraInfoFields,
    right_info: CameraInfoFields,
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    hands_m: np.ndarray | None = None,
    hand_sides: Sequence[str] | None = None,
    doc: str = "",
) -> Path:
    """Write rectified stereo pairs (and optional 3D labels of one or more hands per frame)
    as a real stereo folder (module docstring), the format :meth:`RealStereoFolder.open`
    reads: e.g. a simulated sequence scored exactly as real recordings are.

    A hand is ``inside`` a frame when all its labelled joints project inside both images.

    Args:
        path: the folder to create (must not exist).
        left_info: left camera_info (``left.yaml``).
        right_info: right camera_info (``right.yaml``).
        pairs: (left, right) (H, W, 3) uint8 RGB images of frames 0, 1, ...
        hands_m: (M, H, 21, 3) joints in metres of the M first frames (NaN: no label; all NaN:
            the hand is absent), or None for no ``gt.npz``.
        hand_sides: (H,) ``"right"`` / ``"left"`` per hand slot, or None.
        doc: a sentence for the labels' ``doc`` (where they come from).

    Returns:
        The folder.

    Raises:
        DataError: ``path`` exists, or an image does not have the camera_info's size, or the
            labels have the wrong shape or are more than the frames.
    """
    from stereo_hand_mesh.data.camera_info_yaml import write_camera_info_yaml
    from stereo_hand_mesh.data.image_io import write_image_png

    folder = Path(path)
    if folder.exists():
        raise DataError(f"expected a new folder at {folder}; got an existing path")
    rig = StereoRig.from_camera_info(left_info, right_info)
    tmp = folder.with_name(folder.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    for side in ("left", "right"):
        (tmp / side).mkdir(parents=True)
    write_camera_info_yaml(tmp / "left.yaml", left_info)
    write_camera_info_yaml(tmp / "right.yaml", right_info)
    size = (left_info.height, left_info.width)
    count = 0
    for frame, (left, right) in enumerate(pairs):
        for side, image in (("left", left), ("right", right)):
            if image.shape[:2] != size:
                raise DataError(
                    f"frame {frame} {side} image expected {size[1]}x{size[0]} (the camera_info); "
                    f"got {image.shape[1]}x{image.shape[0]}"
                )
            write_image_png(tmp / side / f"{frame:06d}.png", image)
        count += 1
    if hands_m is not None:
        hands = np.asarray(hands_m, dtype=np.float64)
        if hands.ndim != 4 or hands.shape[2:] != (NUM_JOINTS, 3) or hands.shape[0] > count:
            raise DataError(
                f"hands_m expected shape (M <= {count} frames, H, {NUM_JOINTS}, 3); got "
                f"{hands.shape}"
            )
        labelled = np.isfinite(hands).all(axis=-1)  # (M, H, 21)
        safe = np.where(labelled[..., None], hands, 1.0)
        ok = np.ones(labelled.shape, dtype=bool)
        for project in (rig.project_left, rig.project_right):
            uv = project(safe.reshape(-1, 3)).reshape(*labelled.shape, 2)
            ok &= (uv >= 0).all(-1) & (uv[..., 0] < size[1]) & (uv[..., 1] < size[0])
        inside = ((ok | ~labelled) & (safe[..., 2] > 0)).all(-1) & labelled.any(-1)
        arrays = {
            "frames": np.arange(hands.shape[0], dtype=np.int64),
            "joints_m": hands,
            "inside": inside,
            "joint_names": np.asarray(JOINT_NAMES),
            "width": np.asarray(left_info.width),
            "height": np.asarray(left_info.height),
            "doc": np.asarray(
                (doc + " " if doc else "")
                + "frames (M,); joints_m (M, H, 21, 3) metres, left optical frame, NaN = no "
                "label; inside (M, H): every labelled joint projects inside both images"
            ),
        }
        if hand_sides is not None:
            arrays["hand_sides"] = np.asarray(list(hand_sides))
        np.savez(tmp / REAL_LABELS_FILE, **arrays)
    RealStereoFolder.open(tmp)  # what was written reads back (else no folder appears)
    os.replace(tmp, folder)
    return folder
