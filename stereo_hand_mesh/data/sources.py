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
import os
from collections.abc import Iterator
from pathlib import Path

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
from stereo_hand_mesh.errors import DataError

__all__ = ["iter_stereo_samples", "stereo_source_kind"]


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


def _iter_set(reader: StereoSetReader) -> Iterator[StereoSample]:
    for index in range(len(reader)):
        yield reader[index]


def iter_stereo_samples(
    path: str | os.PathLike[str],
    *,
    topics: StereoTopics = DEFAULT_TOPICS,
    slop_s: float = 0.005,
    gt_topic: str | None = DEFAULT_GT_TOPIC,
    load_ground_truth: bool = True,
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

    Returns:
        Iterator of :class:`StereoSample`.

    Raises:
        DataError: ``path`` is not a split, bag or recording, or the source is invalid (for a
            recording: no closed split, or a split that is not a stereo bag).
    """
    path = Path(path)
    kind = stereo_source_kind(path)
    if kind == "stereo_set":
        return _iter_set(StereoSetReader(path, load_ground_truth=load_ground_truth))
    if kind == "rosbag2":
        return read_stereo_bag(path, topics, slop_s, gt_topic, load_ground_truth=load_ground_truth)
    if kind == "real_stereo_folder":
        folder = RealStereoFolder.open(path, load_labels=load_ground_truth)
        return folder.iter_samples(load_ground_truth=load_ground_truth)
    # Every split is opened and checked now; each reads its pairs only when reached.
    parts = [
        read_stereo_bag(split, topics, slop_s, gt_topic, load_ground_truth=load_ground_truth)
        for split in _recording_splits(path, kind)
    ]
    return _chain_renumbered(parts)
