"""The on-disk layout of a recording session, and the read side of it (no writing, no locks).

A recording root holds sessions; a session holds complete splits and at most one open one::

    <bag_dir>/                          RecorderSettings.bag_dir, the recording root
        rec_20261201T213000Z/           one session per start() (UTC time, or a given name)
            .recording.lock             flock-ed while a recorder writes the session
            split_0000/                 a complete rosbag2 bag: version 9, MCAP
                metadata.yaml
                split_0000.mcap
            split_0001/
            .split_0002.partial/        the open split: incomplete until renamed
                split_0002/             the bag being written (no metadata.yaml yet)

Readers (:func:`stereo_hand_mesh.data.sources.iter_stereo_samples`) take a session, or a
root of sessions, wherever they take a bag; they read :func:`closed_splits` and never a
``.partial`` one. The writer (:mod:`.writer`) and the recovery (:mod:`.recovery`) name
splits with :func:`split_name` and the patterns below.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "PARTIAL_RE",
    "RECOVERING_RE",
    "SPLIT_RE",
    "closed_splits",
    "is_recording_session",
    "partial_splits",
    "recording_sessions",
    "split_name",
]

#: A closed split: a complete rosbag2 bag directory.
SPLIT_RE = re.compile(r"split_(\d{4,})")
#: The open split of a session (or the leftover of a crash).
PARTIAL_RE = re.compile(r"\.split_(\d{4,})\.partial")
#: A split being rebuilt by :func:`~.recovery.recover_session` (a leftover when recovery was
#: killed).
RECOVERING_RE = re.compile(r"\.split_(\d{4,})\.recovering")


def split_name(index: int) -> str:
    """The directory (and bag) name of split number ``index``: ``split_0007``."""
    return f"split_{index:04d}"


def closed_splits(session: str | os.PathLike[str]) -> list[Path]:
    """The complete splits of a recording session, in split order.

    Args:
        session: a session directory.

    Returns:
        The ``split_NNNN`` children that are rosbag2 bags (with metadata.yaml), sorted by
        their number; ``.partial`` splits are never included.
    """
    session = Path(session)
    if not session.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in session.iterdir()
        if (m := SPLIT_RE.fullmatch(p.name)) and (p / "metadata.yaml").is_file()
    ]
    return [p for _, p in sorted(found)]


def partial_splits(session: str | os.PathLike[str]) -> list[Path]:
    """The ``.split_NNNN.partial`` directories of a session (open, or left by a crash)."""
    session = Path(session)
    if not session.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in session.iterdir() if (m := PARTIAL_RE.fullmatch(p.name))
    ]
    return [p for _, p in sorted(found)]


def is_recording_session(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a session directory: not a bag itself, with at least one closed
    or ``.partial`` split."""
    path = Path(path)
    if not path.is_dir() or (path / "metadata.yaml").exists() or (path / "meta.json").exists():
        return False
    return bool(closed_splits(path) or partial_splits(path))


def recording_sessions(root: str | os.PathLike[str]) -> list[Path]:
    """The sessions directly under a recording root, in name order (= start order for the
    default UTC names); hidden directories are skipped."""
    root = Path(root)
    if not root.is_dir() or (root / "metadata.yaml").exists():
        return []
    return sorted(
        p for p in root.iterdir() if not p.name.startswith(".") and is_recording_session(p)
    )
