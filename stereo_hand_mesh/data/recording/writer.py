"""Recording stereo pairs into a session of split rosbag2 bags (ROS-free): the writer, its
session lock and its fsync.

The adaptation node hands every synchronized pair, already serialized to CDR, to a
:class:`SplitBagRecorder`, which writes a *session* of short, standalone rosbag2 bags (the
layout: :mod:`.layout`).

A split is written inside its ``.partial`` directory and moved to ``split_NNNN`` only after
the rosbag2 writer has closed it (and, by default, after an fsync), so whatever kills the
process leaves every ``split_NNNN`` complete and the open split plainly marked incomplete.
:func:`~.recovery.recover_session` deals with the ``.partial`` leftovers at start-up; it
tells a live session from a crashed one with :func:`session_in_use`.

This module imports rosbags only inside the functions that need it, never rclpy or torch.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stereo_hand_mesh.data.bags import (
    CAMERA_INFO_MSGTYPE,
    DEFAULT_TOPICS,
    IMAGE_MSGTYPE,
    StereoTopics,
    camera_info_msg,
    fully_qualified_topic,
    image_msg,
    rosbags_typestore,
)
from stereo_hand_mesh.data.camera_info_yaml import DEFAULT_LEFT_FRAME_ID, DEFAULT_RIGHT_FRAME_ID
from stereo_hand_mesh.data.recording.layout import SPLIT_RE, split_name
from stereo_hand_mesh.data.sample import StereoSample
from stereo_hand_mesh.errors import ConfigError, DataError, RecordingStoppedError

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.rosbag2 import Writer

__all__ = [
    "RecorderSettings",
    "RecordingSummary",
    "SplitBagRecorder",
    "fsync_bag",
    "fsync_path",
    "pair_messages_cdr",
    "session_in_use",
]

#: Session names accepted by :meth:`SplitBagRecorder.start`.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LOCK_NAME = ".recording.lock"
_MB = 2**20

# --------------------------------------------------------------------------------------------
# Files: fsync and error reasons


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (its entries)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_bag(bag: Path) -> None:
    """fsync every file of a bag directory, then the directory itself."""
    for child in bag.iterdir():
        fsync_path(child)
    fsync_path(bag)


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remove_tree(path: Path) -> None:
    """Remove a directory tree; errors are ignored (what is left is cleaned up later)."""
    shutil.rmtree(path, ignore_errors=True)


def _errno_name(err: OSError) -> str:
    return errno.errorcode.get(err.errno or 0, "OSError")


def _os_error_reason(err: OSError, where: Path | None) -> str:
    """``"disk full (ENOSPC: No space left on device) writing <where>"`` and the like."""
    name = _errno_name(err)
    kind = {
        "ENOSPC": "disk full",
        "EDQUOT": "disk quota exceeded",
        "EFBIG": "file too large",
    }.get(name, "write error")
    target = f" writing {where}" if where is not None else ""
    return f"{kind} ({name}: {err.strerror or err}){target}"


# --------------------------------------------------------------------------------------------
# Session lock: a recorder holds an flock on <session>/.recording.lock; the kernel drops it
# when the process dies, however it dies, so recover_session can tell a live session from a
# crashed one.


def _acquire_lock(session: Path) -> int | None:
    """Lock a session for writing; the file descriptor, or None where flock is unsupported."""
    import fcntl

    fd = os.open(session / _LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataError(f"expected an unused session; {session} is being recorded") from None
    except OSError:  # a file system without flock (some NFS): record without the lock
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _release_lock(session: Path, fd: int | None) -> None:
    if fd is None:
        return
    with contextlib.suppress(OSError):
        (session / _LOCK_NAME).unlink()
    with contextlib.suppress(OSError):
        os.close(fd)


def session_in_use(session: Path) -> bool:
    """True while a live recorder holds the session's lock; a stale lock file is removed."""
    import fcntl

    lock = session / _LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        lock.unlink()
    return False


# --------------------------------------------------------------------------------------------
# Recording


