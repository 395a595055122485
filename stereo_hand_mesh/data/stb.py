"""STB (Stereo Hand Pose Tracking Benchmark) reader: Bumblebee2 stereo pairs with 3D joints.

Layout of an STB root::

    <root>/images/<sequence>/BB_left_<i>.png    640x480 RGB, i = 0 .. F-1
    <root>/images/<sequence>/BB_right_<i>.png
    <root>/labels/<sequence>_BB.mat             variable handPara, shape (3, 21, F)

``handPara`` holds millimetres in the left camera frame, in STB's joint order (palm center,
then little, ring, middle, index, thumb, each mcp, pip, dip, tip). The reader gives metres,
both in our order (``joints``, wrist extrapolated as ``2 * palm - middle_mcp``) and in STB's
order (``joints_stb_order``, palm center kept, for evaluation in the STB convention). The rig
is :data:`~stereo_hand_mesh.data.camera_info_yaml.STB_BUMBLEBEE2` (the right camera 120.054 mm
to the +x side of the left). STB hands are left hands.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from stereo_hand_mesh.data.camera_info_yaml import (
    DEFAULT_LEFT_FRAME_ID,
    DEFAULT_RIGHT_FRAME_ID,
    STB_BUMBLEBEE2,
)
from stereo_hand_mesh.data.image_io import read_image_rgb
from stereo_hand_mesh.data.sample import StereoSample
from stereo_hand_mesh.errors import DataError
from stereo_hand_mesh.geometry.camera_info import CameraInfoFields
from stereo_hand_mesh.hand.joints import NUM_JOINTS, joints_ours_from_stb

__all__ = [
    "STB_SEQUENCES",
    "STB_TEST_SEQUENCES",
    "STB_TRAIN_SEQUENCES",
    "STBReader",
    "read_stb_labels",
]

#: The twelve STB sequences with Bumblebee2 (BB) images.
STB_SEQUENCES: tuple[str, ...] = tuple(
    f"B{i}{kind}" for i in range(1, 7) for kind in ("Counting", "Random")
)
#: The usual evaluation split (Zimmermann & Brox 2017 and followers).
STB_TEST_SEQUENCES: tuple[str, ...] = ("B1Counting", "B1Random")
STB_TRAIN_SEQUENCES: tuple[str, ...] = tuple(
    s for s in STB_SEQUENCES if s not in STB_TEST_SEQUENCES
)

_LABEL_VARIABLE = "handPara"


def read_stb_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one STB label file.

    Args:
        path: ``<sequence>_BB.mat``.

    Returns:
        (F, 21, 3) float64 joints in metres, left camera frame, STB order.

    Raises:
        DataError: the file is missing or not a readable MATLAB file, has no ``handPara``
            variable, or ``handPara`` is not (3, 21, F).
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataError(f"expected STB label file {path}; got no such file")
    try:
        contents = scipy.io.loadmat(str(path))
    except NotImplementedError:
        raise DataError(
            f"could not read STB label file {path}: MATLAB v7.3 (HDF5) files are not supported"
        ) from None
    except Exception as err:  # scipy raises ValueError, TypeError, OSError... on bad files
        raise DataError(
            f"could not read STB label file {path} (truncated or corrupt): {err}"
        ) from None
    if _LABEL_VARIABLE not in contents:
        names = sorted(k for k in contents if not k.startswith("__"))
        raise DataError(
            f"STB label file {path} expected variable '{_LABEL_VARIABLE}'; got variables {names}"
        )
    para = np.asarray(contents[_LABEL_VARIABLE])
    if (
        para.ndim != 3
        or para.shape[:2] != (3, NUM_JOINTS)
        or not np.issubdtype(para.dtype, np.number)
    ):
        raise DataError(
            f"STB label file {path} expected '{_LABEL_VARIABLE}' of shape (3, 21, F); "
            f"got {para.shape} of {para.dtype}"
        )
    return np.ascontiguousarray(para.transpose(2, 1, 0), dtype=np.float64) / 1000.0


def _project(joints: np.ndarray, P: np.ndarray) -> np.ndarray:
    """(J, 3) metres -> (J, 2) pixels through a (3, 4) projection matrix."""
    homog = joints @ P[:, :3].T + P[:, 3]
    return homog[:, :2] / homog[:, 2:3]


class STBReader:
    """Stereo samples of STB sequences (Bumblebee2 pairs), ground truth included.

    Samples are numbered sequence after sequence in the order given; :meth:`locate` maps an
    index back to (sequence, frame).

    Args:
        root: STB root directory (holding ``images/`` and ``labels/``).
        sequences: sequence names, e.g. :data:`STB_TEST_SEQUENCES`; None = every sequence
            with a ``labels/<sequence>_BB.mat`` file, sorted by name.
        left_frame_id: frame_id of the left camera_info.
        right_frame_id: frame_id of the right camera_info.

    Raises:
        DataError: no label file is found, a label file is missing, unreadable or lacks
            ``handPara``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        sequences: Sequence[str] | None = None,
        *,
        left_frame_id: str = DEFAULT_LEFT_FRAME_ID,
        right_frame_id: str = DEFAULT_RIGHT_FRAME_ID,
    ) -> None:
        self.root = Path(root)
        labels_dir = self.root / "labels"
        if sequences is None:
            if not labels_dir.is_dir():
                raise DataError(f"expected STB label directory {labels_dir}; got none")
            sequences = sorted(p.name[: -len("_BB.mat")] for p in labels_dir.glob("*_BB.mat"))
            if not sequences:
                raise DataError(f"expected STB label files {labels_dir}/*_BB.mat; got none")
        self.sequences: tuple[str, ...] = tuple(sequences)
        self._labels = [read_stb_labels(labels_dir / f"{s}_BB.mat") for s in self.sequences]
        self._offsets = np.cumsum([0] + [len(lab) for lab in self._labels])
        self.left_info, self.right_info = STB_BUMBLEBEE2.camera_infos(
            left_frame_id=left_frame_id, right_frame_id=right_frame_id
        )

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def locate(self, index: int) -> tuple[str, int]:
        """(sequence name, frame number) of sample ``index``."""
        index = self._normalize(index)
        seq = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return self.sequences[seq], index - int(self._offsets[seq])

    def _normalize(self, index: int) -> int:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"STB index expected in [0, {len(self)}); got {index}")
        return index

    def _image(self, sequence: str, side: str, frame: int, info: CameraInfoFields) -> np.ndarray:
        path = self.root / "images" / sequence / f"BB_{side}_{frame}.png"
        image = read_image_rgb(path)
        if image.shape[:2] != (info.height, info.width):
            raise DataError(
                f"STB image {path} expected {info.width}x{info.height}; got "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        return image

    def joints_stb_order(self) -> np.ndarray:
        """(N, 21, 3) metres, STB order, all samples (no image is read)."""
        return np.concatenate(self._labels, axis=0)

    def __getitem__(self, index: int) -> StereoSample:
        """Load sample ``index``.

        Raises:
            IndexError: ``index`` is out of range.
            DataError: an image is missing, truncated, corrupt or not 640x480.
        """
        index = self._normalize(index)
        sequence, frame = self.locate(index)
        joints_stb = self._labels[self.sequences.index(sequence)][frame].copy()
        joints = joints_ours_from_stb(joints_stb)
        return StereoSample(
            left=self._image(sequence, "left", frame, self.left_info),
            right=self._image(sequence, "right", frame, self.right_info),
            left_info=self.left_info,
            right_info=self.right_info,
            index=index,
            joints=joints,
            uv_left=_project(joints, self.left_info.P),
            uv_right=_project(joints, self.right_info.P),
            joints_stb_order=joints_stb,
        )

    def __iter__(self) -> Iterator[StereoSample]:
        for index in range(len(self)):
            yield self[index]
