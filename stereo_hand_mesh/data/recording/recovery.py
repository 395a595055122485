"""Crash recovery of recording sessions: the ``.partial`` splits a killed recorder left behind
become complete bags, or are removed (ROS-free).

This module imports rosbags and mcap only inside the functions that need them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stereo_hand_mesh.data.bags import (
    CAMERA_INFO_MSGTYPE,
    DEFAULT_TOPICS,
    IMAGE_MSGTYPE,
    StereoTopics,
    bag_info,
    resolve_topic,
    rosbags_typestore,
)
from stereo_hand_mesh.data.recording.layout import (
    PARTIAL_RE,
    RECOVERING_RE,
    is_recording_session,
    partial_splits,
    recording_sessions,
)
from stereo_hand_mesh.data.recording.writer import fsync_bag, fsync_path, session_in_use
from stereo_hand_mesh.errors import DataError

if TYPE_CHECKING:
    from rosbags.interfaces import Connection

__all__ = ["RecoveredSplit", "recover_session"]


def _remove_tree(path: Path) -> None:
    """Remove a directory tree; errors are ignored (what is left is cleaned up later)."""
    shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class RecoveredSplit:
    """What :func:`recover_session` did with one ``.partial`` split.

    Attributes:
        partial: the ``.split_NNNN.partial`` directory (gone, unless ``action == "failed"``).
        action: ``"recovered"`` (its readable messages are now the complete bag ``split``),
            ``"discarded"`` (nothing readable, or a complete split of that number exists;
            removed) or ``"failed"`` (the rebuilt bag could not be written; left in place,
            readers skip it).
        split: the complete split written from it, or None.
        messages: messages in ``split``.
        dropped_messages: readable messages left out: those at a stamp that lacks one of
            the four stereo topics (the pair the crash cut in two).
        reason: one line saying why.
    """

    partial: Path
    action: str
    split: Path | None
    messages: int
    dropped_messages: int
    reason: str


def recover_session(
    path: str | os.PathLike[str], topics: StereoTopics = DEFAULT_TOPICS
) -> list[RecoveredSplit]:
    """Turn the ``.partial`` splits that a crash left behind into complete bags, or remove them.

    Chosen behaviour: **recover** what can be read. A partial split's MCAP file is read as a
    stream up to the first incomplete record: rosbags writes messages in chunks of about 1
    MiB, so a killed recorder leaves the chunks written before the kill intact (what it still
    held in memory, at most about 1 MiB plus the last pair, is lost). Their complete stereo
    pairs (the stamps that carry all four stereo topics, with whatever else was recorded at
    them) are written into a new complete bag, first under ``.split_NNNN.recovering/``, then
    renamed to ``split_NNNN``; the partial directory is removed last, so a crash during
    recovery loses nothing either. A partial split whose writer had already closed (a crash
    just before the rename) is renamed as it is. A partial split without one complete pair
    (killed before its first chunk reached the disk) is removed. A closed split is never
    touched nor overwritten. Sessions locked by a live recorder are skipped.

    Call it at start-up, before recording (a session being written by another process is
    recognized by its lock and left alone).

    Args:
        path: a session directory, or a recording root holding sessions.
        topics: the stereo topics that make a pair complete (matched as readers match them).

    Returns:
        One :class:`RecoveredSplit` per ``.partial`` split found, in session and split order.

    Raises:
        DataError: ``path`` is not a directory.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"expected a recording session or root directory; got {path}")
    sessions = [path] if is_recording_session(path) else _sessions_with_partials(path)
    results: list[RecoveredSplit] = []
    for session in sessions:
        if session_in_use(session):
            continue
        for child in session.iterdir():
            if RECOVERING_RE.fullmatch(child.name):  # a recovery killed half-way
                _remove_tree(child)
        for partial in partial_splits(session):
            results.append(_recover_partial(session, partial, topics))
    return results


def _sessions_with_partials(root: Path) -> list[Path]:
    return [p for p in recording_sessions(root) if partial_splits(p)]