@dataclass(frozen=True)
class RecorderSettings:
    """Settings of :class:`SplitBagRecorder`.

    Attributes:
        bag_dir: the recording root; each :meth:`SplitBagRecorder.start` makes a session
            directory in it (created if missing).
        split_seconds: a new split starts with the first pair whose header stamp is at least
            this many seconds after the first stamp of the open split, > 0 (default 5.0).
        storage: rosbag2 storage; only ``"mcap"`` (crash recovery reads MCAP).
        min_free_mb: recording stops cleanly (the open split is closed and kept) before a
            write when the free space of ``bag_dir``'s file system is below this many MB
            (1 MB = 2**20 bytes); 0 disables the check (default 200).
        max_pairs: recording stops after this many pairs; 0 = unlimited (default).
        fsync: fsync each split's files before it is renamed to its final name, so that a
            power loss cannot leave a ``split_NNNN`` with missing data (default True).
    """

    bag_dir: Path
    split_seconds: float = 5.0
    storage: str = "mcap"
    min_free_mb: float = 200.0
    max_pairs: int = 0
    fsync: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.bag_dir, (str, os.PathLike)) or not str(self.bag_dir):
            raise ConfigError(
                f"RecorderSettings.bag_dir expected a directory path; got {self.bag_dir!r}"
            )
        object.__setattr__(self, "bag_dir", Path(self.bag_dir))
        if (
            isinstance(self.split_seconds, bool)
            or not isinstance(self.split_seconds, (int, float))
            or not (math.isfinite(self.split_seconds) and self.split_seconds > 0)
        ):
            raise ConfigError(
                f"RecorderSettings.split_seconds expected a finite number > 0; "
                f"got {self.split_seconds!r}"
            )
        if self.storage != "mcap":
            raise ConfigError(
                f"RecorderSettings.storage expected 'mcap' (crash recovery reads MCAP); "
                f"got {self.storage!r}"
            )
        if (
            isinstance(self.min_free_mb, bool)
            or not isinstance(self.min_free_mb, (int, float))
            or not (math.isfinite(self.min_free_mb) and self.min_free_mb >= 0)
        ):
            raise ConfigError(
                f"RecorderSettings.min_free_mb expected a finite number >= 0; "
                f"got {self.min_free_mb!r}"
            )
        if isinstance(self.max_pairs, bool) or not isinstance(self.max_pairs, int):
            raise ConfigError(
                f"RecorderSettings.max_pairs expected an int; got {self.max_pairs!r}"
            )
        if self.max_pairs < 0:
            raise ConfigError(
                f"RecorderSettings.max_pairs expected >= 0 (0 = unlimited); got {self.max_pairs}"
            )


