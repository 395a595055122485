"""One entry point for every stereo source the adapt and eval commands accept.

Sources: a synthetic split directory (meta.json), a rosbag2 bag (a directory with
metadata.yaml, or a .mcap / .db3 file), a recording session written by
:class:`~stereo_hand_mesh.data.recording.SplitBagRecorder` (a directory of ``split_NNNN``
bags), a recording root holding such sessions, or a real stereo folder
(:mod:`~stereo_hand_mesh.data.realdata`: ``left/``, ``right/``, ``left.yaml``, ``right.yaml``
and an optional ``gt.npz``).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from stereo_hand_mesh.data.bags import (
    DEFAULT_GT_TOPIC,
    DEFAULT_TOPICS,
    StereoTopics,
    is_rosbag2,
    read_stereo_bag,
)
from stereo_hand_mesh.data.realdata import RealStereoFolder, is_real_stereo_folder
from stereo_hand_mesh.data.recording.layout import (
    closed_splits,
    is_recording_session,
    partial_splits,
    recording_sessions,
)
from stereo_hand_mesh.data.sample import StereoSample
from stereo_hand_mesh.data.stereo_set import StereoSetReader, is_stereo_set
from stereo_hand_mesh.errors import ConfigError, DataError

__all__ = [
    "check_frame_slice",
    "frame_slice_text",
    "iter_stereo_samples",
    "parse_frame_slice",
    "select_frames",
    "stereo_source_kind",
]

_T = TypeVar("_T")
_FRAME_SLICE = re.compile(r"^\s*(\d*)\s*:\s*(\d*)\s*$")


def parse_frame_slice(text: str | None) -> slice | None:
    """The frame selection of a ``--frames START:STOP`` option.

    ``START`` and ``STOP`` are positions (0-based) in the source's order of pairs, ``STOP``
    excluded, as in a Python slice; either may be empty (``"38:"``: from the 39th pair on,
    ``":38"``: the first 38). An empty or None ``text`` selects everything (None).

    Raises:
        ConfigError: anything but ``START:STOP`` with non-negative integers, or
            ``STOP <= START``.

    Examples:
        >>> parse_frame_slice("0:38"), parse_frame_slice("38:")
        (slice(0, 38, None), slice(38, None, None))
    """
    if text is None or not str(text).strip():
        return None
    match = _FRAME_SLICE.match(str(text))
    if match is None:
        raise ConfigError(
            "frames expected START:STOP with non-negative integers, either side may be empty "
            f"(e.g. 0:38, 38:, :10); got {text!r}"
        )
    start, stop = (int(g) if g else None for g in match.groups())
    return check_frame_slice(slice(start, stop))


def check_frame_slice(frames: slice | None) -> slice | None:
    """Validate a frame selection (see :func:`parse_frame_slice`); returns it.

    Raises:
        ConfigError: not a slice or None, a negative or non-integer bound, a step other than
            1, or ``stop <= start``.
    """
    if frames is None:
        return None
    if not isinstance(frames, slice):
        raise ConfigError(f"frames expected a slice or None; got {type(frames).__name__}")
    for name in ("start", "stop"):
        value = getattr(frames, name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise ConfigError(
                f"frames.{name} expected a non-negative integer or None; got {value!r}"
            )
    if frames.step not in (None, 1):
        raise ConfigError(f"frames.step expected None or 1; got {frames.step!r}")
    if frames.start is not None and frames.stop is not None and frames.stop <= frames.start:
        raise ConfigError(
            f"frames expected STOP > START; got {frames.start}:{frames.stop} (no frame)"
        )
    return frames


def frame_slice_text(frames: slice | None) -> str | None:
    """``"START:STOP"`` of a selection (a side empty when open; :func:`parse_frame_slice`
    reads it back), None for None."""
    frames = check_frame_slice(frames)
    if frames is None:
        return None
    start = "" if frames.start is None else str(frames.start)
    return start + ":" + ("" if frames.stop is None else str(frames.stop))


def select_frames(items: Sequence[_T], frames: slice | None) -> list[_T]:
    """The items of a sequence that a frame selection keeps (positions, see
    :func:`parse_frame_slice`); all of them for None."""
    frames = check_frame_slice(frames)
    return list(items) if frames is None else list(items[frames])


def stereo_source_kind(path: str | os.PathLike[str]) -> str:
    """What ``path`` holds: ``"stereo_set"``, ``"rosbag2"``, ``"rosbag2_recording"`` (one
    recording session: a directory of ``split_NNNN`` bags), ``"rosbag2_recordings"`` (a
    recording root: a directory of sessions) or ``"real_stereo_folder"`` (see
    :func:`~stereo_hand_mesh.data.realdata.is_real_stereo_folder`).

    Raises:
        DataError: ``path`` is none of these.
    """
    path = Path(path)
    if is_stereo_set(path):
        return "stereo_set"
    if is_rosbag2(path):
        return "rosbag2"
    if is_recording_session(path):
        return "rosbag2_recording"
    if recording_sessions(path):
        return "rosbag2_recordings"
    if is_real_stereo_folder(path):
        return "real_stereo_folder"
    if not path.exists():
        raise DataError(
            f"expected a stereo split, rosbag2 bag or recording at {path}; got nothing there"
        )
    raise DataError(
        f"expected a stereo split directory (with meta.json) or a rosbag2 bag (a directory "
        f"with metadata.yaml, or a .mcap or .db3 file) or a recording (a directory of "
        f"split_NNNN bags, or of such sessions) or a real stereo folder (left/, right/, "
        f"left.yaml, right.yaml); got {path}"
    )


def _recording_splits(path: Path, kind: str) -> list[Path]:
    """The closed splits of a session, or of every session of a root in name order."""
    sessions = [path] if kind == "rosbag2_recording" else recording_sessions(path)
    splits = [split for session in sessions for split in closed_splits(session)]
    if not splits:
        partial = [p.name for session in sessions for p in partial_splits(session)]
        raise DataError(
            f"recording {path} expected at least one closed split_NNNN bag; got only "
            f"incomplete ones {partial} (run recover_session on it to rebuild them)"
        )
    return splits


def _chain_renumbered(parts: list[Iterator[StereoSample]]) -> Iterator[StereoSample]:
    """The samples of several iterators in turn, numbered 0, 1, 2... across all of them."""
    index = 0
    for part in parts:
        for sample in part:
            yield dataclasses.replace(sample, index=index)
            index += 1


def _iter_set(reader: StereoSetReader, indices: list[int]) -> Iterator[StereoSample]:
    for index in indices:
        yield reader[index]


def iter_stereo_samples(
    path: str | os.PathLike[str],
    *,
    topics: StereoTopics = DEFAULT_TOPICS,
    slop_s: float = 0.005,
    gt_topic: str | None = DEFAULT_GT_TOPIC,
    load_ground_truth: bool = True,
    frames: slice | None = None,
) -> Iterator[StereoSample]:
    """Iterate over the stereo samples of a synthetic split, a rosbag2 bag, a recording or a
    real stereo folder.

    The source is opened (and checked) when this is called; samples load lazily. A
    recording yields the pairs of its closed splits in split order (sessions in name order
    for a root), numbered consecutively; ``.partial`` splits are skipped.

    Args:
        path: a split directory written by :class:`StereoSetWriter`, a rosbag2 bag, a
            recording session, a recording root or a real stereo folder (see
            :func:`stereo_source_kind`; a real folder's samples carry ``joints`` only where
            all 21 are labelled).
        topics: stereo topic names (bags only).
        slop_s: left-right stamp tolerance in seconds (bags only).
        gt_topic: ground-truth joints topic (bags only).
        load_ground_truth: False never reads ground truth (``annotations.npz`` is not
            opened, the ground-truth topic is not read): what self-supervised adaptation
            uses.
        frames: which pairs: a slice of their positions in the source's order (0-based,
            step 1; :func:`parse_frame_slice` makes one from ``"START:STOP"``), or None for
            all. The samples keep their ``index``.

    Returns:
        Iterator of :class:`StereoSample`.

    Raises:
        DataError: ``path`` is not a split, bag or recording, or the source is invalid (for a
            recording: no closed split, or a split that is not a stereo bag).
        ConfigError: a bad ``frames`` (:func:`check_frame_slice`).
    """
    frames = check_frame_slice(frames)
    return _iter_source(Path(path), topics, slop_s, gt_topic, load_ground_truth, frames)


def _iter_source(
    path: Path,
    topics: StereoTopics,
    slop_s: float,
    gt_topic: str | None,
    load_ground_truth: bool,
    frames: slice | None,
) -> Iterator[StereoSample]:
    """The selected samples of a source (:func:`iter_stereo_samples`)."""
    kind = stereo_source_kind(path)
    if kind == "stereo_set":
        reader = StereoSetReader(path, load_ground_truth=load_ground_truth)
        return _iter_set(reader, select_frames(range(len(reader)), frames))
    if kind == "real_stereo_folder":
        folder = RealStereoFolder.open(path, load_labels=load_ground_truth)
        return (
            folder.read_sample(frame, load_ground_truth=load_ground_truth)
            for frame in select_frames(folder.frames, frames)
        )
    if kind == "rosbag2":
        samples = read_stereo_bag(
            path, topics, slop_s, gt_topic, load_ground_truth=load_ground_truth
        )
    else:
        # Every split is opened and checked now; each reads its pairs only when reached.
        parts = [
            read_stereo_bag(split, topics, slop_s, gt_topic, load_ground_truth=load_ground_truth)
            for split in _recording_splits(path, kind)
        ]
        samples = _chain_renumbered(parts)
    if frames is None:
        return samples
    # A bag has no random access: the pairs before ``start`` are read and dropped.
    return itertools.islice(samples, frames.start, frames.stop)