def _recover_partial(session: Path, partial: Path, topics: StereoTopics) -> RecoveredSplit:
    match = PARTIAL_RE.fullmatch(partial.name)
    assert match is not None
    name = f"split_{match.group(1)}"
    final, bag = session / name, partial / name
    if final.exists():
        _remove_tree(partial)
        return RecoveredSplit(
            partial, "discarded", None, 0, 0, f"{final.name} exists already (kept as it is)"
        )
    if (bag / "metadata.yaml").is_file():
        try:
            info = bag_info(bag)
        except DataError:
            info = None
        if info is not None:
            try:
                os.rename(bag, final)
            except OSError as err:
                return RecoveredSplit(partial, "failed", None, 0, 0, f"could not rename: {err}")
            _remove_tree(partial)
            return RecoveredSplit(
                partial,
                "recovered",
                final,
                info.message_count,
                0,
                "the split was complete (closed just before the crash); renamed",
            )
    data = bag / f"{name}.mcap"
    if not data.is_file():
        _remove_tree(partial)
        return RecoveredSplit(partial, "discarded", None, 0, 0, "no MCAP file in it")
    rebuilt = session / f".{name}.recovering"
    _remove_tree(rebuilt)
    try:
        kept, dropped = _rewrite_readable_messages(data, rebuilt / name, topics)
        if kept == 0:
            _remove_tree(rebuilt)
            _remove_tree(partial)
            return RecoveredSplit(
                partial,
                "discarded",
                None,
                0,
                dropped,
                "no complete stereo pair readable (killed before its first chunk was written)",
            )
        fsync_bag(rebuilt / name)
        os.rename(rebuilt / name, final)
        fsync_path(session)
    except OSError as err:
        _remove_tree(rebuilt)
        return RecoveredSplit(
            partial, "failed", None, 0, 0, f"could not write the recovered bag: {err}"
        )
    _remove_tree(rebuilt)
    _remove_tree(partial)
    return RecoveredSplit(
        partial,
        "recovered",
        final,
        kept,
        dropped,
        f"rebuilt from the readable part of {data.name}",
    )


def _readable_mcap_records(path: Path) -> Iterator[Any]:
    """Schema, Channel and Message records of an MCAP file, in file order, up to the first
    record that is incomplete or unreadable (a file cut off by a crash)."""
    from mcap.records import Channel, Chunk, Message, Schema
    from mcap.stream_reader import StreamReader, breakup_chunk

    with path.open("rb") as stream:
        records = StreamReader(stream, emit_chunks=True).records
        while True:
            try:
                record = next(records)
                if isinstance(record, Chunk):
                    if record.compression == "" and len(record.data) != record.uncompressed_size:
                        return
                    inner = breakup_chunk(record)
                else:
                    inner = [record]
            except StopIteration:
                return
            except Exception:  # truncated or garbled: everything before it is kept
                return
            for item in inner:
                if isinstance(item, (Schema, Channel, Message)):
                    yield item


def _rewrite_readable_messages(source: Path, bag: Path, topics: StereoTopics) -> tuple[int, int]:
    """Write the complete stereo pairs of a cut-off MCAP file into a new complete bag.

    Messages are grouped by log time (the recorder gives all of a pair's messages its
    stamp); a stamp is kept when it has a message on each of the four stereo topics, so the
    pair that the crash cut in two is left out and the bag is always a readable stereo bag.

    Returns:
        ``(messages written, readable messages left out)``; with 0 written no bag is made.
    """
    from mcap.records import Channel, Message, Schema
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = rosbags_typestore()
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    per_stamp: dict[int, set[int]] = {}
    total = 0
    for record in _readable_mcap_records(source):
        if isinstance(record, Schema):
            schemas[record.id] = record.name
        elif isinstance(record, Channel):
            channels[record.id] = (record.topic, schemas.get(record.schema_id, ""))
        elif isinstance(record, Message):
            total += 1
            if channels.get(record.channel_id, ("", ""))[1] in store.types:
                per_stamp.setdefault(record.log_time, set()).add(record.channel_id)
    used = {cid for chans in per_stamp.values() for cid in chans}
    available = {channels[cid][0] for cid in used}
    roles = []
    for name, msgtype in (
        (topics.left_image, IMAGE_MSGTYPE),
        (topics.left_info, CAMERA_INFO_MSGTYPE),
        (topics.right_image, IMAGE_MSGTYPE),
        (topics.right_info, CAMERA_INFO_MSGTYPE),
    ):
        topic = resolve_topic(name, sorted(available))
        roles.append({cid for cid in used if channels[cid] == (topic, msgtype)})
    keep = {stamp for stamp, chans in per_stamp.items() if all(role & chans for role in roles)}
    if not keep:
        return 0, total
    written = 0
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns: dict[int, Connection] = {}
        for record in _readable_mcap_records(source):
            if not isinstance(record, Message) or record.log_time not in keep:
                continue
            if record.channel_id not in used:
                continue
            conn = conns.get(record.channel_id)
            if conn is None:
                topic, msgtype = channels[record.channel_id]
                conn = writer.add_connection(topic, msgtype, typestore=store)
                conns[record.channel_id] = conn
            writer.write(conn, record.log_time, record.data)
            written += 1
    return written, total - written