@dataclass(frozen=True)
class RecordingSummary:
    """What a recorder has written (a snapshot).

    Attributes:
        session_dir: the session directory, None before the first start().
        state: ``"idle"``, ``"recording"``, ``"stopped"`` (by stop()), or
            ``"stopped: <why>"`` when the recorder stopped by itself: ``"stopped: disk full
            (ENOSPC: ...) writing <path>"``, ``"stopped: low disk space: ..."``,
            ``"stopped: reached max_pairs N"``, ``"stopped: write error (...)"``.
        pairs_written: pairs in the closed splits plus the open one.
        pairs_discarded: pairs lost with a split removed after a write error.
        splits: the closed, complete splits of the session, in order.
        bytes_written: bytes on disk of the closed splits.
        open_split: the ``.partial`` directory being written, or None.
    """

    session_dir: Path | None
    state: str
    pairs_written: int
    pairs_discarded: int
    splits: tuple[Path, ...]
    bytes_written: int
    open_split: Path | None

    @property
    def splits_closed(self) -> int:
        """Number of closed splits."""
        return len(self.splits)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serializable form (paths as strings)."""
        return {
            "session_dir": None if self.session_dir is None else str(self.session_dir),
            "state": self.state,
            "pairs_written": self.pairs_written,
            "pairs_discarded": self.pairs_discarded,
            "splits_closed": self.splits_closed,
            "splits": [str(p) for p in self.splits],
            "bytes_written": self.bytes_written,
            "open_split": None if self.open_split is None else str(self.open_split),
        }


class _LowSpaceError(Exception):
    """Internal: free space below min_free_mb (the recorder stops and keeps the split)."""


@dataclass
class _OpenSplit:
    """The split being written: its writer, connections and first stamp."""

    partial: Path
    bag: Path
    final: Path
    writer: Writer
    first_stamp_ns: int
    connections: dict[tuple[str, str], Connection] = field(default_factory=dict)
    pairs: int = 0


def _check_messages(stamp_ns: Any, messages: Any, known_types: Any) -> None:
    """Validate one pair's input to :meth:`SplitBagRecorder.write_pair` (raises DataError)."""
    if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, (int, np.integer)) or stamp_ns < 0:
        raise DataError(f"write_pair stamp_ns expected an int >= 0 (ns); got {stamp_ns!r}")
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise DataError(
            f"write_pair messages expected a non-empty sequence of (topic, msgtype, cdr "
            f"bytes); got {type(messages).__name__} {messages!r:.80}"
        )
    seen: set[str] = set()
    for item in messages:
        if not (isinstance(item, (tuple, list)) and len(item) == 3):
            raise DataError(
                f"write_pair message expected a (topic, msgtype, cdr bytes) tuple; "
                f"got {item!r:.80}"
            )
        topic, msgtype, cdr = item
        if not isinstance(topic, str) or not topic.strip("/"):
            raise DataError(f"write_pair topic expected a topic name; got {topic!r}")
        if fully_qualified_topic(topic) in seen:
            raise DataError(f"write_pair expected each topic once per pair; got {topic} twice")
        seen.add(fully_qualified_topic(topic))
        if not isinstance(msgtype, str) or msgtype not in known_types:
            raise DataError(
                f"write_pair msgtype of {topic} expected a ROS 2 message type such as "
                f"{IMAGE_MSGTYPE!r}; got {msgtype!r}"
            )
        if not isinstance(cdr, (bytes, bytearray, memoryview)) or len(cdr) < 4:
            size = len(cdr) if hasattr(cdr, "__len__") else "?"
            raise DataError(
                f"write_pair message on {topic} expected CDR bytes (serialize_message); "
                f"got {type(cdr).__name__} of length {size}"
            )


