"""One entry point for every stereo source the adapt and eval commands accept."""

from __future__ import annotations

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
from stereo_hand_mesh.data.sample import StereoSample
from stereo_hand_mesh.data.stereo_set import StereoSetReader, is_stereo_set
from stereo_hand_mesh.errors import DataError

__all__ = ["iter_stereo_samples", "stereo_source_kind"]


def stereo_source_kind(path: str | os.PathLike[str]) -> str:
    """``"stereo_set"`` or ``"rosbag2"`` for what ``path`` holds.

    Raises:
        DataError: ``path`` is neither a synthetic split directory (with meta.json) nor a
            rosbag2 bag (a directory with metadata.yaml, or a .mcap / .db3 file).
    """
    path = Path(path)
    if is_stereo_set(path):
        return "stereo_set"
    if is_rosbag2(path):
        return "rosbag2"
    if not path.exists():
        raise DataError(f"expected a stereo split or rosbag2 bag at {path}; got nothing there")
    raise DataError(
        f"expected a stereo split directory (with meta.json) or a rosbag2 bag (a directory "
        f"with metadata.yaml, or a .mcap or .db3 file); got {path}"
    )


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
    """Iterate over the stereo samples of a synthetic split or a rosbag2 bag.

    The source is opened (and checked) when this is called; samples load lazily.

    Args:
        path: a split directory written by :class:`StereoSetWriter`, or a rosbag2 bag.
        topics: stereo topic names (bags only).
        slop_s: left-right stamp tolerance in seconds (bags only).
        gt_topic: ground-truth joints topic (bags only).
        load_ground_truth: False never reads ground truth (``annotations.npz`` is not
            opened, the ground-truth topic is not read): what self-supervised adaptation
            uses.

    Returns:
        Iterator of :class:`StereoSample`.

    Raises:
        DataError: ``path`` is not a split or a bag, or the source is invalid.
    """
    if stereo_source_kind(path) == "stereo_set":
        return _iter_set(StereoSetReader(path, load_ground_truth=load_ground_truth))
    return read_stereo_bag(path, topics, slop_s, gt_topic, load_ground_truth=load_ground_truth)