class SplitBagRecorder:
    """Writes stereo pairs into a session of short, standalone rosbag2 bags.

    Thread-safe: the node may call :meth:`write_pair` from a subscription callback and
    :meth:`stop` from a service callback. Pairs are written with their header stamp as the
    log time of all their messages; topics are stored fully qualified (``/left/image_rect``).

    On an OSError while writing (ENOSPC, EDQUOT, EFBIG, EIO...), or any other failure of the
    writer, the open split is removed (a half-written pair is never kept), the closed splits
    stay as they are, the state says why, and that one :meth:`write_pair` raises
    :class:`~stereo_hand_mesh.errors.RecordingStoppedError`. When free space falls below
    ``min_free_mb`` the open split is closed and kept instead. Once stopped, write_pair
    returns False until the next :meth:`start`.

    Cost at 640x480 (1.84 MB of CDR per pair; 2-core development VM): 3-4 ms per
    write_pair (the MCAP chunk writes); the pair that closes a 1 s split also pays the close,
    the fsync of about 53 MB and the rename, 40-50 ms (about 20 ms with ``fsync=False``).

    Examples:
        >>> recorder = SplitBagRecorder(RecorderSettings(bag_dir="/data/bags"))
        >>> session = recorder.start()
        >>> recorder.write_pair(stamp_ns, [("/left/image_rect", IMAGE_MSGTYPE, cdr), ...])
        >>> summary = recorder.stop()
    """

    def __init__(self, settings: RecorderSettings) -> None:
        if not isinstance(settings, RecorderSettings):
            raise ConfigError(f"settings expected RecorderSettings; got {type(settings).__name__}")
        self.settings = settings
        self._mutex = threading.Lock()
        self._state = "idle"
        self._session: Path | None = None
        self._lock_fd: int | None = None
        self._split: _OpenSplit | None = None
        self._next_index = 0
        self._closed: list[Path] = []
        self._pairs = 0
        self._discarded = 0
        self._bytes = 0

    # ---- state

    @property
    def state(self) -> str:
        """``"idle"``, ``"recording"``, ``"stopped"`` or ``"stopped: <why>"``."""
        return self._state

    @property
    def recording(self) -> bool:
        """True between start() and a stop (by stop() or by itself)."""
        return self._state == "recording"

    @property
    def session_dir(self) -> Path | None:
        """The current (or last) session directory."""
        return self._session

    def summary(self) -> RecordingSummary:
        """A snapshot of what has been written (cheap: no file system access)."""
        with self._mutex:
            return self._summary()

    def _summary(self) -> RecordingSummary:
        return RecordingSummary(
            session_dir=self._session,
            state=self._state,
            pairs_written=self._pairs,
            pairs_discarded=self._discarded,
            splits=tuple(self._closed),
            bytes_written=self._bytes,
            open_split=None if self._split is None else self._split.partial,
        )

    # ---- start / stop

    def start(self, name: str | None = None) -> Path:
        """Create a session directory and start recording into it.

        Args:
            name: the session directory's name inside ``bag_dir`` (letters, digits, ``.``,
                ``_``, ``-``; not starting with ``.``; not ``split_NNNN``); None = the UTC
                time, ``rec_20261201T213000Z`` (``_2``, ``_3``... appended if taken).

        Returns:
            The session directory.

        Raises:
            ConfigError: ``name`` has a path separator, ``..``, is absolute, or would lie
                outside ``bag_dir``.
            DataError: already recording; the session exists already; ``bag_dir`` cannot be
                created; free space is below ``min_free_mb``.
        """
        with self._mutex:
            if self._state == "recording":
                raise DataError(
                    f"start expected a stopped recorder; it is recording into {self._session}"
                )
            root = self.settings.bag_dir
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise DataError(f"could not create the recording root {root}: {err}") from None
            session = _session_path(root, name)
            self._check_free_space(root, starting=True)
            try:
                session.mkdir()
            except FileExistsError:
                raise DataError(
                    f"expected a new session directory; {session} exists already (not overwriting)"
                ) from None
            except OSError as err:
                raise DataError(f"could not create the session {session}: {err}") from None
            self._lock_fd = _acquire_lock(session)
            self._session = session
            self._split = None
            self._next_index = 0
            self._closed = []
            self._pairs = self._discarded = self._bytes = 0
            self._state = "recording"
            return session

    def stop(self) -> RecordingSummary:
        """Close the open split and stop; a no-op when not recording.

        Never raises on a write error: the split is then removed and the returned state says
        why (``"stopped: disk full ..."``).

        Returns:
            The final :class:`RecordingSummary`.
        """
        with self._mutex:
            if self._state == "recording":
                self._halt(None, keep_split=True)
            return self._summary()

    def __enter__(self) -> SplitBagRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- writing

    def write_pair(self, stamp_ns: int, messages: Sequence[tuple[str, str, bytes]]) -> bool:
        """Write one pair's messages into the open split (opening or rolling it as needed).

        Args:
            stamp_ns: the pair's header stamp (the left image's), nanoseconds since the
                epoch; used as the log time of every message and to split the session.
            messages: ``(topic, msgtype, cdr)`` per message, e.g. the four of
                :data:`~stereo_hand_mesh.data.bags.DEFAULT_TOPICS` with types
                ``sensor_msgs/msg/Image`` and ``sensor_msgs/msg/CameraInfo`` and the bytes of
                ``rclpy.serialization.serialize_message``. Topics are stored fully
                qualified.

        Returns:
            True when written; False when not recording (idle, or stopped before this call).

        Raises:
            DataError: malformed ``messages`` (nothing is written; recording goes on).
            RecordingStoppedError: this write stopped the recording (disk full, low space,
                write error); raised once, later calls return False.
        """
        with self._mutex:
            if self._state != "recording":
                return False
            store = rosbags_typestore()
            _check_messages(stamp_ns, messages, store.types)
            assert self._session is not None
            try:
                self._check_free_space(self._session)
                split = self._split
                if split is not None and self._split_is_over(split, int(stamp_ns)):
                    self._close_split(split)
                    self._check_free_space(self._session)
                    split = None
                if split is None:
                    split = self._open_split(int(stamp_ns))
                for topic, msgtype, cdr in messages:
                    key = (fully_qualified_topic(topic), msgtype)
                    conn = split.connections.get(key)
                    if conn is None:
                        conn = split.writer.add_connection(key[0], msgtype, typestore=store)
                        split.connections[key] = conn
                    split.writer.write(conn, int(stamp_ns), cdr)
            except _LowSpaceError as low:
                self._halt(str(low), keep_split=True)  # the state says if closing failed
                raise RecordingStoppedError(f"recording {self._state}") from None
            except OSError as err:
                where = self._split.partial if self._split is not None else self._session
                self._halt(_os_error_reason(err, where), keep_split=False)
                raise RecordingStoppedError(f"recording {self._state}") from err
            except Exception as err:  # the writer failed in another way: stop, keep nothing
                self._halt(f"write error ({type(err).__name__}: {err})", keep_split=False)
                raise RecordingStoppedError(f"recording {self._state}") from err
            split.pairs += 1
            self._pairs += 1
            if self.settings.max_pairs and self._pairs >= self.settings.max_pairs:
                done = f"reached max_pairs {self.settings.max_pairs}"
                self._halt(done, keep_split=True)
                if self._state != f"stopped: {done}":  # closing the last split failed
                    raise RecordingStoppedError(f"recording {self._state}")
            return True

    def _split_is_over(self, split: _OpenSplit, stamp_ns: int) -> bool:
        """A pair ``split_seconds`` after the split's first one, or as far before it (a clock
        jump back), starts a new split."""
        span = round(self.settings.split_seconds * 1e9)
        return abs(stamp_ns - split.first_stamp_ns) >= span

    def _check_free_space(self, where: Path, starting: bool = False) -> None:
        limit = self.settings.min_free_mb
        if limit <= 0:
            return
        free = shutil.disk_usage(where).free
        if free < limit * _MB:
            reason = (
                f"low disk space: {free / _MB:.1f} MB free on the file system of {where}; "
                f"expected at least min_free_mb {limit:g}"
            )
            if starting:
                raise DataError(f"could not start recording: {reason}")
            raise _LowSpaceError(reason)

    def _open_split(self, stamp_ns: int) -> _OpenSplit:
        from rosbags.rosbag2 import StoragePlugin, Writer

        assert self._session is not None
        name = split_name(self._next_index)
        self._next_index += 1
        partial = self._session / f".{name}.partial"
        bag = partial / name
        final = self._session / name
        if final.exists() or partial.exists():
            raise DataError(f"expected a new split; {final} or {partial} exists (not overwriting)")
        partial.mkdir()
        writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
        self._split = _OpenSplit(partial, bag, final, writer, stamp_ns)
        writer.open()
        return self._split

    def _close_split(self, split: _OpenSplit) -> None:
        """Close the writer, then move the bag to its final name (errors propagate while the
        split is still partial; after the rename nothing can fail)."""
        split.writer.close()
        if self.settings.fsync:
            fsync_bag(split.bag)
        if split.final.exists():
            raise DataError(f"expected a new split; {split.final} exists (not overwriting)")
        os.rename(split.bag, split.final)
        self._split = None
        self._closed.append(split.final)
        with contextlib.suppress(OSError):
            self._bytes += _tree_bytes(split.final)
        with contextlib.suppress(OSError):
            if self.settings.fsync:
                fsync_path(split.final.parent)
            split.partial.rmdir()

    def _discard_split(self, split: _OpenSplit) -> None:
        with contextlib.suppress(Exception):
            split.writer.abort()
        _remove_tree(split.partial)
        self._split = None
        self._pairs -= split.pairs
        self._discarded += split.pairs

    def _halt(self, reason: str | None, keep_split: bool) -> None:
        """Close (or remove) the open split, release the session, set the state."""
        split = self._split
        if split is not None and keep_split:
            try:
                self._close_split(split)
            except OSError as err:
                reason = _os_error_reason(err, split.partial)
                self._discard_split(split)
            except Exception as err:
                reason = f"write error ({type(err).__name__}: {err})"
                self._discard_split(split)
        elif split is not None:
            self._discard_split(split)
        if self._session is not None:
            _release_lock(self._session, self._lock_fd)
        self._lock_fd = None
        self._state = "stopped" if reason is None else f"stopped: {reason}"


def _session_path(root: Path, name: str | None) -> Path:
    """The session directory for ``name`` (validated) or a fresh UTC-time name."""
    if name is None:
        base = "rec_" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        candidate, n = base, 1
        while (root / candidate).exists():
            n += 1
            candidate = f"{base}_{n}"
        return root / candidate
    expected = (
        f"recording name expected a plain directory name inside {root} (letters, digits, '.', "
        f"'_', '-', not starting with '.', not split_NNNN)"
    )
    if not isinstance(name, str):
        raise ConfigError(f"{expected}; got {type(name).__name__} {name!r}")
    if "/" in name or "\\" in name or os.sep in name or (os.altsep and os.altsep in name):
        raise ConfigError(f"{expected}; got {name!r}, which has a path separator")
    if os.path.isabs(name) or name in ("", ".", ".."):
        raise ConfigError(f"{expected}; got {name!r}")
    if not _NAME_RE.fullmatch(name) or SPLIT_RE.fullmatch(name):
        raise ConfigError(f"{expected}; got {name!r}")
    session = root / name
    if session.resolve().parent != root.resolve():
        raise ConfigError(f"{expected}; got {name!r}, which resolves to {session.resolve()}")
    return session


def pair_messages_cdr(
    sample: StereoSample,
    stamp_ns: int,
    topics: StereoTopics = DEFAULT_TOPICS,
    left_frame_id: str | None = None,
    right_frame_id: str | None = None,
) -> list[tuple[str, str, bytes]]:
    """The four messages of a stereo sample as :meth:`SplitBagRecorder.write_pair` takes them.

    For sources without ROS (the synthetic generator, tests, a replay of files): rgb8 images
    and the sample's camera_info, all stamped ``stamp_ns``, CDR-serialized with the rosbags
    type store (the bytes ``rclpy.serialization.serialize_message`` gives for the same
    messages).

    Args:
        sample: a stereo pair; (H, W, 3) uint8 RGB images.
        stamp_ns: header stamp, nanoseconds.
        topics: topic names.
        left_frame_id: None = the left camera_info's frame_id, else the default optical frame.
        right_frame_id: same for the right view.

    Returns:
        ``[(left image topic, type, cdr), (left info ...), (right image ...), (right info ...)]``.
    """
    store = rosbags_typestore()
    left_frame = left_frame_id or sample.left_info.frame_id or DEFAULT_LEFT_FRAME_ID
    right_frame = right_frame_id or sample.right_info.frame_id or DEFAULT_RIGHT_FRAME_ID
    msgs = [
        (topics.left_image, IMAGE_MSGTYPE, image_msg(sample.left, stamp_ns, left_frame, "left")),
        (
            topics.left_info,
            CAMERA_INFO_MSGTYPE,
            camera_info_msg(sample.left_info, stamp_ns, left_frame),
        ),
        (
            topics.right_image,
            IMAGE_MSGTYPE,
            image_msg(sample.right, stamp_ns, right_frame, "right"),
        ),
        (
            topics.right_info,
            CAMERA_INFO_MSGTYPE,
            camera_info_msg(sample.right_info, stamp_ns, right_frame),
        ),
    ]
    return [
        (fully_qualified_topic(topic), msgtype, bytes(store.serialize_cdr(msg, msgtype)))
        for topic, msgtype, msg in msgs
    ]
